//! Entries of a compacted ledger read back from the bookies: never panic.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_broker::compaction::format::decode(Bytes::copy_from_slice(data));
});
