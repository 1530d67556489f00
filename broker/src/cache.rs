//! The entry cache: recently written entries of every topic, bounded by bytes (moka, TinyLFU).
//!
//! Only appends insert into it, so tailing consumers are served from memory; catch-up reads go to
//! storage with read-ahead into the reading subscription's own buffer and never insert here, so a
//! consumer replaying a backlog cannot evict the tail.

use bytes::Bytes;
use moka::sync::Cache;

use crate::position::Position;

/// Shared entry cache keyed by `(ledger, entry)` (ledger ids are unique across topics).
#[derive(Clone)]
pub struct EntryCache {
    inner: Cache<Position, Bytes>,
}

impl EntryCache {
    /// A cache holding at most `max_bytes` of entry data.
    pub fn new(max_bytes: u64) -> Self {
        let inner = Cache::builder()
            .max_capacity(max_bytes.max(1))
            .support_invalidation_closures()
            .weigher(|_k: &Position, v: &Bytes| u32::try_from(v.len() + 64).unwrap_or(u32::MAX))
            .build();
        Self { inner }
    }

    /// Inserts a freshly written entry.
    pub fn insert(&self, p: Position, data: Bytes) {
        self.inner.insert(p, data);
    }

    /// The entry at `p`, if cached.
    pub fn get(&self, p: &Position) -> Option<Bytes> {
        self.inner.get(p)
    }

    /// Drops every entry of `ledger` (after it was deleted).
    pub fn invalidate_ledger(&self, ledger: u64) {
        let _ = self
            .inner
            .invalidate_entries_if(move |k, _| k.ledger == ledger);
    }

    /// Approximate bytes held.
    pub fn weighted_size(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.weighted_size()
    }
}
