//! Errors of the tier.

use strata_objstore::ObjStoreError;

use super::format::FormatError;

/// An offload or a read of an offloaded ledger failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TierError {
    /// The object store failed (after retries).
    #[error(transparent)]
    Store(#[from] ObjStoreError),
    /// An object failed its checks (CRC, magic, lengths): its bytes are never returned.
    #[error(transparent)]
    Corrupt(#[from] FormatError),
    /// Reading the ledger from the bookies failed.
    #[error("read from bookies: {0}")]
    Bookies(String),
    /// The ledger cannot be offloaded now (open, already offloaded, gone, topic fenced).
    #[error("{0}")]
    Refused(String),
}
