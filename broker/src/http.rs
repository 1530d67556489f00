//! The HTTP port (axum): REST lookup the clients use with an `http://` service URL, schemas,
//! `/metrics` (superusers only once authentication is on), `/health` (open: liveness) and the
//! admin API ([`crate::admin`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use strata_auth::RestOperation;

use crate::admin::{ApiResult, Caller, Svc};
use crate::schema::{SchemaVersion, SchemaVersionExt, schema_type_value};
use crate::service::{BrokerService, Owner};
use crate::topic_name::TopicName;

/// The router of the broker's HTTP port.
pub fn router(service: Arc<BrokerService>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route(
            "/lookup/v2/topic/{domain}/{tenant}/{ns}/{topic}",
            get(lookup),
        )
        .route(
            "/admin/v2/schemas/{tenant}/{ns}/{topic}/schema",
            get(get_schema).post(post_schema),
        )
        .route(
            "/admin/v2/schemas/{tenant}/{ns}/{topic}/schema/{version}",
            get(get_schema_version),
        )
        .merge(crate::admin::router())
        .merge(crate::cluster::admin::routes())
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            crate::cluster::fanout::layer,
        ))
        .layer(axum::middleware::from_fn(crate::admin::redirect_layer))
        .with_state(service)
}

/// 200 once the broker serves (in a cluster: registered, session held), 503 otherwise.
async fn ready(State(s): Svc) -> (StatusCode, &'static str) {
    if s.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(s): Svc, c: Caller) -> ApiResult<impl IntoResponse> {
    c.cluster(&s, RestOperation::Metrics)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    ))
}

/// Query of `/lookup/v2/topic/...`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct LookupQuery {
    /// Sent by the leader's redirect: acquire an unowned bundle instead of asking the leader.
    authoritative: bool,
}

async fn lookup(
    State(s): Svc,
    c: Caller,
    Path((domain, tenant, ns, topic)): Path<(String, String, String, String)>,
    axum::extract::Query(q): axum::extract::Query<LookupQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let name = TopicName::from_parts(&domain, &tenant, &ns, &topic)?;
    c.topic(&s, RestOperation::LookupTopic, &name, None).await?;
    let (broker_url, http_url, broker_url_tls, http_url_tls) =
        match s.lookup(&name, q.authoritative).await? {
            Owner::Local => (
                s.broker_url(),
                s.http_url(),
                s.broker_url_tls().unwrap_or_default(),
                s.http_url_tls().unwrap_or_default(),
            ),
            Owner::Remote {
                broker_url,
                http_url,
                broker_url_tls,
            } => (
                broker_url,
                http_url,
                broker_url_tls.unwrap_or_default(),
                String::new(),
            ),
            // Unowned and assigned by the leader: ask it (its answer names the assigned broker).
            Owner::Leader { http_url, .. } => {
                return Err(crate::admin::ApiError {
                    status: axum::http::StatusCode::TEMPORARY_REDIRECT,
                    reason: "ask the leader broker".into(),
                    redirect_base: Some(http_url),
                });
            }
        };
    Ok(Json(json!({
        "brokerUrl": broker_url,
        "brokerUrlTls": broker_url_tls,
        "httpUrl": http_url,
        "httpUrlTls": http_url_tls,
        "nativeUrl": broker_url,
    })))
}

/// Pulsar's name of a stored version's type.
fn schema_type_name_of(v: &SchemaVersion) -> &'static str {
    crate::schema::schema_type_name(v.type_value())
}

fn schema_json(v: &SchemaVersion) -> serde_json::Value {
    json!({
        "version": v.version,
        "type": schema_type_name_of(v),
        "timestamp": v.timestamp_ms,
        "data": String::from_utf8_lossy(&v.data_bytes()),
        "properties": v.properties,
    })
}

async fn get_schema(
    State(s): Svc,
    c: Caller,
    Path((tenant, ns, topic)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let name = TopicName::from_parts("persistent", &tenant, &ns, &topic)?;
    c.topic(&s, RestOperation::GetSchemaRest, &name, None)
        .await?;
    match s.schemas.get(&name, None).await? {
        Some(v) => Ok(Json(schema_json(&v)).into_response()),
        None => Ok((
            StatusCode::NOT_FOUND,
            Json(json!({ "reason": "Schema not found" })),
        )
            .into_response()),
    }
}

async fn get_schema_version(
    State(s): Svc,
    c: Caller,
    Path((tenant, ns, topic, version)): Path<(String, String, String, u64)>,
) -> ApiResult<Response> {
    let name = TopicName::from_parts("persistent", &tenant, &ns, &topic)?;
    c.topic(&s, RestOperation::GetSchemaRest, &name, None)
        .await?;
    match s.schemas.get(&name, Some(version)).await? {
        Some(v) => Ok(Json(schema_json(&v)).into_response()),
        None => Ok((
            StatusCode::NOT_FOUND,
            Json(json!({ "reason": "Schema not found" })),
        )
            .into_response()),
    }
}

#[derive(serde::Deserialize)]
struct PostSchema {
    #[serde(rename = "type")]
    schema_type: String,
    #[serde(default)]
    schema: String,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

async fn post_schema(
    State(s): Svc,
    c: Caller,
    Path((tenant, ns, topic)): Path<(String, String, String)>,
    Json(body): Json<PostSchema>,
) -> ApiResult<Json<serde_json::Value>> {
    let name = TopicName::from_parts("persistent", &tenant, &ns, &topic)?;
    c.topic(&s, RestOperation::PostSchema, &name, None).await?;
    let schema = strata_proto::pulsar::Schema {
        name: topic.clone(),
        schema_data: bytes::Bytes::from(body.schema.into_bytes()),
        r#type: schema_type_value(&body.schema_type),
        properties: body
            .properties
            .into_iter()
            .map(|(key, value)| strata_proto::pulsar::KeyValue { key, value })
            .collect(),
    };
    let v = s.schemas.get_or_create(&name, &schema).await?;
    Ok(Json(json!({ "version": { "version": v } })))
}
