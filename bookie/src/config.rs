//! Storage configuration with defaults.

use std::path::PathBuf;
use std::time::Duration;

/// How the storage engine is laid out and tuned.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// Directory of segments, index files and the checkpoint.
    pub ledger_dir: PathBuf,
    /// Directory of journal files (a separate disk in production).
    pub journal_dir: PathBuf,
    /// A group commit stops collecting records at this many bytes.
    pub journal_max_batch_bytes: usize,
    /// A group commit waits at most this long for more records (0: take what is queued; batches
    /// then form while the previous fdatasync runs).
    pub journal_max_wait: Duration,
    /// Roll to a new journal file past this size.
    pub journal_max_file_bytes: u64,
    /// Journal files older than the checkpoint kept for reuse instead of deleted.
    pub journal_recycle_files: usize,
    /// Write the journal with direct I/O (`O_DIRECT`: no copy into the page cache); a filesystem
    /// that refuses it gets buffered writes. On by default since segments are written directly
    /// too: on the dev machine it then saves 5-25 % of the server's CPU per message and adds
    /// batched throughput. (With buffered segment writes, an older dev VM's disk lost 15 % of the
    /// batched throughput with it: measure on yours with `scripts/bench-vs-nats`.)
    pub journal_direct_io: bool,
    /// Write segments with direct I/O (`O_DIRECT`: no copy into the page cache, no writeback to
    /// wait for); a filesystem that refuses it gets buffered writes. Segments are written off the
    /// add path, in chunks of `flush_chunk_bytes`.
    pub segment_direct_io: bool,
    /// Journal files hold the entries (each entry written to the device once): a flush indexes
    /// the entries where the journal wrote them instead of copying them into segments, and
    /// journal files stay until garbage collection reclaims or compacts them. Off with object
    /// storage (segments are what gets uploaded) and when the journal directory is on another
    /// filesystem than the ledger directory (a small, fast journal device is not where data
    /// should stay).
    pub journal_holds_entries: bool,
    /// Most bytes the write cache holds (adds wait for a flush beyond it).
    pub write_cache_bytes: usize,
    /// Flush the write cache once it holds this many bytes (small, frequent flushes keep the disk
    /// load smooth).
    pub flush_bytes: usize,
    /// Segment bytes a flush writes at a time with bounded writeback: at most two such chunks are
    /// in the device queue ahead of a journal sync on the same disk.
    pub flush_chunk_bytes: usize,
    /// Flush the write cache at least this often.
    pub flush_interval: Duration,
    /// Write a checkpoint (and delete old journal files) at most this often.
    pub checkpoint_interval: Duration,
    /// Roll to a new segment past this size.
    pub segment_max_bytes: u64,
    /// How often garbage collection and compaction run.
    pub gc_interval: Duration,
    /// Compact sealed segments whose live fraction is below this.
    pub compaction_threshold: f64,
    /// Go read-only when a data filesystem has less free space than this.
    pub min_free_bytes: u64,
    /// Largest entry payload.
    pub max_entry_bytes: usize,
    /// Deleted ledgers remembered (most recent first) to refuse adds from a writer that still
    /// writes to a deleted ledger (a zombie), across restarts too. Ids beyond this are forgotten
    /// once their segments are reclaimed: an add to such a ledger would create it anew.
    pub deleted_ledgers_remembered: usize,
    /// Object storage for sealed segments (`None`: local disk only, as without a storage URL).
    pub remote: Option<RemoteConfig>,
}

/// Where sealed segments go besides the local disk, and how much of them stays local.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// The object store (`storage_url` and its endpoint/region).
    pub store: strata_objstore::ObjStoreConfig,
    /// This bookie's stable id: object keys live under `bookies/<id>/`.
    pub bookie_id: String,
    /// Bound of the local copies of sealed segments: uploaded segments beyond it are evicted
    /// (oldest first); segments not uploaded yet beyond it make the bookie read-only.
    pub segment_cache_bytes: u64,
    /// Bytes of object ranges kept in memory for reads of evicted segments.
    pub read_cache_bytes: usize,
    /// Size of one ranged GET (a block of the read cache).
    pub read_block_bytes: u64,
    /// Blocks fetched ahead for a sequential reader.
    pub read_ahead_blocks: u64,
    /// The current segment is sealed (and then uploaded) once this old, even if not full.
    pub segment_max_age: Duration,
    /// How often the uploader looks for sealed segments when not woken.
    pub upload_interval: Duration,
    /// Sealed segments uploaded at once (their objects put concurrently, then committed by
    /// one manifest): a store's single-stream PUT rate is well below its aggregate rate.
    pub upload_concurrency: usize,
    /// Niceness of the object-store threads (uploads, ranged GETs of evicted segments; 0 leaves
    /// them as they are): background work that yields the CPU to the journal's group commit,
    /// whose cycle any runnable thread lengthens. Linux only (per-thread nice).
    pub thread_nice: i32,
}

impl RemoteConfig {
    /// Defaults for `store` and `bookie_id`.
    pub fn new(store: strata_objstore::ObjStoreConfig, bookie_id: impl Into<String>) -> Self {
        Self {
            store,
            bookie_id: bookie_id.into(),
            segment_cache_bytes: 4 << 30,
            read_cache_bytes: 64 << 20,
            read_block_bytes: 1 << 20,
            read_ahead_blocks: 4,
            segment_max_age: Duration::from_secs(300),
            upload_interval: Duration::from_secs(1),
            upload_concurrency: 4,
            thread_nice: 10,
        }
    }
}

impl StorageConfig {
    /// With object storage `r`; segments shrink to a quarter of the local cache bound (at least
    /// 1 MiB) so that the bound holds several of them.
    pub fn with_remote(mut self, r: Option<RemoteConfig>) -> Self {
        if let Some(r) = &r {
            let quarter = (r.segment_cache_bytes / 4).max(1 << 20);
            self.segment_max_bytes = self.segment_max_bytes.min(quarter);
        }
        if r.is_some() {
            self.journal_holds_entries = false;
        }
        self.remote = r;
        self
    }

    /// Defaults with both directories under `data_dir` (`journal/` and `ledgers/`).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let d: PathBuf = data_dir.into();
        Self {
            ledger_dir: d.join("ledgers"),
            journal_dir: d.join("journal"),
            journal_max_batch_bytes: 4 << 20,
            journal_max_wait: Duration::ZERO,
            journal_max_file_bytes: 64 << 20,
            journal_recycle_files: 4,
            journal_direct_io: true,
            segment_direct_io: true,
            journal_holds_entries: true,
            write_cache_bytes: 256 << 20,
            flush_bytes: 16 << 20,
            flush_chunk_bytes: 256 << 10,
            flush_interval: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(5),
            segment_max_bytes: 128 << 20,
            gc_interval: Duration::from_secs(60),
            compaction_threshold: 0.5,
            min_free_bytes: 64 << 20,
            max_entry_bytes: 16 << 20,
            deleted_ledgers_remembered: 100_000,
            remote: None,
        }
    }
}
