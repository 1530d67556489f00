//! An entry of a compacted ledger: the original position of the message(s) it carries, then
//! the entry bytes as the topic stores them (`[metadata size][MessageMetadata][payload]`; a
//! batch keeps only its retained messages).
//!
//! `magic "SCMP" (u32 BE) | version u8 | ledger u64 BE | entry i64 BE | crc32c u32 BE | entry`,
//! the CRC32C over the entry bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::position::Position;

const MAGIC: u32 = u32::from_be_bytes(*b"SCMP");
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 8 + 8 + 4;

/// Why a compacted entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Shorter than the header.
    #[error("compacted entry too short ({0} bytes)")]
    Short(usize),
    /// Not a compacted entry (magic) or a version this broker does not know.
    #[error("not a compacted entry of a known version")]
    Unknown,
    /// The entry bytes do not match their checksum.
    #[error("compacted entry checksum mismatch")]
    Checksum,
}

/// Encodes a compacted entry.
pub fn encode(original: Position, entry: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER + entry.len());
    b.put_u32(MAGIC);
    b.put_u8(VERSION);
    b.put_u64(original.ledger);
    b.put_i64(original.entry);
    b.put_u32(strata_common::crc::crc32c(entry));
    b.put_slice(entry);
    b.freeze()
}

/// Decodes a compacted entry: its original position and the entry bytes.
pub fn decode(mut data: Bytes) -> Result<(Position, Bytes), FormatError> {
    if data.len() < HEADER {
        return Err(FormatError::Short(data.len()));
    }
    if data.get_u32() != MAGIC || data.get_u8() != VERSION {
        return Err(FormatError::Unknown);
    }
    let ledger = data.get_u64();
    let entry = data.get_i64();
    let crc = data.get_u32();
    if strata_common::crc::crc32c(&data) != crc {
        return Err(FormatError::Checksum);
    }
    Ok((Position::new(ledger, entry), data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(l in any::<u64>(), e in -1i64..i64::MAX, body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let p = Position::new(l, e);
            prop_assert_eq!(decode(encode(p, &body)), Ok((p, Bytes::from(body))));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(Bytes::from(b));
        }
    }

    #[test]
    fn corruption_is_detected() {
        let mut v = encode(Position::new(3, 4), b"hello").to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        assert_eq!(decode(Bytes::from(v)), Err(FormatError::Checksum));
    }
}
