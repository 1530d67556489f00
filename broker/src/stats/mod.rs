//! Statistics of topics, producers, subscriptions and consumers: counters bumped on the hot path
//! with relaxed atomics ([`RateMeter`], [`Buckets`]), rates computed off it by the broker's
//! [`RateSampler`] over a sliding window, and the JSON shapes of Pulsar's admin API
//! ([`json`]). Topic stats are put together by `crate::topic` (`topic/stats.rs`); the
//! Prometheus exposition of the same numbers is `crate::metrics::topics`.

pub mod buckets;
pub mod client_info;
pub mod json;
pub mod meter;
pub mod sampler;
pub mod series;

pub use buckets::{BucketCounts, BucketSpec, Buckets};
pub use client_info::ClientInfo;
pub use json::{ConsumerJson, PublisherStats, SubscriptionJson, TopicStats};
pub use meter::{MeterReading, RateMeter};
pub use sampler::RateSampler;
pub use series::{TopicMetrics, TopicSeries};
