//! The live counters of one topic, shared by the topic, its producers' SEND path and its
//! subscriptions' dispatch: rates in and out, the storage write latency and entry size
//! histograms, and how often rate limits held traffic back. Each is a relaxed atomic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::buckets::{Buckets, ENTRY_SIZE, WRITE_LATENCY_US};
use super::meter::RateMeter;
use super::sampler::{Meters, RateSampler};

/// See the module documentation. Shared as [`TopicMetrics`]. The meters live inline (the
/// sampler reaches them through [`Meters`]), and what every SEND counts comes first: one cold
/// topic's SEND touches one line of it, not a line of a separate meter besides.
#[derive(Debug)]
#[repr(C)]
pub struct TopicSeries {
    /// Published messages and bytes.
    pub msg_in: RateMeter,
    /// Size of each appended entry, bytes.
    pub entry_size: Buckets,
    /// Dispatched messages and bytes (every subscription).
    pub msg_out: RateMeter,
    /// Time from append to durable, microseconds.
    pub write_latency: Buckets,
    publish_throttled: AtomicU64,
    dispatch_throttled: AtomicU64,
}

/// A topic's series, shared.
pub type TopicMetrics = Arc<TopicSeries>;

impl Default for TopicSeries {
    /// Series whose rates stay zero (not sampled): for code running without a broker.
    fn default() -> Self {
        TopicSeries {
            msg_in: RateMeter::default(),
            entry_size: Buckets::new(&ENTRY_SIZE),
            msg_out: RateMeter::default(),
            write_latency: Buckets::new(&WRITE_LATENCY_US),
            publish_throttled: AtomicU64::new(0),
            dispatch_throttled: AtomicU64::new(0),
        }
    }
}

impl Meters for TopicSeries {
    fn meter(&self, i: usize) -> Option<&RateMeter> {
        match i {
            0 => Some(&self.msg_in),
            1 => Some(&self.msg_out),
            _ => None,
        }
    }
}

impl TopicSeries {
    /// Series whose meters `sampler` keeps rating while they live.
    pub fn new(sampler: &RateSampler) -> TopicMetrics {
        let s = Arc::new(TopicSeries::default());
        sampler.track(&s, 2);
        s
    }

    /// Counts an entry appended: its messages and size.
    pub fn appended(&self, messages: u64, bytes: u64) {
        self.msg_in.record(messages, bytes);
        self.entry_size.observe(bytes);
    }

    /// Counts an append made durable after `took`.
    pub fn persisted(&self, took: Duration) {
        self.write_latency
            .observe(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    /// Counts a time the publish rate limit paused a producer's connection.
    pub fn publish_throttled(&self) {
        self.publish_throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a time the dispatch rate limit paused a subscription.
    pub fn dispatch_throttled(&self) {
        self.dispatch_throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Times the publish rate limit paused a producer (`publishRateLimitedTimes`).
    pub fn publish_throttled_times(&self) -> u64 {
        self.publish_throttled.load(Ordering::Relaxed)
    }

    /// Times the dispatch rate limit paused a subscription.
    pub fn dispatch_throttled_times(&self) -> u64 {
        self.dispatch_throttled.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_series_meters_are_rated_while_it_lives() {
        let sampler = RateSampler::default();
        let s = TopicSeries::new(&sampler);
        assert_eq!(sampler.tracked(), 2, "msg_in and msg_out");
        let t0 = Instant::now();
        sampler.sample(t0);
        s.appended(10, 1000);
        s.msg_out.record(5, 500);
        sampler.sample(t0 + Duration::from_secs(1));
        assert_eq!(s.msg_in.read().msg_rate, 10.0);
        assert_eq!(s.msg_in.read().byte_rate, 1000.0);
        assert_eq!(s.msg_out.read().msg_rate, 5.0);
        assert_eq!(s.msg_out.read().byte_rate, 500.0);
        drop(s);
        sampler.sample(t0 + Duration::from_secs(2));
        assert_eq!(sampler.tracked(), 0, "a dropped series is forgotten");
    }
}
