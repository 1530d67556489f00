//! Clusters, brokers and bookies: `/admin/v2/clusters`, `/admin/v2/brokers`, `/admin/v2/bookies`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use strata_auth::RestOperation;

use super::{ApiError, ApiResult, Caller, Svc};
use crate::service::BrokerService;

pub(super) fn routes() -> Router<Arc<BrokerService>> {
    Router::new()
        .route("/admin/v2/clusters", get(list_clusters))
        .route("/admin/v2/clusters/{cluster}", get(get_cluster))
        .route("/admin/v2/brokers/health", get(health))
        .route("/admin/v2/brokers/leaderBroker", get(leader))
        .route("/admin/v2/brokers/{cluster}", get(active_brokers))
        .route("/admin/v2/bookies/all", get(bookies))
        .route("/admin/v2/bookies/racks-info", get(racks))
}

async fn list_clusters(State(s): Svc, c: Caller) -> ApiResult<Json<Vec<String>>> {
    c.cluster(&s, RestOperation::ListClusters)?;
    Ok(Json(vec![s.config.cluster_name.clone()]))
}

async fn get_cluster(State(s): Svc, c: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.cluster(&s, RestOperation::GetCluster)?;
    if name != s.config.cluster_name {
        return Err(ApiError::not_found("Cluster does not exist"));
    }
    Ok(Json(json!({
        "serviceUrl": s.http_url(),
        "brokerServiceUrl": s.broker_url(),
        "peerClusterNames": [],
    })))
}

fn broker_id(s: &BrokerService) -> String {
    format!("{}:{}", s.config.advertised_address, s.ports.lock().1)
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
    Ok(Json(vec![broker_id(&s)]))
}

async fn leader(State(s): Svc, c: Caller) -> ApiResult<Json<Value>> {
    c.cluster(&s, RestOperation::LeaderBroker)?;
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
    // No rack placement yet: every bookie is in the default rack, which Pulsar leaves out.
    Ok(Json(json!({})))
}
