//! Checkpoint files from arbitrary bytes: never panic.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_bookie::format::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let _ = Checkpoint::decode(&Bytes::copy_from_slice(data));
});
