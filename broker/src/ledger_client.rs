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
//! Not built yet (issue 5): ensemble changes on bookie failure, writing recovered entries back to
//! a full write quorum, speculative reads.

use std::collections::{BTreeSet, HashMap};
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
    clients: tokio::sync::Mutex<HashMap<BookieId, BookieClient>>,
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
            clients: tokio::sync::Mutex::new(HashMap::new()),
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
}

/// Bookies that recently failed a write, and since when; new ensembles avoid them for
/// [`QUARANTINE`] (registrations of dead bookies can outlive them by a session TTL).
type Quarantine = Arc<Mutex<HashMap<BookieId, std::time::Instant>>>;

/// A bookie that does not acknowledge an add within this time counts as failed for it.
pub const ADD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a bookie that failed a write is left out of new ensembles.
pub const QUARANTINE: std::time::Duration = std::time::Duration::from_secs(30);

struct BookieWriter {
    quarantine: Quarantine,
    ledger: u64,
    key: Bytes,
    ensemble: Vec<(BookieId, BookieClient)>,
    quorum: Quorum,
    state: Arc<Mutex<WriterState>>,
    lac_tx: watch::Sender<i64>,
    meta: MetaClient,
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
            quarantine: self.quarantine.clone(),
            ledger: id.0,
            key: master_key(&md),
            ensemble: clients,
            quorum: self.quorum,
            state: Arc::new(Mutex::new(WriterState {
                next: 0,
                lac: -1,
                done: BTreeSet::new(),
                failed: None,
                length: 0,
            })),
            lac_tx,
            meta: self.meta.clone(),
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

impl LedgerWriter for BookieWriter {
    fn ledger_id(&self) -> u64 {
        self.ledger
    }

    fn add(&self, data: Bytes) -> BoxFuture<'static, Result<u64, StorageError>> {
        let (entry, lac, failed) = {
            let mut st = self.state.lock();
            let e = st.next;
            st.next += 1;
            st.length += data.len() as u64;
            (e, st.lac, st.failed.clone())
        };
        if let Some(f) = failed {
            return Box::pin(async move { Err(f) });
        }
        let ledger = self.ledger;
        let e = self.ensemble.len().max(1);
        let targets: Vec<(BookieId, BookieClient)> = (0..self.quorum.write.min(e))
            .map(|i| self.ensemble[(entry as usize + i) % e].clone())
            .collect();
        let qa = self.quorum.ack.max(1);
        // Issue the writes now so the entry order does not depend on when the future is polled.
        let (res_tx, mut res_rx) = tokio::sync::mpsc::channel(targets.len().max(1));
        for (b, c) in targets {
            let (key, data, tx) = (self.key.clone(), data.clone(), res_tx.clone());
            let quarantine = self.quarantine.clone();
            tokio::spawn(async move {
                let r =
                    match tokio::time::timeout(ADD_TIMEOUT, c.add(ledger, entry, key, lac, data))
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
                    warn!(ledger, entry, bookie = %b, error = %e, "bookie write failed; leaving it out of new ensembles for a while");
                    quarantine.lock().insert(b, std::time::Instant::now());
                }
                let _ = tx.send(r).await;
            });
        }
        drop(res_tx);
        let state = self.state.clone();
        let lac_tx = self.lac_tx.clone();
        let mut lac_rx = self.lac_tx.subscribe();
        Box::pin(async move {
            let mut acks = 0;
            let mut err = None;
            while let Some(r) = res_rx.recv().await {
                match r {
                    Ok(()) => {
                        acks += 1;
                        if acks >= qa {
                            break;
                        }
                    }
                    Err(e) => err = Some(map_client(ledger, e)),
                }
            }
            if acks < qa {
                let e = err
                    .unwrap_or_else(|| StorageError::Unavailable("ack quorum not reached".into()));
                state.lock().failed.get_or_insert(e.clone());
                lac_tx.send_modify(|_| {});
                return Err(e);
            }
            // Complete in order: advance the LAC over contiguous finished entries.
            {
                let mut st = state.lock();
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
                    lac_tx.send_replace(lac);
                }
            }
            loop {
                if *lac_rx.borrow_and_update() >= entry as i64 {
                    return Ok(entry);
                }
                if let Some(f) = state.lock().failed.clone() {
                    return Err(f);
                }
                if lac_rx.changed().await.is_err() {
                    return Err(StorageError::Unavailable("writer dropped".into()));
                }
            }
        })
    }

    fn close(&self) -> BoxFuture<'static, Result<Option<u64>, StorageError>> {
        let state = self.state.clone();
        let mut lac_rx = self.lac_tx.subscribe();
        let meta = self.meta.clone();
        let ledger = self.ledger;
        Box::pin(async move {
            // Wait for pending adds (the managed ledger drains them first; this is a backstop).
            loop {
                let (next, lac, failed) = {
                    let st = state.lock();
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
                let mut st = state.lock();
                st.failed.get_or_insert(StorageError::Closed(ledger));
                (st.lac, st.length)
            };
            let last = (lac >= 0).then_some(lac as u64);
            meta.update_ledger(LedgerId(ledger), |mut m| {
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
