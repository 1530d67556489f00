//! The managed ledger: a topic's log as a list of ledgers.
//!
//! One writer task per managed ledger owns the open ledger: appends are pipelined to the
//! [`LedgerWriter`] in arrival order and complete in that order; the last confirmed position
//! (`lac`) only moves forward and only over entries durable on an ack quorum. The current ledger
//! is rolled over by entry count, size or age (after in-flight adds drain) and after a write error.
//!
//! Persisted (metadata key `managed-ledgers/<topic>`, compare-and-set on its version): the ledger
//! list. A ledger is added to the list *before* the first write to it, so after a crash the open
//! ledger is found and recovered (fenced, last entry found, closed) before a new one is created.
//! A CAS conflict means another broker took the topic; the writer then stops (issue 5 fencing).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::cache::EntryCache;
use crate::error::{BrokerError, Result};
use crate::metadata::{MetaClient, topic_path};
use crate::position::Position;
use crate::storage::{CreateOptions, LedgerStorage, LedgerWriter, StorageError};
use strata_common::backoff::{Backoff, BackoffPolicy};
use strata_common::clock::now_ms;
use strata_meta::Expected;
use strata_meta::model::{ManagedLedgerInfo, ManagedLedgerLedger};
use strata_proto::{EntryId, LedgerId};

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

enum Cmd {
    Append(Bytes, oneshot::Sender<Result<Position>>),
    Terminate(oneshot::Sender<Result<Position>>),
    Trim(Vec<u64>, oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<()>),
}

struct Shared {
    ledgers: RwLock<Vec<ManagedLedgerLedger>>,
    lac: watch::Sender<Position>,
    terminated: std::sync::atomic::AtomicBool,
    /// Cancelled when another writer took the log over: an add failed with `Fenced` or the
    /// ledger list changed under us (CAS conflict). Nothing more is appended.
    fenced: CancellationToken,
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
            match Self::open_once(name, &storage, &meta).await {
                Err(e) if e.is_meta_conflict() && attempt < 5 => {
                    attempt += 1;
                    warn!(topic = name, error = %e, attempt, "ledger list changed while opening; retrying");
                }
                Err(e) => return Err(e),
                Ok(parts) => return Ok(Self::start(name, storage, meta, cache, config, parts)),
            }
        }
    }

    async fn open_once(
        name: &str,
        storage: &Arc<dyn LedgerStorage>,
        meta: &MetaClient,
    ) -> Result<(ManagedLedgerInfo, Option<u64>)> {
        let key = ml_key(meta, name);
        let (mut info, mut version) = match meta.get::<ManagedLedgerInfo>(&key).await? {
            Some((info, stat)) => (info, Some(stat.version)),
            None => (ml_info(vec![], false), None),
        };
        // Always written back (CAS): the version bump is what makes a previous owner's next
        // ledger-list update fail, even when it had no ledger open to fence (it is then fenced
        // by the CAS conflict instead of by the bookies).
        let mut changed = true;
        for l in info.ledgers.iter_mut().filter(|l| !l.closed) {
            let last = storage.recover(l.ledger_id).await?;
            l.entries = last.map(|e| e.0 + 1).unwrap_or(0);
            l.closed = true;
            changed = true;
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
        changed |= !empty.is_empty();
        if changed {
            let exp = version.map(Expected::Version).unwrap_or(Expected::Absent);
            version = Some(meta.put(&key, &info, exp).await?.version);
        }
        for id in empty {
            if let Err(e) = storage.delete(LedgerId(id)).await {
                warn!(ledger = id, error = %e, "delete empty ledger failed");
            }
        }
        Ok((info, version))
    }

    fn start(
        name: &str,
        storage: Arc<dyn LedgerStorage>,
        meta: MetaClient,
        cache: EntryCache,
        config: ManagedLedgerConfig,
        (info, version): (ManagedLedgerInfo, Option<u64>),
    ) -> Self {
        let key = ml_key(&meta, name);
        let lac = info
            .ledgers
            .last()
            .map(|l| Position::new(l.ledger_id.0, l.entries as i64 - 1))
            .unwrap_or(Position::EARLIEST);
        let (lac_tx, _) = watch::channel(lac);
        let shared = Arc::new(Shared {
            ledgers: RwLock::new(info.ledgers),
            lac: lac_tx,
            terminated: std::sync::atomic::AtomicBool::new(info.terminated_position.is_some()),
            fenced: CancellationToken::new(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            name: name.into(),
            key: key.into(),
            shared,
            storage,
            meta,
            cache,
            config: Arc::new(config),
        });
        let ml = ManagedLedger {
            inner: inner.clone(),
            tx,
        };
        let writer = Writer {
            ml: inner,
            version: version.unwrap_or(0),
            current: None,
            failed: false,
            inflight: FuturesOrdered::new(),
            retry: VecDeque::new(),
            held: VecDeque::new(),
            retry_at: None,
            retry_since: None,
            retry_backoff: RETRY_BACKOFF.start(),
        };
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
        self.shared.fenced.is_cancelled()
    }

    /// The managed ledger's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends one entry. The entry's place in the log is fixed when this is called (not when the
    /// future is polled); the future resolves with its position once durable.
    ///
    /// # Cancel safety
    /// Dropping the future does not cancel the append; its outcome is then unknown to the caller.
    pub fn append(
        &self,
        data: Bytes,
    ) -> impl std::future::Future<Output = Result<Position>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send(Cmd::Append(data, tx)).is_ok();
        async move {
            if !sent {
                return Err(BrokerError::ShuttingDown);
            }
            rx.await.map_err(|_| BrokerError::ShuttingDown)?
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
        *self.shared.lac.borrow()
    }

    /// Watch the last confirmed position.
    pub fn watch_lac(&self) -> watch::Receiver<Position> {
        self.shared.lac.subscribe()
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
        let last_in_ledger = {
            let ledgers = self.shared.ledgers.read();
            match ledgers.iter().find(|l| l.ledger_id.0 == from.ledger) {
                Some(l) if (from.entry as u64) < l.entries => l.entries as i64 - 1,
                _ => return Ok(vec![]),
            }
        };
        let last = last_in_ledger.min(from.entry + max as i64 - 1);
        let mut out = Vec::new();
        let mut e = from.entry;
        while e <= last {
            let p = Position::new(from.ledger, e);
            match self.cache.get(&p) {
                Some(d) => out.push((p, d)),
                None => break,
            }
            e += 1;
        }
        if out.is_empty() {
            let ahead = last
                .max(from.entry + self.config.read_ahead as i64 - 1)
                .min(last_in_ledger);
            let data = self
                .storage
                .read(
                    LedgerId(from.ledger),
                    EntryId(from.entry as u64),
                    EntryId(ahead as u64),
                )
                .await?;
            out = data
                .into_iter()
                .enumerate()
                .map(|(i, d)| (Position::new(from.ledger, from.entry + i as i64), d))
                .collect();
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
        // Only the writer task changes the ledger list (it holds the CAS version).
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Trim(victims.clone(), tx)).is_err() {
            return Ok(0);
        }
        rx.await.map_err(|_| BrokerError::ShuttingDown)??;
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
        for l in self.ledgers() {
            self.cache.invalidate_ledger(l.ledger_id.0);
            self.storage.delete(l.ledger_id).await?;
        }
        self.meta.store().delete(&self.key, Expected::Any).await?;
        Ok(())
    }
}

type AddFuture = BoxFuture<
    'static,
    (
        Result<EntryId, StorageError>,
        u64,
        Bytes,
        oneshot::Sender<Result<Position>>,
    ),
>;

/// An append waiting to be (re)written: its data and its caller.
type PendingAdd = (Bytes, oneshot::Sender<Result<Position>>);

/// Delays between attempts to move failed adds to a new ledger.
const RETRY_BACKOFF: BackoffPolicy =
    BackoffPolicy::exponential(Duration::from_millis(100), Duration::from_secs(2));

/// The log's single writer.
///
/// A failed add (other than fenced) does not reach the producer: as in Pulsar's managed ledger,
/// the failed entry and every later one (a ledger's adds complete in order, so they fail too)
/// are written again, in the same order, to a new ledger, and appends that arrive meanwhile
/// wait behind them. Only when no new ledger can be had for `add_retry_timeout` do they all fail.
/// So a producer's messages are stored in the order it sent them, even across bookie failures.
struct Writer {
    ml: Arc<Inner>,
    version: u64,
    current: Option<(Arc<dyn LedgerWriter>, u64)>, // writer, created_ms
    failed: bool,
    inflight: FuturesOrdered<AddFuture>,
    /// Failed in-flight adds, in log order, to write again.
    retry: VecDeque<PendingAdd>,
    /// Appends that arrived after the failure (after `retry` in order).
    held: VecDeque<PendingAdd>,
    /// Next attempt to move the pending adds to a new ledger.
    retry_at: Option<tokio::time::Instant>,
    /// When the current run of failures started.
    retry_since: Option<tokio::time::Instant>,
    retry_backoff: Backoff,
}

impl Writer {
    /// Another writer took the log over: stop appending and tell the topic.
    fn fence(&mut self, why: &str) {
        if !self.ml.shared.fenced.is_cancelled() {
            error!(topic = %self.ml.name, reason = why, "ledger fenced: another broker took the topic over; unloading it");
            self.ml.shared.fenced.cancel();
        }
        self.failed = true;
    }

    /// Persists the ledger list (CAS on our version); a conflict means another writer owns the
    /// log now.
    async fn persist(&mut self, info: &ManagedLedgerInfo) -> Result<()> {
        match self
            .ml
            .meta
            .put(&self.ml.key, info, Expected::Version(self.version))
            .await
        {
            Ok(stat) => {
                self.version = stat.version;
                Ok(())
            }
            Err(e) => {
                if e.is_conflict() {
                    self.fence("ledger list changed by another broker");
                }
                Err(e.into())
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            tokio::select! {
                Some((res, ledger, data, reply)) = self.inflight.next(), if !self.inflight.is_empty() => {
                    self.complete(res, ledger, data, reply);
                }
                _ = tokio::time::sleep_until(self.retry_at.unwrap_or_else(tokio::time::Instant::now)), if self.retry_due() => {
                    self.rewrite_pending().await;
                }
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Append(data, reply)) => self.append(data, reply).await,
                    Some(Cmd::Trim(victims, reply)) => {
                        let info = {
                            let mut ls = self.ml.shared.ledgers.write();
                            let current = self.current.as_ref().map(|(w, _)| w.ledger_id().0);
                            ls.retain(|l| !victims.contains(&l.ledger_id.0) || Some(l.ledger_id.0) == current);
                            ml_info(ls.clone(), self.ml.shared.terminated.load(std::sync::atomic::Ordering::Acquire))
                        };
                        let r = self.persist(&info).await;
                        let _ = reply.send(r);
                    }
                    Some(Cmd::Terminate(reply)) => {
                        self.drain().await;
                        let name = self.ml.name.to_string();
                        self.fail_pending(|| BrokerError::TopicTerminated(name.clone()));
                        self.ml.shared.terminated.store(true, std::sync::atomic::Ordering::Release);
                        if self.current.is_some() {
                            self.close_current().await;
                        } else {
                            let info = ml_info(self.ml.shared.ledgers.read().clone(), true);
                            match self.persist(&info).await {
                                Ok(()) => {}
                                Err(e) => {
                                    let _ = reply.send(Err(e));
                                    continue;
                                }
                            }
                        }
                        // Wake readers so they notice the end.
                        self.ml.shared.lac.send_modify(|_| {});
                        info!(topic = %self.ml.name, "terminated");
                        let _ = reply.send(Ok(*self.ml.shared.lac.borrow()));
                    }
                    Some(Cmd::Close(reply)) => {
                        self.drain().await;
                        self.fail_pending(|| BrokerError::ServiceNotReady("topic closed".into()));
                        self.close_current().await;
                        let _ = reply.send(());
                        // Later appends fail: the receiver is dropped when we return.
                        return;
                    }
                    None => {
                        self.drain().await;
                        self.fail_pending(|| BrokerError::ShuttingDown);
                        self.close_current().await;
                        return;
                    }
                }
            }
        }
    }

    fn complete(
        &mut self,
        res: Result<EntryId, StorageError>,
        ledger: u64,
        data: Bytes,
        reply: oneshot::Sender<Result<Position>>,
    ) {
        match res {
            Ok(EntryId(entry)) if !self.failed => {
                let pos = Position::new(ledger, entry as i64);
                {
                    let mut ls = self.ml.shared.ledgers.write();
                    if let Some(l) = ls.iter_mut().find(|l| l.ledger_id.0 == ledger) {
                        l.entries = l.entries.max(entry + 1);
                        l.size += data.len() as u64;
                    }
                }
                // `data` is usually a slice of a connection's read buffer: cache an exact-size
                // copy so the cache's byte bound is the memory it really holds.
                self.ml.cache.insert(pos, Bytes::copy_from_slice(&data));
                self.ml.shared.lac.send_if_modified(|lac| {
                    if pos > *lac {
                        *lac = pos;
                        true
                    } else {
                        false
                    }
                });
                let _ = reply.send(Ok(pos));
                self.retry_since = None;
                self.retry_backoff.reset();
            }
            // Confirmed after an earlier add of its ledger failed: the ledger is closed before
            // it, so it is written again with the others.
            Ok(_) => {
                if self.ml.shared.fenced.is_cancelled() {
                    let _ = reply.send(Err(BrokerError::ServiceNotReady(format!(
                        "topic {} moved to another broker",
                        self.ml.name
                    ))));
                } else {
                    self.retry.push_back((data, reply));
                }
            }
            Err(StorageError::Fenced(l)) => {
                self.fence("add fenced by the bookies");
                self.failed = true;
                let _ = reply.send(Err(StorageError::Fenced(l).into()));
            }
            Err(e) => {
                if !self.failed {
                    warn!(topic = %self.ml.name, ledger, error = %e, "add failed; writing it and the later entries again to a new ledger");
                }
                self.failed = true;
                if self.ml.shared.fenced.is_cancelled() {
                    let _ = reply.send(Err(e.into()));
                } else {
                    self.retry.push_back((data, reply));
                    if self.retry_at.is_none() {
                        let now = tokio::time::Instant::now();
                        // The first failure is retried at once, later ones after a backoff.
                        let delay = if self.retry_since.is_some() {
                            self.retry_backoff
                                .peek_delay()
                                .unwrap_or(RETRY_BACKOFF.max())
                        } else {
                            Duration::ZERO
                        };
                        self.retry_at = Some(now + delay);
                        self.retry_since.get_or_insert(now);
                    }
                }
            }
        }
    }

    /// Whether pending adds wait for a new ledger and nothing is in flight.
    fn retry_due(&self) -> bool {
        (!self.retry.is_empty() || !self.held.is_empty()) && self.inflight.is_empty()
    }

    /// Fails every pending add (failed in-flight ones first, then held ones: log order).
    fn fail_pending(&mut self, err: impl Fn() -> BrokerError) {
        for (_, reply) in self.retry.drain(..).chain(self.held.drain(..)) {
            let _ = reply.send(Err(err()));
        }
        self.retry_at = None;
        self.retry_since = None;
        self.retry_backoff.reset();
    }

    /// Rolls over to a new ledger and writes the pending adds to it, in order; on failure tries
    /// again later, until `add_retry_timeout`.
    async fn rewrite_pending(&mut self) {
        self.retry_at = None;
        if self.ml.shared.fenced.is_cancelled() {
            let name = self.ml.name.clone();
            self.fail_pending(|| {
                BrokerError::ServiceNotReady(format!("topic {name} moved to another broker"))
            });
            return;
        }
        let since = *self
            .retry_since
            .get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() >= self.ml.config.add_retry_timeout {
            warn!(topic = %self.ml.name, pending = self.retry.len() + self.held.len(), "adds kept failing for the add retry timeout; failing the pending adds");
            self.fail_pending(|| {
                BrokerError::Storage(StorageError::Unavailable(
                    "adds kept failing for the add retry timeout".into(),
                ))
            });
            return;
        }
        let backoff = self
            .retry_backoff
            .next_delay()
            .unwrap_or(RETRY_BACKOFF.max());
        match self.rollover().await {
            Ok(()) => {
                let n = self.retry.len() + self.held.len();
                let Some((w, _)) = &self.current else {
                    return;
                };
                let ledger = w.ledger_id().0;
                for (data, reply) in self.retry.drain(..).chain(self.held.drain(..)) {
                    let fut = w.add(data.clone());
                    self.inflight
                        .push_back(Box::pin(async move { (fut.await, ledger, data, reply) }));
                }
                info!(topic = %self.ml.name, ledger, entries = n, "writing pending entries again to a new ledger");
            }
            Err(e) => {
                debug!(topic = %self.ml.name, error = %e, "no new ledger yet; retrying");
                self.retry_at = Some(tokio::time::Instant::now() + backoff);
            }
        }
    }

    async fn drain(&mut self) {
        while let Some((res, ledger, data, reply)) = self.inflight.next().await {
            self.complete(res, ledger, data, reply);
        }
    }

    fn needs_rollover(&self) -> bool {
        let Some((w, created)) = &self.current else {
            return true;
        };
        if self.failed {
            return true;
        }
        let cfg = &self.ml.config;
        let ls = self.ml.shared.ledgers.read();
        let Some(l) = ls.iter().find(|l| l.ledger_id == w.ledger_id()) else {
            return true;
        };
        l.entries >= cfg.max_entries_per_ledger
            || l.size >= cfg.max_size_per_ledger
            || now_ms().saturating_sub(*created) >= cfg.max_ledger_age.as_millis() as u64
    }

    async fn append(&mut self, data: Bytes, reply: oneshot::Sender<Result<Position>>) {
        if self.ml.shared.fenced.is_cancelled() {
            let _ = reply.send(Err(BrokerError::ServiceNotReady(format!(
                "topic {} moved to another broker",
                self.ml.name
            ))));
            return;
        }
        if self
            .ml
            .shared
            .terminated
            .load(std::sync::atomic::Ordering::Acquire)
        {
            let _ = reply.send(Err(BrokerError::TopicTerminated(self.ml.name.to_string())));
            return;
        }
        // Behind adds waiting for a new ledger (or an add that just failed): keep the order.
        if self.failed || !self.retry.is_empty() || !self.held.is_empty() {
            self.held.push_back((data, reply));
            if self.retry_at.is_none() {
                self.retry_at = Some(tokio::time::Instant::now());
            }
            return;
        }
        if self.needs_rollover() {
            self.drain().await;
            if let Err(e) = self.rollover().await {
                warn!(topic = %self.ml.name, error = %e, "ledger rollover failed");
                let _ = reply.send(Err(e));
                return;
            }
        }
        let Some((w, _)) = &self.current else {
            let _ = reply.send(Err(BrokerError::ServiceNotReady("no open ledger".into())));
            return;
        };
        let ledger = w.ledger_id().0;
        let fut = w.add(data.clone());
        self.inflight
            .push_back(Box::pin(async move { (fut.await, ledger, data, reply) }));
    }

    async fn close_current(&mut self) {
        let Some((w, _)) = self.current.take() else {
            return;
        };
        let id = w.ledger_id().0;
        if self.ml.shared.fenced.is_cancelled() {
            // The new owner recovers (and closes) this ledger; we must not touch the list.
            return;
        }
        let last = match w.close().await {
            Ok(last) => last,
            Err(StorageError::Fenced(_)) => {
                self.fence("close fenced by the bookies");
                return;
            }
            Err(e) => {
                // The next owner recovers the ledger; our view of confirmed entries stands.
                warn!(topic = %self.ml.name, ledger = id, error = %e, "close ledger failed");
                return;
            }
        };
        let info = {
            let mut ls = self.ml.shared.ledgers.write();
            if let Some(l) = ls.iter_mut().find(|l| l.ledger_id.0 == id) {
                l.closed = true;
                l.entries = last.map(|e| e.0 + 1).unwrap_or(0).max(l.entries);
            }
            ls.retain(|l| l.entries > 0 || !l.closed);
            ml_info(
                ls.clone(),
                self.ml
                    .shared
                    .terminated
                    .load(std::sync::atomic::Ordering::Acquire),
            )
        };
        if let Err(e) = self.persist(&info).await {
            warn!(topic = %self.ml.name, error = %e, "persist ledger list failed");
        }
        if last.is_none() {
            let _ = self.ml.storage.delete(LedgerId(id)).await;
        }
        debug!(topic = %self.ml.name, ledger = id, "closed ledger");
    }

    /// Creates the next ledger; its id must be above every ledger id of the log, so message ids
    /// never go backwards after a failover (Pulsar #24722): ledger ids come from per-broker
    /// batches of a cluster-wide counter, and a broker taking a topic over may still hold a batch
    /// below the old owner's. Such ledgers are deleted; the allocator soon moves to a batch
    /// above every id handed out so far.
    async fn create_ledger_above_last(ml: &Inner) -> Result<Arc<dyn LedgerWriter>> {
        let last = ml.shared.ledgers.read().iter().map(|l| l.ledger_id.0).max();
        for discarded in 0..1000u32 {
            let w = ml.storage.create(ml.config.create).await?;
            if last.is_none_or(|l| w.ledger_id().0 > l) {
                if discarded > 0 {
                    info!(topic = %ml.name, ledger = %w.ledger_id(), discarded, "skipped ledger ids below the log's last ledger");
                }
                return Ok(w);
            }
            let _ = w.close().await;
            if let Err(e) = ml.storage.delete(w.ledger_id()).await {
                warn!(ledger = %w.ledger_id(), error = %e, "delete skipped ledger failed");
            }
        }
        Err(BrokerError::ServiceNotReady(format!(
            "no ledger id above {} for topic {}",
            last.unwrap_or(0),
            ml.name
        )))
    }

    async fn rollover(&mut self) -> Result<()> {
        self.close_current().await;
        if self.ml.shared.fenced.is_cancelled() {
            return Err(BrokerError::ServiceNotReady(format!(
                "topic {} moved to another broker",
                self.ml.name
            )));
        }
        self.failed = false;
        let w = Self::create_ledger_above_last(&self.ml).await?;
        let created = now_ms();
        let info = {
            let mut ls = self.ml.shared.ledgers.write();
            ls.push(ManagedLedgerLedger {
                ledger_id: w.ledger_id(),
                created_at_ms: created,
                ..Default::default()
            });
            ml_info(
                ls.clone(),
                self.ml
                    .shared
                    .terminated
                    .load(std::sync::atomic::Ordering::Acquire),
            )
        };
        match self.persist(&info).await {
            Ok(()) => {}
            Err(e) => {
                self.ml
                    .shared
                    .ledgers
                    .write()
                    .retain(|l| l.ledger_id != w.ledger_id());
                let _ = w.close().await;
                let _ = self.ml.storage.delete(w.ledger_id()).await;
                return Err(e);
            }
        }
        debug!(topic = %self.ml.name, ledger = %w.ledger_id(), "opened ledger");
        self.current = Some((w, created));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    async fn open(st: &MemStorage, meta: &MetaClient, cfg: ManagedLedgerConfig) -> ManagedLedger {
        ManagedLedger::open(
            "t/ns/persistent/a",
            Arc::new(st.clone()),
            meta.clone(),
            EntryCache::new(1 << 20),
            cfg,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_new_owner_never_writes_below_the_last_ledger_id() {
        // The old owner's ledger ids come from a higher batch than the new owner's allocator.
        let old = MemStorage::default();
        for _ in 0..5 {
            old.create(CreateOptions::default()).await.unwrap();
        }
        let meta = crate::metadata::in_memory().unwrap();
        let ml = open(&old, &meta, ManagedLedgerConfig::default()).await;
        let p_old = ml.append(Bytes::from_static(b"a")).await.unwrap();
        assert_eq!(p_old.ledger, 6);
        ml.close().await;
        let new = MemStorage::default();
        let ml = open(&new, &meta, ManagedLedgerConfig::default()).await;
        let p_new = ml.append(Bytes::from_static(b"b")).await.unwrap();
        assert!(p_new > p_old, "{p_new:?} after {p_old:?}");
        assert_eq!(p_new.ledger, 7);
        // the skipped ids were deleted
        assert_eq!(new.ledger_count(), 1);
    }

    #[tokio::test]
    async fn append_read_rollover_and_reopen() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let cfg = ManagedLedgerConfig {
            max_entries_per_ledger: 3,
            ..Default::default()
        };
        let ml = open(&st, &meta, cfg.clone()).await;
        let mut pos = vec![];
        for i in 0..7u8 {
            pos.push(ml.append(Bytes::from(vec![i])).await.unwrap());
        }
        assert_eq!(ml.ledgers().len(), 3);
        assert_eq!(ml.last_confirmed(), pos[6]);
        // walk the log with next_position
        let mut p = ml.first_position();
        let mut seen = vec![];
        while let Some(n) = ml.next_position(p) {
            seen.push(n);
            p = n;
        }
        assert_eq!(seen, pos);
        assert_eq!(ml.entries_after(pos[1]), 5);
        let r = ml.read(pos[3], 10).await.unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].1, Bytes::from(vec![3u8]));
        // crash without close: a new instance recovers the open ledger
        drop(ml);
        let ml2 = open(&st, &meta, cfg).await;
        assert_eq!(ml2.last_confirmed(), pos[6]);
        let p8 = ml2.append(Bytes::from_static(b"x")).await.unwrap();
        assert!(p8 > pos[6]);
        // find by predicate (binary search)
        let f = ml2
            .find_first(|d| d.first().copied().unwrap_or(0) >= 4)
            .await
            .unwrap();
        assert_eq!(f, Some(pos[4]));
        ml2.close().await;
    }

    #[tokio::test]
    async fn namespace_retention_size_and_time_limits() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let cfg = ManagedLedgerConfig {
            max_entries_per_ledger: 2,
            ..Default::default()
        };
        let ml = open(&st, &meta, cfg).await;
        let mut pos = vec![];
        for i in 0..8u8 {
            pos.push(ml.append(Bytes::from(vec![i; 10])).await.unwrap());
        }
        assert_eq!(ml.ledgers().len(), 4);
        // Unlimited retention keeps everything consumed.
        assert_eq!(ml.trim_retained(Some(pos[7]), None, None).await.unwrap(), 0);
        // Nothing consumed: nothing trimmed, whatever the limits.
        assert_eq!(
            ml.trim_retained(Some(Position::EARLIEST), Some(0), Some(0))
                .await
                .unwrap(),
            0
        );
        // Three consumed closed ledgers of 20 bytes; keep at most 40 bytes: the oldest goes.
        assert_eq!(
            ml.trim_retained(Some(pos[7]), None, Some(40))
                .await
                .unwrap(),
            1
        );
        assert_eq!(ml.ledgers().len(), 3);
        // Only what the slowest cursor consumed can go: with a time limit of 0, the ledger of
        // pos[2..=3]; then, consumed up to pos[7], every closed ledger but the current one.
        assert_eq!(
            ml.trim_retained(Some(pos[3]), Some(0), None).await.unwrap(),
            1
        );
        assert_eq!(
            ml.trim_retained(Some(pos[7]), Some(0), None).await.unwrap(),
            1
        );
        assert_eq!(ml.ledgers().len(), 1);
        assert_eq!(ml.read(pos[7], 1).await.unwrap().len(), 1);
        ml.close().await;
    }

    #[tokio::test]
    async fn tail_reads_hit_cache_and_trim_deletes() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let cfg = ManagedLedgerConfig {
            max_entries_per_ledger: 2,
            retention_time: Duration::ZERO,
            ..Default::default()
        };
        let ml = open(&st, &meta, cfg).await;
        let mut pos = vec![];
        for i in 0..6u8 {
            pos.push(ml.append(Bytes::from(vec![i])).await.unwrap());
        }
        let before = st.reads();
        let r = ml.read(pos[4], 2).await.unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(st.reads(), before, "tail read went to storage");
        assert_eq!(ml.trim(Some(pos[3])).await.unwrap(), 2);
        assert_eq!(ml.ledgers().len(), 1);
        assert_eq!(ml.first_position(), Position::new(pos[4].ledger, -1));
        // The writer keeps rolling over after a trim (one CAS owner of the ledger list).
        for i in 6..12u8 {
            ml.append(Bytes::from(vec![i])).await.unwrap();
        }
        assert_eq!(ml.ledgers().len(), 4);
    }

    #[tokio::test]
    async fn failed_adds_are_written_again_in_order_on_a_new_ledger() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let ml = open(&st, &meta, ManagedLedgerConfig::default()).await;
        let a = ml.append(Bytes::from_static(b"a")).await.unwrap();
        st.fail_adds
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // b fails, c and d come after it: none may overtake b
        let b = tokio::spawn(ml.append(Bytes::from_static(b"b")));
        let c = tokio::spawn(ml.append(Bytes::from_static(b"c")));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let d = tokio::spawn(ml.append(Bytes::from_static(b"d")));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!b.is_finished() && !c.is_finished() && !d.is_finished());
        st.fail_adds
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let (b, c, d) = (
            b.await.unwrap().unwrap(),
            c.await.unwrap().unwrap(),
            d.await.unwrap().unwrap(),
        );
        assert!(b.ledger > a.ledger);
        assert!(a < b && b < c && c < d, "{a:?} {b:?} {c:?} {d:?}");
        let all: Vec<Bytes> = ml
            .read(ml.next_position(a).unwrap(), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        assert_eq!(all, [&b"b"[..], b"c", b"d"]);
    }

    #[tokio::test]
    async fn failed_adds_fail_after_the_retry_timeout() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let cfg = ManagedLedgerConfig {
            add_retry_timeout: Duration::from_millis(400),
            ..Default::default()
        };
        let ml = open(&st, &meta, cfg).await;
        ml.append(Bytes::from_static(b"a")).await.unwrap();
        st.fail_adds
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(ml.append(Bytes::from_static(b"b")).await.is_err());
        st.fail_adds
            .store(false, std::sync::atomic::Ordering::Relaxed);
        ml.append(Bytes::from_static(b"c")).await.unwrap();
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use crate::storage::MemStorage;

    /// A catch-up read goes to storage and leaves the cache (the tail) alone.
    #[tokio::test]
    async fn catch_up_reads_do_not_touch_the_tail_cache() {
        let st = MemStorage::default();
        let cache = EntryCache::new(2_000);
        let ml = ManagedLedger::open(
            "t/ns/persistent/c",
            Arc::new(st.clone()),
            crate::metadata::in_memory().unwrap(),
            cache.clone(),
            ManagedLedgerConfig::default(),
        )
        .await
        .unwrap();
        let mut ps = vec![];
        for i in 0..100u8 {
            ps.push(ml.append(Bytes::from(vec![i; 100])).await.unwrap());
        }
        // Old entries were evicted by the bound; the newest are cached.
        let tail = *ps.last().unwrap();
        assert!(cache.get(&tail).is_some());
        let before = cache.weighted_size();
        let reads = st.reads();
        let got = ml.read(ps[0], 50).await.unwrap();
        assert!(!got.is_empty() && got[0].1[0] == 0);
        assert!(st.reads() > reads, "catch-up read did not go to storage");
        assert!(
            cache.get(&ps[0]).is_none(),
            "catch-up read inserted into the cache"
        );
        assert!(cache.get(&tail).is_some(), "catch-up read evicted the tail");
        assert!(cache.weighted_size() <= before.max(2_000));
    }
}
