//! The ledger client: [`LedgerStorage`] over bookies (`strata_bookie::BookieClient`) with ledger
//! metadata in the metadata store (`strata_meta::model::LedgerMetadata`).
//!
//! - A ledger has an ensemble of E bookies, write quorum Qw and ack quorum Qa (standalone: 1/1/1).
//!   Entry `e` goes to the Qw bookies `ensemble[(e + i) % E]`, `i < Qw`; an add completes when Qa
//!   of them acknowledged it *and* every earlier entry completed, so completions are in order.
//! - The writer passes its last-add-confirmed with each add (bookies learn the LAC).
//! - `recover` fences the ledger on the bookies of its last ensemble (with the ledger's master
//!   key), takes the highest entry any of them stored, checks forward that entries are readable,
//!   and closes the ledger metadata at the last readable one (CAS). A writer that is fenced gets
//!   `Fenced` errors from then on.
//!
//! - Ensemble change: a bookie that fails a write (or times out after [`ADD_TIMEOUT`]) is replaced
//!   by one outside the ensemble; the new segment (from the first unconfirmed entry) is committed
//!   to the ledger metadata before the replacement is written to, then pending entries of that
//!   slot are re-sent. Without a spare the writer fails (`NotEnoughBookies`).
//!
//! Not built yet (issue 5): writing recovered entries back to a full write quorum, speculative
//! reads, rack-aware placement.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use strata_bookie::{BookieClient, ClientError};
use strata_meta::model::{LedgerMetadata, LedgerState, MetaClient};
use strata_proto::{BookieId, EntryId, LedgerId};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::storage::{LedgerStorage, LedgerWriter, StorageError};

/// Ensemble size, write quorum, ack quorum.
#[derive(Debug, Clone, Copy)]
pub struct Quorum {
    /// E.
    pub ensemble: usize,
    /// Qw.
    pub write: usize,
    /// Qa.
    pub ack: usize,
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
/// ensembles; every registered one can be addressed (its advertised gRPC address).
pub struct RegisteredBookies {
    meta: MetaClient,
    addresses: Mutex<HashMap<BookieId, String>>,
}

impl RegisteredBookies {
    /// Bookies from `meta`'s registry.
    pub fn new(meta: MetaClient) -> Self {
        Self {
            meta,
            addresses: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl BookieSource for RegisteredBookies {
    async fn bookies(&self) -> Result<Vec<BookieId>, StorageError> {
        let all = self.meta.bookies().await.map_err(map_meta)?;
        let mut addrs = self.addresses.lock();
        let mut out = Vec::new();
        for b in all {
            addrs.insert(b.bookie_id.clone(), b.address.clone());
            if !b.read_only {
                out.push(b.bookie_id);
            }
        }
        out.sort();
        Ok(out)
    }
    fn address(&self, id: &BookieId) -> String {
        self.addresses
            .lock()
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.0.clone())
    }
}

fn map_client(ledger: u64, e: ClientError) -> StorageError {
    match e {
        ClientError::Fenced(_) => StorageError::Fenced(ledger),
        ClientError::NoLedger(_) => StorageError::NoSuchLedger(ledger),
        ClientError::NoEntry(m) => StorageError::Other(format!("no such entry: {m}")),
        e if e.is_retryable() => StorageError::Unavailable(e.to_string()),
        e => StorageError::Other(e.to_string()),
    }
}

fn map_meta(e: strata_meta::MetaError) -> StorageError {
    if e.is_retryable() {
        StorageError::Unavailable(e.to_string())
    } else {
        StorageError::Other(e.to_string())
    }
}

/// Ledger storage over bookies.
pub struct BookieLedgerStorage {
    meta: MetaClient,
    ids: strata_meta::model::LedgerIdAllocator,
    source: Arc<dyn BookieSource>,
    quorum: Quorum,
    clients: Arc<tokio::sync::Mutex<HashMap<BookieId, BookieClient>>>,
    owner: String,
    /// Metadata of closed ledgers (immutable until deleted), so catch-up reads skip the store.
    closed: Mutex<HashMap<u64, LedgerMetadata>>,
    quarantine: Quarantine,
}

const MASTER_KEY: &str = "master_key";

impl BookieLedgerStorage {
    /// A ledger client; `owner` is recorded in each ledger's metadata.
    pub fn new(
        meta: MetaClient,
        source: Arc<dyn BookieSource>,
        quorum: Quorum,
        owner: &str,
    ) -> Self {
        let ids = meta.ledger_id_allocator(100);
        Self {
            meta,
            ids,
            source,
            quorum,
            clients: Arc::new(tokio::sync::Mutex::new(HashMap::new())),
            closed: Mutex::new(HashMap::new()),
            quarantine: Arc::default(),
            owner: owner.to_owned(),
        }
    }

    async fn client(&self, b: &BookieId) -> Result<BookieClient, StorageError> {
        let mut g = self.clients.lock().await;
        if let Some(c) = g.get(b) {
            return Ok(c.clone());
        }
        let addr = self.source.address(b);
        let c = BookieClient::connect(&addr)
            .await
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        g.insert(b.clone(), c.clone());
        Ok(c)
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
}

fn master_key(m: &LedgerMetadata) -> Bytes {
    Bytes::from(
        m.custom_metadata
            .get(MASTER_KEY)
            .cloned()
            .unwrap_or_default()
            .into_bytes(),
    )
}

fn write_set(ensemble: &[BookieId], entry: u64, qw: usize) -> Vec<BookieId> {
    let e = ensemble.len().max(1);
    (0..qw.min(e))
        .map(|i| ensemble[(entry as usize + i) % e].clone())
        .collect()
}

struct WriterState {
    next: u64,
    lac: i64,
    done: BTreeSet<u64>,
    failed: Option<StorageError>,
    length: u64,
    /// The current ensemble (positions are stable: a replacement takes the failed bookie's slot).
    ensemble: Vec<(BookieId, BookieClient)>,
    /// Entries not yet confirmed: their data and the channel their add future listens on.
    pending: BTreeMap<u64, (Bytes, AckTx)>,
    /// Bookies of the current ensemble that failed a write and must be replaced.
    to_replace: BTreeSet<BookieId>,
    /// An ensemble change task is running.
    changing: bool,
}

type AckTx = tokio::sync::mpsc::UnboundedSender<(BookieId, Result<(), ClientError>)>;

/// Bookies that recently failed a write, and since when; new ensembles avoid them for
/// [`QUARANTINE`] (registrations of dead bookies can outlive them by a session TTL).
type Quarantine = Arc<Mutex<HashMap<BookieId, std::time::Instant>>>;

/// A bookie that does not acknowledge an add within this time counts as failed for it.
pub const ADD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a bookie that failed a write is left out of new ensembles.
pub const QUARANTINE: std::time::Duration = std::time::Duration::from_secs(30);

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
    source: Arc<dyn BookieSource>,
    clients: Arc<tokio::sync::Mutex<HashMap<BookieId, BookieClient>>>,
}

#[async_trait]
impl LedgerStorage for BookieLedgerStorage {
    async fn create(&self) -> Result<Arc<dyn LedgerWriter>, StorageError> {
        let mut bookies = self.source.bookies().await?;
        {
            // Leave out bookies that failed recently, as long as enough others remain.
            let mut q = self.quarantine.lock();
            q.retain(|_, since| since.elapsed() < QUARANTINE);
            let healthy: Vec<BookieId> = bookies
                .iter()
                .filter(|b| !q.contains_key(*b))
                .cloned()
                .collect();
            if healthy.len() >= self.quorum.ensemble {
                bookies = healthy;
            }
        }
        if bookies.len() < self.quorum.ensemble {
            return Err(StorageError::NotEnoughBookies(format!(
                "need {} bookies, {} available",
                self.quorum.ensemble,
                bookies.len()
            )));
        }
        let id = self.ids.next().await.map_err(map_meta)?;
        // Spread ledgers over bookies: rotate the list by the ledger id.
        let n = bookies.len();
        let ensemble: Vec<BookieId> = (0..self.quorum.ensemble)
            .map(|i| bookies[(id.0 as usize + i) % n].clone())
            .collect();
        let mut md = LedgerMetadata::new(
            id,
            ensemble.clone(),
            self.quorum.write as u32,
            self.quorum.ack as u32,
        );
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
            clients.push((b.clone(), self.client(b).await?));
        }
        let (lac_tx, _) = watch::channel(-1);
        Ok(Arc::new(BookieWriter {
            sh: Arc::new(WriterShared {
                quarantine: self.quarantine.clone(),
                ledger: id.0,
                key: master_key(&md),
                quorum: self.quorum,
                state: Mutex::new(WriterState {
                    next: 0,
                    lac: -1,
                    done: BTreeSet::new(),
                    failed: None,
                    length: 0,
                    ensemble: clients,
                    pending: BTreeMap::new(),
                    to_replace: BTreeSet::new(),
                    changing: false,
                }),
                lac_tx,
                meta: self.meta.clone(),
                source: self.source.clone(),
                clients: self.clients.clone(),
            }),
        }))
    }

    async fn recover(&self, ledger: u64) -> Result<Option<u64>, StorageError> {
        let (md, _) = self.metadata(ledger).await?;
        if md.state == LedgerState::Closed {
            return Ok(md.last_entry_id.map(|e| e.0));
        }
        let key = master_key(&md);
        let _ = self
            .meta
            .update_ledger(LedgerId(ledger), |mut m| {
                if m.state == LedgerState::Open {
                    m.state = LedgerState::InRecovery;
                    Ok(Some(m))
                } else {
                    Ok(None)
                }
            })
            .await
            .map_err(map_meta)?;
        let bookies: Vec<BookieId> = md
            .ensembles
            .last()
            .map(|s| s.bookies.clone())
            .unwrap_or_default();
        let mut last: i64 = -1;
        let mut fenced = 0;
        for b in &bookies {
            match self.client(b).await {
                Ok(c) => match c.fence(ledger, key.clone()).await {
                    Ok(r) => {
                        fenced += 1;
                        last = last.max(r.last_entry).max(r.lac);
                    }
                    Err(ClientError::NoLedger(_)) => fenced += 1,
                    Err(e) => warn!(ledger, bookie = %b, error = %e, "fence failed"),
                },
                Err(e) => {
                    warn!(ledger, bookie = %b, error = %e, "bookie unreachable during recovery")
                }
            }
        }
        // Enough bookies must be fenced that the old writer cannot reach an ack quorum.
        let needed = bookies.len().saturating_sub(md.ack_quorum as usize) + 1;
        if fenced < needed.min(bookies.len()) {
            return Err(StorageError::Unavailable(format!(
                "fenced {fenced} of {} bookies of ledger {ledger}",
                bookies.len()
            )));
        }
        // Check forward that entries up to `last` are readable; stop at the first gap.
        let mut confirmed: i64 = -1;
        if last >= 0 {
            let data = self.read(ledger, 0, last as u64).await;
            confirmed = match data {
                Ok(v) => v.len() as i64 - 1,
                Err(_) => {
                    let mut c = -1;
                    for e in 0..=last as u64 {
                        if self.read(ledger, e, e).await.is_ok() {
                            c = e as i64;
                        } else {
                            break;
                        }
                    }
                    c
                }
            };
        }
        let last_entry = (confirmed >= 0).then_some(EntryId(confirmed as u64));
        self.meta
            .update_ledger(LedgerId(ledger), |mut m| {
                if m.state == LedgerState::Closed {
                    return Ok(None);
                }
                m.state = LedgerState::Closed;
                m.last_entry_id = last_entry;
                Ok(Some(m))
            })
            .await
            .map_err(map_meta)?;
        let (md, _) = self.metadata(ledger).await?;
        info!(ledger, last = ?md.last_entry_id, "ledger recovered");
        Ok(md.last_entry_id.map(|e| e.0))
    }

    async fn read(&self, ledger: u64, first: u64, last: u64) -> Result<Vec<Bytes>, StorageError> {
        let cached = self.closed.lock().get(&ledger).cloned();
        let md = match cached {
            Some(md) => md,
            None => {
                let (md, _) = self.metadata(ledger).await?;
                if md.state == LedgerState::Closed {
                    self.closed.lock().insert(ledger, md.clone());
                }
                md
            }
        };
        let mut out = Vec::with_capacity((last.saturating_sub(first) + 1).min(1024) as usize);
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
            let candidates = write_set(&seg.bookies, next, md.write_quorum as usize);
            let mut got = None;
            let mut last_err =
                StorageError::Unavailable(format!("no replica of {ledger}:{next} answered"));
            for b in &candidates {
                let c = match self.client(b).await {
                    Ok(c) => c,
                    Err(e) => {
                        last_err = e;
                        continue;
                    }
                };
                // With E > Qw a bookie holds only its stripe: read one entry at a time then.
                let to = if seg.bookies.len() as u32 <= md.write_quorum {
                    upto
                } else {
                    next
                };
                match c.read_range(ledger, next, to, 0).await {
                    Ok(v) if !v.is_empty() => {
                        got = Some(v);
                        break;
                    }
                    Ok(_) => last_err = StorageError::NoSuchEntry(ledger, next),
                    Err(e) => last_err = map_client(ledger, e),
                }
            }
            let v = got.ok_or(last_err)?;
            for (eid, payload) in v {
                if eid != next {
                    return Err(StorageError::Other(format!(
                        "bookie returned entry {eid}, expected {next}"
                    )));
                }
                out.push(payload);
                next += 1;
            }
        }
        Ok(out)
    }

    async fn delete(&self, ledger: u64) -> Result<(), StorageError> {
        self.closed.lock().remove(&ledger);
        let md = match self.meta.ledger(LedgerId(ledger)).await.map_err(map_meta)? {
            Some((m, _)) => m,
            None => return Ok(()),
        };
        let bookies: BTreeSet<BookieId> = md
            .ensembles
            .iter()
            .flat_map(|s| s.bookies.iter().cloned())
            .collect();
        for b in bookies {
            if let Ok(c) = self.client(&b).await
                && let Err(e) = c.delete_ledger(ledger).await
                && !matches!(e, ClientError::NoLedger(_))
            {
                warn!(ledger, bookie = %b, error = %e, "delete on bookie failed");
            }
        }
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

/// Whether ensemble slot `idx` is in the write set of `entry` (E = `e`, Qw = `qw`).
fn in_write_set(idx: usize, entry: u64, e: usize, qw: usize) -> bool {
    let e = e.max(1);
    ((idx + e - (entry % e as u64) as usize) % e) < qw
}

impl WriterShared {
    /// Writes `entry` to one bookie; the result goes to the entry's add future.
    fn spawn_write(
        self: &Arc<Self>,
        entry: u64,
        b: BookieId,
        c: BookieClient,
        data: Bytes,
        lac: i64,
        tx: AckTx,
    ) {
        let sh = self.clone();
        tokio::spawn(async move {
            let r = match tokio::time::timeout(
                ADD_TIMEOUT,
                c.add(sh.ledger, entry, sh.key.clone(), lac, data),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(ClientError::Unavailable(format!(
                    "add timed out after {ADD_TIMEOUT:?}"
                ))),
            };
            if let Err(e) = &r
                && !matches!(e, ClientError::Fenced(_))
            {
                warn!(ledger = sh.ledger, entry, bookie = %b, error = %e, "bookie write failed");
                sh.quarantine
                    .lock()
                    .insert(b.clone(), std::time::Instant::now());
                sh.bookie_failed(b.clone());
            }
            let _ = tx.send((b, r));
        });
    }

    /// Starts replacing `b` in the ensemble (once) unless it was already replaced.
    fn bookie_failed(self: &Arc<Self>, b: BookieId) {
        let start = {
            let mut st = self.state.lock();
            if st.failed.is_some() || !st.ensemble.iter().any(|(x, _)| *x == b) {
                return;
            }
            st.to_replace.insert(b);
            !std::mem::replace(&mut st.changing, true)
        };
        if start {
            let sh = self.clone();
            tokio::spawn(async move { sh.change_ensemble().await });
        }
    }

    /// Gives up on the ledger: pending and later adds fail (the managed ledger rolls over).
    fn fail(&self, e: StorageError) {
        warn!(ledger = self.ledger, error = %e, "ledger writer failed");
        let mut st = self.state.lock();
        st.failed.get_or_insert(e);
        st.pending.clear();
        st.changing = false;
        drop(st);
        self.lac_tx.send_modify(|_| {});
    }

    /// Replaces failed bookies one by one: the new ensemble (from the first unconfirmed entry on)
    /// is committed to the ledger metadata (CAS) before any entry is written to the replacement,
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
                    return;
                };
                if !st.ensemble.iter().any(|(x, _)| *x == f) {
                    st.to_replace.remove(&f);
                    continue;
                }
                let ids: Vec<BookieId> = st.ensemble.iter().map(|(b, _)| b.clone()).collect();
                (f, ids, (st.lac + 1) as u64)
            };
            let all = match self.source.bookies().await {
                Ok(v) => v,
                Err(e) => return self.fail(e),
            };
            let candidate = {
                let mut q = self.quarantine.lock();
                q.retain(|_, since| since.elapsed() < QUARANTINE);
                all.into_iter()
                    .find(|b| !ids.contains(b) && !q.contains_key(b))
            };
            let Some(r) = candidate else {
                return self.fail(StorageError::NotEnoughBookies(format!(
                    "no bookie to replace {failed} in the ensemble of ledger {}",
                    self.ledger
                )));
            };
            let client = {
                let mut g = self.clients.lock().await;
                match g.get(&r) {
                    Some(c) => c.clone(),
                    None => match BookieClient::connect(&self.source.address(&r)).await {
                        Ok(c) => {
                            g.insert(r.clone(), c.clone());
                            c
                        }
                        Err(e) => {
                            warn!(ledger = self.ledger, bookie = %r, error = %e, "replacement bookie unreachable");
                            self.quarantine.lock().insert(r, std::time::Instant::now());
                            continue;
                        }
                    },
                }
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
            if let Err(e) = committed {
                return self.fail(map_meta(e));
            }
            let (resend, lac) = {
                let mut st = self.state.lock();
                st.ensemble[idx] = (r.clone(), client.clone());
                st.to_replace.remove(&failed);
                let (e, qw) = (st.ensemble.len(), self.quorum.write);
                let resend: Vec<(u64, Bytes, AckTx)> = st
                    .pending
                    .range(first..)
                    .filter(|(entry, _)| in_write_set(idx, **entry, e, qw))
                    .map(|(entry, (d, tx))| (*entry, d.clone(), tx.clone()))
                    .collect();
                (resend, st.lac)
            };
            info!(ledger = self.ledger, replaced = %failed, by = %r, from_entry = first, resent = resend.len(), "ensemble changed");
            for (entry, data, tx) in resend {
                self.spawn_write(entry, r.clone(), client.clone(), data, lac, tx);
            }
        }
    }
}

impl LedgerWriter for BookieWriter {
    fn ledger_id(&self) -> u64 {
        self.sh.ledger
    }

    fn add(&self, data: Bytes) -> BoxFuture<'static, Result<u64, StorageError>> {
        let sh = self.sh.clone();
        let qw = sh.quorum.write;
        let qa = sh.quorum.ack.max(1);
        let (entry, lac, targets, mut rx, tx) = {
            let mut st = sh.state.lock();
            if let Some(f) = st.failed.clone() {
                return Box::pin(async move { Err(f) });
            }
            let entry = st.next;
            st.next += 1;
            st.length += data.len() as u64;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            st.pending.insert(entry, (data.clone(), tx.clone()));
            let e = st.ensemble.len();
            let targets: Vec<(BookieId, BookieClient)> = (0..e)
                .filter(|&i| in_write_set(i, entry, e, qw))
                .map(|i| st.ensemble[i].clone())
                .collect();
            (entry, st.lac, targets, rx, tx)
        };
        // Issue the writes now so the entry order does not depend on when the future is polled.
        for (b, c) in targets {
            sh.spawn_write(entry, b, c, data.clone(), lac, tx.clone());
        }
        drop(tx);
        let mut lac_rx = sh.lac_tx.subscribe();
        Box::pin(async move {
            let ledger = sh.ledger;
            let mut acked: BTreeSet<BookieId> = BTreeSet::new();
            let mut last_err = None;
            while acked.len() < qa {
                match rx.recv().await {
                    Some((b, Ok(()))) => {
                        acked.insert(b);
                    }
                    Some((_, Err(ClientError::Fenced(m)))) => {
                        let e = map_client(ledger, ClientError::Fenced(m));
                        sh.fail(e.clone());
                        return Err(e);
                    }
                    // A failed write: the ensemble change (if any) sends the entry elsewhere.
                    Some((_, Err(e))) => last_err = Some(map_client(ledger, e)),
                    None => {
                        let st = sh.state.lock();
                        return Err(st.failed.clone().or(last_err).unwrap_or_else(|| {
                            StorageError::Unavailable("ack quorum not reached".into())
                        }));
                    }
                }
            }
            // Complete in order: advance the LAC over contiguous finished entries.
            {
                let mut st = sh.state.lock();
                st.pending.remove(&entry);
                st.done.insert(entry);
                let mut advanced = false;
                loop {
                    let next = (st.lac + 1) as u64;
                    if !st.done.remove(&next) {
                        break;
                    }
                    st.lac += 1;
                    advanced = true;
                }
                if advanced {
                    let lac = st.lac;
                    sh.lac_tx.send_replace(lac);
                }
            }
            loop {
                if *lac_rx.borrow_and_update() >= entry as i64 {
                    return Ok(entry);
                }
                if let Some(f) = sh.state.lock().failed.clone() {
                    return Err(f);
                }
                if lac_rx.changed().await.is_err() {
                    return Err(StorageError::Unavailable("writer dropped".into()));
                }
            }
        })
    }

    fn close(&self) -> BoxFuture<'static, Result<Option<u64>, StorageError>> {
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
            let (lac, length) = {
                let mut st = sh.state.lock();
                st.failed.get_or_insert(StorageError::Closed(ledger));
                st.pending.clear();
                (st.lac, st.length)
            };
            let last = (lac >= 0).then_some(lac as u64);
            sh.meta
                .update_ledger(LedgerId(ledger), |mut m| {
                    if m.state == LedgerState::Closed {
                        return Ok(None);
                    }
                    m.state = LedgerState::Closed;
                    m.last_entry_id = last.map(EntryId);
                    m.length = length;
                    Ok(Some(m))
                })
                .await
                .map_err(map_meta)?;
            Ok(last)
        })
    }
}
