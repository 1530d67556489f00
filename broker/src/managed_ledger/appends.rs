//! The managed ledger's direct append path: while the log is healthy, an append goes from the
//! caller's thread straight to the open ledger, and its completion (on whichever thread made it
//! durable, e.g. the local bookie's applier thread) updates the ledger list, the entry cache and
//! the last confirmed position and answers the caller. No task hop per entry.
//!
//! Everything else goes through the writer task ([`super::writer`]): the first append, ledger
//! rollover, a failed add and the appends behind it, termination and closing. The writer task
//! opens the direct path ([`Direct::open`]) only when nothing waits for it, and closes it before
//! it changes the open ledger; appends it has queued (`queued`) keep later appends behind them, so
//! the log order is the order of the `append` calls either way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use smallvec::SmallVec;
use tokio::sync::{Notify, mpsc};

use super::{Inner, ManagedLedgerConfig};
use crate::error::Result;
use crate::position::Position;
use crate::storage::{AddCompletion, LedgerWriter, StorageError};
use strata_common::clock;
use strata_proto::EntryId;

use super::confirms::{self, Durable};
pub(super) use super::reply::Reply;

/// An add's outcome the writer task handles: the result, the ledger, the data (to write it
/// again), the caller and when the add was issued.
pub(super) type Outcome = (Result<EntryId, StorageError>, u64, Bytes, Reply, Instant);

/// The open ledger and what was added to it.
pub(super) struct Current {
    pub(super) w: Arc<dyn LedgerWriter>,
    pub(super) ledger: u64,
    pub(super) created_ms: u64,
    /// When it became the open ledger (its age for rollover).
    opened: Instant,
    entries: u64,
    bytes: u64,
}

impl Current {
    pub(super) fn new(w: Arc<dyn LedgerWriter>, created_ms: u64) -> Self {
        let ledger = w.ledger_id().0;
        Current {
            w,
            ledger,
            created_ms,
            opened: clock::instant(),
            entries: 0,
            bytes: 0,
        }
    }

    /// Whether the ledger is full or old (by [`ManagedLedgerConfig`]'s rollover settings).
    pub(super) fn is_full(&self, cfg: &ManagedLedgerConfig) -> bool {
        self.entries >= cfg.max_entries_per_ledger
            || self.bytes >= cfg.max_size_per_ledger
            // age counts once the ledger holds something (it may be created at open, long before)
            || (self.entries > 0
                && clock::instant().saturating_duration_since(self.opened) >= cfg.max_ledger_age)
    }
}

/// What appenders and the writer task share, under one lock.
#[derive(Default)]
pub(super) struct Direct {
    /// The open ledger (only the writer task sets or takes it).
    pub(super) current: Option<Current>,
    /// Whether appends may go straight to `current` (set by the writer task).
    pub(super) open: bool,
    /// Appends sent to the writer task and not taken by it yet.
    pub(super) queued: u64,
}

/// The state of the append path.
pub(super) struct Appends {
    pub(super) direct: Mutex<Direct>,
    /// Adds issued and not answered yet.
    inflight: AtomicUsize,
    /// Notified when `inflight` drops to zero.
    pub(super) idle: Notify,
    /// An add of the open ledger failed (or the log was fenced): outcomes and appends go to the
    /// writer task until it has rolled over.
    failed: AtomicBool,
    /// An add succeeded since the writer task last looked (a failure after it starts a new
    /// run of retries).
    succeeded: AtomicBool,
    /// Outcomes for the writer task.
    handoff: mpsc::UnboundedSender<Outcome>,
}

impl Appends {
    pub(super) fn new(handoff: mpsc::UnboundedSender<Outcome>) -> Self {
        Appends {
            direct: Mutex::new(Direct::default()),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
            failed: AtomicBool::new(false),
            succeeded: AtomicBool::new(false),
            handoff,
        }
    }

    /// Adds issued and not answered yet.
    pub(super) fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(super) fn set_failed(&self, failed: bool) {
        self.failed.store(failed, Ordering::Release);
    }

    /// Whether an add succeeded since the last call.
    pub(super) fn take_succeeded(&self) -> bool {
        self.succeeded.load(Ordering::Relaxed) && self.succeeded.swap(false, Ordering::AcqRel)
    }
}

impl Inner {
    /// Appends `data` to the open ledger now if the direct path is open; otherwise counts it as
    /// queued for the writer task and hands it back.
    pub(super) fn try_direct(
        self: &Arc<Self>,
        data: Bytes,
        crc: Option<u32>,
        reply: Reply,
    ) -> Option<(Bytes, Reply)> {
        let mut d = self.appends.direct.lock();
        let ok = d.open
            && d.queued == 0
            && !self.appends.failed()
            && !self.shared.is_fenced()
            && d.current.as_ref().is_some_and(|c| !c.is_full(&self.config));
        if !ok {
            d.queued += 1;
            return Some((data, reply));
        }
        self.issue(&mut d, data, crc, reply)
    }

    /// Adds `data` to the open ledger; the outcome goes to [`Self::on_added`]. Called with the
    /// [`Direct`] lock held, so the order of the adds is the order of the calls. Hands the
    /// append back when no ledger is open. `crc`: `crc32c(data)` if the caller has it.
    pub(super) fn issue(
        self: &Arc<Self>,
        d: &mut Direct,
        data: Bytes,
        crc: Option<u32>,
        reply: Reply,
    ) -> Option<(Bytes, Reply)> {
        let Some(c) = d.current.as_mut() else {
            return Some((data, reply));
        };
        c.entries += 1;
        c.bytes += data.len() as u64;
        self.appends.inflight.fetch_add(1, Ordering::AcqRel);
        let (ml, ledger, payload) = (self.clone(), c.ledger, data.clone());
        let issued = clock::instant();
        let done = AddCompletion::new(move |r| ml.on_added(r, ledger, data, reply, issued));
        c.w.add_then(payload, crc, done);
        None
    }

    /// An add's outcome: a success while the ledger is healthy is confirmed here (at the end of
    /// the group it is told in, see [`confirms`]); anything else goes to the writer task, which
    /// writes failed adds again in order.
    fn on_added(
        self: Arc<Self>,
        r: std::result::Result<EntryId, StorageError>,
        ledger: u64,
        data: Bytes,
        reply: Reply,
        issued: Instant,
    ) {
        let a = &self.appends;
        if let Ok(EntryId(entry)) = r
            && !a.failed()
        {
            return confirms::defer(Durable {
                ml: self,
                ledger,
                entry,
                data,
                reply,
                issued,
            });
        }
        // what was told before this outcome is confirmed before it
        confirms::flush();
        if r.is_err() {
            a.set_failed(true);
        }
        // Sent before `inflight` drops: a writer task that sees zero finds it queued.
        let _ = a.handoff.send((r, ledger, data, reply, issued));
        self.answered(0, 1);
    }

    /// `confirmed` appends were confirmed and answered and `other` handed to the writer task:
    /// they are no longer in flight.
    pub(super) fn answered(&self, confirmed: usize, other: usize) {
        let a = &self.appends;
        if confirmed > 0 && !a.succeeded.load(Ordering::Relaxed) {
            a.succeeded.store(true, Ordering::Relaxed);
        }
        let n = confirmed + other;
        if a.inflight.fetch_sub(n, Ordering::AcqRel) == n {
            a.idle.notify_one();
        }
    }

    /// Records entry `entry` of `ledger`, added at `issued`, as durable (see
    /// [`Self::confirm_all`]). Returns its position and whether the last confirmed position
    /// moved (then [`Self::wake_lac_watchers`] once its answer is queued).
    pub(super) fn confirm(
        &self,
        ledger: u64,
        entry: u64,
        data: &Bytes,
        issued: Instant,
    ) -> (Position, bool) {
        self.confirm_all(std::iter::once((ledger, entry, data, issued)))
    }

    /// Records the entries `(ledger, entry, data, issued)` of `adds` (in log order, added at
    /// `issued`) as durable: the topic's write latency histogram (`pulsar_storage_write_latency`,
    /// when the topic gave one), the entry cache, the ledger list's counts and the last
    /// confirmed position (those two once for all). Returns the last one's position and whether
    /// the last confirmed position moved.
    ///
    /// The watchers of the last confirmed position (dispatchers, readers) are not woken here:
    /// the caller wakes them with [`Self::wake_lac_watchers`] after the appends' answers are
    /// queued, so that, as with Pulsar (which answers an add before it notifies the cursors), a
    /// client whose producer and consumer share a connection gets the SEND_RECEIPT before the
    /// MESSAGE (the C++ client's KeyBasedBatchingTest closes the client once its consumer has
    /// the messages, and fails if a send is still waiting for its receipt).
    pub(super) fn confirm_all<'a>(
        &self,
        adds: impl Iterator<Item = (u64, u64, &'a Bytes, Instant)>,
    ) -> (Position, bool) {
        let now = clock::instant();
        let series = self.write_latency.get();
        // As Pulsar (entries are cached only while a cursor may read them): a topic without
        // subscriptions (no LAC watcher) skips the copy and the insert. `data` is usually a slice
        // of a connection's read buffer: the cache keeps an exact-size copy so that its byte bound
        // is the memory it really holds.
        let watched = self.shared.lac.receiver_count() > 0;
        // per ledger (a run rarely spans two): its entry count and the bytes added
        let mut counts: SmallVec<[(u64, u64, u64); 2]> = SmallVec::new();
        let mut last = Position::new(0, -1);
        for (ledger, entry, data, issued) in adds {
            if let Some(series) = series {
                series.persisted(now.saturating_duration_since(issued));
            }
            let pos = Position::new(ledger, entry as i64);
            if watched {
                self.cache.insert(pos, Bytes::copy_from_slice(data));
            }
            match counts.last_mut() {
                Some((l, n, b)) if *l == ledger => {
                    *n = (*n).max(entry + 1);
                    *b += data.len() as u64;
                }
                _ => counts.push((ledger, entry + 1, data.len() as u64)),
            }
            last = last.max(pos);
        }
        {
            let mut ls = self.shared.ledgers.write();
            for (ledger, entries, bytes) in counts {
                if let Some(l) = ls.iter_mut().rev().find(|l| l.ledger_id.0 == ledger) {
                    l.entries = l.entries.max(entries);
                    l.size += bytes;
                }
            }
        }
        // Under the watch's lock (which orders the writers): the position is stored in `last`
        // (readable from here on), without waking anyone yet (see above).
        let mut moved = false;
        self.shared.lac.send_if_modified(|()| {
            if last > self.shared.last.load() {
                self.shared.last.store(last);
                moved = true;
            }
            false
        });
        (last, moved)
    }

    /// Wakes the watchers of the last confirmed position, if there are any (waking nobody still
    /// costs a lock per notify shard). A watcher subscribing meanwhile either is counted here or
    /// reads the new position itself (`ManagedLedger::watch_lac` passes through the same lock).
    pub(super) fn wake_lac_watchers(&self) {
        self.shared
            .lac
            .send_if_modified(|()| self.shared.lac.receiver_count() > 0);
    }
}
