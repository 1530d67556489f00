//! Index blocks and whole index files from arbitrary bytes: never panic.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_bookie::format::index::{decode_block, decode_file, encode_block};

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    if let Ok((entries, _)) = decode_block(&b) {
        let mut out = Vec::new();
        encode_block(&entries, &mut out);
        assert_eq!(decode_block(&Bytes::from(out)).map(|(e, _)| e), Ok(entries));
    }
    let _ = decode_file(&b);
});
