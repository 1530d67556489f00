//! Segment object footers and manifests read back from the object store: never panic.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_bookie::format::object::{Manifest, SegmentObject};

fuzz_target!(|data: &[u8]| {
    let _ = SegmentObject::decode_footer(data);
    let _ = Manifest::decode(&Bytes::copy_from_slice(data));
    if let Ok(key) = std::str::from_utf8(data) {
        let _ = SegmentObject::parse_key(key);
        let _ = Manifest::parse_key(key);
    }
});
