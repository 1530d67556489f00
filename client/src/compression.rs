//! Payload compression as the Pulsar clients do it: LZ4 block, zlib, zstd frame, raw Snappy; the
//! uncompressed size travels in `MessageMetadata.uncompressed_size`. The codecs live in
//! [`strata_proto::compression`] (the broker's compactor uses them too).

use bytes::Bytes;
use strata_proto::pulsar::CompressionType;

use crate::error::{ClientError, Result};

pub use strata_proto::compression::MAX_UNCOMPRESSED;

/// Compresses `data` with `kind` (without a codec: the same bytes, not a copy).
pub fn compress(kind: CompressionType, data: &Bytes) -> Result<Bytes> {
    match kind {
        CompressionType::None => Ok(data.clone()),
        kind => strata_proto::compression::compress(kind, data)
            .map_err(|e| ClientError::Compression(e.0)),
    }
}

/// Decompresses `data` compressed with `kind` into exactly `uncompressed_size` bytes.
pub fn decompress(kind: CompressionType, data: &Bytes, uncompressed_size: usize) -> Result<Bytes> {
    strata_proto::compression::decompress(kind, data, uncompressed_size)
        .map_err(|e| ClientError::Compression(e.0))
}
