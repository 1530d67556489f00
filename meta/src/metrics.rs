//! Prometheus metrics of the metadata layer. Process-wide (every store of the process records
//! into the same metrics); [`register`] adds them to the registry served on `/metrics`. Names
//! follow Pulsar's metadata-store metrics where one exists.

use std::sync::OnceLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OpLabels {
    /// Backend (`etcd`, `local`).
    pub name: &'static str,
    /// Operation (`get`, `put`, `del`, `scan`, ...).
    pub r#type: &'static str,
    /// `success` or `fail`.
    pub status: &'static str,
}

/// Labels naming a backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BackendLabels {
    /// Backend (`etcd`, `local`).
    pub name: &'static str,
}

/// The metadata layer's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// `pulsar_metadata_store_ops_latency_ms`: latency of store operations.
    pub ops_latency_ms: Family<OpLabels, Histogram>,
    /// `pulsar_metadata_store_put_bytes_total`: value bytes written.
    pub put_bytes: Family<BackendLabels, Counter>,
    /// `strata_metadata_store_cas_conflicts_total`: writes rejected by their precondition.
    pub cas_conflicts: Family<BackendLabels, Counter>,
    /// `strata_metadata_store_sessions_lost_total`: sessions declared lost (not closed).
    pub sessions_lost: Family<BackendLabels, Counter>,
    /// `strata_metadata_store_endpoint_failovers_total`: requests moved to another etcd endpoint.
    pub endpoint_failovers: Counter,
    /// `strata_metadata_store_watch_reconnects_total`: watch streams re-opened.
    pub watch_reconnects: Counter,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 18))
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        ops_latency_ms: Family::new_with_constructor(latency_histogram),
        put_bytes: Family::default(),
        cas_conflicts: Family::default(),
        sessions_lost: Family::default(),
        endpoint_failovers: Counter::default(),
        watch_reconnects: Counter::default(),
    })
}

/// Registers the metadata metrics in `registry`.
pub fn register(registry: &mut Registry) {
    let m = global();
    registry.register(
        "pulsar_metadata_store_ops_latency_ms",
        "Latency of metadata store operations in milliseconds",
        m.ops_latency_ms.clone(),
    );
    registry.register(
        "pulsar_metadata_store_put_bytes",
        "Value bytes written to the metadata store",
        m.put_bytes.clone(),
    );
    registry.register(
        "strata_metadata_store_cas_conflicts",
        "Metadata writes rejected because the expected version did not match",
        m.cas_conflicts.clone(),
    );
    registry.register(
        "strata_metadata_store_sessions_lost",
        "Metadata sessions declared lost",
        m.sessions_lost.clone(),
    );
    registry.register(
        "strata_metadata_store_endpoint_failovers",
        "etcd requests moved to another endpoint after a failure",
        m.endpoint_failovers.clone(),
    );
    registry.register(
        "strata_metadata_store_watch_reconnects",
        "Metadata watch streams re-opened after a failure",
        m.watch_reconnects.clone(),
    );
}

/// Records one operation's outcome and latency.
pub(crate) fn observe<T>(
    backend: &'static str,
    op: &'static str,
    start: Instant,
    result: &crate::Result<T>,
) {
    let m = global();
    let status = if result.is_ok() { "success" } else { "fail" };
    if let Err(e) = result
        && e.is_conflict()
    {
        m.cas_conflicts
            .get_or_create(&BackendLabels { name: backend })
            .inc();
    }
    m.ops_latency_ms
        .get_or_create(&OpLabels {
            name: backend,
            r#type: op,
            status,
        })
        .observe(start.elapsed().as_secs_f64() * 1000.0);
}

pub(crate) fn put_bytes(backend: &'static str, n: usize) {
    global()
        .put_bytes
        .get_or_create(&BackendLabels { name: backend })
        .inc_by(n as u64);
}

pub(crate) fn session_lost(backend: &'static str) {
    global()
        .sessions_lost
        .get_or_create(&BackendLabels { name: backend })
        .inc();
}

/// Runs a store operation, recording its latency and outcome.
pub(crate) async fn timed<T>(
    backend: &'static str,
    op: &'static str,
    fut: impl std::future::Future<Output = crate::Result<T>>,
) -> crate::Result<T> {
    let start = Instant::now();
    let r = fut.await;
    observe(backend, op, start, &r);
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_encode_with_pulsar_names() {
        let mut r = prometheus_client::registry::Registry::default();
        super::register(&mut r);
        super::observe::<()>("local", "get", std::time::Instant::now(), &Ok(()));
        super::put_bytes("local", 3);
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &r).unwrap();
        assert!(
            s.contains("pulsar_metadata_store_ops_latency_ms_bucket"),
            "{s}"
        );
        assert!(s.contains("pulsar_metadata_store_put_bytes_total"), "{s}");
    }
}
