//! The managed ledger: a topic's log as a list of ledgers.
//!
//! One writer task per managed ledger owns the open ledger; while the log is healthy appends go
//! to the [`LedgerWriter`] directly from the caller and complete on the thread that made them
//! durable ([`appends`]), otherwise through the writer task. Either way they are pipelined in
//! call order and complete in that order; the last confirmed position
//! (`lac`) only moves forward and only over entries durable on an ack quorum. The current ledger
//! is rolled over by entry count, size or age (after in-flight adds drain) and after a write error.
//!
//! Persisted (metadata key `managed-ledgers/<topic>`, compare-and-set on its version): the ledger
//! list. A ledger is added to the list *before* the first write to it, so after a crash the open
//! ledger is found and recovered (fenced, last entry found, closed) before a new one is created.
//! Opening creates the ledger the first appends go to and writes it into the list with the same
//! CAS that records the recovery (as Pulsar's managed ledger does), so a topic's first messages
//! do not wait for a ledger; if none can be had then, the first append creates it.
//! A CAS conflict means another broker took the topic; the writer then stops (issue 5 fencing).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_utils::atomic::AtomicCell;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cache::EntryCache;
use crate::error::{BrokerError, Result};
use crate::metadata::{MetaClient, topic_path};
use crate::position::Position;
use crate::storage::{CreateOptions, LedgerStorage};
use strata_common::clock::now_ms;
use strata_meta::Expected;
use strata_meta::model::{ManagedLedgerInfo, ManagedLedgerLedger};
use strata_proto::LedgerId;

/// Rollover and retention settings.
#[derive(Debug, Clone)]
pub struct ManagedLedgerConfig {
    /// Roll over after this many entries.
    pub max_entries_per_ledger: u64,
    /// Roll over after this many bytes.
    pub max_size_per_ledger: u64,
    /// Roll over when the ledger is older than this (checked on append).
    pub max_ledger_age: Duration,
    /// Keep consumed ledgers at least this long.
    pub retention_time: Duration,
    /// Entries read from storage per catch-up read.
    pub read_ahead: u64,
    /// How long failed adds are retried on new ledgers (in order) before they fail.
    pub add_retry_timeout: Duration,
    /// How new ledgers are created (the namespace's persistence policy: E/Qw/Qa).
    pub create: CreateOptions,
}

impl Default for ManagedLedgerConfig {
    fn default() -> Self {
        Self {
            max_entries_per_ledger: 50_000,
            max_size_per_ledger: 256 << 20,
            max_ledger_age: Duration::from_secs(4 * 3600),
            retention_time: Duration::from_secs(3600),
            read_ahead: 100,
            add_retry_timeout: Duration::from_secs(30),
            create: CreateOptions::default(),
        }
    }
}

/// The persisted ledger list of `ledgers`; a terminated log records its last position.
fn ml_info(ledgers: Vec<ManagedLedgerLedger>, terminated: bool) -> ManagedLedgerInfo {
    let terminated_position = terminated.then(|| {
        ledgers
            .last()
            .map(|l| Position::new(l.ledger_id.0, l.entries as i64 - 1))
            .unwrap_or(Position::EARLIEST)
    });
    ManagedLedgerInfo {
        ledgers,
        terminated_position,
        ..Default::default()
    }
}

/// A change of one ledger's entry in the list, applied by the writer task (which persists it).
type LedgerUpdate = Box<dyn FnOnce(&mut ManagedLedgerLedger) -> Result<()> + Send>;

enum Cmd {
    Append(Bytes, Reply),
    UpdateLedger(u64, LedgerUpdate, oneshot::Sender<Result<()>>),
    Terminate(oneshot::Sender<Result<Position>>),
    Trim(Vec<u64>, oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<()>),
}

struct Shared {
    ledgers: RwLock<Vec<ManagedLedgerLedger>>,
    /// Wakes the readers waiting for `last` to move (it carries nothing: a reader of the
    /// watch's own value would take its lock, a line the confirming thread writes).
    lac: watch::Sender<()>,
    /// The last confirmed position, stored under `lac`'s lock (so writers are ordered) before
    /// its watchers are woken; read without writing anything (a seqlock).
    last: AtomicCell<Position>,
    terminated: std::sync::atomic::AtomicBool,
    /// Cancelled when another writer took the log over: an add failed with `Fenced` or the
    /// ledger list changed under us (CAS conflict). Nothing more is appended.
    fenced: CancellationToken,
    /// Set with `fenced`: read on every append (the token's own check takes a lock).
    is_fenced: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Whether another writer took the log over.
    fn is_fenced(&self) -> bool {
        self.is_fenced.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records that another writer took the log over; false if that was known already.
    fn fence(&self) -> bool {
        let first = !self
            .is_fenced
            .swap(true, std::sync::atomic::Ordering::AcqRel);
        self.fenced.cancel();
        first
    }
}

/// A topic's log. Cheap to clone. The writer task ends on [`ManagedLedger::close`] or when the
/// last clone is dropped.
#[derive(Clone)]
pub struct ManagedLedger {
    inner: Arc<Inner>,
    tx: mpsc::UnboundedSender<Cmd>,
}

impl std::ops::Deref for ManagedLedger {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// State shared by the handles and the writer task.
pub struct Inner {
    name: Arc<str>,
    key: Arc<str>,
    shared: Arc<Shared>,
    storage: Arc<dyn LedgerStorage>,
    meta: MetaClient,
    cache: EntryCache,
    config: Arc<ManagedLedgerConfig>,
    /// Object storage holding offloaded ledgers (set once, when offload is configured).
    tier: std::sync::OnceLock<Arc<crate::offload::tier::Tier>>,
    /// The open ledger and the appends to it ([`appends`]).
    appends: Appends,
    /// The topic's series, whose write latency histogram each confirmed add is counted in.
    write_latency: std::sync::OnceLock<crate::stats::TopicMetrics>,
}

/// What opening found and made: the ledger list as written back, its version, and the ledger
/// the first appends go to (none when the log is terminated or no ledger could be created).
struct Opened {
    info: ManagedLedgerInfo,
    version: u64,
    first: Option<Current>,
}

/// Creates the ledger the first appends go to, above every ledger of `ledgers`. When that fails
/// (not enough bookies, say) the log opens all the same: the first append creates it.
async fn first_ledger(
    name: &str,
    storage: &Arc<dyn LedgerStorage>,
    create: CreateOptions,
    ledgers: &[ManagedLedgerLedger],
) -> Option<Current> {
    let last = ledgers.iter().map(|l| l.ledger_id.0).max();
    match writer::create_ledger_above(name, storage, create, last).await {
        Ok(w) => Some(Current::new(w, now_ms())),
        Err(e) => {
            warn!(topic = name, error = %e, "no ledger created at open; the first append creates one");
            None
        }
    }
}

/// Metadata key of the managed ledger `name` (`tenant/ns/domain/topic`).
pub fn ml_key(meta: &MetaClient, name: &str) -> String {
    meta.paths().managed_ledger(&topic_path(name))
}

impl ManagedLedger {
    /// Opens (or creates) the managed ledger `name`, recovering a ledger left open by a crash.
    pub async fn open(
        name: &str,
        storage: Arc<dyn LedgerStorage>,
        meta: MetaClient,
        cache: EntryCache,
        config: ManagedLedgerConfig,
    ) -> Result<Self> {
        // A CAS conflict while recovering means another broker (an old owner rolling over, or a
        // concurrent takeover) changed the ledger list: re-read it and recover again.
        let mut attempt = 0;
        loop {
            match Self::open_once(name, &storage, &meta, config.create).await {
                Err(e) if e.is_meta_conflict() && attempt < 5 => {
                    attempt += 1;
                    warn!(topic = name, error = %e, attempt, "ledger list changed while opening; retrying");
                }
                Err(e) => return Err(e),
                Ok(opened) => return Ok(Self::start(name, storage, meta, cache, config, opened)),
            }
        }
    }

    /// Reads the ledger list, recovers a ledger left open, drops empty ones and, unless the log
    /// is terminated, creates the ledger the first appends go to (as Pulsar's managed ledger
    /// does when it opens: the first messages do not wait for it). The list, with the new ledger
    /// in it, is written back in one CAS.
    async fn open_once(
        name: &str,
        storage: &Arc<dyn LedgerStorage>,
        meta: &MetaClient,
        create: CreateOptions,
    ) -> Result<Opened> {
        let key = ml_key(meta, name);
        let (mut info, version) = match meta.get::<ManagedLedgerInfo>(&key).await? {
            Some((info, stat)) => (info, Some(stat.version)),
            None => (ml_info(vec![], false), None),
        };
        for l in info.ledgers.iter_mut().filter(|l| !l.closed) {
            let last = storage.recover(l.ledger_id).await?;
            l.entries = last.map(|e| e.0 + 1).unwrap_or(0);
            l.closed = true;
            info!(
                topic = name,
                ledger = l.ledger_id.0,
                entries = l.entries,
                "recovered open ledger"
            );
        }
        let empty: Vec<u64> = info
            .ledgers
            .iter()
            .filter(|l| l.entries == 0)
            .map(|l| l.ledger_id.0)
            .collect();
        info.ledgers.retain(|l| l.entries > 0);
        let first = match info.terminated_position {
            Some(_) => None,
            None => first_ledger(name, storage, create, &info.ledgers).await,
        };
        if let Some(first) = &first {
            info.ledgers.push(ManagedLedgerLedger {
                ledger_id: first.w.ledger_id(),
                created_at_ms: first.created_ms,
                ..Default::default()
            });
        }
        // Always written back (CAS): the version bump is what makes a previous owner's next
        // ledger-list update fail, even when it had no ledger open to fence (it is then fenced
        // by the CAS conflict instead of by the bookies).
        let exp = version.map(Expected::Version).unwrap_or(Expected::Absent);
        let version = match meta.put(&key, &info, exp).await {
            Ok(stat) => stat.version,
            Err(e) => {
                if let Some(first) = first {
                    unlisted_ledger(storage, first.w, e.is_conflict()).await;
                }
                return Err(e.into());
            }
        };
        for id in empty {
            if let Err(e) = storage.delete(LedgerId(id)).await {
                warn!(ledger = id, error = %e, "delete empty ledger failed");
            }
        }
        Ok(Opened {
            info,
            version,
            first,
        })
    }

    fn start(
        name: &str,
        storage: Arc<dyn LedgerStorage>,
        meta: MetaClient,
        cache: EntryCache,
        config: ManagedLedgerConfig,
        opened: Opened,
    ) -> Self {
        let Opened {
            info,
            version,
            first,
        } = opened;
        let key = ml_key(&meta, name);
        // The last entry of the last closed ledger (the new open ledger has none yet).
        let lac = info
            .ledgers
            .iter()
            .rev()
            .find(|l| l.closed)
            .map(|l| Position::new(l.ledger_id.0, l.entries as i64 - 1))
            .unwrap_or(Position::EARLIEST);
        let (lac_tx, _) = watch::channel(());
        let shared = Arc::new(Shared {
            ledgers: RwLock::new(info.ledgers),
            lac: lac_tx,
            last: AtomicCell::new(lac),
            terminated: std::sync::atomic::AtomicBool::new(info.terminated_position.is_some()),
            fenced: CancellationToken::new(),
            is_fenced: std::sync::atomic::AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (handoff_tx, handoff_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            name: name.into(),
            key: key.into(),
            shared,
            storage,
            meta,
            cache,
            config: Arc::new(config),
            tier: std::sync::OnceLock::new(),
            appends: Appends::new(handoff_tx),
            write_latency: std::sync::OnceLock::new(),
        });
        let ml = ManagedLedger {
            inner: inner.clone(),
            tx,
        };
        inner.appends.direct.lock().current = first;
        let writer = Writer::new(inner, version, handoff_rx);
        tokio::spawn(writer.run(rx));
        ml
    }

    /// Resolves when another writer took the log over (an add was fenced, or the ledger list
    /// changed under us): the topic must be unloaded; appends fail from then on.
    pub async fn fenced(&self) {
        self.shared.fenced.cancelled().await
    }

    /// Whether another writer took the log over.
    pub fn is_fenced(&self) -> bool {
        self.shared.is_fenced()
    }

    /// The managed ledger's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends one entry. The entry's place in the log is fixed when this is called (not when the
    /// future is polled); the future resolves with its position once durable. While the log is
    /// healthy the entry goes to the open ledger right here ([`appends`]); otherwise through the
    /// writer task.
    ///
    /// # Cancel safety
    /// Dropping the future does not cancel the append; its outcome is then unknown to the caller.
    pub fn append(
        &self,
        data: Bytes,
    ) -> impl std::future::Future<Output = Result<Position>> + Send + 'static {
        let (reply, rx) = Reply::channel();
        self.append_then(data, None, reply);
        async move { rx.await.map_err(|_| BrokerError::ShuttingDown)? }
    }

    /// Counts the latency of every add confirmed from now on in `series` (its topic's); set once.
    pub fn observe_writes(&self, series: crate::stats::TopicMetrics) {
        let _ = self.inner.write_latency.set(series);
    }

    /// Appends `data`; `reply` gets the outcome where it is decided (for an append to a
    /// healthy log, the thread that made the entry durable), in the order of the calls. `crc`,
    /// when the caller has it, is `crc32c(data)` (see [`strata_ledger::LedgerWriter::add_then`]).
    pub fn append_then(&self, data: Bytes, crc: Option<u32>, reply: Reply) {
        if let Some((data, reply)) = self.inner.try_direct(data, crc, reply)
            && let Err(mpsc::error::SendError(Cmd::Append(_, reply))) =
                self.tx.send(Cmd::Append(data, reply))
        {
            reply.send(Err(BrokerError::ShuttingDown));
        }
    }

    /// Terminates the log: in-flight appends complete, later ones fail with `TopicTerminated`.
    /// Returns the last position.
    pub async fn terminate(&self) -> Result<Position> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Terminate(tx))
            .map_err(|_| BrokerError::ShuttingDown)?;
        rx.await.map_err(|_| BrokerError::ShuttingDown)?
    }

    /// Whether the log was terminated.
    pub fn is_terminated(&self) -> bool {
        self.shared
            .terminated
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Flushes in-flight appends and closes the current ledger.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The last durable position (entry -1 when empty).
    pub fn last_confirmed(&self) -> Position {
        self.shared.last.load()
    }

    /// Wakes when the last confirmed position moves (read it with [`Self::last_confirmed`]).
    pub fn watch_lac(&self) -> watch::Receiver<()> {
        let rx = self.shared.lac.subscribe();
        // Through the watch's lock once: a confirm that ran before this either counted the new
        // receiver (and wakes it) or stored `last` before releasing the lock, so the reader's
        // first `last_confirmed` sees it (the lock-free read alone would not order the two).
        drop(self.shared.lac.borrow());
        rx
    }

    /// The position before the first stored entry.
    pub fn first_position(&self) -> Position {
        self.shared
            .ledgers
            .read()
            .first()
            .map(|l| Position::new(l.ledger_id.0, -1))
            .unwrap_or(Position::EARLIEST)
    }

    /// A copy of the ledger list.
    pub fn ledgers(&self) -> Vec<ManagedLedgerLedger> {
        self.shared.ledgers.read().clone()
    }

    /// Total stored bytes.
    pub fn storage_size(&self) -> u64 {
        self.shared.ledgers.read().iter().map(|l| l.size).sum()
    }

    /// The entry after `p` (crossing ledgers), if confirmed.
    pub fn next_position(&self, p: Position) -> Option<Position> {
        let lac = self.last_confirmed();
        if p >= lac {
            return None;
        }
        // The tail (a tailing read, an ack next to the mark-delete position): every entry of the
        // last confirmed one's ledger up to it exists; no need for the ledger list.
        if p.ledger == lac.ledger && p.entry >= -1 {
            return Some(Position::new(p.ledger, p.entry + 1));
        }
        let ledgers = self.shared.ledgers.read();
        for l in ledgers.iter() {
            if l.ledger_id.0 < p.ledger || l.entries == 0 {
                continue;
            }
            if l.ledger_id.0 == p.ledger {
                if ((p.entry + 1) as u64) < l.entries {
                    return Some(Position::new(l.ledger_id.0, p.entry + 1));
                }
                continue;
            }
            return Some(Position::new(l.ledger_id.0, 0));
        }
        None
    }

    /// Number of entries after `p` up to the last confirmed one.
    pub fn entries_after(&self, p: Position) -> u64 {
        let ledgers = self.shared.ledgers.read();
        ledgers
            .iter()
            .map(|l| {
                if l.ledger_id.0 > p.ledger {
                    l.entries
                } else if l.ledger_id.0 == p.ledger {
                    l.entries.saturating_sub((p.entry + 1).max(0) as u64)
                } else {
                    0
                }
            })
            .sum()
    }

    /// Reads up to `max` confirmed entries starting at `from` (inclusive), within one ledger.
    /// Tail entries come from the cache; otherwise storage is read with read-ahead.
    pub async fn read(&self, from: Position, max: u64) -> Result<Vec<(Position, Bytes)>> {
        let lac = self.last_confirmed();
        if from > lac || max == 0 {
            return Ok(vec![]);
        }
        let (last_in_ledger, offload) = {
            let ledgers = self.shared.ledgers.read();
            match ledgers.iter().find(|l| l.ledger_id.0 == from.ledger) {
                Some(l) if (from.entry as u64) < l.entries => {
                    (l.entries as i64 - 1, l.offload.clone())
                }
                _ => return Ok(vec![]),
            }
        };
        let last = last_in_ledger.min(from.entry + max as i64 - 1);
        let mut out = self.cache.get_run(from.ledger, from.entry, last);
        if out.is_empty() {
            let ahead = last
                .max(from.entry + self.config.read_ahead as i64 - 1)
                .min(last_in_ledger);
            out = self.read_stored(from, ahead, offload).await?;
        }
        Ok(out)
    }

    /// Reads one entry.
    pub async fn read_one(&self, p: Position) -> Result<Option<Bytes>> {
        Ok(self.read(p, 1).await?.into_iter().next().map(|(_, d)| d))
    }

    /// The first position whose entry satisfies `pred`, assuming `pred` is monotone over the log
    /// (false...false true...true). Binary search: O(log n) reads.
    pub async fn find_first(&self, pred: impl Fn(&Bytes) -> bool) -> Result<Option<Position>> {
        let all: Vec<(u64, u64)> = self
            .shared
            .ledgers
            .read()
            .iter()
            .map(|l| (l.ledger_id.0, l.entries))
            .collect();
        let total: u64 = all.iter().map(|l| l.1).sum();
        let at = |mut idx: u64| {
            for &(id, n) in &all {
                if idx < n {
                    return Position::new(id, idx as i64);
                }
                idx -= n;
            }
            Position::EARLIEST
        };
        let (mut lo, mut hi) = (0u64, total);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let p = at(mid);
            match self.read_one(p).await? {
                Some(d) if pred(&d) => hi = mid,
                _ => lo = mid + 1,
            }
        }
        Ok((lo < total).then(|| at(lo)))
    }

    /// Deletes closed ledgers whose every entry is at or before `slowest` (the slowest durable
    /// cursor's mark-delete; None: no cursor holds data) and older than the retention time.
    pub async fn trim(&self, slowest: Option<Position>) -> Result<usize> {
        let retention_ms = self.config.retention_time.as_millis() as u64;
        self.trim_retained(slowest, Some(retention_ms), None).await
    }

    /// [`ManagedLedger::trim`] with a namespace retention policy: a fully consumed closed
    /// ledger is deleted once it is older than `retention_ms` or once the consumed ledgers
    /// (oldest first) exceed `retention_bytes`; `None` means no limit of that kind (a ledger
    /// under no limit at all is kept).
    pub async fn trim_retained(
        &self,
        slowest: Option<Position>,
        retention_ms: Option<u64>,
        retention_bytes: Option<u64>,
    ) -> Result<usize> {
        let now = now_ms();
        let lac = self.last_confirmed();
        let victims: Vec<u64> = {
            let ledgers = self.shared.ledgers.read();
            let consumed: Vec<&ManagedLedgerLedger> = ledgers
                .iter()
                .filter(|l| l.closed && l.ledger_id.0 != lac.ledger)
                .filter(|l| {
                    slowest.is_none_or(|s| Position::new(l.ledger_id.0, l.entries as i64 - 1) <= s)
                })
                .collect();
            let mut retained: u64 = consumed.iter().map(|l| l.size).sum();
            let mut out = Vec::new();
            for l in consumed {
                let expired =
                    retention_ms.is_some_and(|r| now.saturating_sub(l.created_at_ms) >= r);
                let over = retention_bytes.is_some_and(|b| retained > b);
                if expired || over {
                    retained -= l.size;
                    out.push(l.ledger_id.0);
                }
            }
            out
        };
        if victims.is_empty() {
            return Ok(0);
        }
        let gone: Vec<ManagedLedgerLedger> = self
            .ledgers()
            .into_iter()
            .filter(|l| victims.contains(&l.ledger_id.0))
            .collect();
        // Only the writer task changes the ledger list (it holds the CAS version).
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Trim(victims.clone(), tx)).is_err() {
            return Ok(0);
        }
        rx.await.map_err(|_| BrokerError::ShuttingDown)??;
        self.delete_offloaded(&gone).await;
        for id in &victims {
            self.cache.invalidate_ledger(*id);
            if let Err(e) = self.storage.delete(LedgerId(*id)).await {
                warn!(ledger = id, error = %e, "delete trimmed ledger failed");
            }
        }
        info!(topic = %self.name, ledgers = ?victims, "trimmed consumed ledgers");
        Ok(victims.len())
    }

    /// Deletes every ledger and the metadata (topic deletion).
    pub async fn delete(&self) -> Result<()> {
        self.close().await;
        self.delete_offloaded(&self.ledgers()).await;
        for l in self.ledgers() {
            self.cache.invalidate_ledger(l.ledger_id.0);
            self.storage.delete(l.ledger_id).await?;
        }
        self.meta.store().delete(&self.key, Expected::Any).await?;
        Ok(())
    }
}

mod appends;
mod confirms;
mod offloaded;
mod reply;
#[cfg(test)]
mod tests;
mod writer;

use appends::{Appends, Current};
pub use reply::Reply;
use writer::{Writer, unlisted_ledger};
