//! The storage engine: ledger state, the journal (group commit), the write cache, segments with
//! their index files, checkpoints and garbage collection. By default the journal files hold the
//! entries (written to the device once) and become *journal segments* (see [`journal_seg`]);
//! segments then receive only what compaction moves out of them.
//!
//! Threads: one journal thread (group commit), one applier thread (synced batches → state) and one
//! flusher thread (write-cache flush, checkpoint,
//! GC/compaction, disk-space monitor). Async callers submit work and await a oneshot; segment reads
//! run on `spawn_blocking`. All in-memory state is in one [`State`] behind a mutex held only for
//! map operations, never across I/O.
//!
//! Invariants:
//! - An add is acknowledged only after its journal record was written and `fdatasync`ed, and after its
//!   batch was published in `Shared::durable` (so it is readable from the moment it is
//!   acknowledged). The applier thread acknowledges a synced batch's adds first, without taking
//!   the state lock, then moves the batch into the state (batches in commit order) and only then
//!   removes it from `durable`. Fences and deletes are acknowledged by the applier, after they (and every earlier
//!   add) are applied, so a fence's reply sees every entry stored before it.
//! - Validation (fenced, master key, deleted), the record's encoding into the next commit's
//!   buffer ([`staging`]) and the send to the journal happen under the admission lock (not the
//!   state lock: the add path never waits for the applier or the flusher), so the staged records
//!   and the queued ops are in the same order and every op the journal thread receives is staged;
//!   and a fence marks the ledger fenced under that lock before its record is queued: every add
//!   queued after a fence is refused, every add queued before it is in the same or an earlier commit.
//!   A ledger admitted but not yet applied reads as LAC -1 (and its acknowledged entries from
//!   `durable`).
//! - `State::journal_pos` is the end of the last applied commit; a flush swaps the cache and reads
//!   `journal_pos` under the same lock, so a checkpoint at that position covers every record before it.
//! - Index blocks are synced after the segment bytes they point at; the checkpoint after both.
//! - A journal file is kept past the checkpoint while it is a journal segment, and reclaimed by
//!   GC only once a checkpoint is past it (see [`journal_seg`]).

mod done;
mod flusher;
mod journal;
mod journal_file;
mod journal_index;
mod journal_seg;
mod ledger_index;
mod numbered;
mod read;
mod recovery;
mod remote;
mod seg_writer;
mod segments;
mod staging;
mod sys;

use std::collections::{BTreeMap, HashSet};

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use strata_common::fast_map::FastMap;

use bytes::Bytes;
use parking_lot::Mutex;
use strata_bookie_client::{AddDone, AddRequest};
use tokio::sync::{Notify, oneshot, watch};

use crate::config::StorageConfig;
use crate::error::BookieError;
use crate::format::Payload;
use crate::format::checkpoint::{Checkpoint, LedgerRecord};
use crate::format::index::IndexEntry;
use crate::format::journal::{JournalRecord, MAX_KEY_LEN};
use crate::metrics::Metrics;

use done::{AddCount, Done};

pub(crate) use flusher::write_atomic as write_file_atomic;
pub use journal_seg::JOURNAL_SEG;
pub use segments::Loc;

/// A ledger's in-memory state.
#[derive(Debug)]
struct Ledger {
    key: Bytes,
    fenced: bool,
    lac: i64,
    last_entry: i64,
    lac_tx: watch::Sender<i64>,
}

impl Ledger {
    fn new(key: Bytes) -> Self {
        Self {
            key,
            fenced: false,
            lac: -1,
            last_entry: -1,
            lac_tx: watch::Sender::new(-1),
        }
    }
}

/// Entries acknowledged but not yet in segments (only when the journal does not hold entries:
/// see [`journal_seg`]).
#[derive(Debug, Default)]
struct Cache {
    entries: FastMap<u64, BTreeMap<u64, Payload>>,
    bytes: usize,
}

impl Cache {
    fn get(&self, ledger: u64, entry: u64) -> Option<Bytes> {
        self.entries
            .get(&ledger)?
            .get(&entry)
            .map(|p| p.bytes.clone())
    }

    fn insert(&mut self, ledger: u64, entry: u64, payload: Payload) {
        self.bytes += payload.len();
        if let Some(old) = self
            .entries
            .entry(ledger)
            .or_default()
            .insert(entry, payload)
        {
            self.bytes -= old.len();
        }
    }

    fn remove_ledger(&mut self, ledger: u64) {
        if let Some(m) = self.entries.remove(&ledger) {
            self.bytes -= m.values().map(Payload::len).sum::<usize>();
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The most recently deleted ledger ids, at most `cap` of them (oldest forgotten first).
#[derive(Debug, Default, Clone)]
struct Tombstones {
    set: HashSet<u64>,
    order: std::collections::VecDeque<u64>,
    cap: usize,
}

impl Tombstones {
    /// Remembers `ids` (oldest first), keeping the last `cap`.
    fn new(cap: usize, ids: impl IntoIterator<Item = u64>) -> Self {
        let mut t = Self {
            cap,
            ..Self::default()
        };
        for id in ids {
            t.insert(id);
        }
        t
    }

    /// Remembers `id`; returns the id forgotten to make room, if any.
    fn insert(&mut self, id: u64) -> Option<u64> {
        if !self.set.insert(id) {
            return None;
        }
        self.order.push_back(id);
        if self.order.len() > self.cap {
            let old = self.order.pop_front()?;
            self.set.remove(&old);
            return Some(old);
        }
        None
    }

    fn contains(&self, id: &u64) -> bool {
        self.set.contains(id)
    }

    /// Oldest first.
    fn iter(&self) -> impl Iterator<Item = &u64> {
        self.order.iter()
    }
}

/// One journal submission.
struct JournalOp {
    rec: JournalRecord,
    done: Done,
    /// When it was queued (an add: when it was submitted, see [`Done::started`]).
    queued: Instant,
}

/// Everything in memory, behind one lock.
struct State {
    ledgers: FastMap<u64, Ledger>,
    /// Deleted ledgers whose entries may still be in segments (recovery skips their index
    /// entries); pruned by GC once no segment holds them.
    deleted: HashSet<u64>,
    /// The most recently applied deletes, persisted in checkpoints with `deleted` so that a restart
    /// still refuses adds to them (see `Admission::deleted`).
    tombstones: Tombstones,
    cache: Cache,
    flushing: Option<Arc<Cache>>,
    index: FastMap<u64, ledger_index::LedgerIndex>,
    segments: segments::Segments,
    journal_pos: (u64, u64),
    /// Entries indexed in journal segments and not yet in their index files, as
    /// `(segment id, entry)`, in apply order.
    unsaved_index: Vec<(u64, IndexEntry)>,
}

/// What admitting a record needs (master key, fenced, deleted) and the journal queue, behind
/// their own lock: adds and fences are validated and queued here without the state lock, which
/// the applier and the flusher hold.
struct Admission {
    ledgers: FastMap<u64, (Bytes, bool)>,
    /// Adds to these are refused: the most recent deletes, bounded
    /// (`StorageConfig::deleted_ledgers_remembered`)...
    deleted: Tombstones,
    /// ... and older ones whose entries may still be in segments (`State::deleted` as of the last
    /// GC), so that every id in `State::deleted` is refused here: an admitted add is always
    /// applied.
    deleted_pinned: HashSet<u64>,
    journal_tx: Option<std::sync::mpsc::Sender<JournalOp>>,
    /// The records sent to the journal thread and not taken yet, encoded as it will write them
    /// (see [`staging`]): each is staged with its op, under this lock.
    staging: staging::Staged,
    /// Records ever sent to the journal thread: the queue's length is this less
    /// `Shared::journal_taken`, published every `QUEUE_GAUGE_EVERY` records and at every commit
    /// (no shared counter updated per add, yet live while the journal stalls).
    sent: u64,
}

/// Records sent between two updates of the journal queue gauge by the add path.
const QUEUE_GAUGE_EVERY: u64 = 64;

impl Admission {
    /// Sets the journal queue gauge: records sent less the `taken` ones.
    fn publish_queue_size(&self, taken: u64, m: &Metrics) {
        let queued = self.sent.saturating_sub(taken);
        m.journal_queue_size
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
    }

    /// Checks the master key and deletion; creates the ledger if new. Returns whether it is fenced.
    fn check(&mut self, ledger: u64, key: &Bytes) -> Result<&mut bool, BookieError> {
        if self.deleted.contains(&ledger) || self.deleted_pinned.contains(&ledger) {
            return Err(BookieError::NoLedger { ledger });
        }
        let (k, fenced) = self
            .ledgers
            .entry(ledger)
            .or_insert_with(|| (key.clone(), false));
        if k != key {
            return Err(BookieError::Unauthorized { ledger });
        }
        Ok(fenced)
    }

    /// Whether the ledger was admitted (not deleted), and whether it is fenced.
    fn known(&self, ledger: u64) -> Option<bool> {
        self.ledgers.get(&ledger).map(|(_, f)| *f)
    }
}

impl State {
    /// Applies a durable journal record (live after its commit, or during replay). Idempotent.
    /// `at`: where an add's record is in the journal when the journal holds entries (its journal
    /// segment registered): the entry is indexed there at once, else it goes to the write cache.
    fn apply(&mut self, rec: &JournalRecord, at: Option<Loc>) {
        match rec {
            JournalRecord::Add {
                ledger,
                entry,
                lac,
                key,
                payload,
            } => {
                if !self.apply_add_meta(*ledger, *entry, *lac, key) {
                    return;
                }
                match at {
                    Some(loc) => self.index_in_journal(*ledger, *entry, loc),
                    None => self.cache.insert(*ledger, *entry, payload.clone()),
                }
            }
            JournalRecord::Fence { ledger, key } => {
                let Some(l) = self.admit(*ledger, key) else {
                    return;
                };
                l.fenced = true;
                // wake long-polls so readers see the fence
                l.lac_tx.send_modify(|_| {});
            }
            JournalRecord::Delete { ledger } => self.remove_ledger(*ledger),
        }
    }

    /// Points the index at an add's record in a journal segment, and remembers it for the
    /// segment's index file (written by the next flush, before the checkpoint past the record).
    fn index_in_journal(&mut self, ledger: u64, entry: u64, loc: Loc) {
        if let Some(old) = self.index.entry(ledger).or_default().insert(entry, loc) {
            self.segments.dead(&old);
        }
        self.segments.live(&loc, ledger);
        self.unsaved_index.push((
            loc.seg,
            IndexEntry {
                ledger,
                entry,
                offset: loc.offset,
                len: loc.len,
            },
        ));
    }

    /// Applies an add's effect on its ledger (last entry, LAC), not its payload; false if the
    /// ledger was deleted.
    fn apply_add_meta(&mut self, ledger: u64, entry: u64, lac: i64, key: &Bytes) -> bool {
        let Some(l) = self.admit(ledger, key) else {
            return false;
        };
        l.last_entry = l.last_entry.max(entry as i64);
        if lac > l.lac {
            l.lac = lac;
            // only a wake-up for long-polling readers (they read `lac` under the state lock,
            // which they subscribe under too): none waiting, no notify
            if l.lac_tx.receiver_count() > 0 {
                l.lac_tx.send_replace(lac);
            }
        }
        true
    }

    /// Every ledger's durable state and the deleted ledgers, as a checkpoint at `pos`.
    fn durable_record(&self, pos: (u64, u64)) -> Checkpoint {
        Checkpoint {
            journal_seq: pos.0,
            journal_offset: pos.1,
            ledgers: self
                .ledgers
                .iter()
                .map(|(id, l)| LedgerRecord {
                    ledger: *id,
                    fenced: l.fenced,
                    lac: l.lac,
                    last_entry: l.last_entry,
                    key: l.key.clone(),
                })
                .collect(),
            // older ids GC still keeps first, then the recent deletes, oldest first
            deleted: self
                .deleted
                .iter()
                .filter(|l| !self.tombstones.contains(l))
                .chain(self.tombstones.iter())
                .copied()
                .collect(),
        }
    }

    /// The state of `ledger`, created with master key `key` on its first record; `None` when the
    /// ledger was deleted (its late records are ignored).
    fn admit(&mut self, ledger: u64, key: &Bytes) -> Option<&mut Ledger> {
        if self.deleted.contains(&ledger) {
            return None;
        }
        let l = self.ledgers.entry(ledger);
        Some(l.or_insert_with(|| Ledger::new(key.clone())))
    }

    fn remove_ledger(&mut self, ledger: u64) {
        self.deleted.insert(ledger);
        self.tombstones.insert(ledger);
        self.ledgers.remove(&ledger);
        self.cache.remove_ledger(ledger);
        if let Some(es) = self.index.remove(&ledger) {
            for loc in es.values() {
                self.segments.dead(&loc);
            }
        }
    }

    fn lookup(&self, ledger: u64, entry: u64) -> Option<Found> {
        if let Some(p) = self.cache.get(ledger, entry) {
            return Some(Found::Cached(p));
        }
        if let Some(p) = self.flushing.as_ref().and_then(|c| c.get(ledger, entry)) {
            return Some(Found::Cached(p));
        }
        let loc = self.index.get(&ledger)?.get(entry)?;
        match self.segments.source(loc.seg)? {
            segments::SegSource::Local(file) => Some(Found::OnDisk(loc, file)),
            segments::SegSource::Remote(obj) => Some(Found::Remote(loc, obj)),
        }
    }

    fn cache_bytes(&self) -> usize {
        self.cache.bytes + self.flushing.as_ref().map_or(0, |c| c.bytes)
    }
}

enum Found {
    Cached(Bytes),
    OnDisk(Loc, Arc<std::fs::File>),
    /// In a segment evicted to object storage.
    Remote(Loc, crate::format::object::SegmentObject),
}

/// LAC and fencing facts of a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LacInfo {
    /// Highest last-add-confirmed a writer reported (-1: none).
    pub lac: i64,
    /// Highest entry stored here (-1: none).
    pub last_entry: i64,
    /// Whether the ledger is fenced.
    pub fenced: bool,
}

/// State shared by the storage threads and the async API.
struct Shared {
    cfg: StorageConfig,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    admission: Mutex<Admission>,
    /// Why adds are refused, if they are.
    read_only: Mutex<Option<String>>,
    /// Whether `read_only` is set (read per add without the lock).
    read_only_set: AtomicBool,
    /// Records the journal thread took from its queue so far (see `Admission::sent`).
    journal_taken: AtomicU64,
    /// Set when the journal failed: read-only until restart.
    journal_failed: AtomicBool,
    /// Set while write-cache flushes fail: read-only until one succeeds.
    flush_failed: AtomicBool,
    /// Bytes queued for the journal and not yet committed.
    queued_bytes: AtomicUsize,
    /// Notified when the journal committed or the cache was flushed (space for waiting adds).
    space: Notify,
    flusher_tx: Mutex<Option<std::sync::mpsc::Sender<flusher::Cmd>>>,
    flush_kicked: AtomicBool,
    /// Old journal files kept for reuse (filled by checkpoints, drained by journal rollovers).
    journal_pool: Arc<Mutex<Vec<std::path::PathBuf>>>,
    /// The journal file to roll to next, prepared by the flusher.
    journal_next: Mutex<Option<journal_file::JournalFile>>,
    /// Sequence of the journal file being written.
    journal_seq: AtomicU64,
    /// Synced batches not yet applied to the state, in commit order: acknowledged adds are
    /// readable from here until the applier moved them into the write cache.
    durable: Mutex<std::collections::VecDeque<Arc<journal::DurableBatch>>>,
    /// Journal bytes in `durable`.
    durable_bytes: AtomicUsize,
    /// Object storage for sealed segments, if configured.
    remote: Option<Arc<remote::Remote>>,
}

impl Shared {
    fn set_read_only(&self, reason: Option<String>) {
        let mut ro = self.read_only.lock();
        if ro.is_none() && reason.is_some() {
            tracing::warn!(
                reason = reason.as_deref().unwrap_or_default(),
                "bookie going read-only"
            );
        } else if ro.is_some() && reason.is_none() {
            tracing::info!("bookie writable again");
        }
        self.metrics.read_only.set(i64::from(reason.is_some()));
        self.read_only_set
            .store(reason.is_some(), Ordering::Release);
        *ro = reason;
    }

    fn kick_flusher(&self) {
        if !self.flush_kicked.swap(true, Ordering::AcqRel)
            && let Some(tx) = self.flusher_tx.lock().as_ref()
        {
            let _ = tx.send(flusher::Cmd::Kick);
        }
    }
}

/// The storage engine of one bookie. Cheap to share behind an `Arc`.
pub struct Storage {
    shared: Arc<Shared>,
    journal_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    applier_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    flusher_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("ledger_dir", &self.shared.cfg.ledger_dir)
            .finish()
    }
}

/// The admission check of an add record: the ledger's master key matches, and a fenced ledger
/// takes only recovery adds. It reads the record's own ledger and key (no copy of the key per
/// add).
fn add_check(
    recovery: bool,
) -> impl FnOnce(&mut Admission, &JournalRecord) -> Result<(), BookieError> {
    move |ad, rec| {
        let JournalRecord::Add { ledger, key, .. } = rec else {
            return Ok(());
        };
        if *ad.check(*ledger, key)? && !recovery {
            return Err(BookieError::Fenced { ledger: *ledger });
        }
        Ok(())
    }
}

impl Storage {
    /// Opens (and recovers) the storage: loads the checkpoint and index files, replays the journal
    /// from the checkpoint, flushes what was replayed, then starts the journal and flusher threads.
    /// Blocking: call it from `spawn_blocking` in async code.
    pub fn open(cfg: StorageConfig, metrics: Arc<Metrics>) -> Result<Arc<Self>, BookieError> {
        Self::open_with_store(cfg, metrics, None)
    }

    /// [`Self::open`] with this object store instead of the one `cfg.remote` names (tests wrap
    /// it in fault injection). Ignored without `cfg.remote`.
    pub fn open_with_store(
        cfg: StorageConfig,
        metrics: Arc<Metrics>,
        store: Option<strata_objstore::Store>,
    ) -> Result<Arc<Self>, BookieError> {
        let mut cfg = cfg;
        if cfg.journal_holds_entries
            && (cfg.remote.is_some() || !sys::same_filesystem(&cfg.journal_dir, &cfg.ledger_dir)?)
        {
            tracing::info!(
                "object storage or a journal on its own filesystem: entries are copied into segments"
            );
            cfg.journal_holds_entries = false;
        }
        let remote = match &cfg.remote {
            Some(rc) => Some(remote::Remote::new(
                rc.clone(),
                store,
                metrics.clone(),
                cfg.ledger_dir.clone(),
                cfg.segment_max_bytes,
            )?),
            None => None,
        };
        let recovered = match recovery::recover(&cfg, &metrics, remote.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                if let Some(r) = &remote {
                    r.shutdown();
                }
                return Err(e);
            }
        };
        let (jtx, jrx) = std::sync::mpsc::channel();
        let journal_pos = recovered.journal_pos;
        let recovery_flush_failed =
            !recovered.cache.is_empty() || !recovered.unsaved_index.is_empty();
        let (ftx, frx) = std::sync::mpsc::channel();
        let read_only = match (&recovered.journal_error, recovery_flush_failed) {
            (Some(e), _) => Some(format!("no journal file: {e}")),
            (None, true) => Some("flush after recovery failed".to_string()),
            (None, false) => None,
        };
        let admission = Admission {
            ledgers: recovered
                .ledgers
                .iter()
                .map(|(id, l)| (*id, (l.key.clone(), l.fenced)))
                .collect(),
            deleted: recovered.tombstones.clone(),
            deleted_pinned: recovered
                .deleted
                .iter()
                .filter(|l| !recovered.tombstones.contains(l))
                .copied()
                .collect(),
            journal_tx: recovered.journal.is_some().then_some(jtx),
            staging: match &recovered.journal {
                Some(jf) => journal::staging_for(jf, &cfg),
                None => staging::Staged::new(Vec::new(), 0, 0, 0),
            },
            sent: 0,
        };
        let shared = Arc::new(Shared {
            admission: Mutex::new(admission),
            state: Mutex::new(State {
                ledgers: recovered.ledgers,
                deleted: recovered.deleted,
                tombstones: recovered.tombstones,
                cache: recovered.cache,
                flushing: None,
                index: recovered.index,
                segments: recovered.segments,
                journal_pos,
                unsaved_index: recovered.unsaved_index,
            }),
            cfg,
            metrics,
            read_only_set: AtomicBool::new(read_only.is_some()),
            journal_taken: AtomicU64::new(0),
            read_only: Mutex::new(read_only),
            journal_failed: AtomicBool::new(recovered.journal_error.is_some()),
            flush_failed: AtomicBool::new(recovery_flush_failed),
            queued_bytes: AtomicUsize::new(0),
            space: Notify::new(),
            flusher_tx: Mutex::new(Some(ftx)),
            flush_kicked: AtomicBool::new(false),
            journal_pool: recovered.journal_pool,
            journal_next: Mutex::new(None),
            journal_seq: AtomicU64::new(journal_pos.0),
            durable: Mutex::new(std::collections::VecDeque::new()),
            durable_bytes: AtomicUsize::new(0),
            remote,
        });
        shared
            .metrics
            .ledgers
            .set(shared.state.lock().ledgers.len() as i64);
        let (journal_thread, applier_thread) = match recovered.journal {
            Some(jf) => {
                let (atx, arx) = std::sync::mpsc::channel();
                let s = shared.clone();
                let applier = std::thread::Builder::new()
                    .name("bookie-apply".into())
                    .spawn(move || journal::run_applier(s, arx))
                    .map_err(|e| BookieError::io("spawn journal applier thread", e))?;
                let s = shared.clone();
                let journal = std::thread::Builder::new()
                    .name("bookie-journal".into())
                    .spawn(move || journal::run(s, jf, jrx, atx))
                    .map_err(|e| BookieError::io("spawn journal thread", e))?;
                (Some(journal), Some(applier))
            }
            None => (None, None),
        };
        let s = shared.clone();
        let w = recovered.writer;
        let flusher_thread = std::thread::Builder::new()
            .name("bookie-flusher".into())
            .spawn(move || flusher::run(s, w, frx))
            .map_err(|e| BookieError::io("spawn flusher thread", e))?;
        let storage = Arc::new(Self {
            shared,
            journal_thread: Mutex::new(journal_thread),
            applier_thread: Mutex::new(applier_thread),
            flusher_thread: Mutex::new(Some(flusher_thread)),
        });
        remote::start_uploader(storage.shared.clone());
        storage.check_disk();
        Ok(storage)
    }

    /// Adds an entry; resolves once it is durable in the journal and readable.
    ///
    /// # Cancel safety
    /// Dropping the future after it was queued does not withdraw the add: it may still become durable.
    pub async fn add(
        &self,
        ledger: u64,
        entry: u64,
        key: Bytes,
        lac: i64,
        payload: Bytes,
    ) -> Result<(), BookieError> {
        let req = AddRequest {
            ledger,
            entry,
            master_key: key,
            lac,
            payload,
            payload_crc: None,
            recovery: false,
        };
        self.add_with(req).await
    }

    /// [`Self::add`] of `req`; a `recovery` add (ledger recovery, re-replication) is accepted on a
    /// fenced ledger when the master key matches. Counted in the add metrics.
    ///
    /// # Cancel safety
    /// As [`Self::add`].
    pub async fn add_with(&self, req: AddRequest) -> Result<(), BookieError> {
        let start = Instant::now();
        let room = match self.check_size(req.payload.len()) {
            Ok(()) => self.wait_for_space().await,
            Err(e) => Err(e),
        };
        let (tx, rx) = oneshot::channel();
        self.enqueue_add(req, start, room, Done::channel(tx));
        rx.await.unwrap_or(Err(BookieError::ShuttingDown))
    }

    /// [`Self::add_with`] for a caller in this process that wants no future per entry: `done`
    /// receives the outcome (with the error as the client of a bookie sees it), normally on the
    /// applier thread right after the sync. When the bookie has no room (the add must wait for
    /// the flusher), a task waits and then adds. Must be called inside a Tokio runtime.
    pub fn add_then(self: &Arc<Self>, req: AddRequest, done: AddDone) {
        // the instant the broker stamped the message with, when it did
        let start = strata_common::clock::instant();
        let done = Done::call(done);
        match self.check_size(req.payload.len()) {
            Ok(()) if self.space_full() => {
                let this = self.clone();
                tokio::spawn(async move {
                    let room = this.wait_for_space().await;
                    this.enqueue_add(req, start, room, done);
                });
            }
            room => self.enqueue_add(req, start, room, done),
        }
    }

    /// The one add path of [`Self::add_with`] and [`Self::add_then`], once it is known whether
    /// the add may go on (`room`: its size is within the limit and there was space, or why
    /// not): counts the add (see [`AddCount`]) and queues its record, or answers the refusal.
    fn enqueue_add(
        &self,
        req: AddRequest,
        start: Instant,
        room: Result<(), BookieError>,
        done: Done,
    ) {
        let done = done.counted(AddCount::new(&self.shared, start, &req, room.is_ok()));
        if let Err(e) = room {
            return done.send(Err(e), &self.shared);
        }
        let rec = JournalRecord::Add {
            ledger: req.ledger,
            entry: req.entry,
            lac: req.lac,
            key: req.master_key,
            payload: Payload::with_crc(req.payload, req.payload_crc),
        };
        self.enqueue(rec, add_check(req.recovery), true, done);
    }

    /// Refuses an entry over the size limit.
    fn check_size(&self, len: usize) -> Result<(), BookieError> {
        let max = self.shared.cfg.max_entry_bytes;
        if len > max {
            return Err(BookieError::Invalid(format!(
                "entry of {len} bytes exceeds the limit of {max}"
            )));
        }
        Ok(())
    }

    /// Whether an add must wait for room: the write cache or the journal queues are over their
    /// limits (the gauge is updated after every commit and flush: no lock on the add path).
    fn space_full(&self) -> bool {
        let limit_cache = self.shared.cfg.write_cache_bytes;
        let limit_queue = self
            .shared
            .cfg
            .journal_max_batch_bytes
            .saturating_mul(16)
            .max(64 << 20);
        let cached = usize::try_from(self.shared.metrics.cache_bytes.get()).unwrap_or(0);
        cached > limit_cache
            || self.shared.queued_bytes.load(Ordering::Acquire) > limit_queue
            || self.shared.durable_bytes.load(Ordering::Acquire) > limit_queue
    }

    async fn wait_for_space(&self) -> Result<(), BookieError> {
        loop {
            let notified = self.shared.space.notified();
            if !self.space_full() {
                return Ok(());
            }
            if let Some(reason) = self.read_only_reason() {
                // the flusher cannot make room (disk full or failing): refuse instead of waiting
                return Err(BookieError::ReadOnly { reason });
            }
            self.shared.kick_flusher();
            let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
        }
    }

    /// Validates under the admission lock and queues a journal record (in that lock, see
    /// invariants); the receiver gets the outcome.
    fn submit(
        &self,
        rec: JournalRecord,
        validate: impl FnOnce(&mut Admission) -> Result<(), BookieError>,
        is_add: bool,
    ) -> oneshot::Receiver<Result<(), BookieError>> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(rec, |ad, _| validate(ad), is_add, Done::channel(tx));
        rx
    }

    /// [`Self::submit`] answering through `done`, which also hears a refusal.
    fn enqueue(
        &self,
        rec: JournalRecord,
        validate: impl FnOnce(&mut Admission, &JournalRecord) -> Result<(), BookieError>,
        is_add: bool,
        done: Done,
    ) {
        if let JournalRecord::Add { key, .. } | JournalRecord::Fence { key, .. } = &rec
            && key.len() > MAX_KEY_LEN
        {
            let e = BookieError::Invalid(format!("master key longer than {MAX_KEY_LEN} bytes"));
            return done.send(Err(e), &self.shared);
        }
        if self.shared.journal_failed.load(Ordering::Acquire) {
            let reason = "journal failed".into();
            return done.send(Err(BookieError::ReadOnly { reason }), &self.shared);
        }
        if is_add
            && self.shared.read_only_set.load(Ordering::Acquire)
            && let Some(reason) = self.shared.read_only.lock().clone()
        {
            return done.send(Err(BookieError::ReadOnly { reason }), &self.shared);
        }
        let mut ad = self.shared.admission.lock();
        if let Err(e) = validate(&mut ad, &rec) {
            drop(ad);
            return done.send(Err(e), &self.shared);
        }
        let adm = &mut *ad;
        let Some(jtx) = adm.journal_tx.as_ref() else {
            drop(ad);
            return done.send(Err(BookieError::ShuttingDown), &self.shared);
        };
        // staged first, so that the journal thread finds the record of every op it receives
        adm.staging.push(&rec);
        let op = JournalOp {
            rec,
            // an add's start is a few instructions back (or before its wait for room)
            queued: done.started().unwrap_or_else(Instant::now),
            done,
        };
        if let Err(std::sync::mpsc::SendError(op)) = jtx.send(op) {
            drop(ad);
            return op.done.send(Err(BookieError::ShuttingDown), &self.shared);
        }
        ad.sent += 1;
        if ad.sent.is_multiple_of(QUEUE_GAUGE_EVERY) {
            let taken = self.shared.journal_taken.load(Ordering::Acquire);
            ad.publish_queue_size(taken, &self.shared.metrics);
        }
    }

    /// Fences a ledger durably (creating it if absent). Returns its LAC facts.
    pub async fn fence(&self, ledger: u64, key: Bytes) -> Result<LacInfo, BookieError> {
        let rx = self.submit(
            JournalRecord::Fence {
                ledger,
                key: key.clone(),
            },
            |ad| {
                *ad.check(ledger, &key)? = true;
                Ok(())
            },
            false,
        );
        rx.await.unwrap_or(Err(BookieError::ShuttingDown))?;
        self.lac_info(ledger)
    }

    /// Deletes a ledger durably; its space is reclaimed by GC.
    pub async fn delete(&self, ledger: u64) -> Result<(), BookieError> {
        let rx = self.submit(
            JournalRecord::Delete { ledger },
            |ad| {
                if let Some(old) = ad.deleted.insert(ledger) {
                    // forgotten as a recent delete; still refused while segments hold it (the
                    // next GC drops it from here once they are reclaimed)
                    ad.deleted_pinned.insert(old);
                }
                ad.ledgers.remove(&ledger);
                Ok(())
            },
            false,
        );
        rx.await.unwrap_or(Err(BookieError::ShuttingDown))?;
        self.shared
            .metrics
            .ledgers
            .set(self.shared.state.lock().ledgers.len() as i64);
        Ok(())
    }

    /// LAC facts of a ledger.
    pub fn lac_info(&self, ledger: u64) -> Result<LacInfo, BookieError> {
        let st = self.shared.state.lock();
        let Some(l) = st.ledgers.get(&ledger) else {
            drop(st);
            // admitted, its first records not applied yet (a moment after their commit)
            return match self.shared.admission.lock().known(ledger) {
                Some(fenced) => Ok(LacInfo {
                    lac: -1,
                    last_entry: -1,
                    fenced,
                }),
                None => Err(BookieError::NoLedger { ledger }),
            };
        };
        Ok(LacInfo {
            lac: l.lac,
            last_entry: l.last_entry,
            fenced: l.fenced,
        })
    }

    /// Returns the LAC facts once the LAC is above `previous` or the ledger is fenced, or after
    /// `timeout` (then with the current facts).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn read_lac(
        &self,
        ledger: u64,
        previous: i64,
        timeout: Duration,
    ) -> Result<LacInfo, BookieError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = loop {
            let sub = {
                let st = self.shared.state.lock();
                match st.ledgers.get(&ledger) {
                    Some(l) if l.lac > previous || l.fenced || timeout.is_zero() => {
                        return Ok(LacInfo {
                            lac: l.lac,
                            last_entry: l.last_entry,
                            fenced: l.fenced,
                        });
                    }
                    Some(l) => Some(l.lac_tx.subscribe()),
                    None => None,
                }
            };
            if let Some(rx) = sub {
                break rx;
            }
            // admitted but not applied yet: wait until it is (a moment), or time out
            let info = self.lac_info(ledger)?;
            if info.fenced || tokio::time::Instant::now() >= deadline {
                return Ok(info);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        loop {
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Err(_) => return self.lac_info(ledger),
                // the ledger was deleted (sender dropped)
                Ok(Err(_)) => return Err(BookieError::NoLedger { ledger }),
                Ok(Ok(())) => {
                    let info = self.lac_info(ledger)?;
                    if info.lac > previous || info.fenced {
                        return Ok(info);
                    }
                }
            }
        }
    }

    /// Why adds are refused, if they are.
    pub fn read_only_reason(&self) -> Option<String> {
        if self.shared.journal_failed.load(Ordering::Acquire) {
            return Some("journal failed".into());
        }
        self.shared.read_only.lock().clone()
    }

    /// Free bytes on the emptier of the two data filesystems.
    pub fn free_bytes(&self) -> u64 {
        let l = self.shared.metrics.ledger_dir_free_bytes.get();
        let j = self.shared.metrics.journal_dir_free_bytes.get();
        l.min(j).max(0) as u64
    }

    /// Size of the smaller of the two data filesystems (0 if unknown).
    pub fn total_bytes(&self) -> u64 {
        let total =
            |p: &Path| rustix::fs::statvfs(p).map_or(0, |s| s.f_blocks.saturating_mul(s.f_frsize));
        total(&self.shared.cfg.ledger_dir).min(total(&self.shared.cfg.journal_dir))
    }

    /// Every segment as `(id, file size, live bytes)`, ascending (diagnostics and tests).
    pub fn segment_stats(&self) -> Vec<(u64, u64, u64)> {
        let st = self.shared.state.lock();
        st.segments
            .map
            .iter()
            .map(|(id, s)| (*id, s.size, s.live))
            .collect()
    }

    /// Number of live ledgers.
    pub fn ledger_count(&self) -> usize {
        self.shared.state.lock().ledgers.len()
    }

    /// Measures free space now and updates read-only mode.
    pub fn check_disk(&self) {
        flusher::check_disk(&self.shared);
    }

    /// Forces the write cache (with every add acknowledged before the call) to be indexed, where
    /// the journal holds it or copied into segments, and writes a checkpoint; waits for it.
    /// Blocking.
    pub fn flush_now(&self) -> Result<(), BookieError> {
        // every acknowledged add first reaches the write cache (the applier runs behind the acks)
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.shared.durable_bytes.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.flusher_call(flusher::Cmd::Flush)
    }

    /// Flushes and seals the current segment (with object storage it is then uploaded); waits
    /// for the seal, not the upload. Blocking.
    pub fn seal_now(&self) -> Result<(), BookieError> {
        self.flush_now()?;
        self.flusher_call(flusher::Cmd::Seal)
    }

    /// Object storage figures: `(uploaded segments, local segment bytes, sealed bytes not
    /// uploaded yet)`.
    pub fn object_stats(&self) -> (usize, u64, u64) {
        let st = self.shared.state.lock();
        let up = st
            .segments
            .map
            .values()
            .filter(|s| s.uploaded.is_some())
            .count();
        (up, st.segments.local_bytes(), st.segments.pending_bytes())
    }

    /// Object storage: the keys (relative to the bookie's prefix) of every segment object the
    /// bookie references, ascending (diagnostics and tests).
    pub fn object_keys(&self) -> Vec<String> {
        let st = self.shared.state.lock();
        st.segments
            .map
            .values()
            .filter_map(|s| s.uploaded.map(|o| o.key()))
            .collect()
    }

    /// Runs garbage collection and compaction now and waits for it; with object storage also
    /// asks for a sweep of unreferenced objects (not waited for). Blocking.
    pub fn gc_now(&self) -> Result<(), BookieError> {
        self.flusher_call(flusher::Cmd::Gc)?;
        if let Some(r) = &self.shared.remote {
            r.request_sweep();
        }
        Ok(())
    }

    fn flusher_call(
        &self,
        cmd: impl FnOnce(std::sync::mpsc::SyncSender<Result<(), BookieError>>) -> flusher::Cmd,
    ) -> Result<(), BookieError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        {
            let g = self.shared.flusher_tx.lock();
            let f = g.as_ref().ok_or(BookieError::ShuttingDown)?;
            f.send(cmd(tx)).map_err(|_| BookieError::ShuttingDown)?;
        }
        rx.recv().unwrap_or(Err(BookieError::ShuttingDown))
    }

    /// Stops accepting work, commits what is queued, flushes the cache, writes a final checkpoint and
    /// joins the threads. Blocking; idempotent.
    pub fn shutdown(&self) {
        // closing the journal channel ends the journal thread once it drained the queue
        self.shared.admission.lock().journal_tx = None;
        let journal = self.journal_thread.lock().take();
        if let Some(j) = journal {
            let _ = j.join();
        }
        // the applier ends once the journal thread is gone and every synced batch is applied
        let applier = self.applier_thread.lock().take();
        if let Some(a) = applier {
            let _ = a.join();
        }
        // then the flusher: a final flush and checkpoint
        self.shared.flusher_tx.lock().take();
        let flusher = self.flusher_thread.lock().take();
        if let Some(f) = flusher {
            let _ = f.join();
        }
        // last: the uploader (segments not uploaded stay local and are uploaded after restart)
        if let Some(r) = &self.shared.remote {
            r.shutdown();
        }
    }

    /// Data directories (for diagnostics).
    pub fn dirs(&self) -> (&Path, &Path) {
        (&self.shared.cfg.ledger_dir, &self.shared.cfg.journal_dir)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::Tombstones;

    #[test]
    fn tombstones_keep_the_most_recent_ids() {
        let mut t = Tombstones::new(3, [1, 2, 3]);
        assert_eq!(t.insert(2), None);
        assert_eq!(t.insert(4), Some(1));
        assert_eq!(t.insert(5), Some(2));
        assert!(!t.contains(&1) && !t.contains(&2));
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), vec![3, 4, 5]);
        let t = Tombstones::new(2, [7, 8, 9]);
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), vec![8, 9]);
    }
}
