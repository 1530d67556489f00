//! The ledger client: [`LedgerStorage`] over bookies (`strata_bookie::BookieClient`) with ledger
//! metadata in the metadata store (`strata_meta::model::LedgerMetadata`).
//!
//! - A ledger has an ensemble of E bookies, write quorum Qw and ack quorum Qa (standalone: 1/1/1).
//!   Entry `e` goes to the Qw bookies `ensemble[(e + i) % E]`, `i < Qw`; an add completes when Qa
//!   bookies *of the committed ensemble* acknowledged it and every earlier entry completed, so
//!   completions are in order. New ensembles spread over racks when bookies declare them.
//! - The writer passes its last-add-confirmed with each add (bookies learn the LAC).
//! - Ensemble change: a bookie that fails a write (or times out after [`Timeouts::add`]) stops
//!   counting as an acknowledger at once and is replaced by one outside the ensemble (another rack
//!   when possible, answering a probe); the new segment (from the first unconfirmed entry) is
//!   committed to the ledger metadata (CAS, re-read and re-applied on conflict) before the
//!   replacement is written to, then pending entries of that slot are re-sent. No add depending on
//!   the replacement is acknowledged before the commit (BookKeeper #1591). Without a spare the
//!   writer fails with `NotEnoughBookies` and never acknowledges below Qa.
//! - Reads go to the replicas of an entry in turn: a replica that errs or answers NO_ENTRY moves
//!   the read on to the next one at once, a slow one (no answer after [`Timeouts::speculative`])
//!   gets a speculative read sent to the next one too; the first answer wins, the read fails only
//!   when every replica failed.
//! - Recovery (fence, read forward, write back, close): see [`crate::recovery`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use strata_bookie::{BookieClient, ClientError};
use strata_meta::model::{BookieInfo, LedgerMetadata, LedgerState, MetaClient};
use strata_proto::{BookieId, EntryId, LedgerId};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::placement;
pub use crate::storage::Quorum;
use crate::storage::{CreateOptions, LedgerStorage, LedgerWriter, StorageError};

/// Time limits of bookie requests.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A bookie that does not acknowledge an add within this time counts as failed for it.
    pub add: Duration,
    /// Limit of one fence, recovery read, recovery add, read, or reachability probe: a hung
    /// bookie delays recovery by at most about this much (BookKeeper #1067).
    pub request: Duration,
    /// A read with no answer from a replica after this long is also sent to the next replica.
    pub speculative: Duration,
    /// How often a writer checks that the bookies of its ensemble are still registered; one
    /// missing at two checks in a row is replaced as if it had failed a write (so an idle
    /// ledger's current segment does not keep naming a dead bookie).
    pub ensemble_check: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            add: ADD_TIMEOUT,
            request: Duration::from_secs(5),
            speculative: Duration::from_millis(75),
            ensemble_check: Duration::from_secs(5),
        }
    }
}

/// Where bookies come from.
#[async_trait]
pub trait BookieSource: Send + Sync + 'static {
    /// Writable bookies available now.
    async fn bookies(&self) -> Result<Vec<BookieId>, StorageError>;
    /// The gRPC `host:port` of a bookie (its id unless the source maps ids to addresses).
    fn address(&self, id: &BookieId) -> String {
        id.0.clone()
    }
    /// The rack (failure domain) a bookie declared, if any.
    fn rack(&self, _id: &BookieId) -> Option<String> {
        None
    }
    /// Makes sure [`Self::address`] knows `ids` if it can (e.g. refreshes a registry cache).
    async fn learn(&self, _ids: &[BookieId]) {}
    /// Those of `ids` known to be gone now (e.g. no longer registered).
    async fn gone(&self, _ids: &[BookieId]) -> Vec<BookieId> {
        Vec::new()
    }
}

/// A fixed set of bookies with stable ids mapped to their current addresses (standalone: the
/// in-process bookie listens on a new port at each start, its id stays the same).
pub struct StaticBookies(pub Vec<(BookieId, String)>);

#[async_trait]
impl BookieSource for StaticBookies {
    async fn bookies(&self) -> Result<Vec<BookieId>, StorageError> {
        Ok(self.0.iter().map(|(id, _)| id.clone()).collect())
    }
    fn address(&self, id: &BookieId) -> String {
        self.0
            .iter()
            .find(|(b, _)| b == id)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| id.0.clone())
    }
}

/// Bookies registered in the metadata store (cluster mode): writable ones are offered for new
/// ensembles; every registered one can be addressed (its advertised gRPC address), and the last
/// known address of one that left is remembered.
pub struct RegisteredBookies {
    meta: MetaClient,
    known: Mutex<HashMap<BookieId, (String, Option<String>)>>,
    /// Registered at the last read.
    live: Mutex<BTreeSet<BookieId>>,
    /// When the registry was last read (unknown ids trigger at most one read a second).
    refreshed: Mutex<Option<std::time::Instant>>,
}

impl RegisteredBookies {
    /// Bookies from `meta`'s registry.
    pub fn new(meta: MetaClient) -> Self {
        Self {
            meta,
            known: Mutex::new(HashMap::new()),
            live: Mutex::new(BTreeSet::new()),
            refreshed: Mutex::new(None),
        }
    }

    /// Every registered bookie now (read-only ones too); refreshes the addresses and racks.
    pub async fn registered(&self) -> Result<Vec<BookieInfo>, StorageError> {
        let all = self.meta.bookies().await.map_err(map_meta)?;
        *self.refreshed.lock() = Some(std::time::Instant::now());
        *self.live.lock() = all.iter().map(|b| b.bookie_id.clone()).collect();
        let mut known = self.known.lock();
        for b in &all {
            known.insert(b.bookie_id.clone(), (b.address.clone(), b.rack.clone()));
        }
        Ok(all)
    }
}

#[async_trait]
impl BookieSource for RegisteredBookies {
    async fn bookies(&self) -> Result<Vec<BookieId>, StorageError> {
        let mut out: Vec<BookieId> = self
            .registered()
            .await?
            .into_iter()
            .filter(|b| !b.read_only)
            .map(|b| b.bookie_id)
            .collect();
        out.sort();
        Ok(out)
    }
    fn address(&self, id: &BookieId) -> String {
        self.known
            .lock()
            .get(id)
            .map(|(a, _)| a.clone())
            .unwrap_or_else(|| id.0.clone())
    }
    fn rack(&self, id: &BookieId) -> Option<String> {
        self.known.lock().get(id).and_then(|(_, r)| r.clone())
    }
    async fn learn(&self, ids: &[BookieId]) {
        let unknown = {
            let known = self.known.lock();
            ids.iter().any(|b| !known.contains_key(b))
        };
        let recent = self
            .refreshed
            .lock()
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if unknown
            && !recent
            && let Err(e) = self.registered().await
        {
            warn!(error = %e, "cannot read the bookie registry");
        }
    }
    async fn gone(&self, ids: &[BookieId]) -> Vec<BookieId> {
        let recent = self
            .refreshed
            .lock()
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if !recent && self.registered().await.is_err() {
            // The registry cannot be read (metadata outage): nothing is known to be gone.
            return Vec::new();
        }
        let live = self.live.lock();
        ids.iter().filter(|b| !live.contains(*b)).cloned().collect()
    }
}

pub(crate) fn map_client(ledger: u64, e: ClientError) -> StorageError {
    match e {
        ClientError::Fenced(_) => StorageError::Fenced(ledger),
        ClientError::NoLedger(_) => StorageError::NoSuchLedger(ledger),
        ClientError::NoEntry(m) => StorageError::Other(format!("no such entry: {m}")),
        e if e.is_retryable() => StorageError::Unavailable(e.to_string()),
        e => StorageError::Other(e.to_string()),
    }
}

pub(crate) fn map_meta(e: strata_meta::MetaError) -> StorageError {
    if e.is_retryable() {
        StorageError::Unavailable(e.to_string())
    } else {
        StorageError::Other(e.to_string())
    }
}

/// Clients of the bookies of a source, by id (lazy connections: never blocks, reconnects;
/// replaced when the source maps the id to a new address).
pub(crate) struct Pool {
    pub(crate) source: Arc<dyn BookieSource>,
    pub(crate) timeouts: Timeouts,
    clients: Mutex<HashMap<BookieId, (String, BookieClient)>>,
}

impl Pool {
    pub(crate) fn new(source: Arc<dyn BookieSource>, timeouts: Timeouts) -> Self {
        Self {
            source,
            timeouts,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure the source can address every bookie `md` names.
    pub(crate) async fn learn(&self, md: &LedgerMetadata) {
        let ids: Vec<BookieId> = md
            .ensembles
            .iter()
            .flat_map(|s| s.bookies.iter().cloned())
            .collect();
        self.source.learn(&ids).await;
    }

    pub(crate) fn client(&self, b: &BookieId) -> Result<BookieClient, StorageError> {
        let addr = self.source.address(b);
        let mut g = self.clients.lock();
        if let Some((a, c)) = g.get(b)
            && *a == addr
        {
            return Ok(c.clone());
        }
        let c = BookieClient::connect_lazy(&addr)
            .map_err(|e| StorageError::Unavailable(format!("bookie {b} at {addr}: {e}")))?;
        g.insert(b.clone(), (addr, c.clone()));
        Ok(c)
    }

    /// Whether `b` answers a cheap request within the request timeout.
    pub(crate) async fn reachable(&self, b: &BookieId) -> bool {
        let Ok(c) = self.client(b) else {
            return false;
        };
        match tokio::time::timeout(
            self.timeouts.request,
            c.read_lac(u64::MAX, -2, Duration::ZERO),
        )
        .await
        {
            Ok(Ok(_)) => true,
            Ok(Err(ClientError::Unavailable(_) | ClientError::ShuttingDown)) | Err(_) => false,
            Ok(Err(_)) => true,
        }
    }

    /// Picks a bookie to replace `failed` in `ensemble`: writable, not in the ensemble,
    /// reachable, on a rack the rest of the ensemble does not use when possible, and not in
    /// `avoid` (recently failed) unless no other one is left.
    pub(crate) async fn replacement(
        &self,
        ensemble: &[BookieId],
        failed: &BookieId,
        avoid: &BTreeSet<BookieId>,
    ) -> Result<Option<BookieId>, StorageError> {
        let all = self.source.bookies().await?;
        let (preferred, avoided): (Vec<BookieId>, Vec<BookieId>) = all
            .into_iter()
            .filter(|b| !ensemble.contains(b))
            .partition(|b| !avoid.contains(b));
        if let Some(r) = self.pick(preferred, ensemble, failed).await {
            return Ok(Some(r));
        }
        Ok(self.pick(avoided, ensemble, failed).await)
    }

    async fn pick(
        &self,
        mut candidates: Vec<BookieId>,
        ensemble: &[BookieId],
        failed: &BookieId,
    ) -> Option<BookieId> {
        let used: BTreeSet<String> = ensemble
            .iter()
            .filter(|b| *b != failed)
            .filter_map(|b| self.source.rack(b))
            .collect();
        while !candidates.is_empty() {
            let pick = placement::choose(&candidates, 1, |b| self.source.rack(b), &used);
            let Some(r) = pick.into_iter().next() else {
                break;
            };
            if self.reachable(&r).await {
                return Some(r);
            }
            warn!(bookie = %r, "replacement candidate unreachable");
            candidates.retain(|b| *b != r);
        }
        None
    }

    /// Reads from the first of `replicas` that has the data: one that errs or has nothing moves
    /// on to the next at once, one silent for [`Timeouts::speculative`] gets the next one asked
    /// too. `f` returns `None` for "not here". Fails when every replica failed.
    pub(crate) async fn read_any<T, F, Fut>(
        &self,
        ledger: u64,
        entry: u64,
        replicas: &[BookieId],
        f: F,
    ) -> Result<T, StorageError>
    where
        F: Fn(BookieClient) -> Fut,
        Fut: Future<Output = Result<Option<T>, ClientError>> + Send + 'static,
        T: Send + 'static,
    {
        let mut inflight = FuturesUnordered::new();
        let mut next = 0;
        let mut unavailable: Option<StorageError> = None;
        let request = self.timeouts.request;
        let launch = |i: usize, inflight: &mut FuturesUnordered<BoxFuture<'static, _>>| {
            let b = replicas[i].clone();
            match self.client(&b) {
                Ok(c) => {
                    let fut = f(c);
                    inflight.push(Box::pin(async move {
                        match tokio::time::timeout(request, fut).await {
                            Ok(r) => r,
                            Err(_) => Err(ClientError::Unavailable(format!(
                                "no answer from {b} within {request:?}"
                            ))),
                        }
                    }) as BoxFuture<'static, _>);
                    true
                }
                Err(_) => false,
            }
        };
        loop {
            while inflight.is_empty() && next < replicas.len() {
                launch(next, &mut inflight);
                next += 1;
            }
            if inflight.is_empty() {
                return Err(unavailable.unwrap_or(StorageError::NoSuchEntry(ledger, entry)));
            }
            let more = next < replicas.len();
            tokio::select! {
                r = inflight.next() => {
                    match r {
                        Some(Ok(Some(v))) => return Ok(v),
                        Some(Ok(None)) | Some(Err(ClientError::NoEntry(_) | ClientError::NoLedger(_))) | None => {}
                        Some(Err(e)) => unavailable = Some(map_client(ledger, e)),
                    }
                    if next < replicas.len() {
                        launch(next, &mut inflight);
                        next += 1;
                    }
                }
                _ = tokio::time::sleep(self.timeouts.speculative), if more => {
                    crate::metrics::METRICS.speculative_reads.inc();
                    launch(next, &mut inflight);
                    next += 1;
                }
            }
        }
    }
}

/// Ledger storage over bookies.
pub struct BookieLedgerStorage {
    meta: MetaClient,
    ids: strata_meta::model::LedgerIdAllocator,
    pool: Arc<Pool>,
    quorum: Quorum,
    owner: String,
    /// Metadata of closed ledgers (immutable but for auto-recovery's replacements, which a
    /// failed read notices: it re-reads the metadata once), so catch-up reads skip the store.
    closed: Mutex<HashMap<u64, LedgerMetadata>>,
    quarantine: Quarantine,
}

pub(crate) const MASTER_KEY: &str = "master_key";

impl BookieLedgerStorage {
    /// A ledger client; `owner` is recorded in each ledger's metadata.
    pub fn new(
        meta: MetaClient,
        source: Arc<dyn BookieSource>,
        quorum: Quorum,
        owner: &str,
    ) -> Self {
        Self::with_timeouts(meta, source, quorum, owner, Timeouts::default())
    }

    /// [`Self::new`] with explicit request time limits.
    pub fn with_timeouts(
        meta: MetaClient,
        source: Arc<dyn BookieSource>,
        quorum: Quorum,
        owner: &str,
        timeouts: Timeouts,
    ) -> Self {
        let ids = meta.ledger_id_allocator(100);
        Self {
            meta,
            ids,
            pool: Arc::new(Pool::new(source, timeouts)),
            quorum,
            closed: Mutex::new(HashMap::new()),
            quarantine: Arc::default(),
            owner: owner.to_owned(),
        }
    }

    async fn metadata(
        &self,
        ledger: u64,
    ) -> Result<(LedgerMetadata, strata_meta::Stat), StorageError> {
        self.meta
            .ledger(LedgerId(ledger))
            .await
            .map_err(map_meta)?
            .ok_or(StorageError::NoSuchLedger(ledger))
    }

    async fn read_with(
        &self,
        md: &LedgerMetadata,
        ledger: u64,
        first: u64,
        last: u64,
    ) -> Result<Vec<Bytes>, StorageError> {
        self.pool.learn(md).await;
        let mut out = Vec::with_capacity((last.saturating_sub(first) + 1).min(1024) as usize);
        let qw = md.write_quorum as usize;
        let mut next = first;
        while next <= last {
            // The ensemble segment holding `next`, and where it ends.
            let seg_idx = md
                .ensembles
                .iter()
                .rposition(|s| s.first_entry.0 <= next)
                .unwrap_or(0);
            let seg = md
                .ensembles
                .get(seg_idx)
                .ok_or(StorageError::NoSuchLedger(ledger))?;
            let seg_end = md
                .ensembles
                .get(seg_idx + 1)
                .map(|s| s.first_entry.0 - 1)
                .unwrap_or(u64::MAX);
            let upto = last.min(seg_end);
            if seg.bookies.len() <= qw {
                // Every bookie of the segment holds every entry: range reads.
                let from = next;
                let v = self
                    .pool
                    .read_any(
                        ledger,
                        from,
                        &write_set(&seg.bookies, from, qw),
                        |c| async move {
                            let v = c.read_range(ledger, from, upto, 0).await?;
                            Ok((!v.is_empty()).then_some(v))
                        },
                    )
                    .await?;
                for (eid, payload) in v {
                    if eid != next {
                        return Err(StorageError::Other(format!(
                            "bookie returned entry {eid}, expected {next}"
                        )));
                    }
                    out.push(payload);
                    next += 1;
                }
            } else {
                // Striped: each entry from its own write set, several at a time.
                let bookies = &seg.bookies;
                let v: Vec<Result<Bytes, StorageError>> = futures::stream::iter(next..=upto)
                    .map(|e| {
                        let ws = write_set(bookies, e, qw);
                        async move {
                            self.pool
                                .read_any(ledger, e, &ws, |c| async move {
                                    Ok(Some(c.read_entry(ledger, e).await?.0))
                                })
                                .await
                        }
                    })
                    .buffered(16)
                    .collect()
                    .await;
                for r in v {
                    out.push(r?);
                }
                next = upto + 1;
            }
            if upto == u64::MAX {
                break;
            }
        }
        Ok(out)
    }
}

pub(crate) fn master_key(m: &LedgerMetadata) -> Bytes {
    Bytes::from(
        m.custom_metadata
            .get(MASTER_KEY)
            .cloned()
            .unwrap_or_default()
            .into_bytes(),
    )
}

pub(crate) fn write_set(ensemble: &[BookieId], entry: u64, qw: usize) -> Vec<BookieId> {
    let e = ensemble.len().max(1);
    (0..qw.min(ensemble.len()))
        .map(|i| ensemble[(entry as usize + i) % e].clone())
        .collect()
}

/// Whether ensemble slot `idx` is in the write set of `entry` (E = `e`, Qw = `qw`).
pub(crate) fn in_write_set(idx: usize, entry: u64, e: usize, qw: usize) -> bool {
    let e = e.max(1);
    ((idx + e - (entry % e as u64) as usize) % e) < qw
}

/// An entry written but not confirmed yet: its data (for re-sends) and who acknowledged it.
struct PendingAdd {
    data: Bytes,
    acks: BTreeSet<BookieId>,
    /// Completes the add future when the LAC passes the entry (dropped: the writer failed).
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

struct WriterState {
    next: u64,
    lac: i64,
    failed: Option<StorageError>,
    length: u64,
    /// The current ensemble (positions are stable: a replacement takes the failed bookie's slot).
    ensemble: Vec<(BookieId, BookieClient)>,
    /// Entries not yet confirmed (every entry above the LAC that was added).
    pending: BTreeMap<u64, PendingAdd>,
    /// Bookies of the current ensemble that failed a write and must be replaced; their acks no
    /// longer count.
    to_replace: BTreeSet<BookieId>,
    /// An ensemble change task is running.
    changing: bool,
    /// Entries confirmed while an ensemble change runs (by the bookies that stay): re-sent to
    /// the replacement after the commit so they reach their full write set, too.
    confirmed_in_change: BTreeMap<u64, Bytes>,
}

/// Bookies that recently failed a write, and since when; new ensembles avoid them for
/// [`QUARANTINE`] (registrations of dead bookies can outlive them by a session TTL).
type Quarantine = Arc<Mutex<HashMap<BookieId, std::time::Instant>>>;

/// A bookie that does not acknowledge an add within this time counts as failed for it.
pub const ADD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a bookie that failed a write is left out of new ensembles.
pub const QUARANTINE: Duration = Duration::from_secs(30);

/// Writes one ledger; cheap handle over [`WriterShared`].
struct BookieWriter {
    sh: Arc<WriterShared>,
}

struct WriterShared {
    quarantine: Quarantine,
    ledger: u64,
    key: Bytes,
    quorum: Quorum,
    state: Mutex<WriterState>,
    lac_tx: watch::Sender<i64>,
    meta: MetaClient,
    pool: Arc<Pool>,
}

#[async_trait]
impl LedgerStorage for BookieLedgerStorage {
    async fn create(&self, opts: CreateOptions) -> Result<Arc<dyn LedgerWriter>, StorageError> {
        let quorum = opts.quorum.unwrap_or(self.quorum);
        let mut bookies = self.pool.source.bookies().await?;
        // Leave out bookies that failed recently; if too few others remain, take back those of
        // them that answer now (a ledger on a dead bookie would only fail its first add).
        let (healthy, suspect): (Vec<BookieId>, Vec<BookieId>) = {
            let mut q = self.quarantine.lock();
            q.retain(|_, since| since.elapsed() < QUARANTINE);
            bookies.iter().cloned().partition(|b| !q.contains_key(b))
        };
        if healthy.len() < quorum.ensemble && !suspect.is_empty() {
            let answers =
                futures::future::join_all(suspect.iter().map(|b| self.pool.reachable(b))).await;
            let back: BTreeSet<BookieId> = suspect
                .into_iter()
                .zip(answers)
                .filter_map(|(b, ok)| ok.then_some(b))
                .collect();
            {
                let mut q = self.quarantine.lock();
                for b in &back {
                    q.remove(b);
                }
            }
            bookies.retain(|b| healthy.contains(b) || back.contains(b));
        } else if healthy.len() >= quorum.ensemble {
            bookies = healthy;
        }
        if bookies.len() < quorum.ensemble {
            return Err(StorageError::NotEnoughBookies(format!(
                "need {} bookies, {} available",
                quorum.ensemble,
                bookies.len()
            )));
        }
        let id = self.ids.next().await.map_err(map_meta)?;
        // Spread ledgers over bookies (rotate the list by the ledger id) and over racks.
        let n = bookies.len();
        let rotated: Vec<BookieId> = (0..n)
            .map(|i| bookies[(id.0 as usize + i) % n].clone())
            .collect();
        let source = &self.pool.source;
        let ensemble = placement::choose(
            &rotated,
            quorum.ensemble,
            |b| source.rack(b),
            &BTreeSet::new(),
        );
        let mut md =
            LedgerMetadata::new(id, ensemble.clone(), quorum.write as u32, quorum.ack as u32);
        md.created_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        md.custom_metadata
            .insert(MASTER_KEY.into(), uuid::Uuid::new_v4().simple().to_string());
        md.custom_metadata
            .insert("owner".into(), self.owner.clone());
        self.meta.create_ledger(&md).await.map_err(map_meta)?;
        let mut clients = Vec::new();
        for b in &ensemble {
            clients.push((b.clone(), self.pool.client(b)?));
        }
        let (lac_tx, _) = watch::channel(-1);
        let sh = Arc::new(WriterShared {
            quarantine: self.quarantine.clone(),
            ledger: id.0,
            key: master_key(&md),
            quorum,
            state: Mutex::new(WriterState {
                next: 0,
                lac: -1,
                failed: None,
                length: 0,
                ensemble: clients,
                pending: BTreeMap::new(),
                to_replace: BTreeSet::new(),
                changing: false,
                confirmed_in_change: BTreeMap::new(),
            }),
            lac_tx,
            meta: self.meta.clone(),
            pool: self.pool.clone(),
        });
        sh.spawn_ensemble_check();
        Ok(Arc::new(BookieWriter { sh }))
    }

    async fn recover(&self, ledger: LedgerId) -> Result<Option<EntryId>, StorageError> {
        let ledger = ledger.0;
        let r = crate::recovery::recover(&self.pool, &self.meta, ledger)
            .await
            .map(|last| last.map(EntryId));
        self.closed.lock().remove(&ledger);
        match &r {
            Ok(_) => {
                crate::metrics::METRICS.recoveries.inc();
            }
            Err(e) => {
                crate::metrics::METRICS.recovery_failures.inc();
                warn!(ledger, error = %e, "ledger recovery failed");
            }
        };
        r
    }

    async fn read(
        &self,
        ledger: LedgerId,
        first: EntryId,
        last: EntryId,
    ) -> Result<Vec<Bytes>, StorageError> {
        let (ledger, first, last) = (ledger.0, first.0, last.0);
        let cached = self.closed.lock().get(&ledger).cloned();
        let md = match cached {
            Some(md) => md,
            None => {
                let (md, _) = self.metadata(ledger).await?;
                if md.state == LedgerState::Closed {
                    self.closed.lock().insert(ledger, md.clone());
                }
                return self.read_with(&md, ledger, first, last).await;
            }
        };
        match self.read_with(&md, ledger, first, last).await {
            Ok(v) => Ok(v),
            Err(e) => {
                // Auto-recovery may have moved replicas since the metadata was cached.
                let (fresh, _) = self.metadata(ledger).await?;
                if fresh.ensembles == md.ensembles {
                    return Err(e);
                }
                self.closed.lock().insert(ledger, fresh.clone());
                self.read_with(&fresh, ledger, first, last).await
            }
        }
    }

    async fn delete(&self, ledger: LedgerId) -> Result<(), StorageError> {
        let ledger = ledger.0;
        self.closed.lock().remove(&ledger);
        let md = match self.meta.ledger(LedgerId(ledger)).await.map_err(map_meta)? {
            Some((m, _)) => m,
            None => return Ok(()),
        };
        self.pool.learn(&md).await;
        let bookies: BTreeSet<BookieId> = md
            .ensembles
            .iter()
            .flat_map(|s| s.bookies.iter().cloned())
            .collect();
        let timeout = self.pool.timeouts.request;
        let deletes = bookies.into_iter().map(|b| async move {
            let Ok(c) = self.pool.client(&b) else {
                return;
            };
            match tokio::time::timeout(timeout, c.delete_ledger(ledger)).await {
                Ok(Ok(())) | Ok(Err(ClientError::NoLedger(_))) => {}
                Ok(Err(e)) => warn!(ledger, bookie = %b, error = %e, "delete on bookie failed"),
                Err(_) => warn!(ledger, bookie = %b, "delete on bookie timed out"),
            }
        });
        futures::future::join_all(deletes).await;
        self.meta
            .store()
            .delete(
                &self.meta.paths().ledger(LedgerId(ledger)),
                strata_meta::Expected::Any,
            )
            .await
            .map_err(map_meta)?;
        Ok(())
    }
}

impl WriterShared {
    /// Checks every [`Timeouts::ensemble_check`] that the ensemble's bookies are registered; one
    /// missing at two checks in a row is replaced (an ensemble change with nothing pending is a
    /// new segment from the next entry). Ends with the writer (closed, failed or dropped).
    fn spawn_ensemble_check(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = self.pool.timeouts.ensemble_check;
        tokio::spawn(async move {
            let mut suspects: BTreeSet<BookieId> = BTreeSet::new();
            loop {
                tokio::time::sleep(every).await;
                let Some(sh) = weak.upgrade() else {
                    return;
                };
                let ids: Vec<BookieId> = {
                    let st = sh.state.lock();
                    if st.failed.is_some() {
                        return;
                    }
                    st.ensemble.iter().map(|(b, _)| b.clone()).collect()
                };
                let gone: BTreeSet<BookieId> =
                    sh.pool.source.gone(&ids).await.into_iter().collect();
                for b in gone.intersection(&suspects) {
                    if sh.bookie_failed(b.clone()) {
                        warn!(ledger = sh.ledger, bookie = %b, "ensemble bookie is no longer registered");
                    }
                }
                suspects = gone;
            }
        });
    }

    /// Writes `entry` to one bookie; the result is accounted by [`Self::on_result`].
    fn spawn_write(
        self: &Arc<Self>,
        entry: u64,
        b: BookieId,
        c: BookieClient,
        data: Bytes,
        lac: i64,
    ) {
        let sh = self.clone();
        let timeout = self.pool.timeouts.add;
        tokio::spawn(async move {
            let r = match tokio::time::timeout(
                timeout,
                c.add(sh.ledger, entry, sh.key.clone(), lac, data),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(ClientError::Unavailable(format!(
                    "add timed out after {timeout:?}"
                ))),
            };
            sh.on_result(entry, b, r);
        });
    }

    /// Counts an acknowledgement (from a bookie of the entry's current write set that is not
    /// being replaced) and advances the LAC over entries with Qa acknowledgements; a failure
    /// starts an ensemble change, a fence fails the writer.
    fn on_result(self: &Arc<Self>, entry: u64, b: BookieId, r: Result<(), ClientError>) {
        match r {
            Ok(()) => {
                let (qw, qa) = (self.quorum.write, self.quorum.ack.max(1));
                let mut st = self.state.lock();
                if st.failed.is_some() || st.to_replace.contains(&b) {
                    return;
                }
                let e = st.ensemble.len();
                let counts = st
                    .ensemble
                    .iter()
                    .enumerate()
                    .any(|(i, (x, _))| *x == b && in_write_set(i, entry, e, qw));
                if !counts {
                    return;
                }
                if let Some(p) = st.pending.get_mut(&entry) {
                    p.acks.insert(b);
                }
                let mut advanced = false;
                loop {
                    let next = (st.lac + 1) as u64;
                    match st.pending.get(&next) {
                        Some(p) if p.acks.len() >= qa => {
                            if let Some(p) = st.pending.remove(&next) {
                                if let Some(done) = p.done {
                                    let _ = done.send(());
                                }
                                if st.changing {
                                    st.confirmed_in_change.insert(next, p.data);
                                }
                            }
                            st.lac += 1;
                            advanced = true;
                        }
                        _ => break,
                    }
                }
                if advanced {
                    let lac = st.lac;
                    drop(st);
                    self.lac_tx.send_replace(lac);
                }
            }
            Err(ClientError::Fenced(_)) => self.fail(StorageError::Fenced(self.ledger)),
            Err(e) => {
                crate::metrics::METRICS.add_failures.inc();
                self.quarantine
                    .lock()
                    .insert(b.clone(), std::time::Instant::now());
                if self.bookie_failed(b.clone()) {
                    warn!(ledger = self.ledger, entry, bookie = %b, error = %e, "bookie write failed");
                } else {
                    tracing::debug!(ledger = self.ledger, entry, bookie = %b, error = %e, "bookie write failed");
                }
            }
        }
    }

    /// Starts replacing `b` in the ensemble (once) unless it was already replaced; its
    /// acknowledgements of unconfirmed entries stop counting now. Whether `b` was newly marked.
    fn bookie_failed(self: &Arc<Self>, b: BookieId) -> bool {
        let start = {
            let mut st = self.state.lock();
            if st.failed.is_some()
                || st.to_replace.contains(&b)
                || !st.ensemble.iter().any(|(x, _)| *x == b)
            {
                return false;
            }
            for p in st.pending.values_mut() {
                p.acks.remove(&b);
            }
            st.to_replace.insert(b);
            !std::mem::replace(&mut st.changing, true)
        };
        if start {
            let sh = self.clone();
            tokio::spawn(async move { sh.change_ensemble().await });
        }
        true
    }

    /// Gives up on the ledger: pending and later adds fail (the managed ledger rolls over).
    fn fail(&self, e: StorageError) {
        let mut st = self.state.lock();
        if st.failed.is_none() {
            warn!(ledger = self.ledger, error = %e, "ledger writer failed");
        }
        st.failed.get_or_insert(e);
        st.pending.clear();
        st.confirmed_in_change.clear();
        st.changing = false;
        drop(st);
        self.lac_tx.send_modify(|_| {});
    }

    /// Replaces failed bookies one by one: the new ensemble (from the first unconfirmed entry on)
    /// is committed to the ledger metadata (CAS; re-read and re-applied on conflict, e.g. when
    /// auto-recovery changed an earlier segment) before any entry is written to the replacement,
    /// so no add that depends on it is acknowledged earlier; pending entries whose write set
    /// contains the replaced slot are then written to the replacement.
    async fn change_ensemble(self: Arc<Self>) {
        loop {
            let (failed, ids, first) = {
                let mut st = self.state.lock();
                if st.failed.is_some() {
                    return;
                }
                let Some(f) = st.to_replace.iter().next().cloned() else {
                    st.changing = false;
                    st.confirmed_in_change.clear();
                    return;
                };
                if !st.ensemble.iter().any(|(x, _)| *x == f) {
                    st.to_replace.remove(&f);
                    continue;
                }
                let ids: Vec<BookieId> = st.ensemble.iter().map(|(b, _)| b.clone()).collect();
                (f, ids, (st.lac + 1) as u64)
            };
            let avoid: BTreeSet<BookieId> = {
                let mut q = self.quarantine.lock();
                q.retain(|_, since| since.elapsed() < QUARANTINE);
                q.keys().cloned().collect()
            };
            let r = match self.pool.replacement(&ids, &failed, &avoid).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    crate::metrics::METRICS.not_enough_bookies.inc();
                    return self.fail(StorageError::NotEnoughBookies(format!(
                        "no bookie to replace {failed} in the ensemble of ledger {}",
                        self.ledger
                    )));
                }
                Err(e) => return self.fail(e),
            };
            let client = match self.pool.client(&r) {
                Ok(c) => c,
                Err(e) => return self.fail(e),
            };
            let Some(idx) = ids.iter().position(|b| *b == failed) else {
                continue;
            };
            let mut new_ids = ids.clone();
            new_ids[idx] = r.clone();
            let seg_ids = new_ids.clone();
            let committed = self
                .meta
                .update_ledger(LedgerId(self.ledger), move |mut m| {
                    if m.state != LedgerState::Open {
                        return Err(strata_meta::MetaError::InvalidArgument(
                            "ledger is no longer open (fenced)".into(),
                        ));
                    }
                    match m.ensembles.last_mut() {
                        Some(last) if last.first_entry.0 >= first => last.bookies = seg_ids.clone(),
                        _ => m.ensembles.push(strata_meta::model::EnsembleSegment {
                            first_entry: EntryId(first),
                            bookies: seg_ids.clone(),
                        }),
                    }
                    Ok(Some(m))
                })
                .await;
            match committed {
                Ok(_) => {}
                Err(strata_meta::MetaError::InvalidArgument(_)) => {
                    return self.fail(StorageError::Fenced(self.ledger));
                }
                Err(e) => return self.fail(map_meta(e)),
            }
            let (resend, lac) = {
                let mut st = self.state.lock();
                st.ensemble[idx] = (r.clone(), client.clone());
                st.to_replace.remove(&failed);
                let (e, qw) = (st.ensemble.len(), self.quorum.write);
                let confirmed = st
                    .confirmed_in_change
                    .range(first..)
                    .map(|(entry, d)| (*entry, d.clone()));
                let resend: Vec<(u64, Bytes)> = st
                    .pending
                    .range(first..)
                    .map(|(entry, p)| (*entry, p.data.clone()))
                    .chain(confirmed)
                    .filter(|(entry, _)| in_write_set(idx, *entry, e, qw))
                    .collect();
                (resend, st.lac)
            };
            crate::metrics::METRICS.ensemble_changes.inc();
            info!(ledger = self.ledger, replaced = %failed, by = %r, from_entry = first, resent = resend.len(), "ensemble changed");
            for (entry, data) in resend {
                self.spawn_write(entry, r.clone(), client.clone(), data, lac);
            }
        }
    }
}

impl LedgerWriter for BookieWriter {
    fn ledger_id(&self) -> LedgerId {
        LedgerId(self.sh.ledger)
    }

    fn add(&self, data: Bytes) -> BoxFuture<'static, Result<EntryId, StorageError>> {
        let sh = self.sh.clone();
        let qw = sh.quorum.write;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let (entry, lac, targets) = {
            let mut st = sh.state.lock();
            if let Some(f) = st.failed.clone() {
                return Box::pin(async move { Err(f) });
            }
            let entry = st.next;
            st.next += 1;
            st.length += data.len() as u64;
            st.pending.insert(
                entry,
                PendingAdd {
                    data: data.clone(),
                    acks: BTreeSet::new(),
                    done: Some(done_tx),
                },
            );
            let e = st.ensemble.len();
            let targets: Vec<(BookieId, BookieClient)> = (0..e)
                .filter(|&i| in_write_set(i, entry, e, qw))
                .map(|i| st.ensemble[i].clone())
                .collect();
            (entry, st.lac, targets)
        };
        // Issue the writes now so the entry order does not depend on when the future is polled.
        for (b, c) in targets {
            sh.spawn_write(entry, b, c, data.clone(), lac);
        }
        Box::pin(async move {
            match done_rx.await {
                Ok(()) => Ok(EntryId(entry)),
                Err(_) => Err(sh
                    .state
                    .lock()
                    .failed
                    .clone()
                    .unwrap_or_else(|| StorageError::Unavailable("writer dropped".into()))),
            }
        })
    }

    fn close(&self) -> BoxFuture<'static, Result<Option<EntryId>, StorageError>> {
        let sh = self.sh.clone();
        let mut lac_rx = sh.lac_tx.subscribe();
        Box::pin(async move {
            let ledger = sh.ledger;
            // Wait for pending adds (the managed ledger drains them first; this is a backstop).
            loop {
                let (next, lac, failed) = {
                    let st = sh.state.lock();
                    (st.next, st.lac, st.failed.is_some())
                };
                if failed || lac + 1 >= next as i64 {
                    break;
                }
                if lac_rx.changed().await.is_err() {
                    break;
                }
            }
            let (lac, length, fenced) = {
                let mut st = sh.state.lock();
                let fenced = matches!(st.failed, Some(StorageError::Fenced(_)));
                st.failed.get_or_insert(StorageError::Closed(ledger));
                st.pending.clear();
                (st.lac, st.length, fenced)
            };
            if fenced {
                return Err(StorageError::Fenced(ledger));
            }
            let last = (lac >= 0).then_some(lac as u64);
            let r = sh
                .meta
                .update_ledger(LedgerId(ledger), |mut m| match m.state {
                    LedgerState::Closed if m.last_entry_id == last.map(EntryId) => Ok(None),
                    LedgerState::Open => {
                        m.state = LedgerState::Closed;
                        m.last_entry_id = last.map(EntryId);
                        m.length = length;
                        Ok(Some(m))
                    }
                    // Another owner is recovering (or recovered) it: it decides the last entry.
                    _ => Err(strata_meta::MetaError::InvalidArgument(
                        "ledger fenced by recovery".into(),
                    )),
                })
                .await;
            match r {
                Ok(_) => Ok(last.map(EntryId)),
                Err(strata_meta::MetaError::InvalidArgument(_)) => {
                    Err(StorageError::Fenced(ledger))
                }
                Err(e) => Err(map_meta(e)),
            }
        })
    }
}
