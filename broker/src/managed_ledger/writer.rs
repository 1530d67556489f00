//! The managed ledger's single writer task: appends, rollover, failed-add rewrites, and every
//! change of the persisted ledger list (CAS on its version).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::appends::{Current, Direct, Outcome, Reply};
use super::{Cmd, Inner, ml_info};
use crate::error::{BrokerError, Result};
use crate::storage::{CreateOptions, LedgerStorage, LedgerWriter, StorageError};
use strata_common::backoff::{Backoff, BackoffPolicy};
use strata_common::clock::now_ms;
use strata_meta::Expected;
use strata_meta::model::{ManagedLedgerInfo, ManagedLedgerLedger};
use strata_proto::{EntryId, LedgerId};

/// An append waiting to be (re)written: its data and its caller.
type PendingAdd = (Bytes, Reply);

/// Delays between attempts to move failed adds to a new ledger.
const RETRY_BACKOFF: BackoffPolicy =
    BackoffPolicy::exponential(Duration::from_millis(100), Duration::from_secs(2));

/// The log's single writer: it owns the open ledger ([`Direct::current`]) and the ledger list,
/// and takes the appends the direct path ([`super::appends`]) does not.
///
/// A failed add (other than fenced) does not reach the producer: as in Pulsar's managed ledger,
/// the failed entry and every later one (a ledger's adds complete in order, so they fail too)
/// are written again, in the same order, to a new ledger, and appends that arrive meanwhile
/// wait behind them. Only when no new ledger can be had for `add_retry_timeout` do they all fail.
/// So a producer's messages are stored in the order it sent them, even across bookie failures.
pub(super) struct Writer {
    ml: Arc<Inner>,
    version: u64,
    /// Outcomes of adds the direct path does not confirm itself.
    handoff: mpsc::UnboundedReceiver<Outcome>,
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
    pub(super) fn new(
        ml: Arc<Inner>,
        version: u64,
        handoff: mpsc::UnboundedReceiver<Outcome>,
    ) -> Self {
        Writer {
            ml,
            version,
            handoff,
            retry: VecDeque::new(),
            held: VecDeque::new(),
            retry_at: None,
            retry_since: None,
            retry_backoff: RETRY_BACKOFF.start(),
        }
    }

    /// Another writer took the log over: stop appending and tell the topic.
    fn fence(&mut self, why: &str) {
        if self.ml.shared.fence() {
            error!(topic = %self.ml.name, reason = why, "ledger fenced: another broker took the topic over; unloading it");
        }
        self.ml.appends.set_failed(true);
    }

    fn direct(&self) -> parking_lot::MutexGuard<'_, Direct> {
        self.ml.appends.direct.lock()
    }

    /// The open ledger's id.
    fn current_ledger(&self) -> Option<u64> {
        self.direct().current.as_ref().map(|c| c.ledger)
    }

    /// Closes the direct path: appends come to this task until [`Self::reopen`].
    fn hold_appends(&self) {
        self.direct().open = false;
    }

    /// Opens the direct path again if nothing waits for this task.
    fn reopen(&self) {
        let ok = !self.ml.appends.failed()
            && self.retry.is_empty()
            && self.held.is_empty()
            && !self.ml.shared.is_fenced()
            && !self
                .ml
                .shared
                .terminated
                .load(std::sync::atomic::Ordering::Acquire);
        let mut d = self.direct();
        d.open = ok && d.current.is_some();
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
            self.reopen();
            let waiting = !self.retry.is_empty() || !self.held.is_empty();
            tokio::select! {
                Some(outcome) = self.handoff.recv() => self.complete(outcome),
                // lazy: a disabled branch's future is still built every round
                _ = async {
                    if let Some(t) = self.retry_at {
                        tokio::time::sleep_until(t).await;
                    }
                }, if self.retry_due() => {
                    self.rewrite_pending().await;
                }
                // the last add in flight answered: pending adds may be written again
                _ = self.ml.appends.idle.notified(), if waiting => {}
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Append(data, reply)) => {
                        self.append(data, reply).await;
                        self.direct().queued -= 1;
                    }
                    Some(Cmd::Trim(victims, reply)) => {
                        let current = self.current_ledger();
                        let info = {
                            let mut ls = self.ml.shared.ledgers.write();
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
                        self.hold_appends();
                        self.drain().await;
                        let name = self.ml.name.to_string();
                        self.fail_pending(|| BrokerError::TopicTerminated(name.clone()));
                        self.ml.shared.terminated.store(true, std::sync::atomic::Ordering::Release);
                        if self.current_ledger().is_some() {
                            if let Err(e) = self.close_current().await {
                                let _ = reply.send(Err(e));
                                continue;
                            }
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
                        let _ = reply.send(Ok(self.ml.shared.last.load()));
                    }
                    Some(Cmd::Close(reply)) => {
                        self.hold_appends();
                        self.drain().await;
                        self.fail_pending(|| BrokerError::ServiceNotReady("topic closed".into()));
                        let _ = self.close_current().await;
                        let _ = reply.send(());
                        // Later appends fail: the receiver is dropped when we return.
                        return;
                    }
                    None => {
                        self.hold_appends();
                        self.drain().await;
                        self.fail_pending(|| BrokerError::ShuttingDown);
                        let _ = self.close_current().await;
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

    /// A success after its ledger failed restarts the retry backoff's run of failures.
    fn note_successes(&mut self) {
        if self.ml.appends.take_succeeded() {
            self.retry_since = None;
            self.retry_backoff.reset();
        }
    }

    /// An outcome the direct path left to this task: a failure, or a success after one.
    fn complete(&mut self, (res, ledger, data, reply, issued): Outcome) {
        self.note_successes();
        match res {
            Ok(EntryId(entry)) if !self.ml.appends.failed() => {
                let (pos, moved) = self.ml.confirm(ledger, entry, &data, issued);
                reply.send(Ok(pos));
                if moved {
                    self.ml.wake_lac_watchers();
                }
                self.retry_since = None;
                self.retry_backoff.reset();
            }
            // Confirmed after an earlier add of its ledger failed: the ledger is closed before
            // it, so it is written again with the others.
            // (Fenced meanwhile: `rewrite_pending` fails it with the others, in log order.)
            Ok(_) => self.queue_retry(data, reply),
            Err(StorageError::Fenced(_)) => {
                self.fence("add fenced by the bookies");
                self.queue_retry(data, reply);
            }
            Err(e) => self.add_failed(e, ledger, data, reply),
        }
    }

    /// A failed add: written again (with the later ones) to a new ledger, the first failure
    /// of a run at once, later ones after a backoff.
    fn add_failed(&mut self, e: StorageError, ledger: u64, data: Bytes, reply: Reply) {
        if !self.ml.appends.failed() || self.retry.is_empty() {
            warn!(topic = %self.ml.name, ledger, error = %e, "add failed; writing it and the later entries again to a new ledger");
        }
        self.ml.appends.set_failed(true);
        if self.ml.shared.is_fenced() {
            // answered by `rewrite_pending` with the others, in log order
            self.queue_retry(data, reply);
            return;
        }
        self.retry.push_back((data, reply));
        if self.retry_at.is_none() {
            let now = tokio::time::Instant::now();
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

    /// Queues an add to be written again (or failed with the others, in log order, once the
    /// log is fenced) once nothing is in flight (and after the retry backoff, if one is set).
    fn queue_retry(&mut self, data: Bytes, reply: Reply) {
        self.retry.push_back((data, reply));
    }

    /// Whether pending adds wait for a new ledger and nothing is in flight.
    fn retry_due(&self) -> bool {
        (!self.retry.is_empty() || !self.held.is_empty()) && self.ml.appends.inflight() == 0
    }

    /// Fails every pending add (failed in-flight ones first, then held ones: log order).
    fn fail_pending(&mut self, err: impl Fn() -> BrokerError) {
        for (_, reply) in self.retry.drain(..).chain(self.held.drain(..)) {
            reply.send(Err(err()));
        }
        self.retry_at = None;
        self.retry_since = None;
        self.retry_backoff.reset();
    }

    /// Rolls over to a new ledger and writes the pending adds to it, in order; on failure tries
    /// again later, until `add_retry_timeout`.
    async fn rewrite_pending(&mut self) {
        self.retry_at = None;
        // Nothing is in flight: every outcome not handled yet is queued. Failed adds among them
        // come before the pending ones in the log.
        self.take_handoffs();
        self.note_successes();
        if self.ml.shared.is_fenced() {
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
                let pending: Vec<PendingAdd> =
                    self.retry.drain(..).chain(self.held.drain(..)).collect();
                let mut d = self.ml.appends.direct.lock();
                let ledger = d.current.as_ref().map_or(0, |c| c.ledger);
                for (data, reply) in pending {
                    if let Some((_, reply)) = self.ml.issue(&mut d, data, None, reply) {
                        reply.send(Err(BrokerError::ServiceNotReady("no open ledger".into())));
                    }
                }
                drop(d);
                info!(topic = %self.ml.name, ledger, entries = n, "writing pending entries again to a new ledger");
            }
            Err(e) => {
                debug!(topic = %self.ml.name, error = %e, "no new ledger yet; retrying");
                self.retry_at = Some(tokio::time::Instant::now() + backoff);
            }
        }
    }

    /// Handles the outcomes handed off so far.
    fn take_handoffs(&mut self) {
        while let Ok(outcome) = self.handoff.try_recv() {
            self.complete(outcome);
        }
    }

    /// Waits until every add in flight has answered, handling the outcomes left to this task.
    async fn drain(&mut self) {
        loop {
            self.take_handoffs();
            if self.ml.appends.inflight() == 0 {
                // an outcome is handed off before its add stops counting: none is missed
                self.take_handoffs();
                return;
            }
            tokio::select! {
                Some(outcome) = self.handoff.recv() => self.complete(outcome),
                _ = self.ml.appends.idle.notified() => {}
            }
        }
    }

    fn needs_rollover(&self) -> bool {
        if self.ml.appends.failed() {
            return true;
        }
        let d = self.direct();
        d.current
            .as_ref()
            .is_none_or(|c| c.is_full(&self.ml.config))
    }

    async fn append(&mut self, data: Bytes, reply: Reply) {
        if self.ml.shared.is_fenced() {
            // Answers go out in log order: behind earlier appends not answered yet. The count
            // of adds in flight is read first: an add's outcome is handed off before it stops
            // counting, so at zero every earlier outcome is in the channel taken next.
            let busy = self.ml.appends.inflight() > 0;
            self.take_handoffs();
            if busy || !self.retry.is_empty() || !self.held.is_empty() {
                // answered by `rewrite_pending` (due once nothing is in flight) in log order
                self.held.push_back((data, reply));
                return;
            }
            reply.send(Err(BrokerError::ServiceNotReady(format!(
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
            reply.send(Err(BrokerError::TopicTerminated(self.ml.name.to_string())));
            return;
        }
        // Behind adds waiting for a new ledger (or an add that just failed): keep the order.
        if self.ml.appends.failed() || !self.retry.is_empty() || !self.held.is_empty() {
            self.held.push_back((data, reply));
            if self.retry_at.is_none() {
                self.retry_at = Some(tokio::time::Instant::now());
            }
            return;
        }
        if self.needs_rollover() {
            self.hold_appends();
            self.drain().await;
            if self.ml.appends.failed() {
                // an add in flight failed meanwhile: this one waits behind it
                self.held.push_back((data, reply));
                self.retry_at.get_or_insert_with(tokio::time::Instant::now);
                return;
            }
            if let Err(e) = self.rollover().await {
                warn!(topic = %self.ml.name, error = %e, "ledger rollover failed");
                reply.send(Err(e));
                return;
            }
        }
        let mut d = self.ml.appends.direct.lock();
        if let Some((_, reply)) = self.ml.issue(&mut d, data, None, reply) {
            reply.send(Err(BrokerError::ServiceNotReady("no open ledger".into())));
        }
    }

    /// Closes the open ledger and records it in the list (an empty one is dropped and deleted).
    /// On failure the ledger stays as the list names it, for the next owner to recover.
    async fn close_current(&mut self) -> Result<()> {
        let Some(Current { w, ledger: id, .. }) = self.direct().current.take() else {
            return Ok(());
        };
        let name = self.ml.name.clone();
        let moved =
            || BrokerError::ServiceNotReady(format!("topic {name} moved to another broker"));
        if self.ml.shared.is_fenced() {
            // The new owner recovers (and closes) this ledger; we must not touch the list.
            return Err(moved());
        }
        let last = match w.close().await {
            Ok(last) => last,
            Err(StorageError::Fenced(_)) => {
                self.fence("close fenced by the bookies");
                return Err(moved());
            }
            Err(e) => {
                // The next owner recovers the ledger; our view of confirmed entries stands.
                warn!(topic = %self.ml.name, ledger = id, error = %e, "close ledger failed");
                return Err(e.into());
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
            // The stored list still names the ledger: it must not be deleted.
            warn!(topic = %self.ml.name, error = %e, "persist ledger list failed");
            return Err(e);
        }
        if last.is_none() {
            let _ = self.ml.storage.delete(LedgerId(id)).await;
        }
        debug!(topic = %self.ml.name, ledger = id, "closed ledger");
        Ok(())
    }

    async fn rollover(&mut self) -> Result<()> {
        // a failure is logged; the ledger stays for recovery and the log moves to a new one
        let _ = self.close_current().await;
        if self.ml.shared.is_fenced() {
            return Err(BrokerError::ServiceNotReady(format!(
                "topic {} moved to another broker",
                self.ml.name
            )));
        }
        self.ml.appends.set_failed(false);
        let last = self
            .ml
            .shared
            .ledgers
            .read()
            .iter()
            .map(|l| l.ledger_id.0)
            .max();
        let w = create_ledger_above(&self.ml.name, &self.ml.storage, self.ml.config.create, last)
            .await?;
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
                unlisted_ledger(&self.ml.storage, w, e.is_meta_conflict()).await;
                return Err(e);
            }
        }
        debug!(topic = %self.ml.name, ledger = %w.ledger_id(), "opened ledger");
        self.direct().current = Some(Current::new(w, created));
        Ok(())
    }
}

/// Creates a ledger for the log `name`; its id must be above `last` (every ledger id of the
/// log), so message ids never go backwards after a failover (Pulsar #24722): ledger ids come from
/// per-broker batches of a cluster-wide counter, and a broker taking a topic over may still hold
/// a batch below the old owner's. Such ledgers are deleted; the allocator soon moves to a batch
/// above every id handed out so far.
pub(super) async fn create_ledger_above(
    name: &str,
    storage: &Arc<dyn LedgerStorage>,
    create: CreateOptions,
    last: Option<u64>,
) -> Result<Arc<dyn LedgerWriter>> {
    for discarded in 0..1000u32 {
        let w = storage.create(create).await?;
        if last.is_none_or(|l| w.ledger_id().0 > l) {
            if discarded > 0 {
                info!(topic = name, ledger = %w.ledger_id(), discarded, "skipped ledger ids below the log's last ledger");
            }
            return Ok(w);
        }
        discard_ledger(storage, w).await;
    }
    Err(BrokerError::ServiceNotReady(format!(
        "no ledger id above {} for topic {name}",
        last.unwrap_or(0)
    )))
}

/// A new ledger whose ledger-list write failed: deleted when the write was refused (a CAS
/// conflict: the stored list cannot name it), only closed when its outcome is unknown (the
/// stored list may name it; the next open recovers it, finds it empty and drops it).
pub(super) async fn unlisted_ledger(
    storage: &Arc<dyn LedgerStorage>,
    w: Arc<dyn LedgerWriter>,
    refused: bool,
) {
    if refused {
        discard_ledger(storage, w).await;
    } else {
        let _ = w.close().await;
    }
}

/// Closes and deletes a ledger nothing was written to and the list does not name.
async fn discard_ledger(storage: &Arc<dyn LedgerStorage>, w: Arc<dyn LedgerWriter>) {
    let _ = w.close().await;
    if let Err(e) = storage.delete(w.ledger_id()).await {
        warn!(ledger = %w.ledger_id(), error = %e, "delete unused ledger failed");
    }
}
