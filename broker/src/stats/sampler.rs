//! The broker's rate sampler: once per tick it reads every live [`RateMeter`]'s counters and
//! stores the rate over the last [`WINDOW_TICKS`] ticks in the meter. Meters are registered
//! once (when a topic, producer, subscription or consumer is made) and dropped with their
//! owner; the hot path never takes a lock. A meter lives alone behind an `Arc`, or inside what
//! counts through it ([`Meters`]: a topic's series keeps its rates in its own memory, which the
//! SEND path touches anyway).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::meter::RateMeter;

/// How often meters are sampled.
pub const TICK: Duration = Duration::from_secs(1);
/// Rates are averaged over this many ticks (a sliding window of 10 s).
pub const WINDOW_TICKS: usize = 10;
const SLOTS: usize = WINDOW_TICKS + 1;

/// What holds meters the sampler rates: a lone meter, or a topic's series.
pub trait Meters: Send + Sync {
    /// The meter numbered `i` (as many as were registered with [`RateSampler::track`]).
    fn meter(&self, i: usize) -> Option<&RateMeter>;
}

impl Meters for RateMeter {
    fn meter(&self, i: usize) -> Option<&RateMeter> {
        (i == 0).then_some(self)
    }
}

struct Tracked {
    source: Weak<dyn Meters>,
    /// Which of `source`'s meters.
    index: usize,
    /// (messages, bytes) at each of the last ticks, indexed by tick number modulo [`SLOTS`].
    counts: [(u64, u64); SLOTS],
    /// Ticks this meter has been sampled at.
    seen: usize,
}

#[derive(Default)]
struct State {
    tick: usize,
    times: Vec<Instant>,
    tracked: Vec<Tracked>,
}

/// Registers meters and samples them; see the module documentation.
#[derive(Default)]
pub struct RateSampler {
    pending: Mutex<Vec<(Weak<dyn Meters>, usize)>>,
    state: Mutex<State>,
}

impl RateSampler {
    /// A new meter, sampled from the next tick on.
    pub fn meter(&self) -> Arc<RateMeter> {
        let m = Arc::new(RateMeter::default());
        self.track(&m, 1);
        m
    }

    /// Samples meters `0..count` of `source` from the next tick on, while it lives.
    pub fn track<M: Meters + 'static>(&self, source: &Arc<M>, count: usize) {
        let source: Weak<dyn Meters> = Arc::downgrade(source) as Weak<dyn Meters>;
        let mut pending = self.pending.lock();
        pending.extend((0..count).map(|i| (source.clone(), i)));
    }

    /// Samples every live meter at `now` and updates its rates; forgets dropped meters.
    pub fn sample(&self, now: Instant) {
        let fresh = std::mem::take(&mut *self.pending.lock());
        let mut st = self.state.lock();
        st.tracked
            .extend(fresh.into_iter().map(|(source, index)| Tracked {
                source,
                index,
                counts: [(0, 0); SLOTS],
                seen: 0,
            }));
        let n = st.tick;
        st.tick += 1;
        if st.times.len() < SLOTS {
            st.times.push(now);
        } else {
            st.times[n % SLOTS] = now;
        }
        let State { times, tracked, .. } = &mut *st;
        tracked.retain_mut(|t| {
            let Some(source) = t.source.upgrade() else {
                return false;
            };
            let Some(m) = source.meter(t.index) else {
                return false;
            };
            let cur = m.totals();
            t.counts[n % SLOTS] = cur;
            t.seen += 1;
            let span = t.seen.min(SLOTS) - 1;
            if span == 0 {
                m.set_rates(0.0, 0.0);
                return true;
            }
            let old = t.counts[(n - span) % SLOTS];
            let dt = now
                .saturating_duration_since(times[(n - span) % SLOTS])
                .as_secs_f64();
            if dt > 0.0 {
                m.set_rates(
                    cur.0.saturating_sub(old.0) as f64 / dt,
                    cur.1.saturating_sub(old.1) as f64 / dt,
                );
            }
            true
        });
    }

    /// Live meters (tests and the stats of the sampler itself).
    pub fn tracked(&self) -> usize {
        self.state.lock().tracked.len() + self.pending.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window_and_dropped_meters_forgotten() {
        let s = RateSampler::default();
        let m = s.meter();
        let t0 = Instant::now();
        s.sample(t0);
        assert_eq!(m.read().msg_rate, 0.0);
        for i in 1..=20u64 {
            m.record(100, 1000);
            s.sample(t0 + Duration::from_secs(i));
        }
        let r = m.read();
        assert!((r.msg_rate - 100.0).abs() < 1e-9, "{r:?}");
        assert!((r.byte_rate - 1000.0).abs() < 1e-9, "{r:?}");
        // Idle for a whole window: the rate falls to zero.
        for i in 21..=31u64 {
            s.sample(t0 + Duration::from_secs(i));
        }
        assert_eq!(m.read().msg_rate, 0.0);
        assert_eq!(m.read().messages, 2000);
        drop(m);
        s.sample(t0 + Duration::from_secs(40));
        assert_eq!(s.tracked(), 0);
    }

    #[test]
    fn a_meter_made_mid_window_rates_from_its_first_sample() {
        let s = RateSampler::default();
        let t0 = Instant::now();
        for i in 0..5u64 {
            s.sample(t0 + Duration::from_secs(i));
        }
        let m = s.meter();
        m.record(50, 50);
        s.sample(t0 + Duration::from_secs(5));
        m.record(50, 50);
        s.sample(t0 + Duration::from_secs(7));
        assert!((m.read().msg_rate - 25.0).abs() < 1e-9, "{:?}", m.read());
    }
}
