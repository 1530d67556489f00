//! Offloaded ledger objects (index and data blocks) read back from the object store: never panic.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_broker::offload::format::{Index, decode_block};

fuzz_target!(|data: &[u8]| {
    let _ = Index::decode(data);
    if data.len() >= 12 {
        let (head, rest) = data.split_at(12);
        let first = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
        let count = u32::from_le_bytes(head[8..12].try_into().unwrap_or_default()) % 4096;
        let _ = decode_block(Bytes::copy_from_slice(rest), first, count);
    }
});
