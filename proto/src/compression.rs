//! Payload compression as the Pulsar clients do it (shared by the client and the broker's
//! compactor): LZ4 block, zlib, zstd frame, raw Snappy; the
//! uncompressed size travels in `MessageMetadata.uncompressed_size`.

use std::io::{Read, Write};

use crate::pulsar::CompressionType;
use bytes::Bytes;

/// A payload that does not compress or decompress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compression: {0}")]
pub struct CompressionError(pub String);

type Result<T> = std::result::Result<T, CompressionError>;

/// Largest uncompressed size accepted when decompressing (a peer-provided number).
pub const MAX_UNCOMPRESSED: usize = 64 * 1024 * 1024;

/// Compresses `data` with `kind`.
pub fn compress(kind: CompressionType, data: &[u8]) -> Result<Bytes> {
    let err = |e: std::io::Error| CompressionError(e.to_string());
    Ok(match kind {
        CompressionType::None => Bytes::copy_from_slice(data),
        CompressionType::Lz4 => Bytes::from(lz4_flex::block::compress(data)),
        CompressionType::Zlib => {
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(err)?;
            Bytes::from(enc.finish().map_err(err)?)
        }
        CompressionType::Zstd => Bytes::from(zstd::bulk::compress(data, 3).map_err(err)?),
        CompressionType::Snappy => Bytes::from(
            snap::raw::Encoder::new()
                .compress_vec(data)
                .map_err(|e| CompressionError(e.to_string()))?,
        ),
    })
}

/// Decompresses `data` compressed with `kind` into exactly `uncompressed_size` bytes.
pub fn decompress(kind: CompressionType, data: &Bytes, uncompressed_size: usize) -> Result<Bytes> {
    if kind == CompressionType::None {
        return Ok(data.clone());
    }
    if uncompressed_size > MAX_UNCOMPRESSED {
        return Err(CompressionError(format!(
            "uncompressed size {uncompressed_size} over the limit"
        )));
    }
    let err = |e: String| CompressionError(e);
    let out = match kind {
        CompressionType::None => data.to_vec(),
        CompressionType::Lz4 => {
            lz4_flex::block::decompress(data, uncompressed_size).map_err(|e| err(e.to_string()))?
        }
        CompressionType::Zlib => {
            let mut out = Vec::with_capacity(uncompressed_size);
            flate2::read::ZlibDecoder::new(&data[..])
                .take(uncompressed_size as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| err(e.to_string()))?;
            out
        }
        CompressionType::Zstd => {
            zstd::bulk::decompress(data, uncompressed_size).map_err(|e| err(e.to_string()))?
        }
        CompressionType::Snappy => {
            let n = snap::raw::decompress_len(data).map_err(|e| err(e.to_string()))?;
            if n != uncompressed_size {
                return Err(err(format!("snappy length {n} != {uncompressed_size}")));
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| err(e.to_string()))?
        }
    };
    if out.len() != uncompressed_size {
        return Err(err(format!(
            "decompressed {} bytes, metadata says {uncompressed_size}",
            out.len()
        )));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [CompressionType; 5] = [
        CompressionType::None,
        CompressionType::Lz4,
        CompressionType::Zlib,
        CompressionType::Zstd,
        CompressionType::Snappy,
    ];

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            for k in KINDS {
                let c = compress(k, &data).unwrap();
                let d = decompress(k, &c, data.len()).unwrap();
                prop_assert_eq!(&d[..], &data[..]);
            }
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512), n in 0usize..100_000) {
            for k in KINDS {
                let _ = decompress(k, &Bytes::from(data.clone()), n);
            }
        }
    }
}
