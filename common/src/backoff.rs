//! One exponential backoff for every retry loop in Strata.
//!
//! A [`BackoffPolicy`] says how delays grow (doubling from `first` up to `max`), whether they are
//! jittered and how many there may be; [`BackoffPolicy::start`] makes a [`Backoff`], the state of
//! one series of retries. The delays themselves come from `backon`'s exponential backoff; the
//! sleeping is `tokio::time`, so paused-time tests drive it.
//!
//! ```
//! # async fn demo() {
//! use std::time::Duration;
//! use strata_common::backoff::BackoffPolicy;
//!
//! const RECONNECT: BackoffPolicy =
//!     BackoffPolicy::exponential(Duration::from_millis(200), Duration::from_secs(1));
//! let mut backoff = RECONNECT.start();
//! loop {
//!     if try_connect().await.is_ok() {
//!         break;
//!     }
//!     backoff.sleep().await; // 200 ms, 400 ms, 800 ms, 1 s, 1 s, ...
//! }
//! # }
//! # async fn try_connect() -> Result<(), ()> { Ok(()) }
//! ```

use std::future::Future;
use std::iter::Peekable;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// How the delays of a [`Backoff`] grow. Cheap to copy; usable in `const`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    first: Duration,
    max: Duration,
    jitter: bool,
    max_retries: Option<usize>,
}

impl BackoffPolicy {
    /// Delays `first`, `2·first`, `4·first`, ... capped at `max`, then `max` for ever; no jitter,
    /// no limit on their number. A `first` above `max` is taken as `max`.
    pub const fn exponential(first: Duration, max: Duration) -> Self {
        let first = if first.as_nanos() > max.as_nanos() {
            max
        } else {
            first
        };
        Self {
            first,
            max,
            jitter: false,
            max_retries: None,
        }
    }

    /// Draws each delay at random from `[d/2, d)`, `d` being the delay without jitter, so that
    /// callers that failed together do not retry together.
    pub const fn with_jitter(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// At most `n` delays: after them [`Backoff::next_delay`] is `None` (and [`retry`] makes at
    /// most `n + 1` attempts).
    pub const fn with_max_retries(mut self, n: usize) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// The first delay (without jitter).
    pub const fn first(&self) -> Duration {
        self.first
    }

    /// The largest delay (without jitter).
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// A new series of retries.
    pub fn start(&self) -> Backoff {
        Backoff {
            policy: *self,
            delays: self.delays(),
            retries: 0,
        }
    }

    /// Delay number `n` (from 0) without jitter.
    fn nominal(&self, n: usize) -> Duration {
        let mut d = self.first;
        for _ in 0..n {
            if d >= self.max {
                break;
            }
            d = d.saturating_mul(2).min(self.max);
        }
        d
    }

    /// Delay number `n` as handed out: whole microseconds and, jittered, inside `[d/2, d)` of
    /// its nominal `d` (rounding could otherwise reach `d` itself).
    fn finish(&self, raw: Duration, n: usize) -> Duration {
        let d = whole_micros(raw);
        if !self.jitter {
            return d;
        }
        let full = self.nominal(n);
        let low = full / 2;
        d.clamp(low, full.saturating_sub(Duration::from_micros(1)).max(low))
    }

    fn delays(&self) -> Peekable<ExponentialBackoff> {
        // backon's jitter adds up to one delay to each delay: halving both bounds gives [d/2, d).
        let (first, max) = if self.jitter {
            (self.first / 2, self.max / 2)
        } else {
            (self.first, self.max)
        };
        let mut builder = ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(first)
            .with_max_delay(max);
        builder = match self.max_retries {
            Some(n) => builder.with_max_times(n),
            None => builder.without_max_times(),
        };
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder.build().peekable()
    }
}

/// The state of one series of retries: which delay comes next.
#[derive(Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    delays: Peekable<ExponentialBackoff>,
    retries: usize,
}

impl Backoff {
    /// The next delay, and moves on to the one after it. `None` once the policy's
    /// [`max_retries`](BackoffPolicy::with_max_retries) delays have been handed out.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let d = self.delays.next()?;
        let d = self.policy.finish(d, self.retries);
        self.retries += 1;
        Some(d)
    }

    /// The delay [`next_delay`](Self::next_delay) will return, without moving on.
    pub fn peek_delay(&mut self) -> Option<Duration> {
        let d = *self.delays.peek()?;
        Some(self.policy.finish(d, self.retries))
    }

    /// Delays handed out since the start or the last [`reset`](Self::reset).
    pub fn retries(&self) -> usize {
        self.retries
    }

    /// Starts the series again from the first delay (after a success).
    pub fn reset(&mut self) {
        self.delays = self.policy.delays();
        self.retries = 0;
    }

    /// The policy this series follows.
    pub fn policy(&self) -> BackoffPolicy {
        self.policy
    }

    /// Sleeps the next delay. Returns `false` at once, without sleeping, when no delay is left.
    ///
    /// # Cancel safety
    /// Cancel safe in that dropping it only cuts the sleep short; the delay counts as used.
    pub async fn sleep(&mut self) -> bool {
        match self.next_delay() {
            Some(d) => {
                tokio::time::sleep(d).await;
                true
            }
            None => false,
        }
    }
}

/// Runs `op` until it succeeds, fails with an error `should_retry` declines, or the policy has
/// no delay left (then the last error is returned). `should_retry` sees every failure, so it is
/// also the place to log one.
///
/// # Cancel safety
/// As cancel safe as `op`: dropping the future drops the attempt in flight.
pub async fn retry<T, E, Fut>(
    policy: BackoffPolicy,
    mut op: impl FnMut() -> Fut,
    mut should_retry: impl FnMut(&E) -> bool,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = policy.start();
    loop {
        match op().await {
            Err(e) if should_retry(&e) => {
                if !backoff.sleep().await {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
}

/// backon computes delays in `f32` seconds; whole microseconds keep `100 ms · 2` at 200 ms.
fn whole_micros(d: Duration) -> Duration {
    let micros = d.as_nanos().saturating_add(500) / 1_000;
    u64::try_from(micros).map_or(Duration::MAX, Duration::from_micros)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn take(b: &mut Backoff, n: usize) -> Vec<Duration> {
        (0..n).filter_map(|_| b.next_delay()).collect()
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = BackoffPolicy::exponential(ms(100), ms(2_000)).start();
        assert_eq!(
            take(&mut b, 8),
            [100, 200, 400, 800, 1_600, 2_000, 2_000, 2_000].map(ms)
        );
        assert_eq!(b.retries(), 8);
    }

    #[test]
    fn first_above_max_is_max() {
        let p = BackoffPolicy::exponential(ms(500), ms(200));
        assert_eq!(p.first(), ms(200));
        assert_eq!(take(&mut p.start(), 2), [ms(200), ms(200)]);
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let p = BackoffPolicy::exponential(ms(2), ms(200)).with_jitter();
        for _ in 0..50 {
            let mut b = p.start();
            for d in take(&mut b, 12) {
                assert!(d <= ms(200), "{d:?}");
            }
            let mut b = p.start();
            let first = b.next_delay();
            assert!(first.is_some_and(|d| d >= ms(1) && d < ms(2)), "{first:?}");
        }
        // Not all the same.
        let firsts: std::collections::BTreeSet<_> =
            (0..50).filter_map(|_| p.start().next_delay()).collect();
        assert!(firsts.len() > 1);
    }

    #[test]
    fn max_retries_ends_the_series_and_reset_restarts_it() {
        let mut b = BackoffPolicy::exponential(ms(10), ms(1_000))
            .with_max_retries(3)
            .start();
        assert_eq!(take(&mut b, 5), [ms(10), ms(20), ms(40)]);
        assert_eq!(b.next_delay(), None);
        assert_eq!(b.peek_delay(), None);
        b.reset();
        assert_eq!(b.retries(), 0);
        assert_eq!(b.peek_delay(), Some(ms(10)));
        assert_eq!(b.next_delay(), Some(ms(10)));
        assert_eq!(b.next_delay(), Some(ms(20)));
    }

    #[test]
    fn peek_does_not_advance() {
        let mut b = BackoffPolicy::exponential(ms(50), ms(2_000))
            .with_jitter()
            .start();
        let peeked = b.peek_delay();
        assert_eq!(b.peek_delay(), peeked);
        assert_eq!(b.next_delay(), peeked);
        assert_eq!(b.retries(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_waits_each_delay() {
        let mut b = BackoffPolicy::exponential(ms(200), ms(1_000))
            .with_max_retries(4)
            .start();
        let start = Instant::now();
        let mut marks = Vec::new();
        while b.sleep().await {
            marks.push(start.elapsed());
        }
        assert_eq!(marks, [200, 600, 1_400, 2_400].map(ms));
        // Exhausted: returns at once.
        assert_eq!(start.elapsed(), ms(2_400));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_retries_retryable_errors_with_the_delays() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let r: Result<u32, &str> = retry(
            BackoffPolicy::exponential(ms(10), ms(1_000)),
            || async {
                let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
                if n < 3 { Err("busy") } else { Ok(n) }
            },
            |e| *e == "busy",
        )
        .await;
        assert_eq!(r, Ok(3));
        assert_eq!(start.elapsed(), ms(30));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_on_other_errors_and_when_out_of_retries() {
        let calls = AtomicU32::new(0);
        let r: Result<(), &str> = retry(
            BackoffPolicy::exponential(ms(10), ms(1_000)),
            || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err("fatal")
            },
            |e| *e == "busy",
        )
        .await;
        assert_eq!((r, calls.load(Ordering::Relaxed)), (Err("fatal"), 1));

        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let r: Result<(), &str> = retry(
            BackoffPolicy::exponential(ms(10), ms(1_000)).with_max_retries(2),
            || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err("busy")
            },
            |_| true,
        )
        .await;
        assert_eq!((r, calls.load(Ordering::Relaxed)), (Err("busy"), 3));
        assert_eq!(start.elapsed(), ms(30));
    }
}
