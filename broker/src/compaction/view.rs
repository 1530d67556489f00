//! One compaction's result: the compacted ledger's entries, found by original position with a
//! binary search over the ledger.

use bytes::Bytes;
use strata_proto::{EntryId, LedgerId};

use super::CompactionError;
use super::format;
use crate::position::Position;
use crate::storage::LedgerStorage;

/// One compaction's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactedView {
    /// The compacted ledger.
    pub ledger: u64,
    /// Its entry count.
    pub entries: u64,
    /// The last topic position it covers.
    pub horizon: Position,
}

impl CompactedView {
    async fn entry(
        &self,
        storage: &dyn LedgerStorage,
        i: u64,
    ) -> Result<(Position, Bytes), CompactionError> {
        let data = storage
            .read(LedgerId(self.ledger), EntryId(i), EntryId(i))
            .await?;
        let d = data
            .into_iter()
            .next()
            .ok_or(crate::storage::StorageError::NoSuchEntry(self.ledger, i))?;
        Ok(format::decode(d)?)
    }

    /// Index of the first compacted entry whose original position is after `pos`.
    async fn first_after(
        &self,
        storage: &dyn LedgerStorage,
        pos: Position,
    ) -> Result<u64, CompactionError> {
        let (mut lo, mut hi) = (0, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(storage, mid).await?.0 <= pos {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Up to `max` compacted entries after `pos`, with their original positions.
    pub async fn read_after(
        &self,
        storage: &dyn LedgerStorage,
        pos: Position,
        max: u64,
    ) -> Result<Vec<(Position, Bytes)>, CompactionError> {
        let first = self.first_after(storage, pos).await?;
        if first >= self.entries || max == 0 {
            return Ok(Vec::new());
        }
        let last = (first + max).min(self.entries) - 1;
        let data = storage
            .read(LedgerId(self.ledger), EntryId(first), EntryId(last))
            .await?;
        data.into_iter()
            .map(|d| format::decode(d).map_err(CompactionError::from))
            .collect()
    }

    /// The last compacted entry (`None` when the view is empty).
    pub async fn last(
        &self,
        storage: &dyn LedgerStorage,
    ) -> Result<Option<(Position, Bytes)>, CompactionError> {
        if self.entries == 0 {
            return Ok(None);
        }
        Ok(Some(self.entry(storage, self.entries - 1).await?))
    }
}
