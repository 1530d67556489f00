//! Wall-clock time as Unix milliseconds, and the instant of the event a thread is handling.

use std::cell::Cell;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

thread_local! {
    /// The instant [`with_instant`] set on this thread, if any.
    static EVENT_INSTANT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The instant of the event this thread is handling, as a caller up the stack read it once for
/// all the work that event causes ([`with_instant`]); read from the clock when no caller did.
/// Hot paths stamp per-message latencies with it, so that one reading of the clock serves every
/// add of a journal sync instead of one or two per message.
pub fn instant() -> Instant {
    EVENT_INSTANT.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Runs `f` with [`instant`] answering `now` on this thread (the previous answer is restored
/// after, also when `f` panics). For short synchronous work caused by one event at `now`:
/// everything timed inside reads `now`.
pub fn with_instant<R>(now: Instant, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            EVENT_INSTANT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(EVENT_INSTANT.with(|c| c.replace(Some(now))));
    f()
}

/// Milliseconds since the Unix epoch, now. A clock set before 1970 reads as 0.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// Microseconds since the Unix epoch, now (0 before it, `u64::MAX` past the range).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Milliseconds since the Unix epoch at `t` (0 for times before it, `u64::MAX` past the range).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn unix_ms_counts_from_the_epoch() {
        assert_eq!(unix_ms(UNIX_EPOCH), 0);
        assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(1_234)), 1_234);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }

    #[test]
    fn with_instant_answers_its_instant_nested_and_restores_the_clock() {
        let (a, b) = (Instant::now(), Instant::now() + Duration::from_secs(60));
        let inner = with_instant(a, || {
            assert_eq!(instant(), a);
            let inner = with_instant(b, instant);
            assert_eq!(instant(), a);
            inner
        });
        assert_eq!(inner, b);
        // outside, the clock again (not `b`, a minute ahead)
        assert!(instant() < b);
        let caught = std::panic::catch_unwind(|| with_instant(b, || panic!("boom")));
        assert!(caught.is_err());
        assert!(instant() < b);
    }

    #[test]
    fn now_is_after_2020() {
        // 2020-01-01T00:00:00Z
        assert!(now_ms() > 1_577_836_800_000);
        assert!(now_us() > 1_577_836_800_000_000);
    }
}
