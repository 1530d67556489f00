//! Direct appends confirmed once per group: the bookie of this process answers every add of one
//! journal sync inside a [`strata_common::group`], and the ledger writer tells a run of
//! outcomes at a time. A durable append told there is collected on the thread and confirmed at
//! the group's end, with the others of its log: the ledger list, the last confirmed position and
//! the in-flight count are updated once per run instead of once per entry (lines the appending
//! thread touches too). Outside a group it is confirmed at once.
//!
//! Order: the appends of one log are told in log order and confirmed in it; an outcome that is
//! not a plain success first confirms what was collected before it ([`flush`]). The readers of
//! a log are woken after its appends' receipts are queued (see `Inner::confirm_all`).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use strata_common::group;

use super::{Inner, Reply};
use crate::position::Position;

/// A durable append of the direct path, to be confirmed and answered.
pub(super) struct Durable {
    pub ml: Arc<Inner>,
    pub ledger: u64,
    pub entry: u64,
    pub data: Bytes,
    pub reply: Reply,
    /// When the add was issued (for the write latency).
    pub issued: Instant,
}

thread_local! {
    /// Durable appends told in this thread's group and not confirmed yet.
    static TOLD: RefCell<Vec<Durable>> = const { RefCell::new(Vec::new()) };
}

/// Confirms `d` at the end of this thread's group, or now when no group is running.
pub(super) fn defer(d: Durable) {
    group::collect(&TOLD, d, flush);
}

/// Confirms the appends collected on this thread, in order, one run per log, then answers them.
pub(super) fn flush() {
    group::handle_all(&TOLD, |told| {
        let mut rest = told.as_slice();
        let mut moved: Vec<Arc<Inner>> = Vec::new();
        while let Some(first) = rest.first() {
            let n = rest
                .iter()
                .take_while(|d| Arc::ptr_eq(&d.ml, &first.ml))
                .count();
            let (run, after) = rest.split_at(n);
            let (_, advanced) = first
                .ml
                .confirm_all(run.iter().map(|d| (d.ledger, d.entry, &d.data, d.issued)));
            if advanced {
                moved.push(first.ml.clone());
            }
            rest = after;
        }
        // then the answers, in the same order; a log's in-flight count drops once per run
        let mut run: Option<(Arc<Inner>, usize)> = None;
        for d in told.drain(..) {
            d.reply.send(Ok(Position::new(d.ledger, d.entry as i64)));
            match &mut run {
                Some((ml, n)) if Arc::ptr_eq(ml, &d.ml) => *n += 1,
                _ => {
                    if let Some((ml, n)) = run.replace((d.ml, 1)) {
                        ml.answered(n, 0);
                    }
                }
            }
        }
        if let Some((ml, n)) = run {
            ml.answered(n, 0);
        }
        // the readers last: after the receipts, which the answers queue at the group's end
        // (deferred now, this runs after them; outside a group, at once)
        if !moved.is_empty() {
            group::later(move || {
                for ml in moved {
                    ml.wake_lac_watchers();
                }
            });
        }
    });
}
