//! The cluster-unique ledger-id allocator.

use std::sync::Arc;

use strata_proto::LedgerId;
use tokio::sync::Mutex;

use super::{LedgerIdCounter, decode, encode};
use crate::error::Result;
use crate::retry::{Change, RetryPolicy, update};
use crate::store::MetadataStore;

/// Hands out ledger ids that are unique across the cluster: a counter in the store advanced by
/// compare-and-set (retried on conflicts), `batch` ids at a time.
///
/// With `batch == 1` ids are strictly increasing cluster-wide (in allocation order). With a
/// larger batch each allocator hands out an increasing sequence from its own reserved range
/// (fewer store writes); ids of different nodes then interleave, and ids left in a range when the
/// process stops are skipped, never reused.
#[derive(Debug)]
pub struct LedgerIdAllocator {
    store: Arc<dyn MetadataStore>,
    key: String,
    batch: u64,
    policy: RetryPolicy,
    /// `[next, end)` not handed out yet.
    range: Mutex<(u64, u64)>,
}

impl LedgerIdAllocator {
    /// An allocator over the counter at `key` (see [`super::Paths::ledger_id_counter`]).
    pub fn new(store: Arc<dyn MetadataStore>, key: impl Into<String>, batch: u64) -> Self {
        Self {
            store,
            key: key.into(),
            batch: batch.max(1),
            policy: RetryPolicy::default(),
            range: Mutex::new((0, 0)),
        }
    }

    /// The next id. Ids start at 1.
    ///
    /// # Cancel safety
    /// Cancel safe in that no id is ever handed out twice; a cancelled call may waste a range.
    pub async fn next(&self) -> Result<LedgerId> {
        let mut range = self.range.lock().await;
        if range.0 >= range.1 {
            let mut reserved = 0;
            let key = self.key.clone();
            let batch = self.batch;
            update(self.store.as_ref(), &key, self.policy, |cur| {
                let next = match cur {
                    Some(v) => decode::<LedgerIdCounter>(&key, &v.value)?.next.max(1),
                    None => 1,
                };
                reserved = next;
                Ok(Change::Put(encode(&LedgerIdCounter {
                    next: next + batch,
                })?))
            })
            .await?;
            *range = (reserved, reserved + batch);
        }
        let id = range.0;
        range.0 += 1;
        Ok(LedgerId(id))
    }
}
