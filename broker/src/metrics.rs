//! Broker metrics (prometheus-client), named as Pulsar's where one exists.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Broker-wide metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// Messages received from producers.
    pub in_messages: Counter,
    /// Bytes received from producers.
    pub in_bytes: Counter,
    /// Messages sent to consumers.
    pub out_messages: Counter,
    /// Bytes sent to consumers.
    pub out_bytes: Counter,
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
    /// Stored bytes of loaded topics.
    pub storage_size: Gauge,
    /// Entries in subscriptions' backlogs.
    pub msg_backlog: Gauge,
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
            in_messages: Counter::default(),
            in_bytes: Counter::default(),
            out_messages: Counter::default(),
            out_bytes: Counter::default(),
            producers: Gauge::default(),
            consumers: Gauge::default(),
            topics: Gauge::default(),
            connections: Gauge::default(),
            bad_frames: Counter::default(),
            storage_size: Gauge::default(),
            msg_backlog: Gauge::default(),
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
        r.register(
            "pulsar_storage_size",
            "Stored bytes of loaded topics",
            m.storage_size.clone(),
        );
        r.register(
            "pulsar_msg_backlog",
            "Entries not yet acknowledged by subscriptions",
            m.msg_backlog.clone(),
        );
        *m.registry.lock() = r;
        m
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry.lock());
        out
    }
}
