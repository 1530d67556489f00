//! Segment records: the interleaved entry logs. A segment file is a [`FileHeader`] with magic
//! `STRSEGMT` and the segment id, then one frame per entry whose body is
//! `ledger:u64 entry:u64 payload...`: a split frame (version 2) whose head is the two ids, or a
//! plain frame (version 1 files, read as before). An entry's location is `(segment, offset of its frame, frame
//! length)`; a read checks the frame's CRC and that the ledger and entry ids are the ones asked for.

use bytes::{Buf, BufMut, Bytes};

use super::{
    FILE_HEADER_LEN, FileHeader, FormatError, Frame, Payload, need, put_split_frame,
    split_frame_len,
};

/// Magic of segment files.
pub const MAGIC: [u8; 8] = *b"STRSEGMT";
/// Current segment format version (2: split frames).
pub const VERSION: u32 = 2;
/// Largest segment frame body.
pub const MAX_RECORD_LEN: u32 = 64 << 20;

/// One entry as stored in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    /// Ledger.
    pub ledger: u64,
    /// Entry.
    pub entry: u64,
    /// Payload, with its CRC.
    pub payload: Payload,
}

impl SegmentRecord {
    /// Encoded size of a record with a payload of `payload_len` bytes.
    pub fn encoded_len(payload_len: usize) -> usize {
        split_frame_len(16, payload_len)
    }

    /// Appends the record as a frame to `out` (the payload is copied, not read for a checksum).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        Self::encode_entry(self.ledger, self.entry, &self.payload, out)
    }

    /// [`Self::encode_into`] of the record these fields would make, without building it.
    pub fn encode_entry(ledger: u64, entry: u64, payload: &Payload, out: &mut Vec<u8>) {
        let mut h = [0u8; 16];
        let mut w = &mut h[..];
        w.put_u64_le(ledger);
        w.put_u64_le(entry);
        put_split_frame(out, None, &h, payload);
    }

    /// Decodes the frame at the start of `buf` (zero-copy); returns the record and the bytes it used.
    pub fn decode(buf: &Bytes) -> Result<(Self, usize), FormatError> {
        let frame = Frame::decode(buf, MAX_RECORD_LEN, None)?;
        let mut body = frame.body.clone();
        need(&body, 16)?;
        let ledger = body.get_u64_le();
        let entry = body.get_u64_le();
        Ok((
            Self {
                ledger,
                entry,
                payload: frame.payload(16)?,
            },
            frame.used,
        ))
    }
}

/// The header of segment `id`.
pub fn file_header(id: u64) -> [u8; FILE_HEADER_LEN] {
    FileHeader::new(MAGIC, VERSION, id).encode()
}

/// What [`scan_file`] found: the segment id, each valid record with its offset, and why the scan
/// stopped early, if it did.
pub type SegmentScan = (u64, Vec<(u64, SegmentRecord)>, Option<FormatError>);

/// Decodes every record of a whole segment file with its offset; stops at the first bad frame.
/// Used by tools and tests (the bookie itself reads segments through the index).
pub fn scan_file(buf: &Bytes) -> Result<SegmentScan, FormatError> {
    let h = FileHeader::decode(buf, &MAGIC, VERSION)?;
    let mut pos = FILE_HEADER_LEN;
    let mut out = vec![];
    while pos < buf.len() {
        match SegmentRecord::decode(&buf.slice(pos..)) {
            Ok((r, used)) => {
                out.push((pos as u64, r));
                pos += used;
            }
            Err(e) => return Ok((h.id, out, Some(e))),
        }
    }
    Ok((h.id, out, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = SegmentRecord> {
        (
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..3000),
        )
            .prop_map(|(ledger, entry, p)| SegmentRecord {
                ledger,
                entry,
                payload: Payload::new(Bytes::from(p)),
            })
    }

    proptest! {
        #[test]
        fn roundtrip(recs in proptest::collection::vec(arb_record(), 0..20), id in any::<u64>()) {
            let mut out = file_header(id).to_vec();
            for r in &recs {
                let before = out.len();
                r.encode_into(&mut out);
                prop_assert_eq!(out.len() - before, SegmentRecord::encoded_len(r.payload.len()));
            }
            let (got_id, got, stop) = scan_file(&Bytes::from(out)).unwrap();
            prop_assert_eq!(got_id, id);
            prop_assert!(stop.is_none());
            let got: Vec<_> = got.into_iter().map(|(_, r)| r).collect();
            prop_assert_eq!(got, recs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let b = Bytes::from(bytes);
            let _ = SegmentRecord::decode(&b);
            let _ = scan_file(&b);
        }

        #[test]
        fn torn_or_flipped_record_is_an_error(r in arb_record(), cut in any::<prop::sample::Index>(), bit in any::<prop::sample::Index>()) {
            let mut out = vec![];
            r.encode_into(&mut out);
            let torn = Bytes::from(out.clone()).slice(..cut.index(out.len()));
            prop_assert!(SegmentRecord::decode(&torn).is_err());
            let bit = bit.index(out.len() * 8);
            out[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(SegmentRecord::decode(&Bytes::from(out)).is_err());
        }
    }

    /// A segment of version 1 (plain frames) reads as before: ids, payload and its CRC.
    #[test]
    fn version_1_files_read() {
        let mut out = FileHeader::new(MAGIC, 1, 4).encode().to_vec();
        let mut h = vec![];
        h.put_u64_le(3);
        h.put_u64_le(9);
        super::super::put_frame(&mut out, &[&h, b"old payload"]);
        let (id, recs, stop) = scan_file(&Bytes::from(out)).unwrap();
        assert_eq!((id, stop), (4, None));
        assert_eq!(
            recs,
            vec![(
                FILE_HEADER_LEN as u64,
                SegmentRecord {
                    ledger: 3,
                    entry: 9,
                    payload: Payload::new(Bytes::from_static(b"old payload")),
                }
            )]
        );
    }
}
