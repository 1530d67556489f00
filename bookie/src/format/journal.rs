//! Journal records: the write-ahead log. A journal file is a [`FileHeader`] with magic `STRJOURN`
//! and the file's sequence number, then frames whose body is a [`JournalRecord`]:
//!
//! ```text
//! add:    0x01 ledger:u64 entry:u64 lac:i64 key_len:u16 key payload...
//! fence:  0x02 ledger:u64 key_len:u16 key
//! delete: 0x03 ledger:u64
//! ```
//! (all integers little-endian). An add is a split frame (its head is everything before the
//! payload; version 2), fence and delete plain frames; version 1 files hold plain frames only and
//! are read as before. Frame CRCs are seeded with the file's sequence number (journal
//! files are recycled: old records in a reused file fail their CRC). Replay stops at the first frame that is short, zero, too long or fails
//! its CRC: that is the torn tail of the last group commit.

use bytes::{Buf, BufMut, Bytes};

use super::{
    FILE_HEADER_LEN, FileHeader, FormatError, Frame, Payload, need, put_frame_seeded,
    put_split_frame, split_frame_len,
};

/// Magic of journal files.
pub const MAGIC: [u8; 8] = *b"STRJOURN";
/// Current journal format version (2: adds in split frames).
pub const VERSION: u32 = 2;
/// Largest journal frame body accepted (payload limit plus headroom).
pub const MAX_RECORD_LEN: u32 = 64 << 20;
/// Largest master key.
pub const MAX_KEY_LEN: usize = 1024;

const T_ADD: u8 = 1;
const T_FENCE: u8 = 2;
const T_DELETE: u8 = 3;

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalRecord {
    /// An entry was added.
    Add {
        /// Ledger.
        ledger: u64,
        /// Entry.
        entry: u64,
        /// The writer's last-add-confirmed.
        lac: i64,
        /// The ledger's master key.
        key: Bytes,
        /// Entry payload, with its CRC.
        payload: Payload,
    },
    /// The ledger was fenced.
    Fence {
        /// Ledger.
        ledger: u64,
        /// The ledger's master key.
        key: Bytes,
    },
    /// The ledger was deleted.
    Delete {
        /// Ledger.
        ledger: u64,
    },
}

impl JournalRecord {
    /// Bytes [`Self::encode_into`] appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            JournalRecord::Add { key, payload, .. } => {
                split_frame_len(27 + key.len(), payload.len())
            }
            JournalRecord::Fence { key, .. } => super::FRAME_HEADER_LEN + 11 + key.len(),
            JournalRecord::Delete { .. } => super::FRAME_HEADER_LEN + 9,
        }
    }

    /// Appends this record as one frame of journal file `seq` to `out` (the payload is copied once,
    /// into `out`, and not read for a checksum: it carries its own).
    pub fn encode_into(&self, out: &mut Vec<u8>, seq: u64) {
        let put_frame =
            |out: &mut Vec<u8>, parts: &[&[u8]]| put_frame_seeded(out, Some(seq), parts);
        match self {
            JournalRecord::Add {
                ledger,
                entry,
                lac,
                key,
                payload,
            } => {
                // on the stack for the usual short key (no allocation per add)
                let (mut short, mut long) = ([0u8; 64], Vec::new());
                let h: &mut [u8] = match 27 + key.len() {
                    n if n <= short.len() => &mut short[..n],
                    n => {
                        long.resize(n, 0);
                        &mut long
                    }
                };
                h[0] = T_ADD;
                h[1..9].copy_from_slice(&ledger.to_le_bytes());
                h[9..17].copy_from_slice(&entry.to_le_bytes());
                h[17..25].copy_from_slice(&lac.to_le_bytes());
                h[25..27].copy_from_slice(&(key.len() as u16).to_le_bytes());
                h[27..].copy_from_slice(key);
                put_split_frame(out, Some(seq), h, payload);
            }
            JournalRecord::Fence { ledger, key } => {
                let mut h = Vec::with_capacity(11 + key.len());
                h.put_u8(T_FENCE);
                h.put_u64_le(*ledger);
                h.put_u16_le(key.len() as u16);
                h.put_slice(key);
                put_frame(out, &[&h]);
            }
            JournalRecord::Delete { ledger } => {
                let mut h = Vec::with_capacity(9);
                h.put_u8(T_DELETE);
                h.put_u64_le(*ledger);
                put_frame(out, &[&h]);
            }
        }
    }

    /// Decodes a verified frame's body (zero-copy: key and payload slice it).
    fn decode_body(frame: &Frame) -> Result<Self, FormatError> {
        let mut b = frame.body.clone();
        need(&b, 1)?;
        match b.get_u8() {
            T_ADD => {
                need(&b, 26)?;
                let ledger = b.get_u64_le();
                let entry = b.get_u64_le();
                let lac = b.get_i64_le();
                let key = take_key(&mut b)?;
                Ok(JournalRecord::Add {
                    ledger,
                    entry,
                    lac,
                    key,
                    payload: frame.payload(frame.body.len() - b.len())?,
                })
            }
            T_FENCE => {
                need(&b, 10)?;
                let ledger = b.get_u64_le();
                let key = take_key(&mut b)?;
                if b.has_remaining() {
                    return Err(FormatError::Malformed("trailing bytes in fence record"));
                }
                Ok(JournalRecord::Fence { ledger, key })
            }
            T_DELETE => {
                need(&b, 8)?;
                let ledger = b.get_u64_le();
                if b.has_remaining() {
                    return Err(FormatError::Malformed("trailing bytes in delete record"));
                }
                Ok(JournalRecord::Delete { ledger })
            }
            _ => Err(FormatError::Malformed("unknown journal record type")),
        }
    }

    /// Decodes the frame of journal file `seq` at the start of `buf`; returns the record and the
    /// bytes it used.
    pub fn decode(buf: &Bytes, seq: u64) -> Result<(Self, usize), FormatError> {
        let frame = Frame::decode(buf, MAX_RECORD_LEN, Some(seq))?;
        Ok((Self::decode_body(&frame)?, frame.used))
    }
}

fn take_key(b: &mut Bytes) -> Result<Bytes, FormatError> {
    let n = b.get_u16_le() as usize;
    if n > MAX_KEY_LEN {
        return Err(FormatError::TooLarge(n as u64));
    }
    need(b, n)?;
    Ok(b.split_to(n))
}

/// The header of journal file `seq`.
pub fn file_header(seq: u64) -> [u8; FILE_HEADER_LEN] {
    FileHeader::new(MAGIC, VERSION, seq).encode()
}

/// What a scan of a whole journal file found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Records with the offset just past each of them.
    pub records: Vec<(JournalRecord, u64)>,
    /// Offset where valid data ends.
    pub end: u64,
    /// Why the scan stopped before the end of the buffer, if it did.
    pub stopped: Option<FormatError>,
}

/// Decodes a whole journal file (header + frames), starting at byte `from` (a checkpoint offset, or
/// 0 for the whole file). Never fails on the tail: the first bad frame ends the scan.
pub fn scan_file(buf: &Bytes, expected_seq: Option<u64>, from: u64) -> Result<Scan, FormatError> {
    let h = FileHeader::decode(buf, &MAGIC, VERSION)?;
    if let Some(s) = expected_seq
        && h.id != s
    {
        return Err(FormatError::Malformed(
            "journal file sequence does not match its name",
        ));
    }
    let mut pos = (FILE_HEADER_LEN as u64).max(from);
    let mut scan = Scan {
        end: pos,
        ..Default::default()
    };
    while (pos as usize) < buf.len() {
        let rest = buf.slice(pos as usize..);
        match JournalRecord::decode(&rest, h.id) {
            Ok((rec, used)) => {
                pos += used as u64;
                scan.records.push((rec, pos));
                scan.end = pos;
            }
            Err(e) => {
                scan.stopped = Some(e);
                break;
            }
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEQ: u64 = 7;

    pub(crate) fn arb_record() -> impl Strategy<Value = JournalRecord> {
        let key = proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from);
        let payload = proptest::collection::vec(any::<u8>(), 0..3000)
            .prop_map(|p| Payload::new(Bytes::from(p)));
        prop_oneof![
            (
                any::<u64>(),
                any::<u64>(),
                any::<i64>(),
                key.clone(),
                payload
            )
                .prop_map(|(ledger, entry, lac, key, payload)| JournalRecord::Add {
                    ledger,
                    entry,
                    lac,
                    key,
                    payload
                }),
            (any::<u64>(), key).prop_map(|(ledger, key)| JournalRecord::Fence { ledger, key }),
            any::<u64>().prop_map(|ledger| JournalRecord::Delete { ledger }),
        ]
    }

    proptest! {
        #[test]
        fn roundtrip(recs in proptest::collection::vec(arb_record(), 0..20)) {
            let mut out = file_header(SEQ).to_vec();
            for r in &recs {
                r.encode_into(&mut out, SEQ);
            }
            let buf = Bytes::from(out);
            let scan = scan_file(&buf, Some(SEQ), 0).unwrap();
            prop_assert!(scan.stopped.is_none());
            prop_assert_eq!(scan.end as usize, buf.len());
            let got: Vec<_> = scan.records.into_iter().map(|(r, _)| r).collect();
            prop_assert_eq!(got, recs);
        }

        #[test]
        fn torn_tail_ends_scan_cleanly(recs in proptest::collection::vec(arb_record(), 1..10), cut in any::<prop::sample::Index>()) {
            let mut out = file_header(SEQ).to_vec();
            let mut ends = vec![];
            for r in &recs {
                r.encode_into(&mut out, SEQ);
                ends.push(out.len());
            }
            let cut = FILE_HEADER_LEN + cut.index(out.len() - FILE_HEADER_LEN);
            let buf = Bytes::from(out).slice(..cut);
            let scan = scan_file(&buf, Some(SEQ), 0).unwrap();
            let complete = ends.iter().filter(|e| **e <= cut).count();
            prop_assert_eq!(scan.records.len(), complete);
            for (i, (r, _)) in scan.records.iter().enumerate() {
                prop_assert_eq!(r, &recs[i]);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let b = Bytes::from(bytes);
            let _ = JournalRecord::decode(&b, 1);
            let _ = scan_file(&b, None, 0);
        }
    }

    #[test]
    fn records_of_a_recycled_files_previous_life_are_not_replayed() {
        let rec = |e| JournalRecord::Add {
            ledger: 1,
            entry: e,
            lac: -1,
            key: Bytes::from_static(b"k"),
            payload: Payload::new(Bytes::from(vec![e as u8; 50])),
        };
        // the file's old life (seq 6): three records
        let mut old = file_header(6).to_vec();
        for e in 0..3 {
            rec(e).encode_into(&mut old, 6);
        }
        // recycled as seq 7: new header and one new record written over the start
        let mut new = file_header(7).to_vec();
        let r = rec(10);
        assert_eq!(r.encoded_len(), {
            let mut v = vec![];
            r.encode_into(&mut v, 7);
            v.len()
        });
        r.encode_into(&mut new, 7);
        old[..new.len()].copy_from_slice(&new);
        let scan = scan_file(&Bytes::from(old), Some(7), 0).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.records[0].0, rec(10));
        assert_eq!(scan.stopped, Some(FormatError::BadCrc));
    }

    #[test]
    fn bit_flip_in_a_record_stops_the_scan_there() {
        let recs: Vec<_> = (0..5)
            .map(|i| JournalRecord::Add {
                ledger: 1,
                entry: i,
                lac: i as i64 - 1,
                key: Bytes::from_static(b"k"),
                payload: Payload::new(Bytes::from(vec![i as u8; 100])),
            })
            .collect();
        let mut out = file_header(SEQ).to_vec();
        let mut starts = vec![];
        for r in &recs {
            starts.push(out.len());
            r.encode_into(&mut out, SEQ);
        }
        for bit in [0usize, 13, 8 * 40, 8 * 90] {
            let mut c = out.clone();
            let at = starts[3] + bit / 8;
            c[at] ^= 1 << (bit % 8);
            let scan = scan_file(&Bytes::from(c), Some(SEQ), 0).unwrap();
            assert_eq!(scan.records.len(), 3);
            assert!(scan.stopped.is_some());
        }
    }

    /// A journal file of version 1 (every record a plain frame) replays as before, and its adds
    /// get their payload's CRC.
    #[test]
    fn version_1_files_replay() {
        let mut out = FileHeader::new(MAGIC, 1, SEQ).encode().to_vec();
        let mut want = vec![];
        for e in 0..3u64 {
            let payload = Bytes::from(vec![e as u8; 100 + e as usize]);
            let mut h = vec![T_ADD];
            h.put_u64_le(5);
            h.put_u64_le(e);
            h.put_i64_le(e as i64 - 1);
            h.put_u16_le(1);
            h.put_slice(b"k");
            put_frame_seeded(&mut out, Some(SEQ), &[&h, &payload]);
            want.push(JournalRecord::Add {
                ledger: 5,
                entry: e,
                lac: e as i64 - 1,
                key: Bytes::from_static(b"k"),
                payload: Payload::new(payload),
            });
        }
        JournalRecord::Delete { ledger: 5 }.encode_into(&mut out, SEQ);
        want.push(JournalRecord::Delete { ledger: 5 });
        let scan = scan_file(&Bytes::from(out), Some(SEQ), 0).unwrap();
        assert_eq!(scan.stopped, None);
        let got: Vec<_> = scan.records.into_iter().map(|(r, _)| r).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_newer_version_is_refused_not_misread() {
        let out = FileHeader::new(MAGIC, VERSION + 1, SEQ).encode();
        assert_eq!(
            scan_file(&Bytes::copy_from_slice(&out), Some(SEQ), 0).unwrap_err(),
            FormatError::BadVersion(VERSION + 1)
        );
    }
}
