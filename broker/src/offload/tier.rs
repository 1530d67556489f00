//! [`Tier`]: reads of offloaded ledgers, shared by every reader on the broker.
//!
//! A read at entry `e` costs the ledger's index (fetched once, cached) and one ranged GET of the
//! block holding `e`. Blocks go through one cache bounded in bytes shared by every reader of every
//! ledger; concurrent readers of one block wait for one GET (moka's `try_get_with`), so a second
//! reader never breaks or doubles the first. A forward reader prefetches the next
//! `read_ahead_blocks` blocks concurrently, within a broker-wide bound of prefetches in flight, so
//! memory stays bounded whatever the number of readers.
//!
//! Every prefetch runs as a task of the tier's [`TaskTracker`]; [`Tier::shutdown`] cancels them
//! and waits for them (no prefetch outlives the broker's shutdown, none starts after it).

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use moka::future::Cache;
use strata_meta::model::LedgerOffload;
use strata_objstore::Store;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::config::OffloadConfig;
use super::error::TierError;
use super::format::{Index, decode_block};
use super::keys::OffloadKeys;

/// The object store of offloaded ledgers and its caches. Cheap to share (`Arc`).
pub struct Tier {
    store: Store,
    indexes: Cache<String, Arc<Index>>,
    /// Verified blocks by (index key, block number).
    blocks: Cache<(String, usize), Arc<Vec<Bytes>>>,
    prefetch: Arc<Semaphore>,
    /// Blocks being prefetched (so readers do not start the same prefetch twice).
    prefetching: Arc<parking_lot::Mutex<HashSet<(String, usize)>>>,
    read_ahead: usize,
    /// The prefetch tasks.
    tasks: TaskTracker,
    /// Cancelled at shutdown: prefetches stop, none start.
    cancel: CancellationToken,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier").field("store", &self.store).finish()
    }
}

impl Tier {
    /// A tier over `store`.
    pub fn new(store: Store, cfg: &OffloadConfig) -> Self {
        let blocks = Cache::builder()
            .max_capacity(cfg.block_cache_bytes)
            .weigher(|_k: &(String, usize), v: &Arc<Vec<Bytes>>| {
                let n: usize = v.iter().map(|b| b.len() + 16).sum();
                u32::try_from(n).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            store,
            indexes: Cache::builder().max_capacity(4096).build(),
            blocks,
            prefetch: Arc::new(Semaphore::new(cfg.max_prefetches.max(1))),
            prefetching: Arc::default(),
            read_ahead: cfg.read_ahead_blocks,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Cancels the prefetches in flight and waits until their tasks have ended; no prefetch
    /// starts afterwards (reads still work, without read-ahead).
    ///
    /// # Cancel safety
    /// Cancel safe: the prefetches are cancelled by the first call.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Prefetch tasks running now.
    pub fn prefetch_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// A permit for one more prefetch of `id`, or `None` (cached, already being fetched, the
    /// broker-wide bound reached, or shutting down). Marks `id` as being fetched.
    fn start_prefetch(&self, id: &(String, usize)) -> Option<OwnedSemaphorePermit> {
        if self.cancel.is_cancelled() || self.blocks.contains_key(id) {
            return None;
        }
        let mut fetching = self.prefetching.lock();
        if fetching.contains(id) {
            return None;
        }
        let permit = self.prefetch.clone().try_acquire_owned().ok()?;
        fetching.insert(id.clone());
        Some(permit)
    }

    /// Runs `work` as a tracked prefetch task of `id`, stopped at shutdown.
    fn spawn_prefetch<F>(
        self: &Arc<Self>,
        id: (String, usize),
        permit: OwnedSemaphorePermit,
        work: F,
    ) where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let me = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = me.cancel.cancelled() => {}
                () = work => {}
            }
            me.prefetching.lock().remove(&id);
            drop(permit);
        });
    }

    /// The object store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn index(&self, keys: &OffloadKeys) -> Result<Arc<Index>, TierError> {
        let key = keys.index();
        self.indexes
            .try_get_with(key.clone(), async {
                let raw = self.store.get(&key).await?;
                Ok::<_, TierError>(Arc::new(Index::decode(&raw)?))
            })
            .await
            .map_err(|e| (*e).clone())
    }

    async fn block(
        &self,
        keys: &OffloadKeys,
        index: &Index,
        i: usize,
    ) -> Result<Arc<Vec<Bytes>>, TierError> {
        let Some(b) = index.blocks.get(i).copied() else {
            return Err(TierError::Refused(format!("no block {i}")));
        };
        let data_key = keys.data(b.part);
        self.blocks
            .try_get_with((keys.index(), i), async {
                let raw = self
                    .store
                    .get_range(&data_key, b.offset..b.offset + b.len as u64)
                    .await?;
                Ok::<_, TierError>(Arc::new(decode_block(raw, b.first_entry, b.count)?))
            })
            .await
            .map_err(|e| (*e).clone())
    }

    /// Entries `first..=last` of an offloaded ledger, or fewer: those up to the end of the block
    /// holding `first` (the caller reads on from there). Starts prefetching the next blocks of
    /// the ledger, `read_ahead_blocks` in all; returns with the entries how many blocks of that
    /// window lie beyond the ledger's end (the caller asks [`Tier::warm`] for them in the next
    /// offloaded ledgers, so the window slides across ledger boundaries in order).
    pub async fn read(
        self: &Arc<Self>,
        ml_name: &str,
        ledger: u64,
        off: &LedgerOffload,
        first: u64,
        last: u64,
    ) -> Result<(Vec<Bytes>, usize), TierError> {
        let keys = OffloadKeys::new(ml_name, ledger, &off.offload_id);
        let index = self.index(&keys).await?;
        let Some(i) = index.block_of(first) else {
            return Err(TierError::Refused(format!(
                "entry {first} is not in offloaded ledger {ledger} ({} entries)",
                index.entries
            )));
        };
        // The read-ahead starts once this block is here: started earlier, it would compete with
        // a cold reader's first block for the store's bandwidth.
        let block = self.block(&keys, &index, i).await?;
        let beyond = self.prefetch_from(&keys, &index, i + 1, self.read_ahead);
        let b = index.blocks[i];
        let from = (first - b.first_entry) as usize;
        let to = ((last.min(b.first_entry + b.count as u64 - 1) - b.first_entry) as usize)
            .min(block.len().saturating_sub(1));
        let entries = block.get(from..=to).map(|s| s.to_vec()).unwrap_or_default();
        Ok((entries, beyond))
    }

    /// Warms the cache for a reader about to reach offloaded ledger `ledger`: its index (fetched
    /// in the background once), and its first `blocks` blocks, in order, concurrently (skipped
    /// when cached or under way, or when the prefetch bound is reached). Returns how many of
    /// `blocks` lie beyond this ledger (for the next one; 0 while its index is not known).
    pub async fn warm(
        self: &Arc<Self>,
        ml_name: &str,
        ledger: u64,
        off: &LedgerOffload,
        blocks: usize,
    ) -> usize {
        let keys = OffloadKeys::new(ml_name, ledger, &off.offload_id);
        if let Some(index) = self.indexes.get(&keys.index()).await {
            return self.prefetch_from(&keys, &index, 0, blocks);
        }
        // The marker of the index fetch (block numbers are below it).
        let marker = (keys.index(), usize::MAX);
        let Some(permit) = self.start_prefetch(&marker) else {
            return 0;
        };
        let me = self.clone();
        self.spawn_prefetch(marker, permit, async move {
            match me.index(&keys).await {
                Ok(index) => {
                    me.prefetch_from(&keys, &index, 0, blocks);
                }
                Err(e) => debug!(key = %keys.index(), error = %e, "warming failed"),
            }
        });
        0
    }

    /// Fetches blocks `first..first + count` (within the ledger) into the cache in the
    /// background, concurrently, in order, as far as the broker-wide prefetch bound allows.
    /// Returns how many of `count` lie beyond the ledger's last block.
    fn prefetch_from(
        self: &Arc<Self>,
        keys: &OffloadKeys,
        index: &Arc<Index>,
        first: usize,
        count: usize,
    ) -> usize {
        let len = index.blocks.len();
        let end = first.saturating_add(count).min(len);
        let beyond = count.saturating_sub(len.saturating_sub(first));
        let dir = keys.index();
        for j in first..end {
            let id = (dir.clone(), j);
            let Some(permit) = self.start_prefetch(&id) else {
                if self.prefetch.available_permits() == 0 {
                    return beyond;
                }
                continue;
            };
            let (me, keys, index) = (self.clone(), keys.clone(), index.clone());
            self.spawn_prefetch(id, permit, async move {
                if let Err(e) = me.block(&keys, &index, j).await {
                    debug!(key = %keys.index(), block = j, error = %e, "prefetch failed");
                }
            });
        }
        beyond
    }

    /// Deletes every object of an offload attempt (retention, topic deletion, janitor).
    pub async fn delete_objects(
        &self,
        ml_name: &str,
        ledger: u64,
        offload_id: &str,
    ) -> Result<(), TierError> {
        let keys = OffloadKeys::new(ml_name, ledger, offload_id);
        self.delete_dir(&keys).await
    }

    /// Deletes every object under an attempt's directory.
    pub(crate) async fn delete_dir(&self, keys: &OffloadKeys) -> Result<(), TierError> {
        for o in self.store.list(keys.dir()).await? {
            self.store.delete(&o.key).await?;
        }
        self.indexes.invalidate(&keys.index()).await;
        Ok(())
    }
}
