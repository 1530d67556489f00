//! Clusters, brokers and bookies: `/admin/v2/clusters`, `/admin/v2/brokers`, `/admin/v2/bookies`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use strata_auth::RestOperation;

use strata_meta::model::{BookieInfo, BrokerInfo, ClusterData, Paths, decode_segment};

use super::{ApiError, ApiResult, Caller, Svc, parse_body};
use crate::service::BrokerService;
use strata_meta::Expected;

pub(super) fn routes() -> Router<Arc<BrokerService>> {
    Router::new()
        .route("/admin/v2/clusters", get(list_clusters))
        .route(
            "/admin/v2/clusters/{cluster}",
            get(get_cluster)
                .put(create_cluster)
                .post(update_cluster)
                .delete(delete_cluster),
        )
        .route("/admin/v2/brokers/health", get(health))
        .route("/admin/v2/brokers/leaderBroker", get(leader))
        .route("/admin/v2/brokers/{cluster}", get(active_brokers))
        .route("/admin/v2/bookies/all", get(bookies))
        .route("/admin/v2/bookies/racks-info", get(racks))
}

// In cluster mode these answers come from the metadata store (`strata init-cluster`'s cluster
// record, the live broker registrations, the leader key); standalone has none of those keys and
// answers about itself.

async fn decoded<T: strata_meta::model::Model>(
    s: &BrokerService,
    prefix: &str,
) -> ApiResult<Vec<(String, T)>> {
    let p = format!("{prefix}/");
    let mut out = Vec::new();
    let scan = s
        .metadata()
        .store()
        .scan(&p)
        .await
        .map_err(crate::BrokerError::from)?;
    let mut entries = scan.entries;
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    for kv in entries {
        let k = kv.key;
        let name = decode_segment(k.strip_prefix(p.as_str()).unwrap_or(&k));
        if name.contains('/') {
            continue;
        }
        if let Ok(x) = strata_meta::model::decode::<T>(&k, &kv.value.value) {
            out.push((name, x));
        }
    }
    Ok(out)
}

async fn list_clusters(State(s): Svc, c: Caller) -> ApiResult<Json<Vec<String>>> {
    c.cluster(&s, RestOperation::ListClusters)?;
    let mut names: Vec<String> = decoded::<ClusterData>(&s, &Paths::default().clusters())
        .await?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        names.push(s.config.cluster_name.clone());
    }
    Ok(Json(names))
}

async fn get_cluster(State(s): Svc, c: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.cluster(&s, RestOperation::GetCluster)?;
    let stored = decoded::<ClusterData>(&s, &Paths::default().clusters())
        .await?
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| d);
    if stored.is_none() && name != s.config.cluster_name {
        return Err(ApiError::not_found("Cluster does not exist"));
    }
    let d = stored.unwrap_or_default();
    let or = |v: String, own: String| if v.is_empty() { own } else { v };
    Ok(Json(json!({
        "serviceUrl": or(d.service_url, s.http_url()),
        "serviceUrlTls": d.service_url_tls.or(s.http_url_tls()),
        "brokerServiceUrl": or(d.broker_service_url, s.broker_url()),
        "brokerServiceUrlTls": d.broker_service_url_tls.or(s.broker_url_tls()),
        "peerClusterNames": d.peer_cluster_names,
    })))
}

/// Pulsar's `ClusterData` JSON (the fields Strata uses; others are ignored as Pulsar's own
/// admin client sends many).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ClusterJson {
    service_url: String,
    service_url_tls: Option<String>,
    broker_service_url: String,
    broker_service_url_tls: Option<String>,
    peer_cluster_names: Option<Vec<String>>,
}

fn cluster_from(body: &str) -> ApiResult<ClusterData> {
    let j: ClusterJson = if body.trim().is_empty() {
        ClusterJson::default()
    } else {
        parse_body(body)?
    };
    let empty = |o: Option<String>| o.filter(|v| !v.is_empty());
    Ok(ClusterData {
        service_url: j.service_url,
        service_url_tls: empty(j.service_url_tls),
        broker_service_url: j.broker_service_url,
        broker_service_url_tls: empty(j.broker_service_url_tls),
        peer_cluster_names: j.peer_cluster_names.unwrap_or_default(),
    })
}

fn valid_cluster_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '='));
    if ok {
        Ok(())
    } else {
        Err(ApiError::precondition(format!(
            "Invalid cluster name {name:?}"
        )))
    }
}

/// `PUT /admin/v2/clusters/{c}`: records a cluster (409 if it is recorded already).
async fn create_cluster(
    State(s): Svc,
    c: Caller,
    Path(name): Path<String>,
    body: String,
) -> ApiResult<StatusCode> {
    c.cluster(&s, RestOperation::ManageCluster)?;
    valid_cluster_name(&name)?;
    let data = cluster_from(&body)?;
    let key = Paths::default().cluster(&name);
    match s.metadata().create(&key, &data).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(strata_meta::MetaError::BadVersion { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "Cluster already exists",
        )),
        Err(e) => Err(crate::BrokerError::from(e).into()),
    }
}

/// `POST /admin/v2/clusters/{c}`: replaces a cluster's URLs. This broker's own cluster may be
/// updated before anything recorded it (standalone answers about itself until then).
async fn update_cluster(
    State(s): Svc,
    c: Caller,
    Path(name): Path<String>,
    body: String,
) -> ApiResult<StatusCode> {
    c.cluster(&s, RestOperation::ManageCluster)?;
    let data = cluster_from(&body)?;
    let key = Paths::default().cluster(&name);
    let exists = s
        .metadata()
        .get::<ClusterData>(&key)
        .await
        .map_err(crate::BrokerError::from)?
        .is_some();
    if !exists && name != s.config.cluster_name {
        return Err(ApiError::not_found("Cluster does not exist"));
    }
    s.metadata()
        .put(&key, &data, Expected::Any)
        .await
        .map_err(crate::BrokerError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /admin/v2/clusters/{c}`: forgets a recorded cluster (not this broker's own).
async fn delete_cluster(
    State(s): Svc,
    c: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    c.cluster(&s, RestOperation::ManageCluster)?;
    if name == s.config.cluster_name {
        return Err(ApiError::precondition(
            "Cannot delete the broker's own cluster",
        ));
    }
    let key = Paths::default().cluster(&name);
    let deleted = s
        .metadata()
        .store()
        .delete(&key, Expected::Any)
        .await
        .map_err(crate::BrokerError::from)?;
    if !deleted {
        return Err(ApiError::not_found("Cluster does not exist"));
    }
    Ok(StatusCode::NO_CONTENT)
}

fn broker_id(s: &BrokerService) -> String {
    format!("{}:{}", s.config.advertised_address, s.ports.lock().1)
}

/// `host:port` of a broker's HTTP URL (Pulsar lists brokers by their web service address).
fn web_address(info: &BrokerInfo) -> String {
    info.http_url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned()
}

async fn active_brokers(
    State(s): Svc,
    c: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    c.cluster(&s, RestOperation::ListBrokers)?;
    if name != s.config.cluster_name {
        return Err(ApiError::not_found("Cluster does not exist"));
    }
    let mut live: Vec<String> = decoded::<BrokerInfo>(&s, &Paths::default().brokers())
        .await?
        .iter()
        .map(|(_, b)| web_address(b))
        .collect();
    if live.is_empty() {
        live.push(broker_id(&s));
    }
    live.sort();
    Ok(Json(live))
}

async fn leader(State(s): Svc, c: Caller) -> ApiResult<Json<Value>> {
    c.cluster(&s, RestOperation::LeaderBroker)?;
    let key = format!("{}/leader", Paths::default().root());
    if let Some(v) = s
        .metadata()
        .store()
        .get(&key)
        .await
        .map_err(crate::BrokerError::from)?
        && let Ok(b) = strata_meta::model::decode::<BrokerInfo>(&key, &v.value)
    {
        return Ok(Json(json!({
            "brokerId": web_address(&b),
            "serviceUrl": b.http_url,
        })));
    }
    Ok(Json(json!({
        "brokerId": broker_id(&s),
        "serviceUrl": s.http_url(),
    })))
}

async fn health(State(s): Svc, c: Caller) -> ApiResult<&'static str> {
    c.cluster(&s, RestOperation::HealthCheck)?;
    Ok("ok")
}

async fn bookies(State(s): Svc, c: Caller) -> ApiResult<Json<Value>> {
    c.cluster(&s, RestOperation::ListBookies)?;
    let list: Vec<Value> = s
        .bookies()
        .into_iter()
        .map(|id| json!({ "bookieId": id }))
        .collect();
    Ok(Json(json!({ "bookies": list })))
}

async fn racks(State(s): Svc, c: Caller) -> ApiResult<Json<Value>> {
    c.cluster(&s, RestOperation::ListBookies)?;
    // Pulsar's shape: group -> bookie -> {rack, hostname}; bookies without a rack are left
    // out (they are in the default rack).
    let mut group = serde_json::Map::new();
    for (_, b) in decoded::<BookieInfo>(&s, &Paths::default().bookies()).await? {
        if let Some(rack) = b.rack {
            let host = b
                .address
                .rsplit_once(':')
                .map_or(b.address.as_str(), |(h, _)| h);
            group.insert(
                b.bookie_id.0.clone(),
                json!({ "rack": rack, "hostname": host }),
            );
        }
    }
    if group.is_empty() {
        return Ok(Json(json!({})));
    }
    Ok(Json(json!({ "default": group })))
}
