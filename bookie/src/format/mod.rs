//! On-disk formats of the bookie. Every file starts with a header (8-byte magic, u32 version, u64 id,
//! CRC32C of those 20 bytes) and holds *frames* ([`frame`]): a length, a CRC and a body; entries go
//! in *split* frames, whose payload CRC is computed once per entry and carried with it.
//!
//! - [`frame`]: plain and split frames, and [`Payload`] (an entry's bytes with their CRC32C).
//! - [`journal`]: journal records (add, fence, delete), the write-ahead log.
//! - [`segment`]: segment records (one entry each), the interleaved entry logs.
//! - [`index`]: index blocks (entry → location in its segment), one `.idx` file per segment.
//! - [`checkpoint`]: the checkpoint (journal position + every ledger's state), written atomically.
//! - [`object`]: segment objects and manifests in object storage (bookies on object storage).
//! - [`uncached`]: copying a payload into a buffer bound for the disk around the CPU caches.
//!
//! Decoders take untrusted bytes: they never panic, never allocate more than a checked limit, and
//! report a torn tail ([`FormatError::Truncated`]) apart from corruption.

pub mod checkpoint;
pub mod frame;
pub mod index;
pub mod journal;
pub mod object;
pub mod segment;
pub mod uncached;

use bytes::Buf;

pub use frame::{
    FRAME_HEADER_LEN, Frame, Payload, SPLIT_HEADER_LEN, ZERO_LENGTH, decode_frame, put_frame,
    put_frame_seeded, put_split_frame, split_frame_len,
};

/// Size of a file header (magic + version + id + crc).
pub const FILE_HEADER_LEN: usize = 24;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Fewer bytes than the record needs: a torn (short) write at the tail of a file.
    #[error("truncated record")]
    Truncated,
    /// The file does not start with the expected magic.
    #[error("bad magic")]
    BadMagic,
    /// A version this build cannot read.
    #[error("unsupported version {0}")]
    BadVersion(u32),
    /// A checksum mismatch.
    #[error("checksum mismatch")]
    BadCrc,
    /// A length field above its limit.
    #[error("length {0} exceeds the limit")]
    TooLarge(u64),
    /// Structurally invalid contents (with what was wrong).
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

/// A file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// The file kind's magic.
    pub magic: [u8; 8],
    /// Format version.
    pub version: u32,
    /// The file's id (journal sequence, segment id, ...).
    pub id: u64,
}

impl FileHeader {
    /// The header of file `id` of a kind with this magic and version.
    pub const fn new(magic: [u8; 8], version: u32, id: u64) -> Self {
        Self { magic, version, id }
    }

    /// Encodes the header (24 bytes).
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut out = [0u8; FILE_HEADER_LEN];
        out[..8].copy_from_slice(&self.magic);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[12..20].copy_from_slice(&self.id.to_le_bytes());
        let crc = strata_common::crc::crc32c(&out[..20]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a header and checks its magic and version: this build reads every version from 1 to
    /// `newest` (the one it writes), and refuses a newer one rather than misread it.
    pub fn decode(buf: &[u8], magic: &[u8; 8], newest: u32) -> Result<Self, FormatError> {
        let Some(b) = buf.get(..FILE_HEADER_LEN) else {
            return Err(FormatError::Truncated);
        };
        if &b[..8] != magic {
            return Err(FormatError::BadMagic);
        }
        let mut rd = &b[8..];
        let v = rd.get_u32_le();
        let id = rd.get_u64_le();
        let crc = rd.get_u32_le();
        if strata_common::crc::crc32c(&b[..20]) != crc {
            return Err(FormatError::BadCrc);
        }
        if v == 0 || v > newest {
            return Err(FormatError::BadVersion(v));
        }
        let mut m = [0u8; 8];
        m.copy_from_slice(&b[..8]);
        Ok(Self {
            magic: m,
            version: v,
            id,
        })
    }
}

/// Reads a fixed-size integer from an untrusted buffer, failing on a short buffer.
pub(crate) fn need(buf: &impl Buf, n: usize) -> Result<(), FormatError> {
    if buf.remaining() < n {
        Err(FormatError::Malformed("short body"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn file_header_roundtrip(id in any::<u64>(), version in 1..u32::MAX) {
            let h = FileHeader { magic: *b"TESTMAGC", version, id };
            prop_assert_eq!(FileHeader::decode(&h.encode(), b"TESTMAGC", version).unwrap(), h);
            // an older build refuses it; a newer one reads it
            prop_assert_eq!(
                FileHeader::decode(&h.encode(), b"TESTMAGC", version - 1),
                Err(FormatError::BadVersion(version))
            );
            prop_assert_eq!(FileHeader::decode(&h.encode(), b"TESTMAGC", version + 1).unwrap(), h);
        }

        #[test]
        fn file_header_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = FileHeader::decode(&bytes, b"TESTMAGC", 1);
        }
    }
}
