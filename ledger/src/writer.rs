//! [`BookieWriter`]: writes one ledger to its ensemble. Entries are striped over the write
//! quorum, confirmed in order once an ack quorum of the committed ensemble has them, and a bookie
//! that fails is replaced by an ensemble change committed to the metadata before the replacement
//! is written to.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use strata_bookie_client::{BookieClient, ClientError};
use strata_meta::model::{LedgerState, MetaClient};
use strata_proto::{BookieId, EntryId, LedgerId};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Quorum;
use crate::error_map::map_meta;
use crate::ledger_md;
use crate::pool::Pool;
use crate::quarantine::{QUARANTINE, Quarantine};
use crate::storage::{AddCompletion, LedgerWriter, StorageError};
use crate::write_set::in_write_set;

/// An entry written but not confirmed yet: its data (for re-sends) and who acknowledged it.
struct PendingAdd {
    data: Bytes,
    acks: BTreeSet<BookieId>,
    /// Answered when the LAC passes the entry, or when the writer fails or closes first.
    done: Option<AddCompletion>,
}

/// Add outcomes waiting to be told, in entry order.
type Ready = VecDeque<(AddCompletion, Result<EntryId, StorageError>)>;

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
    /// Outcomes decided under this lock, told by [`WriterShared::deliver`] outside it.
    ready: Ready,
}

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
    /// Held while outcomes are told, so they are told in order even when two threads decide
    /// some at once; it keeps a spare queue to swap with [`WriterState::ready`].
    delivering: Mutex<Ready>,
    lac_tx: watch::Sender<i64>,
    meta: MetaClient,
    pool: Arc<Pool>,
    /// The runtime the writer was opened in: results of a local bookie arrive on its journal
    /// thread, outside any runtime, and may start an ensemble change.
    rt: tokio::runtime::Handle,
}

/// Starts writing a new ledger (nothing written yet) to the bookies of `ensemble`, in slot
/// order; a task checks the ensemble's registrations until the writer ends.
pub(crate) fn open(
    ledger: u64,
    key: Bytes,
    ensemble: Vec<(BookieId, BookieClient)>,
    quorum: Quorum,
    meta: MetaClient,
    pool: Arc<Pool>,
    quarantine: Quarantine,
) -> Arc<dyn LedgerWriter> {
    let (lac_tx, _) = watch::channel(-1);
    let sh = Arc::new(WriterShared {
        quarantine,
        ledger,
        key,
        quorum,
        state: Mutex::new(WriterState {
            next: 0,
            lac: -1,
            failed: None,
            length: 0,
            ensemble,
            pending: BTreeMap::new(),
            to_replace: BTreeSet::new(),
            changing: false,
            confirmed_in_change: BTreeMap::new(),
            ready: VecDeque::new(),
        }),
        delivering: Mutex::new(VecDeque::new()),
        lac_tx,
        meta,
        pool,
        rt: tokio::runtime::Handle::current(),
    });
    sh.spawn_ensemble_check();
    Arc::new(BookieWriter { sh })
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

    /// Writes `entry` to one bookie; the result is accounted by [`Self::on_result`]. The bookie
    /// of this process answers through a callback on its journal thread (no task, timer or
    /// wake-up per entry; no add timeout either: its journal is the only place the entry can
    /// go, so a stalled local disk stalls the writer, and a failing one answers with an error);
    /// a remote bookie's add runs in a task under [`crate::config::Timeouts::add`].
    fn spawn_write(
        self: &Arc<Self>,
        entry: u64,
        b: BookieId,
        c: BookieClient,
        data: Bytes,
        lac: i64,
    ) {
        let sh = self.clone();
        if let Some(local) = c.as_local() {
            let key = sh.key.clone();
            let done = Box::new(move |r| sh.on_result(entry, b, r));
            let req = strata_bookie_client::AddRequest {
                ledger: self.ledger,
                entry,
                master_key: key,
                lac,
                payload: data,
                recovery: false,
            };
            local.add_then(req, done);
            return;
        }
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
                                    st.ready.push_back((done, Ok(EntryId(next))));
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
                    // only `close` watches (it subscribes before it reads the state, so it
                    // misses no change made after that)
                    if self.lac_tx.receiver_count() > 0 {
                        self.lac_tx.send_replace(lac);
                    }
                    self.deliver();
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
            self.rt.spawn(async move { sh.change_ensemble().await });
        }
        true
    }

    /// Tells the outcomes in [`WriterState::ready`], in order, outside the state lock.
    fn deliver(&self) {
        let mut told = self.delivering.lock();
        loop {
            std::mem::swap(&mut *told, &mut self.state.lock().ready);
            if told.is_empty() {
                return;
            }
            for (done, r) in told.drain(..) {
                done.run(r);
            }
        }
    }

    /// Fails every pending add with `e` (in entry order).
    fn fail_pending(st: &mut WriterState, e: &StorageError) {
        let pending = std::mem::take(&mut st.pending);
        let dones = pending.into_values().filter_map(|p| p.done);
        st.ready.extend(dones.map(|d| (d, Err(e.clone()))));
    }

    /// Gives up on the ledger: pending and later adds fail (the managed ledger rolls over).
    fn fail(&self, e: StorageError) {
        let mut st = self.state.lock();
        if st.failed.is_none() {
            warn!(ledger = self.ledger, error = %e, "ledger writer failed");
        }
        let e = st.failed.get_or_insert(e).clone();
        Self::fail_pending(&mut st, &e);
        st.confirmed_in_change.clear();
        st.changing = false;
        drop(st);
        self.lac_tx.send_modify(|_| {});
        self.deliver();
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
            let why = "ledger is no longer open (fenced)";
            let (meta, state) = (&self.meta, LedgerState::Open);
            let committed =
                ledger_md::commit_segment(meta, self.ledger, state, why, first, new_ids.clone())
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

    fn add_then(&self, data: Bytes, done: AddCompletion) {
        let sh = &self.sh;
        let qw = sh.quorum.write;
        let (entry, lac, targets) = {
            let mut st = sh.state.lock();
            if let Some(f) = st.failed.clone() {
                st.ready.push_back((done, Err(f)));
                drop(st);
                sh.deliver();
                return;
            }
            let entry = st.next;
            st.next += 1;
            st.length += data.len() as u64;
            st.pending.insert(
                entry,
                PendingAdd {
                    data: data.clone(),
                    acks: BTreeSet::new(),
                    done: Some(done),
                },
            );
            let e = st.ensemble.len();
            let targets: Vec<(BookieId, BookieClient)> = (0..e)
                .filter(|&i| in_write_set(i, entry, e, qw))
                .map(|i| st.ensemble[i].clone())
                .collect();
            (entry, st.lac, targets)
        };
        // Issue the writes now: the entry order is the order of the calls.
        for (b, c) in targets {
            sh.spawn_write(entry, b, c, data.clone(), lac);
        }
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
                let e = st
                    .failed
                    .get_or_insert(StorageError::Closed(ledger))
                    .clone();
                WriterShared::fail_pending(&mut st, &e);
                (st.lac, st.length, fenced)
            };
            sh.deliver();
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
