//! What a `read_compacted` subscription reads through: the topic's current compacted view
//! (up to its horizon), after which it reads the topic itself.

use std::sync::Arc;

use bytes::Bytes;

use super::CompactionError;
use super::state::TopicCompaction;
use crate::position::Position;
use crate::storage::LedgerStorage;

/// What a `read_compacted` subscription reads through.
#[derive(Clone)]
pub struct CompactedReader {
    /// The topic's compaction state (its current view).
    pub state: Arc<TopicCompaction>,
    /// Where the compacted ledger is.
    pub storage: Arc<dyn LedgerStorage>,
}

impl std::fmt::Debug for CompactedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactedReader")
            .field("view", &self.state.view())
            .finish()
    }
}

impl CompactedReader {
    /// Entries of the compacted view after `pos` (empty once `pos` reached the horizon), and
    /// the horizon to continue after.
    pub async fn read_after(
        &self,
        pos: Position,
        max: u64,
    ) -> Result<Option<(Vec<(Position, Bytes)>, Position)>, CompactionError> {
        let Some(view) = self.state.view() else {
            return Ok(None);
        };
        if pos >= view.horizon {
            return Ok(None);
        }
        let v = view.read_after(self.storage.as_ref(), pos, max).await?;
        Ok(Some((v, view.horizon)))
    }
}
