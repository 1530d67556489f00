//! Journal records and whole journal files from arbitrary bytes: never panic.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_bookie::format::journal::{JournalRecord, scan_file};

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    if let Ok((rec, used)) = JournalRecord::decode(&b, 1) {
        assert!(used <= b.len());
        let mut out = Vec::new();
        rec.encode_into(&mut out, 1);
        assert_eq!(JournalRecord::decode(&Bytes::from(out), 1).map(|(r, _)| r), Ok(rec));
    }
    let _ = scan_file(&b, None, 0);
});
