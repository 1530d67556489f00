//! Feeds arbitrary bytes to the Pulsar frame decoder, the batch parser and the stored-entry parser.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strata_proto::frame::{Payload, PulsarCodec};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // Small limit too, so the size checks are exercised with short inputs.
    for mut codec in [PulsarCodec::new(), PulsarCodec::with_max_frame_size(64)] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(item)) = codec.decode(&mut buf) {
            if let Ok(frame) = item {
                if let Some(p) = frame.payload {
                    let _ = strata_proto::batch::parse_batch(p.data.clone(), None);
                }
            }
        }
    }
    let _ = Payload::from_raw(Bytes::copy_from_slice(data));
    let _ = strata_proto::batch::parse_batch(Bytes::copy_from_slice(data), None);
});
