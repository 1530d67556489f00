//! Bookies on object storage: sealed segments are uploaded (with their index) to
//! `bookies/<id>/segments/<segment>-<generation>.seg`, committed by a manifest, and then their
//! local copies may be evicted and the journal covering them trimmed.
//!
//! - [`Remote`]: the store, a dedicated runtime (so object-store I/O never depends on the
//!   caller's runtime and stops with the storage), the generation and manifest counters.
//! - `upload.rs`: the uploader task (upload → manifest commit → local manifest copy; GC of
//!   objects whose entries are all dead; sweep of unreferenced objects and old manifests).
//! - `cache.rs`: ranged GETs of evicted segments into a bounded in-memory block cache, with
//!   read-ahead for sequential readers.
//! - `rebuild.rs`: at recovery, attaches uploaded segments (fetching their index blocks) and, on
//!   an empty disk, the ledger states from the latest manifest.
//!
//! Commit order (crash-safe): segment sealed and synced → object put (create-only key with the
//! generation) → manifest put (create-only, next sequence) → local `manifest` file (atomic) →
//! segment marked uploaded in memory → only then may a checkpoint trim the journal past the
//! segment's first record and the local copy be evicted. Deletion: manifest without the object →
//! local manifest → local files deleted → object deleted. Anything a crash leaves behind is not
//! in the latest manifest and is removed by the sweep.
//!
//! Compaction of a mostly-dead uploaded segment (the flusher's GC, same threshold as local
//! compaction): its live entries are read (the local copy, or one GET of the object) and
//! appended to the current local segment (synced), the index repointed; that segment is sealed
//! and uploaded like any other (new segment id, this life's generation: a new create-only key)
//! and committed by a manifest; only then may the old object, now without live entries, be
//! deleted as above (`Segments::moved_not_uploaded`). A crash before the new segment is
//! committed leaves the old object in the latest manifest (an empty-disk restart reads the
//! entries from it); one after leaves both referenced and the old one is deleted later.

mod cache;
mod local;
mod nice;
mod rebuild;
mod upload;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use strata_objstore::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::RemoteConfig;
use crate::error::BookieError;
use crate::format::object::SegmentObject;
use crate::metrics::Metrics;

use super::segments::Loc;

pub(super) use local::{backlog_reason, evict, trim_pos};
pub(super) use rebuild::attach;
pub(super) use upload::start_uploader;

/// Name of the local copy of the latest manifest (in the ledger directory).
pub(super) const LOCAL_MANIFEST: &str = "manifest";

/// The object-storage side of one bookie's storage.
pub(crate) struct Remote {
    pub(super) cfg: RemoteConfig,
    store: Store,
    /// `bookies/<sanitized id>`.
    prefix: String,
    rt: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    pub(super) cancel: CancellationToken,
    tasks: TaskTracker,
    cache: cache::BlockCache,
    /// Generation of this process: part of every object key it writes.
    pub(super) generation: AtomicU64,
    /// Sequence of the last manifest written (or seen).
    pub(super) manifest_seq: AtomicU64,
    /// Wakes the uploader (a segment was sealed).
    pub(super) wake: tokio::sync::Notify,
    /// Set while uploads fail (the object store is unreachable).
    pub(super) failing: AtomicBool,
    /// A sweep was asked for (`Storage::gc_now`): run it at the next round.
    pub(super) sweep_requested: AtomicBool,
    /// The segment objects (segment, generation) the latest manifest written by this process
    /// names: the sweep keeps them even when the segment left the map meanwhile (a restart reads
    /// that manifest and needs every object it names).
    pub(super) named: Mutex<HashSet<(u64, u64)>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) ledger_dir: std::path::PathBuf,
    segment_max_bytes: u64,
    /// Ends when the uploader task ended.
    uploader_done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    /// Held by the uploader's file operations on the blocking pool (see [`Remote::file_op`]).
    files: Arc<Mutex<()>>,
}

impl Remote {
    /// Opens the remote side: its runtime and the store (`store` overrides the configured one,
    /// e.g. with injected faults in tests).
    pub(super) fn new(
        cfg: RemoteConfig,
        store: Option<Store>,
        metrics: Arc<Metrics>,
        ledger_dir: std::path::PathBuf,
        segment_max_bytes: u64,
    ) -> Result<Arc<Self>, BookieError> {
        let nice = cfg.thread_nice;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bookie-objstore")
            .on_thread_start(move || nice::lower_thread_priority(nice))
            .enable_all()
            .build()
            .map_err(|e| BookieError::io("start object store runtime", e))?;
        let store = match store {
            Some(s) => s,
            None => strata_objstore::open(&cfg.store)
                .map_err(|e| BookieError::objstore("open object store", e))?,
        };
        let id: String = cfg
            .bookie_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(Arc::new(Self {
            cache: cache::BlockCache::new(cfg.read_cache_bytes),
            cfg,
            store,
            prefix: format!("bookies/{id}"),
            handle: rt.handle().clone(),
            rt: Mutex::new(Some(rt)),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            generation: AtomicU64::new(1),
            manifest_seq: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            failing: AtomicBool::new(false),
            sweep_requested: AtomicBool::new(false),
            named: Mutex::new(HashSet::new()),
            metrics,
            ledger_dir,
            segment_max_bytes,
            uploader_done: Mutex::new(None),
            files: Arc::new(Mutex::new(())),
        }))
    }

    /// The full key of `key` (relative to this bookie's prefix).
    pub(super) fn key(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `fut` on the remote runtime and waits for it from a blocking context (recovery,
    /// the flusher thread). Never call it from async code.
    pub(super) fn block<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, BookieError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| BookieError::ShuttingDown)
    }

    /// Reads and verifies the entry at `loc` of the evicted segment `obj`.
    ///
    /// # Cancel safety
    /// Cancel safe: the fetch runs on the remote runtime and fills the cache either way.
    pub(super) async fn read(
        self: &Arc<Self>,
        obj: SegmentObject,
        loc: Loc,
        ledger: u64,
        entry: u64,
    ) -> Result<Bytes, BookieError> {
        let me = self.clone();
        let buf = self
            .handle
            .spawn(async move { cache::read_range(&me, obj, loc).await })
            .await
            .map_err(|_| BookieError::ShuttingDown)??;
        super::segments::decode_at(buf, loc, ledger, entry).map(|p| p.bytes)
    }

    /// The segment part of the uploaded segment `obj` (one GET; compaction of an evicted
    /// segment). Blocking: call it from the flusher thread only.
    pub(super) fn fetch_segment(
        self: &Arc<Self>,
        obj: SegmentObject,
    ) -> Result<Bytes, BookieError> {
        let me = self.clone();
        let key = self.key(&obj.key());
        let got = self.block(async move { me.store().get_range(&key, 0..obj.seg_len).await })?;
        let b = got.map_err(|e| {
            BookieError::objstore(format!("read segment {} to compact", obj.segment), e)
        })?;
        if (b.len() as u64) < obj.seg_len {
            return Err(BookieError::Corrupt {
                what: format!("segment object {}", obj.key()),
                source: crate::format::FormatError::Truncated,
            });
        }
        Ok(b)
    }

    /// Spawns `fut` as an owned task of the remote runtime.
    pub(super) fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tasks.spawn_on(
            async move {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = fut => {}
                }
            },
            &self.handle,
        );
    }

    /// Stops the uploader and every task (bounded), then the runtime. Blocking; idempotent.
    pub(super) fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        if let Some(rx) = self.uploader_done.lock().take() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
        // a file operation of the uploader outlives its cancelled task on the blocking pool:
        // wait for one in progress (none starts after the cancel)
        drop(self.files.lock());
        if let Some(rt) = self.rt.lock().take() {
            rt.shutdown_background();
        }
    }

    /// Runs the uploader's file operation `f` (the local manifest, removing a segment) on the
    /// blocking pool. [`Remote::shutdown`] waits for one in progress and none starts after it,
    /// so that such a write of a closed storage never races the next open's recovery.
    pub(super) async fn file_op<T, F>(&self, f: F) -> Result<T, BookieError>
    where
        F: FnOnce() -> Result<T, BookieError> + Send + 'static,
        T: Send + 'static,
    {
        let (files, cancel) = (self.files.clone(), self.cancel.clone());
        tokio::task::spawn_blocking(move || {
            let _held = files.lock();
            if cancel.is_cancelled() {
                return Err(BookieError::ShuttingDown);
            }
            f()
        })
        .await
        .map_err(|_| BookieError::ShuttingDown)?
    }

    /// Bytes of sealed segments not uploaded yet beyond which adds are refused: the cache
    /// bound, but at least two full segments (one being uploaded, one just sealed).
    pub(super) fn backlog_bound(&self) -> u64 {
        self.cfg
            .segment_cache_bytes
            .max(self.segment_max_bytes.saturating_mul(2))
    }

    /// Asks the uploader for a sweep of unreferenced objects at its next round.
    pub(super) fn request_sweep(&self) {
        self.sweep_requested.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
