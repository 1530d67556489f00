//! Topic compaction (Pulsar's PIP-14): the latest message of every key, kept in a compacted
//! ledger that readers with `read_compacted` read before the rest of the topic.
//!
//! - [`compactor`]: the two-phase compactor. Phase one ([`keymap`]) finds the latest message
//!   of each key up to the horizon (the topic's last entry when compaction starts) with a
//!   bounded key map (hash buckets, one pass per bucket, kept positions spilled to sorted
//!   files). Phase two reads the topic again and writes the kept messages, in order, to a new
//!   ledger ([`format`]: each entry carries its original position; a batch keeps only its
//!   retained messages). Tombstones (empty payload / `null_value`) remove their key; keyless
//!   messages are left out, as in Pulsar; compressed batches are decompressed and compressed
//!   again with their codec; chunked messages are left out (logged). Then the pointer ([`strata_meta::model::CompactionInfo`] at
//!   `/strata/compaction/…`) is switched, the `__compaction` cursor moved to the horizon (the
//!   entries after it stay for compacted readers) and the previous compacted ledger deleted.
//! - [`view`]: one compaction's result (binary search by original position); [`reader`]: what
//!   `read_compacted` subscriptions read through.
//! - [`state`]: per-topic status (`LongRunningProcessStatus`), triggering, automatic
//!   compaction from the `compactionThreshold` policy.
//! - [`messages`]: keys and tombstones of a stored entry.

pub mod compactor;
pub mod format;
pub mod keymap;
pub mod messages;
pub mod reader;
pub mod state;
pub mod view;

use bytes::Bytes;

use crate::error::BrokerError;
use crate::managed_ledger::ManagedLedger;
use crate::position::Position;

pub use reader::CompactedReader;
pub use state::{CompactionStatus, TopicCompaction};
pub use view::CompactedView;

/// Name of the compactor's cursor.
pub const COMPACTION_CURSOR: &str = "__compaction";

/// Why a compaction failed.
#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    /// Reading the topic or writing the pointer.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The compacted ledger.
    #[error("compacted ledger: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// Spill files.
    #[error("spill file: {0}")]
    Io(#[from] std::io::Error),
    /// A compacted entry that does not decode.
    #[error(transparent)]
    Format(#[from] format::FormatError),
}

impl From<strata_meta::MetaError> for CompactionError {
    fn from(e: strata_meta::MetaError) -> Self {
        CompactionError::Broker(e.into())
    }
}

impl From<CompactionError> for BrokerError {
    fn from(e: CompactionError) -> Self {
        match e {
            CompactionError::Broker(e) => e,
            CompactionError::Storage(e) => BrokerError::Storage(e),
            e => BrokerError::Storage(crate::storage::StorageError::Other(e.to_string())),
        }
    }
}

/// Reads a topic up to a horizon, in order.
#[async_trait::async_trait]
pub trait Scan: Send + Sync {
    /// Up to `max` entries after `pos` and at or before the horizon (empty: the end).
    async fn read_after(
        &self,
        pos: Position,
        max: u64,
    ) -> Result<Vec<(Position, Bytes)>, CompactionError>;
}

/// A managed ledger up to `horizon`.
pub struct LedgerScan<'a> {
    /// The topic's log.
    pub ml: &'a ManagedLedger,
    /// Last position read.
    pub horizon: Position,
}

#[async_trait::async_trait]
impl Scan for LedgerScan<'_> {
    async fn read_after(
        &self,
        pos: Position,
        max: u64,
    ) -> Result<Vec<(Position, Bytes)>, CompactionError> {
        let Some(next) = self.ml.next_position(pos) else {
            return Ok(Vec::new());
        };
        if next > self.horizon {
            return Ok(Vec::new());
        }
        let mut v = self.ml.read(next, max).await?;
        v.retain(|(p, _)| *p <= self.horizon);
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
