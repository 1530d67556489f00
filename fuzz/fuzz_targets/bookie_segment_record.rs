//! Segment records and whole segment files from arbitrary bytes: never panic; a record that
//! decodes (from a plain or a split frame) encodes to a frame that decodes to the same record.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_bookie::format::segment::{SegmentRecord, scan_file};

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    if let Ok((rec, used)) = SegmentRecord::decode(&b) {
        assert!(used <= b.len());
        let mut out = Vec::new();
        rec.encode_into(&mut out);
        assert_eq!(out.len(), SegmentRecord::encoded_len(rec.payload.len()));
        assert_eq!(SegmentRecord::decode(&Bytes::from(out)).map(|(r, _)| r), Ok(rec));
    }
    let _ = scan_file(&b);
});
