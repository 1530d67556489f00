//! Formats in object storage (bookies on object storage, see `storage/remote/`).
//!
//! A **segment object** (`bookies/<id>/segments/<segment:020>-<generation:010>.seg`) is a sealed
//! segment uploaded whole, followed by its index file and a footer:
//!
//! ```text
//! [segment file: header + frames][index file: header + blocks][footer: 48 bytes]
//! footer = magic "STRSEGOB" version:u32 segment:u64 generation:u64 seg_len:u64 idx_len:u64
//!          crc32c(all of the above):u32
//! ```
//! Entry locations (`Loc`) are offsets in the segment file, hence in the object, so a read of an
//! evicted entry is one ranged GET of exactly the frame (CRC-checked as a local read).
//!
//! A **manifest** (`bookies/<id>/manifest-<seq:020>`, and its local copy `manifest` in the ledger
//! directory) commits uploads: a [`FileHeader`] (magic `STRMANIF`, id = seq), then one frame
//! `generation:u64 count:u32 × (segment:u64 generation:u64 seg_len:u64 idx_len:u64)`, then a
//! whole checkpoint file (every ledger's state and the deleted ledgers; journal position 0).

use bytes::{Buf, BufMut, Bytes};

use super::checkpoint::Checkpoint;
use super::{FILE_HEADER_LEN, FileHeader, FormatError, decode_frame, need, put_frame};

/// Magic of a segment object's footer.
pub const FOOTER_MAGIC: [u8; 8] = *b"STRSEGOB";
/// Magic of a manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"STRMANIF";
/// Current version of both.
pub const VERSION: u32 = 1;
/// Size of a segment object's footer.
pub const FOOTER_LEN: usize = 48;
/// Largest manifest segment list.
const MAX_SEGMENTS_LEN: u32 = 1 << 30;

/// A segment object's footer (also what a manifest records about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentObject {
    /// Segment id.
    pub segment: u64,
    /// Generation of the bookie process that uploaded it.
    pub generation: u64,
    /// Bytes of the segment file (the object's first bytes).
    pub seg_len: u64,
    /// Bytes of the index file that follows.
    pub idx_len: u64,
}

impl SegmentObject {
    /// The object's key relative to the bookie's prefix.
    pub fn key(&self) -> String {
        format!("segments/{:020}-{:010}.seg", self.segment, self.generation)
    }

    /// Parses a key made by [`Self::key`] into `(segment, generation)`.
    pub fn parse_key(key: &str) -> Option<(u64, u64)> {
        let name = key.rsplit('/').next()?.strip_suffix(".seg")?;
        let (s, g) = name.split_once('-')?;
        Some((s.parse().ok()?, g.parse().ok()?))
    }

    /// Total object size.
    pub fn object_len(&self) -> u64 {
        self.seg_len + self.idx_len + FOOTER_LEN as u64
    }

    /// Encodes the footer.
    pub fn encode_footer(&self) -> [u8; FOOTER_LEN] {
        let mut b = Vec::with_capacity(FOOTER_LEN);
        b.put_slice(&FOOTER_MAGIC);
        b.put_u32_le(VERSION);
        b.put_u64_le(self.segment);
        b.put_u64_le(self.generation);
        b.put_u64_le(self.seg_len);
        b.put_u64_le(self.idx_len);
        let crc = strata_common::crc::crc32c(&b);
        b.put_u32_le(crc);
        let mut out = [0u8; FOOTER_LEN];
        out.copy_from_slice(&b);
        out
    }

    /// Decodes a footer.
    pub fn decode_footer(buf: &[u8]) -> Result<Self, FormatError> {
        if buf.len() != FOOTER_LEN {
            return Err(FormatError::Truncated);
        }
        if buf[..8] != FOOTER_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let mut b = &buf[8..];
        let version = b.get_u32_le();
        if version != VERSION {
            return Err(FormatError::BadVersion(version));
        }
        let f = Self {
            segment: b.get_u64_le(),
            generation: b.get_u64_le(),
            seg_len: b.get_u64_le(),
            idx_len: b.get_u64_le(),
        };
        if b.get_u32_le() != strata_common::crc::crc32c(&buf[..FOOTER_LEN - 4]) {
            return Err(FormatError::BadCrc);
        }
        Ok(f)
    }
}

/// The commit record of uploads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Generation of the bookie process that wrote it.
    pub generation: u64,
    /// Every committed segment object.
    pub segments: Vec<SegmentObject>,
    /// Ledger states and deleted ledgers (journal position unused).
    pub state: Checkpoint,
}

impl Manifest {
    /// The manifest's key relative to the bookie's prefix.
    pub fn key(seq: u64) -> String {
        format!("manifest-{seq:020}")
    }

    /// Parses a key made by [`Self::key`] into its sequence number.
    pub fn parse_key(key: &str) -> Option<u64> {
        key.rsplit('/')
            .next()?
            .strip_prefix("manifest-")?
            .parse()
            .ok()
    }

    /// Encodes the whole manifest with sequence number `seq`.
    pub fn encode(&self, seq: u64) -> Vec<u8> {
        let mut body = Vec::with_capacity(12 + self.segments.len() * 32);
        body.put_u64_le(self.generation);
        body.put_u32_le(self.segments.len() as u32);
        for s in &self.segments {
            body.put_u64_le(s.segment);
            body.put_u64_le(s.generation);
            body.put_u64_le(s.seg_len);
            body.put_u64_le(s.idx_len);
        }
        let mut out = FileHeader::new(MANIFEST_MAGIC, VERSION, seq)
            .encode()
            .to_vec();
        put_frame(&mut out, &[&body]);
        out.extend_from_slice(&self.state.encode(seq));
        out
    }

    /// Decodes a whole manifest; returns it with its sequence number.
    pub fn decode(buf: &Bytes) -> Result<(Self, u64), FormatError> {
        let h = FileHeader::decode(buf, &MANIFEST_MAGIC, VERSION)?;
        let (mut b, used) = decode_frame(&buf.slice(FILE_HEADER_LEN..), MAX_SEGMENTS_LEN)?;
        need(&b, 12)?;
        let generation = b.get_u64_le();
        let n = b.get_u32_le() as usize;
        if b.remaining() != n.saturating_mul(32) {
            return Err(FormatError::Malformed(
                "segment count does not match the body",
            ));
        }
        let segments = (0..n)
            .map(|_| SegmentObject {
                segment: b.get_u64_le(),
                generation: b.get_u64_le(),
                seg_len: b.get_u64_le(),
                idx_len: b.get_u64_le(),
            })
            .collect();
        let (state, cseq) = Checkpoint::decode(&buf.slice(FILE_HEADER_LEN + used..))?;
        if cseq != h.id {
            return Err(FormatError::Malformed("manifest parts disagree"));
        }
        Ok((
            Self {
                generation,
                segments,
                state,
            },
            h.id,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::checkpoint::LedgerRecord;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn footer_roundtrip(s in any::<u64>(), g in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
            let f = SegmentObject { segment: s, generation: g, seg_len: a, idx_len: b };
            prop_assert_eq!(SegmentObject::decode_footer(&f.encode_footer()).unwrap(), f);
            prop_assert_eq!(SegmentObject::parse_key(&f.key()), Some((s, g)));
        }

        #[test]
        fn manifest_roundtrip(seq in any::<u64>(), gen_ in any::<u64>(), n in 0usize..20, d in proptest::collection::vec(any::<u64>(), 0..10)) {
            let m = Manifest {
                generation: gen_,
                segments: (0..n as u64).map(|i| SegmentObject { segment: i, generation: gen_, seg_len: i * 7, idx_len: i }).collect(),
                state: Checkpoint {
                    journal_seq: 0,
                    journal_offset: 0,
                    ledgers: vec![LedgerRecord { ledger: 1, fenced: true, lac: 3, last_entry: 4, key: Bytes::from_static(b"k") }],
                    deleted: d,
                },
            };
            let buf = Bytes::from(m.encode(seq));
            prop_assert_eq!(Manifest::decode(&buf).unwrap(), (m, seq));
            prop_assert!(Manifest::decode(&buf.slice(..buf.len() - 1)).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let b = Bytes::from(bytes);
            let _ = Manifest::decode(&b);
            let _ = SegmentObject::decode_footer(&b);
        }
    }

    #[test]
    fn keys_parse() {
        assert_eq!(
            Manifest::parse_key("manifest-00000000000000000042"),
            Some(42)
        );
        assert_eq!(
            SegmentObject::parse_key("segments/00000000000000000007-0000000003.seg"),
            Some((7, 3))
        );
        assert_eq!(SegmentObject::parse_key("segments/x.seg"), None);
    }
}
