//! Tiered storage: closed ledgers of a topic move to object storage and are read back from
//! there transparently.
//!
//! Order of an offload (one ledger): upload under keys carrying the ledger id and a fresh
//! offload id, create-only, data objects first and the index last ([`upload`]) → commit the
//! offload in the ledger's entry of the managed-ledger list (CAS through the topic's writer task;
//! a topic taken over by another broker fails the CAS and commits nothing) → after the deletion
//! lag, delete the bookies' copy and record that (CAS). Objects of attempts that never committed
//! (errors, a killed broker, a lost CAS) and of deleted topics are removed by the [`janitor`];
//! retention and topic deletion remove the committed ones directly.
//!
//! Triggers: the namespace policies `offloadThreshold` (bytes kept on bookies; 0 = every
//! closed ledger) and `offloadThresholdInSeconds`, checked every `check_interval`; and the admin
//! call `PUT .../offload` ([`Offloader::request`]), whose progress `GET .../offload` reports
//! ([`OffloadStatus`]). Reads: [`Tier`].

pub mod config;
pub mod error;
pub mod format;
pub mod janitor;
pub mod keys;
pub mod policy;
pub mod tier;
pub mod upload;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use strata_common::clock::now_ms;
use strata_meta::model::{LedgerOffload, ManagedLedgerLedger, Policies};
use strata_objstore::{ObjStoreConfig, Store};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::OffloadConfig;
pub use error::TierError;
pub use tier::Tier;

use crate::error::BrokerError;
use crate::managed_ledger::ManagedLedger;
use crate::position::Position;
use keys::OffloadKeys;

/// Where an on-demand or policy offload of a topic stands (Pulsar's `OffloadProcessStatus`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OffloadState {
    /// Never ran on this broker.
    #[default]
    NotRun,
    /// Running.
    Running,
    /// The last run offloaded everything it was asked to.
    Success,
    /// The last run failed; nothing was lost (the ledgers stay on the bookies).
    Error(String),
}

/// The status of a topic's offload and the first message still on the bookies.
#[derive(Debug, Clone, Default)]
pub struct OffloadStatus {
    /// State.
    pub state: OffloadState,
    /// First message not offloaded (after the run).
    pub first_unoffloaded: Option<Position>,
}

impl OffloadStatus {
    /// Pulsar's JSON: `{"status","lastError","firstUnoffloadedMessage"}`.
    pub fn to_json(&self, partition: i32) -> Value {
        let (status, err) = match &self.state {
            OffloadState::NotRun => ("NOT_RUN", ""),
            OffloadState::Running => ("RUNNING", ""),
            OffloadState::Success => ("SUCCESS", ""),
            OffloadState::Error(e) => ("ERROR", e.as_str()),
        };
        let p = self
            .first_unoffloaded
            .unwrap_or(Position::new(u64::MAX >> 1, -1));
        json!({
            "status": status,
            "lastError": err,
            "firstUnoffloadedMessage": {
                "ledgerId": p.ledger, "entryId": p.entry, "partitionIndex": partition,
            },
        })
    }
}

/// How long removing a failed attempt's objects may take before it is left to the janitor.
const CLEANUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A second offload of a topic was asked for while one runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an offload of this topic is already running")]
pub struct AlreadyRunning;

/// The broker's offloader: the tier, the per-topic statuses, the uploads in flight.
pub struct Offloader {
    tier: Arc<Tier>,
    cfg: OffloadConfig,
    status: Mutex<HashMap<String, OffloadStatus>>,
    /// Attempt directories being uploaded (the janitor leaves them alone).
    in_flight: Mutex<HashSet<String>>,
    uploads: Semaphore,
    /// Background offloads started by [`Offloader::request`].
    tasks: TaskTracker,
    /// Cancelled by [`Offloader::shutdown`]: uploads stop, none start.
    cancel: CancellationToken,
}

impl Offloader {
    /// The offloader `cfg` describes, or `None` when no URL is configured.
    pub fn open(cfg: &OffloadConfig) -> Result<Option<Arc<Self>>, TierError> {
        let Some(url) = &cfg.url else {
            return Ok(None);
        };
        let store = strata_objstore::open(&ObjStoreConfig {
            url: url.clone(),
            endpoint: cfg.endpoint.clone(),
            region: cfg.region.clone(),
            ..Default::default()
        })?;
        Ok(Some(Self::new(store, cfg.clone())))
    }

    /// An offloader over `store` (tests pass a store with faults or a throttle).
    pub fn new(store: Store, cfg: OffloadConfig) -> Arc<Self> {
        Arc::new(Self {
            tier: Arc::new(Tier::new(store, &cfg)),
            uploads: Semaphore::new(cfg.max_concurrent_offloads.max(1)),
            cfg,
            status: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashSet::new()),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        })
    }

    /// The tier (reads).
    pub fn tier(&self) -> &Arc<Tier> {
        &self.tier
    }

    /// The configuration.
    pub fn config(&self) -> &OffloadConfig {
        &self.cfg
    }

    /// The status of `topic`'s offload.
    pub fn status(&self, ml: &ManagedLedger) -> OffloadStatus {
        let mut s = self
            .status
            .lock()
            .get(ml.name())
            .cloned()
            .unwrap_or_default();
        if s.first_unoffloaded.is_none() {
            s.first_unoffloaded = first_unoffloaded(ml);
        }
        s
    }

    /// Starts offloading every closed ledger of `ml` before `before` in the background.
    pub fn request(
        self: &Arc<Self>,
        ml: ManagedLedger,
        before: Position,
    ) -> Result<(), AlreadyRunning> {
        self.begin(ml.name())?;
        let me = self.clone();
        self.tasks.spawn(async move {
            let r = me
                .offload_ledgers(&ml, |l| l.ledger_id.0 < before.ledger)
                .await;
            me.finish(&ml, r.map(|_| ()));
        });
        Ok(())
    }

    fn begin(&self, name: &str) -> Result<(), AlreadyRunning> {
        let mut st = self.status.lock();
        let s = st.entry(name.to_string()).or_default();
        if s.state == OffloadState::Running {
            return Err(AlreadyRunning);
        }
        s.state = OffloadState::Running;
        Ok(())
    }

    fn finish(&self, ml: &ManagedLedger, r: Result<(), TierError>) {
        let state = match r {
            Ok(()) => OffloadState::Success,
            Err(e) => {
                warn!(topic = ml.name(), error = %e, "offload failed; the ledgers stay on the bookies");
                OffloadState::Error(e.to_string())
            }
        };
        self.status.lock().insert(
            ml.name().to_string(),
            OffloadStatus {
                state,
                first_unoffloaded: first_unoffloaded(ml),
            },
        );
    }

    /// Offloads, oldest first, every closed ledger not offloaded yet that `pick` selects;
    /// stops at the first failure. Returns how many were offloaded.
    pub async fn offload_ledgers(
        &self,
        ml: &ManagedLedger,
        pick: impl Fn(&ManagedLedgerLedger) -> bool,
    ) -> Result<usize, TierError> {
        let todo: Vec<ManagedLedgerLedger> = ml
            .ledgers()
            .into_iter()
            .filter(|l| l.closed && !l.offloaded && l.entries > 0 && pick(l))
            .collect();
        for l in &todo {
            self.offload_one(ml, l).await?;
        }
        Ok(todo.len())
    }

    /// Uploads one closed ledger and commits it; on any failure its objects are left to the
    /// janitor (best effort: deleted at once) and the ledger stays on the bookies.
    pub async fn offload_one(
        &self,
        ml: &ManagedLedger,
        l: &ManagedLedgerLedger,
    ) -> Result<(), TierError> {
        let stopped = || TierError::Refused("offloader stopped".into());
        let _permit = tokio::select! {
            () = self.cancel.cancelled() => return Err(stopped()),
            p = self.uploads.acquire() => p.map_err(|_| stopped())?,
        };
        let offload_id = uuid::Uuid::new_v4().simple().to_string();
        let keys = OffloadKeys::new(ml.name(), l.ledger_id.0, &offload_id);
        self.in_flight.lock().insert(keys.dir().to_string());
        let r = match self.upload_and_commit(ml, l, &keys, offload_id).await {
            Ok(()) => Ok(()),
            Err(AttemptError::NotCommitted(e)) => {
                // Bounded: at shutdown the store may be slow; the janitor removes what is left.
                let cleanup =
                    tokio::time::timeout(CLEANUP_TIMEOUT, self.tier.delete_dir(&keys)).await;
                if !matches!(cleanup, Ok(Ok(()))) {
                    warn!(
                        key = keys.dir(),
                        "removing a failed offload's objects failed; the janitor will"
                    );
                }
                Err(e)
            }
            Err(AttemptError::MaybeCommitted(e)) => {
                warn!(key = keys.dir(), error = %e, "the offload's commit may have landed: its objects are left to the janitor");
                Err(e)
            }
        };
        self.in_flight.lock().remove(keys.dir());
        r
    }

    /// Uploads (cancelled by shutdown), then commits (never cancelled: a commit handed to the
    /// topic's writer may land even if its caller goes away, so the objects must stay).
    async fn upload_and_commit(
        &self,
        ml: &ManagedLedger,
        l: &ManagedLedgerLedger,
        keys: &OffloadKeys,
        offload_id: String,
    ) -> Result<(), AttemptError> {
        let started = std::time::Instant::now();
        let upload = upload::upload_ledger(
            self.tier.store(),
            ml.storage().as_ref(),
            keys,
            l.ledger_id,
            l.entries,
            &self.cfg,
        );
        // An attempt's objects are younger than the janitor's grace as long as it runs: the
        // janitor of any broker deletes only attempts whose newest object is older than the
        // grace and that no commit names. An upload is therefore abandoned (its objects
        // removed, the ledger left on the bookies, retried by the next pass) once it has run
        // half the grace; the other half covers the commit and clock skew between brokers.
        // (A zero grace, in tests, sweeps at once and bounds nothing.)
        let budget = match self.cfg.janitor_grace / 2 {
            d if d.is_zero() => std::time::Duration::from_secs(365 * 24 * 3600),
            d => d,
        };
        let not_committed = AttemptError::NotCommitted;
        let up = tokio::select! {
            () = self.cancel.cancelled() => {
                return Err(not_committed(TierError::Refused("offloader stopped during the upload".into())));
            }
            r = tokio::time::timeout(budget, upload) => match r {
                Ok(r) => r.map_err(not_committed)?,
                Err(_) => {
                    return Err(not_committed(TierError::Refused(format!(
                        "upload of ledger {} ran longer than half the janitor grace ({budget:?}) and was abandoned; raise janitor_grace above twice the longest upload",
                        l.ledger_id
                    ))));
                }
            },
        };
        let off = LedgerOffload {
            offload_id,
            data_parts: up.parts,
            stored_bytes: up.bytes,
            completed_at_ms: now_ms(),
            bookies_deleted: false,
        };
        // the index (the attempt's newest object) was written just now: the commit must land
        // well before any janitor may judge the attempt abandoned (grace after that)
        let commit_by = std::time::Instant::now() + budget;
        ml.commit_offload(l.ledger_id.0, off, commit_by)
            .await
            .map_err(|e| {
                let err =
                    TierError::Refused(format!("commit offload of ledger {}: {e}", l.ledger_id));
                match e {
                    // refused before anything was written
                    BrokerError::Conflict(_) | BrokerError::NotFound(_) => not_committed(err),
                    // a failed metadata write may still have landed (a timeout, a lost answer)
                    _ => AttemptError::MaybeCommitted(err),
                }
            })?;
        info!(topic = ml.name(), ledger = l.ledger_id.0, entries = l.entries, bytes = up.bytes, took = ?started.elapsed(), "ledger offloaded");
        Ok(())
    }

    /// Deletes the bookies' copy of offloaded ledgers whose deletion lag has passed.
    pub async fn delete_offloaded_from_bookies(&self, ml: &ManagedLedger, lag_ms: u64) {
        let now = now_ms();
        for l in ml.ledgers() {
            let Some(off) = &l.offload else { continue };
            if off.bookies_deleted || off.completed_at_ms.saturating_add(lag_ms) > now {
                continue;
            }
            if let Err(e) = ml.storage().delete(l.ledger_id).await {
                warn!(topic = ml.name(), ledger = l.ledger_id.0, error = %e, "delete offloaded ledger from bookies failed");
                continue;
            }
            match ml.mark_bookies_deleted(l.ledger_id.0).await {
                Ok(()) => info!(
                    topic = ml.name(),
                    ledger = l.ledger_id.0,
                    "offloaded ledger deleted from bookies"
                ),
                Err(e) => {
                    warn!(topic = ml.name(), ledger = l.ledger_id.0, error = %e, "record bookie deletion failed")
                }
            }
        }
    }

    /// One pass of the namespace policies over a topic: thresholds, then the deletion lag.
    pub async fn apply_policies(&self, ml: &ManagedLedger, p: &Policies) {
        if self.is_stopped() {
            return;
        }
        let bytes = p.offload_threshold_bytes.filter(|b| *b >= 0);
        let secs = p.offload_threshold_in_seconds.filter(|s| *s >= 0);
        if (bytes.is_some() || secs.is_some()) && self.begin(ml.name()).is_ok() {
            let over = over_threshold(&ml.ledgers(), bytes, secs, now_ms());
            let r = self
                .offload_ledgers(ml, |l| over.contains(&l.ledger_id.0))
                .await;
            self.finish(ml, r.map(|_| ()));
        }
        let lag = p
            .offload_deletion_lag_ms
            .filter(|l| *l >= 0)
            .map(|l| l as u64)
            .unwrap_or(self.cfg.deletion_lag.as_millis() as u64);
        self.delete_offloaded_from_bookies(ml, lag).await;
    }

    /// Whether an attempt directory is being uploaded now.
    pub(crate) fn is_in_flight(&self, dir: &str) -> bool {
        self.in_flight.lock().contains(dir)
    }

    /// Stops: uploads in flight are cancelled (their objects removed, or left to the janitor;
    /// the ledgers stay on the bookies), no offload starts any more, the background offloads and
    /// the tier's prefetches have ended when this returns.
    ///
    /// # Cancel safety
    /// Cancel safe: the first call cancels everything; awaiting again waits again.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.tier.shutdown().await;
    }

    /// Whether [`Offloader::shutdown`] was called.
    pub fn is_stopped(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Ledgers to offload under the thresholds: with `bytes`, the closed ledgers beyond the newest
/// `bytes` kept on the bookies (0: every closed ledger); with `secs`, the closed ledgers older
/// than that.
fn over_threshold(
    ls: &[ManagedLedgerLedger],
    bytes: Option<i64>,
    secs: Option<i64>,
    now: u64,
) -> HashSet<u64> {
    let mut out = HashSet::new();
    if let Some(b) = bytes {
        let mut kept = 0u64;
        for l in ls.iter().rev().filter(|l| !l.offloaded) {
            kept += l.size;
            if l.closed && (b == 0 || kept > b as u64) {
                out.insert(l.ledger_id.0);
            }
        }
    }
    if let Some(s) = secs {
        let cut = now.saturating_sub(s as u64 * 1000);
        for l in ls.iter().filter(|l| l.closed) {
            let t = if l.timestamp_ms > 0 {
                l.timestamp_ms
            } else {
                l.created_at_ms
            };
            if t <= cut {
                out.insert(l.ledger_id.0);
            }
        }
    }
    out
}

/// The first entry still only on the bookies.
fn first_unoffloaded(ml: &ManagedLedger) -> Option<Position> {
    ml.ledgers()
        .iter()
        .find(|l| !l.offloaded)
        .map(|l| Position::new(l.ledger_id.0, 0))
}

#[cfg(test)]
mod tests;

/// How an offload attempt failed: whether its objects may be deleted at once.
enum AttemptError {
    /// Nothing was committed (the upload failed, or the commit was refused before any write).
    NotCommitted(TierError),
    /// The commit's metadata write failed in a way that may have landed: the objects stay, and
    /// the janitor deletes them after the grace only if no commit names them.
    MaybeCommitted(TierError),
}
