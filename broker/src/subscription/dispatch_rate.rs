//! The two dispatch rate limits a subscription obeys: the topic's (shared by its subscriptions)
//! and its own, both reservation clocks (`crate::rate`).

use std::sync::Arc;

use tokio::time::Instant;

use crate::rate::RateClock;

/// Dispatch rate state of one subscription.
pub(super) struct DispatchRate {
    topic: Arc<RateClock>,
    own: RateClock,
    /// Dispatch paused by a limit until then.
    wait: Option<Instant>,
    /// Times a limit paused dispatching.
    throttled: u64,
}

impl DispatchRate {
    pub fn new(topic: Arc<RateClock>) -> Self {
        DispatchRate {
            topic,
            own: RateClock::default(),
            wait: None,
            throttled: 0,
        }
    }

    /// Whether a limit pauses dispatching now (then [`DispatchRate::paused_until`] is set).
    pub fn limited(&mut self) -> bool {
        if let Some(w) = self.wait {
            if w > Instant::now() {
                return true;
            }
            self.wait = None;
        }
        // without a limit (the common case) no clock reading: neither clock has a reservation
        let next = self.topic.next_free().max(self.own.next_free());
        self.wait = next.filter(|t| *t > Instant::now());
        self.throttled += u64::from(self.wait.is_some());
        self.wait.is_some()
    }

    /// Times a limit paused dispatching.
    pub fn throttled_times(&self) -> u64 {
        self.throttled
    }

    /// Charges one dispatched entry to both clocks.
    pub fn charge(&self, msgs: u64, bytes: u64) {
        self.topic.charge(msgs, bytes);
        self.own.charge(msgs, bytes);
    }

    /// Sets the subscription's own limit `(messages, bytes)` per second.
    pub fn set(&mut self, limit: Option<(i64, i64)>) {
        if self.own.set(limit) {
            self.wait = None;
        }
    }

    /// Until when dispatching is paused, if it is.
    pub fn paused_until(&self) -> Option<Instant> {
        self.wait
    }

    /// The pause is over.
    pub fn resume(&mut self) {
        self.wait = None;
    }
}
