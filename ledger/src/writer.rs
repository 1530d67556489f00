//! [`BookieWriter`]: writes one ledger to its ensemble. Entries are striped over the write
//! quorum, confirmed in order once an ack quorum of the committed ensemble has them, and a bookie
//! that fails is replaced by an ensemble change committed to the metadata before the replacement
//! is written to.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use smallvec::SmallVec;
use strata_bookie_client::{AddDone, AddSink, AddTag, BookieClient, ClientError};
use strata_meta::model::{LedgerState, MetaClient};
use strata_proto::{BookieId, EntryId, LedgerId};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::acks::{self, Ack, Acked};
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
    /// The ensemble slots whose bookie acknowledged it, one bit each ([`slot_bit`]).
    acks: u64,
    /// Answered when the LAC passes the entry, or when the writer fails or closes first.
    done: Option<AddCompletion>,
}

/// Where one copy of an entry goes: an ensemble slot, as it was when the write was sent.
struct Target {
    slot: usize,
    epoch: u32,
    client: BookieClient,
}

/// The write set of one entry (Qw targets, rarely more than a few).
type Targets = SmallVec<[Target; 3]>;

/// Add outcomes waiting to be told, in entry order.
type Ready = VecDeque<(AddCompletion, Result<EntryId, StorageError>)>;

struct WriterState {
    next: u64,
    lac: i64,
    failed: Option<StorageError>,
    length: u64,
    /// The current ensemble (positions are stable: a replacement takes the failed bookie's slot).
    ensemble: Vec<(BookieId, BookieClient)>,
    /// One per slot, bumped when the slot's bookie is replaced: a write's outcome counts only
    /// if its slot still has the epoch it was sent with (not for the bookie replaced since).
    epochs: Vec<u32>,
    /// Entries not yet confirmed, in entry order from LAC + 1 on (every entry above the LAC
    /// that was added); empty once the writer failed.
    pending: VecDeque<PendingAdd>,
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

impl WriterState {
    /// The unconfirmed entry `entry`.
    fn pending_mut(&mut self, entry: u64) -> Option<&mut PendingAdd> {
        let first = (self.lac + 1) as u64;
        let i = usize::try_from(entry.checked_sub(first)?).ok()?;
        self.pending.get_mut(i)
    }

    /// The unconfirmed entries with their entry numbers, in order.
    fn pending_entries(&self) -> impl Iterator<Item = (u64, &PendingAdd)> {
        let first = (self.lac + 1) as u64;
        (first..).zip(self.pending.iter())
    }

    /// Whether `slot` still holds the bookie a write sent with `epoch` went to.
    fn current(&self, slot: usize, epoch: u32) -> bool {
        self.epochs.get(slot) == Some(&epoch)
    }
}

/// The bit of ensemble slot `slot` in [`PendingAdd::acks`] (none beyond [`crate::MAX_ENSEMBLE`],
/// which [`crate::Quorum::is_valid`] rules out).
fn slot_bit(slot: usize) -> u64 {
    u32::try_from(slot)
        .ok()
        .and_then(|s| 1u64.checked_shl(s))
        .unwrap_or(0)
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
            epochs: vec![0; ensemble.len()],
            ensemble,
            pending: VecDeque::new(),
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
                let (ids, epochs): (Vec<BookieId>, Vec<u32>) = {
                    let st = sh.state.lock();
                    if st.failed.is_some() {
                        return;
                    }
                    let ids = st.ensemble.iter().map(|(b, _)| b.clone());
                    ids.zip(st.epochs.iter().copied()).unzip()
                };
                let gone: BTreeSet<BookieId> =
                    sh.pool.source.gone(&ids).await.into_iter().collect();
                for (slot, (b, epoch)) in ids.iter().zip(epochs).enumerate() {
                    if gone.contains(b) && suspects.contains(b) && sh.bookie_failed(slot, epoch) {
                        warn!(ledger = sh.ledger, bookie = %b, "ensemble bookie is no longer registered");
                    }
                }
                suspects = gone;
            }
        });
    }

    /// Writes `entry` to one bookie; the result is accounted by [`Self::on_result`]. The bookie
    /// of this process answers through a callback right after its journal sync (no task, timer or
    /// wake-up per entry; no add timeout either: its journal is the only place the entry can
    /// go, so a stalled local disk stalls the writer, and a failing one answers with an error);
    /// a remote bookie's add runs in a task under [`crate::config::Timeouts::add`].
    /// `crc` is the entry's CRC32C if known (handed to the bookie of this process only).
    fn spawn_write(
        self: &Arc<Self>,
        entry: u64,
        to: Target,
        data: Bytes,
        crc: Option<u32>,
        lac: i64,
    ) {
        let sh = self.clone();
        let Target {
            slot,
            epoch,
            client,
        } = to;
        if let Some(local) = client.as_local() {
            let key = sh.key.clone();
            // the writer itself hears the answer (no allocation per entry), see `AddSink`
            let cookie = (slot as u64) << 32 | u64::from(epoch);
            let done = AddDone::tell(sh, AddTag { entry, cookie });
            let req = strata_bookie_client::AddRequest {
                ledger: self.ledger,
                entry,
                master_key: key,
                lac,
                payload: data,
                payload_crc: crc,
                recovery: false,
            };
            local.add_then(req, done);
            return;
        }
        let timeout = self.pool.timeouts.add;
        tokio::spawn(async move {
            let r = match tokio::time::timeout(
                timeout,
                client.add(sh.ledger, entry, sh.key.clone(), lac, data),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(ClientError::Unavailable(format!(
                    "add timed out after {timeout:?}"
                ))),
            };
            sh.on_result(entry, slot, epoch, r);
        });
    }

    /// A bookie's answer to the write of `entry` to `slot` (sent with `epoch`): an
    /// acknowledgement is counted by [`Acked::acked`] (once per group of answers, see
    /// [`crate::acks`]); a failure starts an ensemble change, a fence fails the writer (after
    /// the acknowledgements told before it are counted).
    fn on_result(self: Arc<Self>, entry: u64, slot: usize, epoch: u32, r: Result<(), ClientError>) {
        let e = match r {
            Ok(()) => return acks::tell(self, Ack { entry, slot, epoch }),
            Err(e) => e,
        };
        acks::flush();
        match e {
            ClientError::Fenced(_) => self.fail(StorageError::Fenced(self.ledger)),
            e => {
                crate::metrics::METRICS.add_failures.inc();
                // A bookie replaced since the write failed before: it is quarantined and out.
                let Some(b) = self.bookie_at(slot, epoch) else {
                    return;
                };
                self.quarantine
                    .lock()
                    .insert(b.clone(), std::time::Instant::now());
                if self.bookie_failed(slot, epoch) {
                    warn!(ledger = self.ledger, entry, bookie = %b, error = %e, "bookie write failed");
                } else {
                    tracing::debug!(ledger = self.ledger, entry, bookie = %b, error = %e, "bookie write failed");
                }
            }
        }
    }

    /// Counts `a` if it is from a bookie of the entry's current write set that is not being
    /// replaced.
    fn count_ack(&self, st: &mut WriterState, a: Ack) {
        let Ack { entry, slot, epoch } = a;
        if !st.current(slot, epoch)
            || !in_write_set(slot, entry, st.ensemble.len(), self.quorum.write)
        {
            return;
        }
        if !st.to_replace.is_empty()
            && st
                .ensemble
                .get(slot)
                .is_some_and(|(b, _)| st.to_replace.contains(b))
        {
            return;
        }
        if let Some(p) = st.pending_mut(entry) {
            p.acks |= slot_bit(slot);
        }
    }

    /// Advances the LAC over the entries with Qa acknowledgements, their outcomes ready to be
    /// told. Whether it moved.
    fn advance(&self, st: &mut WriterState) -> bool {
        let qa = self.quorum.ack.max(1);
        let mut advanced = false;
        while st
            .pending
            .front()
            .is_some_and(|p| p.acks.count_ones() as usize >= qa)
        {
            let Some(p) = st.pending.pop_front() else {
                break;
            };
            let next = (st.lac + 1) as u64;
            if let Some(done) = p.done {
                st.ready.push_back((done, Ok(EntryId(next))));
            }
            if st.changing {
                st.confirmed_in_change.insert(next, p.data);
            }
            st.lac += 1;
            advanced = true;
        }
        advanced
    }

    /// The bookie in `slot` if it is still the one a write sent with `epoch` went to.
    fn bookie_at(&self, slot: usize, epoch: u32) -> Option<BookieId> {
        let st = self.state.lock();
        if !st.current(slot, epoch) {
            return None;
        }
        st.ensemble.get(slot).map(|(b, _)| b.clone())
    }

    /// Starts replacing the bookie of `slot` (sent to with `epoch`) in the ensemble (once)
    /// unless it was already replaced; its acknowledgements of unconfirmed entries stop counting
    /// now. Whether it was newly marked.
    fn bookie_failed(self: &Arc<Self>, slot: usize, epoch: u32) -> bool {
        let start = {
            let mut st = self.state.lock();
            if st.failed.is_some() || !st.current(slot, epoch) {
                return false;
            }
            let Some(b) = st.ensemble.get(slot).map(|(b, _)| b.clone()) else {
                return false;
            };
            if st.to_replace.contains(&b) {
                return false;
            }
            let bit = slot_bit(slot);
            for p in st.pending.iter_mut() {
                p.acks &= !bit;
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
        let dones = pending.into_iter().filter_map(|p| p.done);
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
            let (resend, lac, epoch) = {
                let mut st = self.state.lock();
                let st = &mut *st;
                let (Some(slot), Some(epoch)) = (st.ensemble.get_mut(idx), st.epochs.get_mut(idx))
                else {
                    continue;
                };
                *slot = (r.clone(), client.clone());
                *epoch = epoch.wrapping_add(1);
                let epoch = *epoch;
                st.to_replace.remove(&failed);
                let (e, qw) = (st.ensemble.len(), self.quorum.write);
                let confirmed = st
                    .confirmed_in_change
                    .range(first..)
                    .map(|(entry, d)| (*entry, d.clone()));
                let resend: Vec<(u64, Bytes)> = st
                    .pending_entries()
                    .filter(|(entry, _)| *entry >= first)
                    .map(|(entry, p)| (entry, p.data.clone()))
                    .chain(confirmed)
                    .filter(|(entry, _)| in_write_set(idx, *entry, e, qw))
                    .collect();
                (resend, st.lac, epoch)
            };
            crate::metrics::METRICS.ensemble_changes.inc();
            info!(ledger = self.ledger, replaced = %failed, by = %r, from_entry = first, resent = resend.len(), "ensemble changed");
            for (entry, data) in resend {
                let to = Target {
                    slot: idx,
                    epoch,
                    client: client.clone(),
                };
                self.spawn_write(entry, to, data, None, lac);
            }
        }
    }
}

/// The bookie of this process answers the writer's adds directly: `cookie` holds the slot (high
/// half) and the ensemble epoch (low half) the entry was sent with.
impl AddSink for WriterShared {
    fn added(self: Arc<Self>, tag: AddTag, r: Result<(), ClientError>) {
        let (slot, epoch) = ((tag.cookie >> 32) as usize, tag.cookie as u32);
        self.on_result(tag.entry, slot, epoch, r);
    }
}

impl Acked for WriterShared {
    /// Counts the acknowledgements, then advances the LAC over the entries with Qa of them and
    /// tells their outcomes: one state lock for all of them.
    fn acked(&self, acks: &mut dyn Iterator<Item = Ack>) {
        let mut st = self.state.lock();
        if st.failed.is_some() {
            return;
        }
        for a in acks {
            self.count_ack(&mut st, a);
        }
        if !self.advance(&mut st) {
            return;
        }
        let lac = st.lac;
        drop(st);
        // only `close` watches (it subscribes before it reads the state, so it misses no change
        // made after that)
        if self.lac_tx.receiver_count() > 0 {
            self.lac_tx.send_replace(lac);
        }
        self.deliver();
    }
}

impl LedgerWriter for BookieWriter {
    fn ledger_id(&self) -> LedgerId {
        LedgerId(self.sh.ledger)
    }

    fn add_then(&self, data: Bytes, crc: Option<u32>, done: AddCompletion) {
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
            st.pending.push_back(PendingAdd {
                data: data.clone(),
                acks: 0,
                done: Some(done),
            });
            let e = st.ensemble.len();
            let targets: Targets = st
                .ensemble
                .iter()
                .zip(&st.epochs)
                .enumerate()
                .filter(|(i, _)| in_write_set(*i, entry, e, qw))
                .map(|(slot, ((_, client), epoch))| Target {
                    slot,
                    epoch: *epoch,
                    client: client.clone(),
                })
                .collect();
            (entry, st.lac, targets)
        };
        // Issue the writes now: the entry order is the order of the calls.
        for to in targets {
            sh.spawn_write(entry, to, data.clone(), crc, lac);
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
