//! On-disk formats of the bookie. Every file starts with a header (8-byte magic, u32 version, u64 id,
//! CRC32C of those 20 bytes) and holds *frames*: `[len: u32 LE][crc: u32 LE][body: len bytes]` where
//! `crc = crc32c(len LE bytes ++ body)`, so a torn length is caught as well as a torn body.
//!
//! - [`journal`]: journal records (add, fence, delete), the write-ahead log.
//! - [`segment`]: segment records (one entry each), the interleaved entry logs.
//! - [`index`]: index blocks (entry → location in its segment), one `.idx` file per segment.
//! - [`checkpoint`]: the checkpoint (journal position + every ledger's state), written atomically.
//! - [`object`]: segment objects and manifests in object storage (bookies on object storage).
//!
//! Decoders take untrusted bytes: they never panic, never allocate more than a checked limit, and
//! report a torn tail ([`FormatError::Truncated`]) apart from corruption.

pub mod checkpoint;
pub mod index;
pub mod journal;
pub mod object;
pub mod segment;

use bytes::{Buf, BufMut, Bytes};

/// Size of a frame header (`len` + `crc`).
pub const FRAME_HEADER_LEN: usize = 8;
/// Size of a file header (magic + version + id + crc).
pub const FILE_HEADER_LEN: usize = 24;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Fewer bytes than the record needs: a torn (short) write at the tail of a file.
    #[error("truncated record")]
    Truncated,
    /// The file does not start with the expected magic.
    #[error("bad magic")]
    BadMagic,
    /// A version this build cannot read.
    #[error("unsupported version {0}")]
    BadVersion(u32),
    /// A checksum mismatch.
    #[error("checksum mismatch")]
    BadCrc,
    /// A length field above its limit.
    #[error("length {0} exceeds the limit")]
    TooLarge(u64),
    /// Structurally invalid contents (with what was wrong).
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

/// Appends one frame holding `body_parts` (concatenated) to `out`.
pub fn put_frame(out: &mut Vec<u8>, body_parts: &[&[u8]]) {
    put_frame_seeded(out, None, body_parts)
}

/// Initial CRC of a frame: 0, or the CRC32C of the seed's LE bytes. Journal files seed their frames
/// with the file's sequence number, so records left over from a recycled file's previous life fail
/// their CRC instead of being replayed.
fn crc_init(seed: Option<u64>) -> u32 {
    seed.map_or(0, |s| crc32c::crc32c(&s.to_le_bytes()))
}

/// [`put_frame`] with the CRC seeded by `seed` (see [`crc_init`]).
pub fn put_frame_seeded(out: &mut Vec<u8>, seed: Option<u64>, body_parts: &[&[u8]]) {
    let len: usize = body_parts.iter().map(|p| p.len()).sum();
    let len_bytes = (len as u32).to_le_bytes();
    let mut crc = crc32c::crc32c_append(crc_init(seed), &len_bytes);
    for p in body_parts {
        crc = crc32c::crc32c_append(crc, p);
    }
    out.reserve(FRAME_HEADER_LEN + len);
    out.put_slice(&len_bytes);
    out.put_u32_le(crc);
    for p in body_parts {
        out.put_slice(p);
    }
}

/// What [`FormatError::Malformed`] says of a frame of length zero: zeros where a frame would
/// start (a never-written tail, or the padding after a direct write).
pub const ZERO_LENGTH: &str = "zero-length frame";

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Body length.
    pub len: u32,
    /// Expected checksum.
    pub crc: u32,
}

impl FrameHeader {
    /// Parses the 8 header bytes and checks `len` against `max_len`. A zero length is invalid (it is
    /// what a zero-filled or never-written tail looks like).
    pub fn parse(hdr: [u8; FRAME_HEADER_LEN], max_len: u32) -> Result<Self, FormatError> {
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        if len == 0 {
            return Err(FormatError::Malformed(ZERO_LENGTH));
        }
        if len > max_len {
            return Err(FormatError::TooLarge(u64::from(len)));
        }
        Ok(Self { len, crc })
    }

    /// Checks `body` against the header's checksum.
    pub fn verify(&self, body: &[u8]) -> Result<(), FormatError> {
        self.verify_seeded(None, body)
    }

    /// Checks `body` against the header's checksum seeded with `seed`.
    pub fn verify_seeded(&self, seed: Option<u64>, body: &[u8]) -> Result<(), FormatError> {
        let crc = crc32c::crc32c_append(
            crc32c::crc32c_append(crc_init(seed), &self.len.to_le_bytes()),
            body,
        );
        if crc == self.crc {
            Ok(())
        } else {
            Err(FormatError::BadCrc)
        }
    }
}

/// Decodes the frame at the start of `buf`: returns the body (a zero-copy slice of `buf`) and the
/// total number of bytes the frame used.
pub fn decode_frame(buf: &Bytes, max_len: u32) -> Result<(Bytes, usize), FormatError> {
    decode_frame_seeded(buf, max_len, None)
}

/// [`decode_frame`] for frames written by [`put_frame_seeded`].
pub fn decode_frame_seeded(
    buf: &Bytes,
    max_len: u32,
    seed: Option<u64>,
) -> Result<(Bytes, usize), FormatError> {
    let Some(hdr) = buf.get(..FRAME_HEADER_LEN) else {
        return Err(FormatError::Truncated);
    };
    let mut h = [0u8; FRAME_HEADER_LEN];
    h.copy_from_slice(hdr);
    let fh = FrameHeader::parse(h, max_len)?;
    let end = FRAME_HEADER_LEN + fh.len as usize;
    let Some(body) = buf.get(FRAME_HEADER_LEN..end) else {
        return Err(FormatError::Truncated);
    };
    fh.verify_seeded(seed, body)?;
    Ok((buf.slice(FRAME_HEADER_LEN..end), end))
}

/// A file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// The file kind's magic.
    pub magic: [u8; 8],
    /// Format version.
    pub version: u32,
    /// The file's id (journal sequence, segment id, ...).
    pub id: u64,
}

impl FileHeader {
    /// The header of file `id` of a kind with this magic and version.
    pub const fn new(magic: [u8; 8], version: u32, id: u64) -> Self {
        Self { magic, version, id }
    }

    /// Encodes the header (24 bytes).
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut out = [0u8; FILE_HEADER_LEN];
        out[..8].copy_from_slice(&self.magic);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[12..20].copy_from_slice(&self.id.to_le_bytes());
        let crc = crc32c::crc32c(&out[..20]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a header and checks its magic and version.
    pub fn decode(buf: &[u8], magic: &[u8; 8], version: u32) -> Result<Self, FormatError> {
        let Some(b) = buf.get(..FILE_HEADER_LEN) else {
            return Err(FormatError::Truncated);
        };
        if &b[..8] != magic {
            return Err(FormatError::BadMagic);
        }
        let mut rd = &b[8..];
        let v = rd.get_u32_le();
        let id = rd.get_u64_le();
        let crc = rd.get_u32_le();
        if crc32c::crc32c(&b[..20]) != crc {
            return Err(FormatError::BadCrc);
        }
        if v != version {
            return Err(FormatError::BadVersion(v));
        }
        let mut m = [0u8; 8];
        m.copy_from_slice(&b[..8]);
        Ok(Self {
            magic: m,
            version: v,
            id,
        })
    }
}

/// Reads a fixed-size integer from an untrusted buffer, failing on a short buffer.
pub(crate) fn need(buf: &impl Buf, n: usize) -> Result<(), FormatError> {
    if buf.remaining() < n {
        Err(FormatError::Malformed("short body"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        fn frame_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(&Bytes::from(bytes), 1 << 20);
        }

        #[test]
        fn file_header_roundtrip(id in any::<u64>(), version in any::<u32>()) {
            let h = FileHeader { magic: *b"TESTMAGC", version, id };
            prop_assert_eq!(FileHeader::decode(&h.encode(), b"TESTMAGC", version).unwrap(), h);
        }

        #[test]
        fn file_header_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = FileHeader::decode(&bytes, b"TESTMAGC", 1);
        }
    }

    #[test]
    fn bit_flips_are_detected() {
        let mut out = Vec::new();
        put_frame(&mut out, &[b"hello world"]);
        for i in 0..out.len() * 8 {
            let mut c = out.clone();
            c[i / 8] ^= 1 << (i % 8);
            assert!(
                decode_frame(&Bytes::from(c), 1 << 20).is_err(),
                "flip {i} undetected"
            );
        }
    }
}
