//! Cluster mode's metrics (registered with the broker's on start).

/// Cluster mode's metrics (registered with the broker's on start).
#[derive(Clone, Default)]
pub(super) struct ClusterMetrics {
    pub(super) bundles_owned: prometheus_client::metrics::gauge::Gauge,
    pub(super) is_leader: prometheus_client::metrics::gauge::Gauge,
    pub(super) acquired: prometheus_client::metrics::counter::Counter,
    pub(super) released: prometheus_client::metrics::counter::Counter,
    pub(super) sessions_lost: prometheus_client::metrics::counter::Counter,
    pub(super) fenced: prometheus_client::metrics::counter::Counter,
}
impl ClusterMetrics {
    pub(super) fn register(&self, m: &crate::metrics::Metrics) {
        m.register(
            "strata_broker_bundles_owned",
            "Namespace bundles owned by this broker",
            self.bundles_owned.clone(),
        );
        m.register(
            "strata_broker_is_leader",
            "1 while this broker is the cluster leader",
            self.is_leader.clone(),
        );
        m.register(
            "strata_broker_bundles_acquired",
            "Bundles acquired",
            self.acquired.clone(),
        );
        m.register(
            "strata_broker_bundles_released",
            "Bundles released (unload, balancing, fencing, shutdown)",
            self.released.clone(),
        );
        m.register(
            "strata_broker_sessions_lost",
            "Metadata sessions lost",
            self.sessions_lost.clone(),
        );
        m.register(
            "strata_broker_topics_fenced",
            "Topics whose ledger was fenced by another broker",
            self.fenced.clone(),
        );
    }
}
