//! A rate limit as a reservation clock, shared by the publish rate (per topic), the topic dispatch
//! rate (shared by a topic's subscriptions) and the subscription dispatch rate.
//!
//! Each charge of `(messages, bytes)` pushes the clock's `next_free` instant forward by the time
//! that much traffic takes at the limit; whoever is charged waits (stops reading a connection,
//! pauses a dispatcher) until `next_free`. Nothing is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Longest wait one charge can add (a huge message on a tiny limit).
const MAX_CHARGE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct State {
    /// (messages, bytes) per second; a part `<= 0` does not limit.
    limit: (i64, i64),
    next_free: Instant,
}

/// A reservation clock; unlimited until [`RateClock::set`].
#[derive(Debug, Default)]
pub struct RateClock {
    state: Mutex<Option<State>>,
    /// Whether a limit is set: every message checks the clocks of its topic and subscription,
    /// and without a limit (the common case) that check takes no lock.
    limited: AtomicBool,
}

impl RateClock {
    /// Sets the limit `(messages, bytes)` per second (`None`, or no positive part: unlimited).
    /// Setting the same limit again keeps the clock; a new limit restarts it. Returns whether
    /// the limit changed.
    pub fn set(&self, limit: Option<(i64, i64)>) -> bool {
        let mut g = self.state.lock();
        let limit = limit.filter(|(m, b)| *m > 0 || *b > 0);
        if g.map(|s| s.limit) == limit {
            return false;
        }
        *g = limit.map(|limit| State {
            limit,
            next_free: Instant::now(),
        });
        self.limited.store(g.is_some(), Ordering::Release);
        true
    }

    /// When the limited party may go on, if the clock is ahead of `now`.
    pub fn wait_until(&self, now: Instant) -> Option<Instant> {
        self.next_free().filter(|t| *t > now)
    }

    /// The clock's reservation (`None`: unlimited); needs no clock reading.
    pub fn next_free(&self) -> Option<Instant> {
        if !self.limited.load(Ordering::Acquire) {
            return None;
        }
        self.state.lock().map(|s| s.next_free)
    }

    /// Charges `msgs` messages of `bytes` bytes; returns the clock's new `next_free` (`None`:
    /// unlimited).
    pub fn charge(&self, msgs: u64, bytes: u64) -> Option<Instant> {
        if !self.limited.load(Ordering::Acquire) {
            return None;
        }
        let mut g = self.state.lock();
        let s = g.as_mut()?;
        let cost = |n: u64, rate: i64| {
            if rate > 0 {
                n as f64 / rate as f64
            } else {
                0.0
            }
        };
        let secs = cost(msgs, s.limit.0).max(cost(bytes, s.limit.1));
        let wait = Duration::from_secs_f64(secs).min(MAX_CHARGE);
        s.next_free = s.next_free.max(Instant::now()) + wait;
        Some(s.next_free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_push_the_clock_and_limits_reset_it() {
        let c = RateClock::default();
        assert_eq!(c.charge(100, 100), None, "unlimited");
        assert!(c.set(Some((10, -1))));
        let now = Instant::now();
        let t = c.charge(5, 0).unwrap();
        let about = |d: Duration, want: Duration| d >= want && d < want + Duration::from_millis(50);
        assert!(about(t - now, Duration::from_millis(500)), "{:?}", t - now);
        assert_eq!(c.wait_until(now), Some(t));
        assert!(!c.set(Some((10, -1))));
        assert_eq!(c.wait_until(now), Some(t), "same limit keeps the clock");
        c.set(Some((20, -1)));
        assert_eq!(
            c.wait_until(Instant::now()),
            None,
            "a new limit restarts it"
        );
        c.set(Some((-1, 1000)));
        let now = Instant::now();
        let t = c.charge(1, 2000).unwrap();
        assert!(
            about(t - now, Duration::from_secs(2)),
            "bytes: {:?}",
            t - now
        );
        c.set(Some((0, 0)));
        assert_eq!(c.charge(1, 1), None, "no positive part: unlimited");
    }
}
