//! Segment records and whole segment files from arbitrary bytes: never panic.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_bookie::format::segment::{SegmentRecord, scan_file};

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    if let Ok((rec, used)) = SegmentRecord::decode(&b) {
        assert_eq!(used, SegmentRecord::encoded_len(rec.payload.len()));
    }
    let _ = scan_file(&b);
});
