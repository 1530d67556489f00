//! The live counters of one topic, shared by the topic, its producers' SEND path and its
//! subscriptions' dispatch: rates in and out, the storage write latency and entry size
//! histograms, and how often rate limits held traffic back. Each is a relaxed atomic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::buckets::{Buckets, ENTRY_SIZE, WRITE_LATENCY_US};
use super::meter::RateMeter;
use super::sampler::RateSampler;

/// See the module documentation. Shared as [`TopicMetrics`].
#[derive(Debug)]
pub struct TopicSeries {
    /// Published messages and bytes.
    pub msg_in: Arc<RateMeter>,
    /// Dispatched messages and bytes (every subscription).
    pub msg_out: Arc<RateMeter>,
    /// Time from append to durable, microseconds.
    pub write_latency: Buckets,
    /// Size of each appended entry, bytes.
    pub entry_size: Buckets,
    publish_throttled: AtomicU64,
    dispatch_throttled: AtomicU64,
}

/// A topic's series, shared.
pub type TopicMetrics = Arc<TopicSeries>;

impl Default for TopicSeries {
    /// Series whose rates stay zero (not sampled): for code running without a broker.
    fn default() -> Self {
        Self::with_meters(Arc::default(), Arc::default())
    }
}

impl TopicSeries {
    /// Series whose meters `sampler` keeps rating.
    pub fn new(sampler: &RateSampler) -> Self {
        Self::with_meters(sampler.meter(), sampler.meter())
    }

    fn with_meters(msg_in: Arc<RateMeter>, msg_out: Arc<RateMeter>) -> Self {
        TopicSeries {
            msg_in,
            msg_out,
            write_latency: Buckets::new(&WRITE_LATENCY_US),
            entry_size: Buckets::new(&ENTRY_SIZE),
            publish_throttled: AtomicU64::new(0),
            dispatch_throttled: AtomicU64::new(0),
        }
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
