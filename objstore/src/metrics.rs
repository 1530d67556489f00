//! Process-wide Prometheus metrics of object-store calls, by operation (`put`, `get`,
//! `get_range`, `head`, `delete`, `list`). Every attempt counts (a retried call counts once per
//! attempt); [`register`] adds them to a registry (the broker's `/metrics`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a series: the operation.
pub type OpLabels = Vec<(&'static str, &'static str)>;

/// The metric families.
pub struct ObjStoreMetrics {
    /// Attempts made.
    pub requests: Family<OpLabels, Counter>,
    /// Attempts that failed (including injected faults and timeouts).
    pub errors: Family<OpLabels, Counter>,
    /// Retries after a retryable failure.
    pub retries: Family<OpLabels, Counter>,
    /// Payload bytes moved (written by `put`, read by `get`/`get_range`).
    pub bytes: Family<OpLabels, Counter>,
    /// Latency of attempts in seconds.
    pub latency: Family<OpLabels, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The process-wide metrics.
pub static METRICS: LazyLock<ObjStoreMetrics> = LazyLock::new(|| ObjStoreMetrics {
    requests: Family::default(),
    errors: Family::default(),
    retries: Family::default(),
    bytes: Family::default(),
    latency: Family::new_with_constructor(latency_histogram),
});

fn labels(op: &'static str) -> OpLabels {
    vec![("op", op)]
}

/// Records one attempt of `op`.
pub(crate) fn attempt(op: &'static str, took: Duration, ok: bool, bytes: u64) {
    let m = &*METRICS;
    let l = labels(op);
    m.requests.get_or_create(&l).inc();
    m.latency.get_or_create(&l).observe(took.as_secs_f64());
    if ok {
        m.bytes.get_or_create(&l).inc_by(bytes);
    } else {
        m.errors.get_or_create(&l).inc();
    }
}

/// Records a retry of `op`.
pub(crate) fn retried(op: &'static str) {
    METRICS.retries.get_or_create(&labels(op)).inc();
}

/// Attempts of `op` so far (tests).
pub fn requests(op: &'static str) -> u64 {
    METRICS.requests.get_or_create(&labels(op)).get()
}

/// Registers the families in `registry`.
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register(
        "strata_objstore_requests",
        "Object store requests (attempts) by operation",
        m.requests.clone(),
    );
    registry.register(
        "strata_objstore_errors",
        "Object store requests that failed, by operation",
        m.errors.clone(),
    );
    registry.register(
        "strata_objstore_retries",
        "Object store requests retried after a retryable failure",
        m.retries.clone(),
    );
    registry.register(
        "strata_objstore_bytes",
        "Object store payload bytes by operation",
        m.bytes.clone(),
    );
    registry.register(
        "strata_objstore_request_seconds",
        "Latency of object store requests by operation",
        m.latency.clone(),
    );
}
