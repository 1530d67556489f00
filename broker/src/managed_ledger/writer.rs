//! The managed ledger's single writer task: appends, rollover, failed-add rewrites, and every
//! change of the persisted ledger list (CAS on its version).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use super::{Cmd, Inner, ml_info};
use crate::error::{BrokerError, Result};
use crate::position::Position;
use crate::storage::{LedgerWriter, StorageError};
use strata_common::backoff::{Backoff, BackoffPolicy};
use strata_common::clock::now_ms;
use strata_meta::Expected;
use strata_meta::model::{ManagedLedgerInfo, ManagedLedgerLedger};
use strata_proto::{EntryId, LedgerId};

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
pub(super) struct Writer {
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
    pub(super) fn new(ml: Arc<Inner>, version: u64) -> Self {
        Writer {
            ml,
            version,
            current: None,
            failed: false,
            inflight: FuturesOrdered::new(),
            retry: VecDeque::new(),
            held: VecDeque::new(),
            retry_at: None,
            retry_since: None,
            retry_backoff: RETRY_BACKOFF.start(),
        }
    }

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

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
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
                    Some(Cmd::UpdateLedger(id, update, reply)) => {
                        let r = self.update_ledger(id, update).await;
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

    /// Applies `update` to ledger `id` and persists the list (CAS); on failure the ledger is
    /// left as it was.
    async fn update_ledger(&mut self, id: u64, update: super::LedgerUpdate) -> Result<()> {
        let (info, before) = {
            let mut ls = self.ml.shared.ledgers.write();
            let Some(l) = ls.iter_mut().find(|l| l.ledger_id.0 == id) else {
                return Err(BrokerError::NotFound(format!(
                    "ledger {id} is not in the log"
                )));
            };
            let before = l.clone();
            update(l)?;
            let terminated = self
                .ml
                .shared
                .terminated
                .load(std::sync::atomic::Ordering::Acquire);
            (ml_info(ls.clone(), terminated), before)
        };
        if let Err(e) = self.persist(&info).await {
            let mut ls = self.ml.shared.ledgers.write();
            if let Some(l) = ls.iter_mut().find(|l| l.ledger_id.0 == id) {
                *l = before;
            }
            return Err(e);
        }
        Ok(())
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
