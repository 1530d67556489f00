//! The metadata fields a dispatcher reads from a stored entry (bookie or object store bytes):
//! never panic.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_proto::entry_view::EntryFields::parse(&Bytes::copy_from_slice(data));
});
