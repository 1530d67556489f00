//! Golden files (files written by format version 1 must stay readable, byte for byte) and proptest
//! round-trips of the on-wire messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;
use strata_bookie::format::checkpoint::{Checkpoint, LedgerRecord};
use strata_bookie::format::index::{self, IndexEntry};
use strata_bookie::format::journal::{self, JournalRecord};
use strata_bookie::format::segment::{self, SegmentRecord};
use strata_proto::bookie as pb;

fn golden(name: &str, bytes: &[u8]) -> Bytes {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::write(&p, bytes).unwrap();
    }
    let stored = std::fs::read(&p)
        .unwrap_or_else(|e| panic!("read {}: {e} (STRATA_BLESS=1 writes it)", p.display()));
    assert_eq!(
        stored, bytes,
        "{name}: the encoder no longer writes the v1 format"
    );
    Bytes::from(stored)
}

fn journal_records() -> Vec<JournalRecord> {
    vec![
        JournalRecord::Add {
            ledger: 7,
            entry: 0,
            lac: -1,
            key: Bytes::from_static(b"key"),
            payload: Bytes::from_static(b"hello"),
        },
        JournalRecord::Fence {
            ledger: 7,
            key: Bytes::from_static(b"key"),
        },
        JournalRecord::Delete { ledger: 8 },
    ]
}

#[test]
fn journal_v1_golden() {
    let mut out = journal::file_header(3).to_vec();
    for r in journal_records() {
        r.encode_into(&mut out, 3);
    }
    let b = golden("journal-v1.bin", &out);
    let scan = journal::scan_file(&b, Some(3), 0).unwrap();
    assert!(scan.stopped.is_none());
    let got: Vec<_> = scan.records.into_iter().map(|(r, _)| r).collect();
    assert_eq!(got, journal_records());
}

#[test]
fn segment_and_index_v1_golden() {
    let mut seg = segment::file_header(5).to_vec();
    let rec = SegmentRecord {
        ledger: 7,
        entry: 1,
        payload: Bytes::from_static(b"payload"),
    };
    let offset = seg.len() as u64;
    rec.encode_into(&mut seg);
    let seg = golden("segment-v1.bin", &seg);
    let (id, recs, stop) = segment::scan_file(&seg).unwrap();
    assert_eq!((id, stop), (5, None));
    assert_eq!(recs, vec![(offset, rec.clone())]);

    let mut idx = index::file_header(5).to_vec();
    let e = IndexEntry {
        ledger: 7,
        entry: 1,
        offset,
        len: (seg.len() as u64 - offset) as u32,
    };
    index::encode_block(&[e], &mut idx);
    let idx = golden("index-v1.bin", &idx);
    let (id, entries, _, stop) = index::decode_file(&idx).unwrap();
    assert_eq!((id, entries, stop), (5, vec![e], None));
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
