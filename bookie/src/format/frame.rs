//! Frames, the records of every bookie file. Two kinds, told apart by bit 31 of the length field
//! (bodies are far below 2 GiB), so one file may hold both:
//!
//! ```text
//! plain: [len: u32 LE][crc: u32 LE][body: len bytes]
//!        crc = crc32c(seed? ++ len LE ++ body)
//! split: [len | 1 << 31: u32 LE][crc: u32 LE][head_len: u16 LE][payload_crc: u32 LE][head][payload]
//!        crc = crc32c(seed? ++ length field ++ head_len ++ payload_crc ++ head),
//!        payload_crc = crc32c(payload), len = head_len + payload length
//! ```
//!
//! A split frame carries an entry: its payload's CRC32C is computed once, when the entry enters
//! the bookie (or by the broker that verified the client's checksum of the same bytes), and travels
//! with it as a [`Payload`], so writing the entry to the journal and later to a segment checksums
//! only the few bytes of its head. A decoder verifies every byte either way and returns the body
//! (`head ++ payload`), so record decoders read both kinds alike.
//!
//! The length is covered by the CRC, so a torn length is caught as well as a torn body. A seed (the
//! journal file's sequence number) makes records left over from a recycled file's previous life
//! fail their CRC instead of being replayed.

use bytes::{BufMut, Bytes};
use strata_common::crc::{crc32c, crc32c_append};

use super::FormatError;
use super::uncached::append_uncached;

/// Size of a plain frame's header (`len` + `crc`).
pub const FRAME_HEADER_LEN: usize = 8;
/// Size of a split frame's header (`len` + `crc` + `head_len` + `payload_crc`).
pub const SPLIT_HEADER_LEN: usize = 14;
/// Bit 31 of the length field: a split frame.
const SPLIT: u32 = 1 << 31;

/// What [`FormatError::Malformed`] says of a frame of length zero: zeros where a frame would
/// start (a never-written tail, or the padding after a direct write).
pub const ZERO_LENGTH: &str = "zero-length frame";

/// An entry's bytes with their CRC32C.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The bytes.
    pub bytes: Bytes,
    /// `crc32c(bytes)`.
    pub crc: u32,
}

impl Payload {
    /// Checksums `bytes` (one pass).
    pub fn new(bytes: Bytes) -> Self {
        let crc = crc32c(&bytes);
        Self { bytes, crc }
    }

    /// `bytes` with a CRC32C computed by the caller (or `None`: computed here). A wrong CRC is not
    /// noticed on write: the record it is written in fails its check on every read.
    pub fn with_crc(bytes: Bytes, crc: Option<u32>) -> Self {
        match crc {
            Some(crc) => Self { bytes, crc },
            None => Self::new(bytes),
        }
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Initial CRC of a frame: 0, or the CRC32C of the seed's LE bytes.
fn crc_init(seed: Option<u64>) -> u32 {
    seed.map_or(0, |s| crc32c(&s.to_le_bytes()))
}

/// Appends one plain frame holding `body_parts` (concatenated) to `out`.
pub fn put_frame(out: &mut Vec<u8>, body_parts: &[&[u8]]) {
    put_frame_seeded(out, None, body_parts)
}

/// [`put_frame`] with the CRC seeded by `seed`.
pub fn put_frame_seeded(out: &mut Vec<u8>, seed: Option<u64>, body_parts: &[&[u8]]) {
    let len: usize = body_parts.iter().map(|p| p.len()).sum();
    let len_bytes = (len as u32).to_le_bytes();
    let mut crc = crc32c_append(crc_init(seed), &len_bytes);
    for p in body_parts {
        crc = crc32c_append(crc, p);
    }
    out.reserve(FRAME_HEADER_LEN + len);
    out.put_slice(&len_bytes);
    out.put_u32_le(crc);
    for p in body_parts {
        out.put_slice(p);
    }
}

/// Bytes a split frame with this head and payload takes.
pub const fn split_frame_len(head_len: usize, payload_len: usize) -> usize {
    SPLIT_HEADER_LEN + head_len + payload_len
}

/// Appends one split frame, body `head ++ payload`, to `out`; the payload is copied, not read
/// for a checksum. `head` is at most 64 KiB (a record's fixed fields and key).
pub fn put_split_frame(out: &mut Vec<u8>, seed: Option<u64>, head: &[u8], payload: &Payload) {
    let len = head.len() + payload.len();
    let mut h = [0u8; SPLIT_HEADER_LEN];
    h[..4].copy_from_slice(&(len as u32 | SPLIT).to_le_bytes());
    h[8..10].copy_from_slice(&(head.len() as u16).to_le_bytes());
    h[10..].copy_from_slice(&payload.crc.to_le_bytes());
    let crc = split_crc(seed, &h, head);
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    out.reserve(len + SPLIT_HEADER_LEN);
    out.put_slice(&h);
    out.put_slice(head);
    // bound for a direct write: no CPU reads these bytes again
    append_uncached(out, &payload.bytes);
}

/// Longest head whose CRC is taken in one pass over a stack copy (a journal add's head is 27
/// bytes and its ledger's master key).
const SHORT_HEAD: usize = 96;

/// The CRC of a split frame's header (less its own field) and head. A short head is checksummed
/// with the seed and header in one contiguous pass (the same CRC as appending them part by part:
/// one call instead of four, on the journal's path for every add).
fn split_crc(seed: Option<u64>, h: &[u8; SPLIT_HEADER_LEN], head: &[u8]) -> u32 {
    if head.len() <= SHORT_HEAD {
        // fixed-size copies at fixed offsets (no loop of variable-length copies)
        let mut buf = [0u8; 8 + SPLIT_HEADER_LEN - 4 + SHORT_HEAD];
        let at = match seed {
            Some(s) => {
                buf[..8].copy_from_slice(&s.to_le_bytes());
                8
            }
            None => 0,
        };
        let fields = at + SPLIT_HEADER_LEN - 4;
        buf[at..at + 4].copy_from_slice(&h[..4]);
        buf[at + 4..fields].copy_from_slice(&h[8..]);
        let end = fields + head.len();
        buf[fields..end].copy_from_slice(head);
        return crc32c(&buf[..end]);
    }
    let crc = crc32c_append(crc_init(seed), &h[..4]);
    let crc = crc32c_append(crc, &h[8..]);
    crc32c_append(crc, head)
}

/// A verified frame of either kind.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The body (`head ++ payload` of a split frame): a zero-copy slice of the decoded buffer.
    pub body: Bytes,
    /// Bytes the frame took, header included.
    pub used: usize,
    /// A split frame's head length and payload CRC.
    split: Option<(usize, u32)>,
}

impl Frame {
    /// Decodes and verifies the frame at the start of `buf`: the header, then every byte of the
    /// body against its CRC(s). `max_len` bounds the body length before anything is read.
    pub fn decode(buf: &Bytes, max_len: u32, seed: Option<u64>) -> Result<Self, FormatError> {
        let Some(field) = buf.get(..4) else {
            return Err(FormatError::Truncated);
        };
        let field = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
        let len = field & !SPLIT;
        if len == 0 {
            return Err(FormatError::Malformed(ZERO_LENGTH));
        }
        if len > max_len {
            return Err(FormatError::TooLarge(u64::from(len)));
        }
        if field & SPLIT == 0 {
            Self::decode_plain(buf, len as usize, seed)
        } else {
            Self::decode_split(buf, len as usize, seed)
        }
    }

    fn decode_plain(buf: &Bytes, len: usize, seed: Option<u64>) -> Result<Self, FormatError> {
        let end = FRAME_HEADER_LEN + len;
        let Some(frame) = buf.get(..end) else {
            return Err(FormatError::Truncated);
        };
        let crc = crc32c_append(crc_init(seed), &frame[..4]);
        let crc = crc32c_append(crc, &frame[FRAME_HEADER_LEN..]);
        if crc != u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]) {
            return Err(FormatError::BadCrc);
        }
        Ok(Self {
            body: buf.slice(FRAME_HEADER_LEN..end),
            used: end,
            split: None,
        })
    }

    fn decode_split(buf: &Bytes, len: usize, seed: Option<u64>) -> Result<Self, FormatError> {
        let end = SPLIT_HEADER_LEN + len;
        let Some(frame) = buf.get(..end) else {
            return Err(FormatError::Truncated);
        };
        let mut h = [0u8; SPLIT_HEADER_LEN];
        h.copy_from_slice(&frame[..SPLIT_HEADER_LEN]);
        let head_len = usize::from(u16::from_le_bytes([h[8], h[9]]));
        if head_len > len {
            return Err(FormatError::Malformed(
                "split frame head longer than its body",
            ));
        }
        let payload_at = SPLIT_HEADER_LEN + head_len;
        if split_crc(seed, &h, &frame[SPLIT_HEADER_LEN..payload_at])
            != u32::from_le_bytes([h[4], h[5], h[6], h[7]])
        {
            return Err(FormatError::BadCrc);
        }
        let payload_crc = u32::from_le_bytes([h[10], h[11], h[12], h[13]]);
        if crc32c(&frame[payload_at..]) != payload_crc {
            return Err(FormatError::BadCrc);
        }
        Ok(Self {
            body: buf.slice(SPLIT_HEADER_LEN..end),
            used: end,
            split: Some((head_len, payload_crc)),
        })
    }

    /// The payload that starts at byte `at` of the body (where the record's head ends), with its
    /// CRC: a split frame's own (its head must end there), or computed for a plain frame.
    pub fn payload(&self, at: usize) -> Result<Payload, FormatError> {
        if at > self.body.len() {
            return Err(FormatError::Malformed("short body"));
        }
        let bytes = self.body.slice(at..);
        match self.split {
            Some((head_len, crc)) if head_len == at => Ok(Payload { bytes, crc }),
            Some(_) => Err(FormatError::Malformed(
                "split frame head does not match its record",
            )),
            None => Ok(Payload::new(bytes)),
        }
    }
}

/// Decodes the unseeded plain or split frame at the start of `buf`: returns the body (a zero-copy
/// slice of `buf`) and the total number of bytes the frame used.
pub fn decode_frame(buf: &Bytes, max_len: u32) -> Result<(Bytes, usize), FormatError> {
    let f = Frame::decode(buf, max_len, None)?;
    Ok((f.body, f.used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(head: &[u8], payload: &[u8], seed: Option<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        let p = Payload::new(Bytes::copy_from_slice(payload));
        put_split_frame(&mut out, seed, head, &p);
        out
    }

    proptest! {
        #[test]
        fn frame_roundtrip(body in proptest::collection::vec(any::<u8>(), 1..2048)) {
            let mut out = Vec::new();
            put_frame(&mut out, &[&body[..1], &body[1..]]);
            let buf = Bytes::from(out);
            let (b, used) = decode_frame(&buf, 1 << 20).unwrap();
            prop_assert_eq!(&b[..], &body[..]);
            prop_assert_eq!(used, buf.len());
            // every strict prefix is a torn frame, never a valid one
            for cut in [0, 3, 8, used - 1] {
                let r = decode_frame(&buf.slice(..cut), 1 << 20);
                prop_assert!(r.is_err());
            }
        }

        #[test]
        fn split_frame_roundtrip(
            head in proptest::collection::vec(any::<u8>(), 0..64),
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
            seed in proptest::option::of(any::<u64>()),
        ) {
            prop_assume!(!head.is_empty() || !payload.is_empty());
            let buf = Bytes::from(split(&head, &payload, seed));
            prop_assert_eq!(buf.len(), split_frame_len(head.len(), payload.len()));
            let f = Frame::decode(&buf, 1 << 20, seed).unwrap();
            prop_assert_eq!(f.used, buf.len());
            prop_assert_eq!(&f.body[..head.len()], &head[..]);
            let p = f.payload(head.len()).unwrap();
            prop_assert_eq!(&p.bytes[..], &payload[..]);
            prop_assert_eq!(p.crc, crc32c(&payload));
            // the head must end where the record says
            prop_assert!(f.payload(head.len() + 1).is_err());
            for cut in [0, 3, 13, buf.len() - 1] {
                prop_assert!(Frame::decode(&buf.slice(..cut), 1 << 20, seed).is_err());
            }
            // another seed (a recycled journal file's other life) fails
            let other = seed.map_or(Some(1), |s| Some(s.wrapping_add(1)));
            prop_assert!(Frame::decode(&buf, 1 << 20, other).is_err());
        }

        #[test]
        fn plain_frame_payload_gets_its_crc(body in proptest::collection::vec(any::<u8>(), 1..512), at in any::<prop::sample::Index>()) {
            let mut out = Vec::new();
            put_frame(&mut out, &[&body]);
            let f = Frame::decode(&Bytes::from(out), 1 << 20, None).unwrap();
            let at = at.index(body.len() + 1);
            let p = f.payload(at).unwrap();
            prop_assert_eq!(&p.bytes[..], &body[at..]);
            prop_assert_eq!(p.crc, crc32c(&body[at..]));
        }

        /// The one-pass CRC of a short head is the CRC of the parts appended one by one (the
        /// format's definition, which a long head still uses).
        #[test]
        fn split_crc_in_one_pass_equals_appending_the_parts(
            head in proptest::collection::vec(any::<u8>(), 0..200),
            header in any::<[u8; SPLIT_HEADER_LEN]>(),
            seed in proptest::option::of(any::<u64>()),
        ) {
            let crc = crc32c_append(crc_init(seed), &header[..4]);
            let crc = crc32c_append(crc, &header[8..]);
            let want = crc32c_append(crc, &head);
            prop_assert_eq!(split_crc(seed, &header, &head), want);
        }

        #[test]
        fn frame_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let b = Bytes::from(bytes);
            let _ = decode_frame(&b, 1 << 20);
            if let Ok(f) = Frame::decode(&b, 1 << 20, Some(3)) {
                for at in 0..=f.body.len() + 1 {
                    let _ = f.payload(at);
                }
            }
        }
    }

    #[test]
    fn bit_flips_are_detected() {
        let mut plain = Vec::new();
        put_frame_seeded(&mut plain, Some(9), &[b"hello world"]);
        for out in [plain, split(b"head", b"payload bytes", Some(9))] {
            assert!(Frame::decode(&Bytes::from(out.clone()), 1 << 20, Some(9)).is_ok());
            for i in 0..out.len() * 8 {
                let mut c = out.clone();
                c[i / 8] ^= 1 << (i % 8);
                assert!(
                    Frame::decode(&Bytes::from(c), 1 << 20, Some(9)).is_err(),
                    "flip {i} undetected"
                );
            }
        }
    }

    #[test]
    fn zero_and_oversized_lengths_are_refused_before_reading() {
        let zeros = Bytes::from(vec![0u8; 64]);
        assert_eq!(
            Frame::decode(&zeros, 1 << 20, None).unwrap_err(),
            FormatError::Malformed(ZERO_LENGTH)
        );
        let big = Bytes::from(((1u32 << 21) | SPLIT).to_le_bytes().to_vec());
        assert_eq!(
            Frame::decode(&big, 1 << 20, None).unwrap_err(),
            FormatError::TooLarge(1 << 21)
        );
    }
}
