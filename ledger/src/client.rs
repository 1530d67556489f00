//! The ledger client: [`LedgerStorage`] over bookies (`strata_bookie_client::BookieClient`) with
//! ledger metadata in the metadata store (`strata_meta::model::LedgerMetadata`).
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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use strata_bookie_client::ClientError;
use strata_meta::model::{LedgerMetadata, LedgerState, MetaClient};
use strata_proto::{BookieId, EntryId, LedgerId};
use tracing::warn;

pub use crate::bookies::{BookieSource, InProcessBookie, RegisteredBookies, StaticBookies};
pub use crate::config::{ADD_TIMEOUT, MAX_ENSEMBLE, Quorum, Timeouts};
use crate::error_map::map_meta;
use crate::placement;
use crate::pool::Pool;
pub use crate::quarantine::QUARANTINE;
use crate::quarantine::Quarantine;
use crate::storage::{CreateOptions, LedgerStorage, LedgerWriter, StorageError};
use crate::write_set::{MASTER_KEY, master_key, write_set};
use crate::writer;

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
        crate::ledger_md::read(&self.meta, ledger).await
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

#[async_trait]
impl LedgerStorage for BookieLedgerStorage {
    async fn create(&self, opts: CreateOptions) -> Result<Arc<dyn LedgerWriter>, StorageError> {
        let quorum = opts.quorum.unwrap_or(self.quorum);
        if !quorum.is_valid() {
            return Err(StorageError::Other(format!(
                "invalid quorum E={} Qw={} Qa={}: need 1 <= Qa <= Qw <= E <= {}",
                quorum.ensemble, quorum.write, quorum.ack, MAX_ENSEMBLE
            )));
        }
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
        md.created_at_ms = strata_common::clock::now_ms();
        md.custom_metadata
            .insert(MASTER_KEY.into(), uuid::Uuid::new_v4().simple().to_string());
        md.custom_metadata
            .insert("owner".into(), self.owner.clone());
        self.meta.create_ledger(&md).await.map_err(map_meta)?;
        let mut clients = Vec::new();
        for b in &ensemble {
            clients.push((b.clone(), self.pool.client(b)?));
        }
        Ok(writer::open(
            id.0,
            master_key(&md),
            clients,
            quorum,
            self.meta.clone(),
            self.pool.clone(),
            self.quarantine.clone(),
        ))
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
