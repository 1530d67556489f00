//! `/admin/v2/broker-stats/*`, the broker-level views tools poll: `topics` (every loaded topic's
//! stats, by namespace, bundle and domain, as Pulsar's `BrokerStats.getTopics`) and
//! `load-report` (Pulsar's `LocalBrokerData`: rates, throughputs, counts, CPU and memory).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{Value, json};
use strata_auth::RestOperation;
use strata_common::process::{ProcessStats, total_memory_bytes};
use strata_meta::model::{BundlesData, Policies};

use super::topics::topic_stats_json;
use super::{ApiResult, Caller, Svc};
use crate::cluster::bundle::bundle_of;
use crate::service::BrokerService;
use crate::stats::MeterReading;

pub(super) fn routes() -> Router<Arc<BrokerService>> {
    Router::new()
        .route("/admin/v2/broker-stats/topics", get(topics))
        .route("/admin/v2/broker-stats/load-report", get(load_report))
}

/// The bundle boundaries of a namespace (its policies; the default split if it has none).
async fn bundles(s: &BrokerService, tenant: &str, ns: &str) -> BundlesData {
    let key = s.metadata().paths().namespace(tenant, ns);
    match s.metadata().get::<Policies>(&key).await {
        Ok(Some((p, _))) => p.bundles,
        _ => BundlesData::default(),
    }
}

/// Topic stats by domain (`persistent`), then by topic name.
type ByDomain = BTreeMap<String, BTreeMap<String, Value>>;

/// The bundle range of `t` (`0x..._0x...`), reading each namespace's boundaries once.
async fn bundle_range(
    s: &BrokerService,
    cache: &mut BTreeMap<String, BundlesData>,
    n: &crate::topic_name::TopicName,
) -> String {
    let ns = n.namespace_name();
    if !cache.contains_key(&ns) {
        let b = bundles(s, &n.tenant, &n.namespace).await;
        cache.insert(ns.clone(), b);
    }
    cache
        .get(&ns)
        .map(|b| bundle_of(n, b).range.to_string())
        .unwrap_or_default()
}

async fn topics(axum::extract::State(s): Svc, c: Caller) -> ApiResult<Json<Value>> {
    c.cluster(&s, RestOperation::Metrics)?;
    let mut out: BTreeMap<String, BTreeMap<String, ByDomain>> = BTreeMap::new();
    let mut cache = BTreeMap::new();
    for t in s.loaded_topics().await {
        let n = t.name();
        let ns = n.namespace_name();
        let range = bundle_range(&s, &mut cache, n).await;
        let stats = topic_stats_json(&s, &t).await;
        out.entry(ns)
            .or_default()
            .entry(range)
            .or_default()
            .entry(n.domain.clone())
            .or_default()
            .insert(n.to_string(), stats);
    }
    Ok(Json(serde_json::to_value(out).unwrap_or_default()))
}

/// CPU use between two load reports.
static LAST_CPU: Mutex<Option<(Instant, f64)>> = Mutex::new(None);

/// Percent of one core used since the previous call (since the process started, the first
/// time).
fn cpu_usage_percent(p: &ProcessStats) -> f64 {
    let now = Instant::now();
    let mut last = LAST_CPU.lock();
    let usage = match *last {
        Some((at, cpu)) if now > at => {
            (p.cpu_seconds - cpu) / now.duration_since(at).as_secs_f64() * 100.0
        }
        _ => {
            let up = strata_common::clock::now_ms() as f64 / 1000.0 - p.start_time_seconds;
            if up > 0.0 {
                p.cpu_seconds / up * 100.0
            } else {
                0.0
            }
        }
    };
    *last = Some((now, p.cpu_seconds));
    usage.max(0.0)
}

async fn load_report(axum::extract::State(s): Svc, c: Caller) -> ApiResult<Json<Value>> {
    c.cluster(&s, RestOperation::Metrics)?;
    let topics = s.loaded_topics().await;
    let (mut inr, mut out) = (MeterReading::default(), MeterReading::default());
    let (mut producers, mut consumers) = (0usize, 0usize);
    let mut bundles = std::collections::BTreeSet::new();
    let mut cache = BTreeMap::new();
    for t in &topics {
        inr.add(&t.series().msg_in.read());
        out.add(&t.series().msg_out.read());
        producers += t.producer_count();
        for sub in t.subscription_snapshots().await {
            consumers += sub.2.consumers.len();
        }
        let range = bundle_range(&s, &mut cache, t.name()).await;
        bundles.insert(format!("{}/{range}", t.name().namespace_name()));
    }
    let p = ProcessStats::read().unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    Ok(Json(json!({
        "webServiceUrl": s.http_url(),
        "webServiceUrlTls": s.http_url_tls(),
        "pulsarServiceUrl": s.broker_url(),
        "pulsarServiceUrlTls": s.broker_url_tls(),
        "persistentTopicsEnabled": true,
        "nonPersistentTopicsEnabled": false,
        "cpu": { "usage": cpu_usage_percent(&p), "limit": (cores * 100) as f64 },
        "memory": {
            "usage": mb(p.resident_bytes),
            "limit": mb(total_memory_bytes().unwrap_or(0)),
        },
        "msgRateIn": inr.msg_rate,
        "msgRateOut": out.msg_rate,
        "msgThroughputIn": inr.byte_rate,
        "msgThroughputOut": out.byte_rate,
        "numTopics": topics.len(),
        "numBundles": bundles.len(),
        "bundles": bundles,
        "numProducers": producers,
        "numConsumers": consumers,
        "lastUpdate": strata_common::clock::now_ms(),
        "brokerVersionString": env!("CARGO_PKG_VERSION"),
        "loadReportType": "LocalBrokerData",
    })))
}
