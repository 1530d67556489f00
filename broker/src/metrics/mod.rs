//! Broker metrics (prometheus-client), named as Pulsar's. Broker-wide series are registered
//! once; topic series (`pulsar_rate_in`, `pulsar_storage_size`, the `_le_` histograms,
//! `pulsar_subscription_*`, ...) are gathered at scrape time from the loaded topics
//! ([`topics`]) and aggregated per namespace, or per topic when `expose_topic_level_metrics` is
//! set (Pulsar's `exposeTopicLevelMetricsInPrometheus`), so their number does not grow with
//! the number of topics unless asked.

pub mod process;
pub mod topics;

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::stats::RateSampler;
pub use crate::stats::{TopicMetrics, TopicSeries};

/// Appends a component's series to a scrape.
pub type Source = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Broker-wide metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// Connected producers.
    pub producers: Gauge,
    /// Connected consumers.
    pub consumers: Gauge,
    /// Loaded topics.
    pub topics: Gauge,
    /// Open client connections.
    pub connections: Gauge,
    /// Frames that closed a connection because they were malformed.
    pub bad_frames: Counter,
    sampler: Arc<RateSampler>,
    series: Arc<Mutex<HashMap<String, Weak<TopicSeries>>>>,
    registry: Arc<Mutex<Registry>>,
    /// Registries of components running in the same process (the standalone's bookie).
    extra: Arc<Mutex<Vec<Source>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every broker-wide metric.
    pub fn new() -> Self {
        let m = Metrics {
            producers: Gauge::default(),
            consumers: Gauge::default(),
            topics: Gauge::default(),
            connections: Gauge::default(),
            bad_frames: Counter::default(),
            sampler: Arc::new(RateSampler::default()),
            series: Arc::default(),
            registry: Arc::new(Mutex::new(Registry::default())),
            extra: Arc::default(),
        };
        let mut r = Registry::default();
        r.register(
            "pulsar_broker_producers_count",
            "Connected producers",
            m.producers.clone(),
        );
        r.register(
            "pulsar_broker_consumers_count",
            "Connected consumers",
            m.consumers.clone(),
        );
        r.register(
            "pulsar_broker_topics_count",
            "Loaded topics",
            m.topics.clone(),
        );
        r.register(
            "pulsar_active_connections",
            "Open client connections",
            m.connections.clone(),
        );
        r.register(
            "strata_broker_bad_frames",
            "Connections closed for malformed frames",
            m.bad_frames.clone(),
        );
        // The ledger client's counters (`bookkeeper_client_*`, `bookkeeper_autorecovery_*`).
        strata_ledger::metrics::register(&mut r);
        // Object-store calls (`strata_objstore_*`: tiered storage).
        strata_objstore::metrics::register(&mut r);
        r.register_collector(Box::new(process::ProcessCollector));
        *m.registry.lock() = r;
        m
    }

    /// The series of a topic: the same instance for every holder while one is alive (the
    /// topic and its subscriptions), new after the topic was dropped (stats restart on reload,
    /// as Pulsar's).
    pub fn topic(&self, topic: &crate::topic_name::TopicName) -> TopicMetrics {
        let mut map = self.series.lock();
        let key = topic.to_string();
        if let Some(s) = map.get(&key).and_then(Weak::upgrade) {
            return s;
        }
        // Drop the entries of dropped topics now and then, not on every insert: a sweep per new
        // topic made loading N topics cost O(N^2).
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let s = TopicSeries::new(&self.sampler);
        map.insert(key, Arc::downgrade(&s));
        s
    }

    /// The rate sampler (the broker ticks it, `crate::server`; stats make meters from it).
    pub fn sampler(&self) -> &Arc<RateSampler> {
        &self.sampler
    }

    /// Registers an extra metric (cluster mode's, `crate::cluster`).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry.lock().register(name, help, metric);
    }

    /// Adds the metrics of a component running in the same process: `encode` appends its
    /// series (without an `# EOF` line) to every scrape.
    pub fn add_source(&self, encode: Source) {
        self.extra.lock().push(encode);
    }

    /// Prometheus text exposition of the broker-wide series, the scrape's topic series
    /// (`topics::TopicCollector`) and the extra sources.
    pub fn encode(&self, topics: Option<Box<dyn Collector>>) -> String {
        let mut out = String::new();
        let _ = encode_registry(&mut out, &self.registry.lock());
        if let Some(t) = topics {
            let mut r = Registry::default();
            r.register_collector(t);
            let _ = encode_registry(&mut out, &r);
        }
        for src in self.extra.lock().iter() {
            src(&mut out);
        }
        let _ = encode_eof(&mut out);
        out
    }
}
