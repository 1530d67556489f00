//! Broker metrics (prometheus-client), named as Pulsar's: per-topic series carry the `cluster`,
//! `namespace` and `topic` labels like Pulsar's topic-level metrics; connection-level ones are
//! broker-wide.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a per-topic series.
pub type TopicLabels = Vec<(String, String)>;

/// Counters of one topic, resolved once (no label lookup per message).
#[derive(Clone, Default)]
pub struct TopicMetrics {
    /// Messages received from producers.
    pub in_messages: Counter,
    /// Bytes received from producers.
    pub in_bytes: Counter,
    /// Messages sent to consumers.
    pub out_messages: Counter,
    /// Bytes sent to consumers.
    pub out_bytes: Counter,
    /// Stored bytes.
    pub storage_size: Gauge,
    /// Entries not acknowledged by durable subscriptions.
    pub msg_backlog: Gauge,
}

/// Broker-wide metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    in_messages: Family<TopicLabels, Counter>,
    in_bytes: Family<TopicLabels, Counter>,
    out_messages: Family<TopicLabels, Counter>,
    out_bytes: Family<TopicLabels, Counter>,
    storage_size_f: Family<TopicLabels, Gauge>,
    msg_backlog_f: Family<TopicLabels, Gauge>,
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
    registry: Arc<parking_lot::Mutex<Registry>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::default();
        let m = Metrics {
            in_messages: Family::default(),
            in_bytes: Family::default(),
            out_messages: Family::default(),
            out_bytes: Family::default(),
            storage_size_f: Family::default(),
            msg_backlog_f: Family::default(),
            producers: Gauge::default(),
            consumers: Gauge::default(),
            topics: Gauge::default(),
            connections: Gauge::default(),
            bad_frames: Counter::default(),
            registry: Arc::new(parking_lot::Mutex::new(Registry::default())),
        };
        r.register(
            "pulsar_in_messages",
            "Messages received from producers",
            m.in_messages.clone(),
        );
        r.register(
            "pulsar_in_bytes",
            "Bytes received from producers",
            m.in_bytes.clone(),
        );
        r.register(
            "pulsar_out_messages",
            "Messages dispatched to consumers",
            m.out_messages.clone(),
        );
        r.register(
            "pulsar_out_bytes",
            "Bytes dispatched to consumers",
            m.out_bytes.clone(),
        );
        r.register(
            "pulsar_storage_size",
            "Stored bytes of the topic",
            m.storage_size_f.clone(),
        );
        r.register(
            "pulsar_msg_backlog",
            "Entries not acknowledged by durable subscriptions",
            m.msg_backlog_f.clone(),
        );
        r.register(
            "pulsar_producers_count",
            "Connected producers",
            m.producers.clone(),
        );
        r.register(
            "pulsar_consumers_count",
            "Connected consumers",
            m.consumers.clone(),
        );
        r.register("pulsar_topics_count", "Loaded topics", m.topics.clone());
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
        *m.registry.lock() = r;
        m
    }

    /// The series of one topic.
    pub fn topic(&self, topic: &crate::topic_name::TopicName) -> TopicMetrics {
        let labels: TopicLabels = vec![
            ("cluster".into(), "standalone".into()),
            ("namespace".into(), topic.namespace_name()),
            ("topic".into(), topic.to_string()),
        ];
        TopicMetrics {
            in_messages: self.in_messages.get_or_create(&labels).clone(),
            in_bytes: self.in_bytes.get_or_create(&labels).clone(),
            out_messages: self.out_messages.get_or_create(&labels).clone(),
            out_bytes: self.out_bytes.get_or_create(&labels).clone(),
            storage_size: self.storage_size_f.get_or_create(&labels).clone(),
            msg_backlog: self.msg_backlog_f.get_or_create(&labels).clone(),
        }
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

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry.lock());
        out
    }
}
