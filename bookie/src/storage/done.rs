//! [`Done`]: how the journal answers one submission — through a channel an async caller awaits,
//! or by running the caller's callback itself (the ledger writer of the same process: no task,
//! timer or wake-up per entry; see [`super::Storage::add_then`]). An add's `Done` also carries
//! its [`AddCount`], settled by whoever answers it (with the bookie's state it holds no reference
//! to), so both kinds of add are counted the same way and the callback kind needs no wrapping
//! closure.

use std::sync::atomic::Ordering;
use std::time::Instant;

use strata_bookie_client::{AddDone, AddRequest, ClientError};
use tokio::sync::oneshot;

use super::Shared;
use crate::error::BookieError;

/// The answer channel of one journal submission. One dropped unanswered (the journal thread
/// gone) answers [`BookieError::ShuttingDown`], as a dropped channel reads.
pub(super) struct Done {
    answer: Option<Answer>,
    /// Set on an add.
    count: Option<AddCount>,
}

enum Answer {
    Channel(oneshot::Sender<Result<(), BookieError>>),
    /// Runs on the bookie's applier thread right after the sync (or at once on the caller's
    /// thread when the add is refused): it must be short and must not block.
    Call(AddDone),
}

impl Done {
    pub(super) fn channel(tx: oneshot::Sender<Result<(), BookieError>>) -> Done {
        Done::new(Answer::Channel(tx))
    }

    /// Answers by calling `f`, with the error as the client of a bookie sees it.
    pub(super) fn call(f: AddDone) -> Done {
        Done::new(Answer::Call(f))
    }

    fn new(answer: Answer) -> Done {
        Done {
            answer: Some(answer),
            count: None,
        }
    }

    /// This submission, an add counted by `count` when it is answered.
    pub(super) fn counted(mut self, count: AddCount) -> Done {
        self.count = Some(count);
        self
    }

    /// Answers the submitter (a caller that stopped waiting is ignored), an add counted in
    /// `shared`'s accounting.
    pub(super) fn send(mut self, r: Result<(), BookieError>, shared: &Shared) {
        if let Some(count) = self.count.take() {
            count.settle(&r, shared);
        }
        self.answer(r);
    }

    /// When the add this answers started, if it is one.
    pub(super) fn started(&self) -> Option<Instant> {
        self.count.as_ref().map(|c| c.start)
    }

    /// Answers the adds of one synced group commit, synced at `now`: the accounting is settled
    /// for the whole group first (one update of each shared counter, one clock reading), then
    /// every submitter is answered in order.
    pub(super) fn answer_synced(dones: Vec<Done>, now: Instant, shared: &Shared) {
        let (mut n, mut bytes, mut queued) = (0u64, 0u64, 0usize);
        let m = &shared.metrics;
        for c in dones.iter().filter_map(|d| d.count.as_ref()) {
            n += 1;
            bytes += c.len as u64;
            if c.queued {
                queued += c.len;
            }
            m.add_latency
                .observe(now.saturating_duration_since(c.start).as_secs_f64());
        }
        shared.queued_bytes.fetch_sub(queued, Ordering::AcqRel);
        m.add_entries.inc_by(n);
        m.add_bytes.inc_by(bytes);
        // whatever the answers time (the broker's write latency) ends at the sync; whoever
        // they reach may collect its work for the whole group (one receipt batch per connection)
        strata_common::clock::with_instant(now, || {
            strata_common::group::run(|| {
                for mut d in dones {
                    d.count = None;
                    d.answer(Ok(()));
                }
            })
        });
    }

    /// Answers the submitter; an add's accounting is settled by the caller first.
    fn answer(&mut self, r: Result<(), BookieError>) {
        match self.answer.take() {
            Some(Answer::Channel(tx)) => {
                let _ = tx.send(r);
            }
            Some(Answer::Call(f)) => f.run(r.map_err(ClientError::from)),
            None => {}
        }
    }
}

/// Dropped unanswered only when the journal's threads are gone (the bookie is shutting down):
/// the add's accounting is left as it is.
impl Drop for Done {
    fn drop(&mut self) {
        if self.answer.is_some() {
            self.answer(Err(BookieError::ShuttingDown));
        }
    }
}

/// The accounting of one add, from its start to its answer: the outcome goes to the add metrics,
/// and the payload counts in `Shared::queued_bytes` (the journal queue's share of the room adds
/// wait for) while the add is queued. It holds no reference to the bookie's state (whoever
/// answers has it): no count shared between the adding thread and the answering one per add.
pub(super) struct AddCount {
    start: Instant,
    ledger: u64,
    entry: u64,
    len: usize,
    queued: bool,
}

impl AddCount {
    /// Counts the add `req` that started at `start`; `queued`: it goes to the journal now (its
    /// bytes count as queued until it is answered).
    pub(super) fn new(shared: &Shared, start: Instant, req: &AddRequest, queued: bool) -> Self {
        let len = req.payload.len();
        if queued {
            shared.queued_bytes.fetch_add(len, Ordering::AcqRel);
        }
        AddCount {
            start,
            ledger: req.ledger,
            entry: req.entry,
            len,
            queued,
        }
    }

    fn settle(self, r: &Result<(), BookieError>, shared: &Shared) {
        if self.queued {
            shared.queued_bytes.fetch_sub(self.len, Ordering::AcqRel);
        }
        let m = &shared.metrics;
        match r {
            Ok(()) => {
                m.add_entries.inc();
                m.add_bytes.inc_by(self.len as u64);
                m.add_latency.observe(self.start.elapsed().as_secs_f64());
            }
            Err(e) => {
                m.add_errors.inc();
                tracing::debug!(ledger = self.ledger, entry = self.entry, error = %e, "add failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_deliver_the_outcome() {
        let (tx, mut rx) = oneshot::channel();
        Done::channel(tx).answer(Ok(()));
        assert!(matches!(rx.try_recv(), Ok(Ok(()))));
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let s = seen.clone();
        Done::call(AddDone::call(move |r| s.lock().push(r.is_ok()))).answer(Ok(()));
        assert_eq!(*seen.lock(), vec![true]);
    }

    #[test]
    fn a_callback_dropped_unanswered_hears_shutting_down() {
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let s = seen.clone();
        drop(Done::call(AddDone::call(move |r| {
            s.lock().push(matches!(r, Err(ClientError::ShuttingDown)))
        })));
        assert_eq!(*seen.lock(), vec![true]);
    }
}
