//! Golden files (files written by every format version must stay readable, byte for byte: those
//! of older versions are kept as written, those of the current one are what the encoder writes)
//! and proptest round-trips of the on-wire messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;
use strata_bookie::format::Payload;
use strata_bookie::format::checkpoint::{Checkpoint, LedgerRecord};
use strata_bookie::format::index::{self, IndexEntry};
use strata_bookie::format::journal::{self, JournalRecord};
use strata_bookie::format::segment::{self, SegmentRecord};
use strata_proto::bookie as pb;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// A file of an older format version, as that version wrote it.
fn stored(name: &str) -> Bytes {
    let p = golden_path(name);
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
}

/// A file of the current format version: the encoder must still write exactly these bytes.
fn golden(name: &str, bytes: &[u8]) -> Bytes {
    if std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::write(golden_path(name), bytes).unwrap();
    }
    let stored = stored(name);
    assert_eq!(
        stored, bytes,
        "{name}: the encoder no longer writes this format"
    );
    stored
}

fn journal_records() -> Vec<JournalRecord> {
    vec![
        JournalRecord::Add {
            ledger: 7,
            entry: 0,
            lac: -1,
            key: Bytes::from_static(b"key"),
            payload: Payload::new(Bytes::from_static(b"hello")),
        },
        JournalRecord::Fence {
            ledger: 7,
            key: Bytes::from_static(b"key"),
        },
        JournalRecord::Delete { ledger: 8 },
    ]
}

fn journal_scan(b: &Bytes) -> Vec<JournalRecord> {
    let scan = journal::scan_file(b, Some(3), 0).unwrap();
    assert!(scan.stopped.is_none());
    scan.records.into_iter().map(|(r, _)| r).collect()
}

#[test]
fn journal_v1_golden() {
    assert_eq!(journal_scan(&stored("journal-v1.bin")), journal_records());
}

#[test]
fn journal_v2_golden() {
    let mut out = journal::file_header(3).to_vec();
    for r in journal_records() {
        r.encode_into(&mut out, 3);
    }
    assert_eq!(
        journal_scan(&golden("journal-v2.bin", &out)),
        journal_records()
    );
}

fn segment_record() -> SegmentRecord {
    SegmentRecord {
        ledger: 7,
        entry: 1,
        payload: Payload::new(Bytes::from_static(b"payload")),
    }
}

/// Reads segment 5 holding [`segment_record`], and its index file (index format v1 for both
/// segment versions; the record's length differs), which the encoder must still write.
fn check_segment(seg: &Bytes, idx_name: &str) {
    let (id, recs, stop) = segment::scan_file(seg).unwrap();
    let offset = segment::file_header(5).len() as u64;
    assert_eq!((id, stop), (5, None));
    assert_eq!(recs, vec![(offset, segment_record())]);
    let mut idx = index::file_header(5).to_vec();
    let e = IndexEntry {
        ledger: 7,
        entry: 1,
        offset,
        len: (seg.len() as u64 - offset) as u32,
    };
    index::encode_block(&[e], &mut idx);
    let idx = golden(idx_name, &idx);
    let (id, entries, _, stop) = index::decode_file(&idx).unwrap();
    assert_eq!((id, entries, stop), (5, vec![e], None));
}

#[test]
fn segment_and_index_v1_golden() {
    check_segment(&stored("segment-v1.bin"), "index-v1.bin");
}

#[test]
fn segment_and_index_v2_golden() {
    let mut seg = segment::file_header(5).to_vec();
    segment_record().encode_into(&mut seg);
    check_segment(&golden("segment-v2.bin", &seg), "index-v2.bin");
}

#[test]
fn checkpoint_v1_golden() {
    let c = Checkpoint {
        journal_seq: 3,
        journal_offset: 24,
        ledgers: vec![LedgerRecord {
            ledger: 7,
            fenced: true,
            lac: 4,
            last_entry: 5,
            key: Bytes::from_static(b"key"),
        }],
        deleted: vec![8],
    };
    let b = golden("checkpoint-v1.bin", &c.encode(2));
    assert_eq!(Checkpoint::decode(&b).unwrap(), (c, 2));
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn roundtrip<M: Message + Default + PartialEq + std::fmt::Debug>(m: &M) {
    let b = m.encode_to_vec();
    assert_eq!(&M::decode(b.as_slice()).unwrap(), m);
}

proptest! {
    #[test]
    fn wire_messages_roundtrip(
        ids in any::<(u64, u64, u64)>(), lac in any::<i64>(), key in arb_bytes(40), payload in arb_bytes(2000),
        code in 0i32..10, msg in ".{0,40}", flag in any::<bool>(),
    ) {
        let (request_id, ledger_id, entry_id) = ids;
        roundtrip(&pb::AddRequest { request_id, ledger_id, entry_id, master_key: key.clone(), lac, payload: payload.clone(), recovery: false });
        roundtrip(&pb::AddResponse { request_id, ledger_id, entry_id, code, message: msg.clone() });
        roundtrip(&pb::AddBatch { adds: vec![pb::AddRequest { request_id, ledger_id, entry_id, master_key: key.clone(), lac, payload: payload.clone(), recovery: false }; 3] });
        roundtrip(&pb::AddResponseBatch { responses: vec![pb::AddResponse { request_id, ledger_id, entry_id, code, message: msg }; 2] });
        roundtrip(&pb::ReadEntryRequest { ledger_id, entry_id });
        roundtrip(&pb::ReadEntryResponse { ledger_id, entry_id, payload: payload.clone(), lac });
        roundtrip(&pb::ReadRangeRequest { ledger_id, first_entry: entry_id, last_entry: request_id, max_bytes: 7 });
        roundtrip(&pb::ReadRangeResponse { ledger_id, entries: vec![pb::Entry { entry_id, payload }], lac });
        roundtrip(&pb::ReadLacRequest { ledger_id, previous_lac: lac, timeout_ms: entry_id });
        roundtrip(&pb::ReadLacResponse { ledger_id, lac, last_entry: lac, fenced: flag });
        roundtrip(&pb::FenceRequest { ledger_id, master_key: key });
        roundtrip(&pb::FenceResponse { ledger_id, lac, last_entry: lac });
        roundtrip(&pb::DeleteLedgerRequest { ledger_id });
        roundtrip(&pb::ErrorDetail { code });
    }

    #[test]
    fn wire_arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = pb::AddRequest::decode(b.as_slice());
        let _ = pb::AddResponse::decode(b.as_slice());
        let _ = pb::AddBatch::decode(b.as_slice());
        let _ = pb::AddResponseBatch::decode(b.as_slice());
        let _ = pb::ReadRangeResponse::decode(b.as_slice());
        let _ = pb::ErrorDetail::decode(b.as_slice());
    }
}
