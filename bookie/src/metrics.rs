//! Prometheus metrics of the bookie (served on `/metrics`). Names follow BookKeeper's where one
//! exists, prefixed `bookie_`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every metric of one bookie.
#[derive(Debug)]
pub struct Metrics {
    /// Registry they are registered in.
    pub registry: Registry,
    /// Adds acknowledged.
    pub add_entries: Counter,
    /// Adds that failed.
    pub add_errors: Counter,
    /// Payload bytes acknowledged.
    pub add_bytes: Counter,
    /// Add latency (request received → durable).
    pub add_latency: Histogram,
    /// Entries read.
    pub read_entries: Counter,
    /// Reads that failed.
    pub read_errors: Counter,
    /// Payload bytes read.
    pub read_bytes: Counter,
    /// Read latency per entry.
    pub read_latency: Histogram,
    /// Journal write + fdatasync latency per group commit.
    pub journal_sync_latency: Histogram,
    /// How long the oldest record of a group commit waited in the journal queue.
    pub journal_queue_latency: Histogram,
    /// Records per group commit.
    pub journal_batch_records: Histogram,
    /// Time from a commit's fdatasync until the applier put it into the state (off the add ack path).
    pub journal_apply_latency: Histogram,
    /// Bytes written to the journal.
    pub journal_bytes: Counter,
    /// Records waiting for the journal thread (BookKeeper's `JOURNAL_QUEUE_SIZE`).
    pub journal_queue_size: Gauge,
    /// Reads served from the write cache.
    pub cache_hits: Counter,
    /// Reads that went to segments.
    pub cache_misses: Counter,
    /// Bytes in the write cache.
    pub cache_bytes: Gauge,
    /// Write-cache flush (segment write + index + checkpoint) latency.
    pub flush_latency: Histogram,
    /// Free bytes on the ledger directory's filesystem.
    pub ledger_dir_free_bytes: Gauge,
    /// Free bytes on the journal directory's filesystem.
    pub journal_dir_free_bytes: Gauge,
    /// Bytes of segment files.
    pub segment_bytes: Gauge,
    /// Bytes of segments reclaimed or compacted away.
    pub gc_reclaimed_bytes: Counter,
    /// 1 when the bookie is read-only.
    pub read_only: Gauge,
    /// Live ledgers.
    pub ledgers: Gauge,
    /// Object storage: bytes of segment objects uploaded.
    pub remote_uploaded_bytes: Counter,
    /// Object storage: segments uploaded and committed.
    pub remote_uploaded_segments: Counter,
    /// Object storage: upload latency (object put + manifest commit).
    pub remote_upload_latency: Histogram,
    /// Object storage: failed upload rounds (upload or manifest commit).
    pub remote_upload_failures: Counter,
    /// Object storage: reads of evicted segments served from the block cache.
    pub remote_cache_hits: Counter,
    /// Object storage: reads of evicted segments that needed a ranged GET.
    pub remote_cache_misses: Counter,
    /// Object storage: bytes of local segment files (cached copies and not yet uploaded).
    pub remote_local_bytes: Gauge,
    /// Object storage: bytes of sealed segments waiting for upload.
    pub remote_pending_bytes: Gauge,
    /// Object storage: local copies evicted.
    pub remote_evicted_segments: Counter,
    /// Object storage: mostly-dead uploaded segments rewritten (live entries moved to a new
    /// segment, uploaded under a new key; the old object is deleted once that is committed).
    pub remote_compacted_segments: Counter,
    /// Object storage: bytes of live entries moved out of mostly-dead uploaded segments.
    pub remote_compacted_bytes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::default();
        let lat = || Histogram::new(exponential_buckets(0.000_05, 2.0, 20));
        let m = Self {
            add_entries: Counter::default(),
            add_errors: Counter::default(),
            add_bytes: Counter::default(),
            add_latency: lat(),
            read_entries: Counter::default(),
            read_errors: Counter::default(),
            read_bytes: Counter::default(),
            read_latency: lat(),
            journal_sync_latency: lat(),
            journal_queue_latency: lat(),
            journal_batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            journal_apply_latency: lat(),
            journal_bytes: Counter::default(),
            journal_queue_size: Gauge::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_bytes: Gauge::default(),
            flush_latency: lat(),
            ledger_dir_free_bytes: Gauge::default(),
            journal_dir_free_bytes: Gauge::default(),
            segment_bytes: Gauge::default(),
            gc_reclaimed_bytes: Counter::default(),
            read_only: Gauge::default(),
            ledgers: Gauge::default(),
            remote_uploaded_bytes: Counter::default(),
            remote_uploaded_segments: Counter::default(),
            remote_upload_latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            remote_upload_failures: Counter::default(),
            remote_cache_hits: Counter::default(),
            remote_cache_misses: Counter::default(),
            remote_local_bytes: Gauge::default(),
            remote_pending_bytes: Gauge::default(),
            remote_evicted_segments: Counter::default(),
            remote_compacted_segments: Counter::default(),
            remote_compacted_bytes: Counter::default(),
            registry: Registry::default(),
        };
        r.register(
            "bookie_add_entry",
            "Adds acknowledged",
            m.add_entries.clone(),
        );
        r.register(
            "bookie_add_entry_errors",
            "Adds that failed",
            m.add_errors.clone(),
        );
        r.register(
            "bookie_add_entry_bytes",
            "Payload bytes acknowledged",
            m.add_bytes.clone(),
        );
        r.register(
            "bookie_add_entry_latency_seconds",
            "Add latency until durable",
            m.add_latency.clone(),
        );
        r.register("bookie_read_entry", "Entries read", m.read_entries.clone());
        r.register(
            "bookie_read_entry_errors",
            "Reads that failed",
            m.read_errors.clone(),
        );
        r.register(
            "bookie_read_entry_bytes",
            "Payload bytes read",
            m.read_bytes.clone(),
        );
        r.register(
            "bookie_read_entry_latency_seconds",
            "Read latency per entry",
            m.read_latency.clone(),
        );
        r.register(
            "bookie_journal_sync_latency_seconds",
            "Journal write + fdatasync latency per group commit",
            m.journal_sync_latency.clone(),
        );
        r.register(
            "bookie_journal_queue_latency_seconds",
            "Time the oldest record of a group commit waited in the journal queue",
            m.journal_queue_latency.clone(),
        );
        r.register(
            "bookie_journal_apply_latency_seconds",
            "Time from a group commit's fdatasync until it is applied to the in-memory state (adds are acknowledged before)",
            m.journal_apply_latency.clone(),
        );
        r.register(
            "bookie_journal_batch_records",
            "Records per group commit",
            m.journal_batch_records.clone(),
        );
        r.register(
            "bookie_journal_written_bytes",
            "Bytes written to the journal",
            m.journal_bytes.clone(),
        );
        r.register(
            "bookie_write_cache_hits",
            "Reads served by the write cache",
            m.cache_hits.clone(),
        );
        r.register(
            "bookie_write_cache_misses",
            "Reads that went to segment files",
            m.cache_misses.clone(),
        );
        r.register(
            "bookie_write_cache_size_bytes",
            "Bytes in the write cache",
            m.cache_bytes.clone(),
        );
        r.register(
            "bookie_flush_latency_seconds",
            "Write-cache flush latency",
            m.flush_latency.clone(),
        );
        r.register(
            "bookie_ledger_dir_free_bytes",
            "Free bytes for the ledger directory",
            m.ledger_dir_free_bytes.clone(),
        );
        r.register(
            "bookie_journal_dir_free_bytes",
            "Free bytes for the journal directory",
            m.journal_dir_free_bytes.clone(),
        );
        r.register(
            "bookie_segment_size_bytes",
            "Bytes of segment files",
            m.segment_bytes.clone(),
        );
        r.register(
            "bookie_gc_reclaimed_bytes",
            "Segment bytes reclaimed by GC and compaction",
            m.gc_reclaimed_bytes.clone(),
        );
        r.register(
            "bookie_read_only",
            "1 when the bookie refuses adds",
            m.read_only.clone(),
        );
        r.register("bookie_ledgers", "Live ledgers", m.ledgers.clone());
        r.register(
            "bookie_journal_queue_size",
            "Records waiting for the journal thread",
            m.journal_queue_size.clone(),
        );
        m.register_remote(&mut r);
        m.register_bookkeeper_names(&mut r);
        Self { registry: r, ..m }
    }

    /// The object-storage series (zero without a storage URL).
    fn register_remote(&self, r: &mut Registry) {
        r.register(
            "bookie_objstore_uploaded_bytes",
            "Bytes of segment objects uploaded",
            self.remote_uploaded_bytes.clone(),
        );
        r.register(
            "bookie_objstore_uploaded_segments",
            "Segments uploaded and committed",
            self.remote_uploaded_segments.clone(),
        );
        r.register(
            "bookie_objstore_upload_seconds",
            "Segment upload latency (object put and manifest commit)",
            self.remote_upload_latency.clone(),
        );
        r.register(
            "bookie_objstore_upload_failures",
            "Failed upload or commit rounds",
            self.remote_upload_failures.clone(),
        );
        r.register(
            "bookie_objstore_cache_hits",
            "Reads of evicted segments served from the block cache",
            self.remote_cache_hits.clone(),
        );
        r.register(
            "bookie_objstore_cache_misses",
            "Reads of evicted segments that needed a ranged GET",
            self.remote_cache_misses.clone(),
        );
        r.register(
            "bookie_objstore_local_bytes",
            "Bytes of local segment files",
            self.remote_local_bytes.clone(),
        );
        r.register(
            "bookie_objstore_pending_bytes",
            "Bytes of sealed segments waiting for upload",
            self.remote_pending_bytes.clone(),
        );
        r.register(
            "bookie_objstore_evicted_segments",
            "Local copies of uploaded segments evicted",
            self.remote_evicted_segments.clone(),
        );
        r.register(
            "bookie_objstore_compacted_segments",
            "Mostly-dead uploaded segments rewritten by compaction",
            self.remote_compacted_segments.clone(),
        );
        r.register(
            "bookie_objstore_compacted_bytes",
            "Bytes of live entries moved out of mostly-dead uploaded segments",
            self.remote_compacted_bytes.clone(),
        );
    }

    /// The same metrics under BookKeeper's names, for dashboards and alerts written for it
    /// (latencies stay in seconds).
    fn register_bookkeeper_names(&self, r: &mut Registry) {
        r.register(
            "bookkeeper_server_ADD_ENTRY_REQUEST",
            "Add latency until durable, seconds (BookKeeper's name)",
            self.add_latency.clone(),
        );
        r.register(
            "bookkeeper_server_READ_ENTRY_REQUEST",
            "Read latency per entry, seconds (BookKeeper's name)",
            self.read_latency.clone(),
        );
        r.register(
            "bookie_journal_JOURNAL_SYNC",
            "Journal write + fdatasync latency, seconds (BookKeeper's name)",
            self.journal_sync_latency.clone(),
        );
        r.register(
            "bookie_journal_JOURNAL_QUEUE_SIZE",
            "Records waiting for the journal thread (BookKeeper's name)",
            self.journal_queue_size.clone(),
        );
        r.register(
            "bookie_WRITE_BYTES",
            "Payload bytes acknowledged (BookKeeper's name)",
            self.add_bytes.clone(),
        );
        r.register(
            "bookie_READ_BYTES",
            "Payload bytes read (BookKeeper's name)",
            self.read_bytes.clone(),
        );
        r.register(
            "bookie_ledgers_count",
            "Live ledgers (BookKeeper's name)",
            self.ledgers.clone(),
        );
        r.register(
            "bookie_write_cache_size",
            "Bytes in the write cache (BookKeeper's name)",
            self.cache_bytes.clone(),
        );
    }

    /// Appends the series to `out` without the closing `# EOF` line (for a process that
    /// serves them on another component's `/metrics`: the standalone's broker).
    pub fn encode_series(&self, out: &mut String) {
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}
