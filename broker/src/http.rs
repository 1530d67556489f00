//! The HTTP API (axum): REST lookup and partition metadata the clients use with an `http://`
//! service URL, a small admin surface (tenants, namespaces, topics, partitioned topics, schemas)
//! and `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::error::BrokerError;
use crate::schema::SchemaVersion;
use crate::service::{BrokerService, Owner};
use crate::topic_name::TopicName;

type Svc = State<Arc<BrokerService>>;

/// The router of the broker's HTTP port.
pub fn router(service: Arc<BrokerService>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .route("/admin/v2/brokers/health", get(|| async { "ok" }))
        .route(
            "/lookup/v2/topic/{domain}/{tenant}/{ns}/{topic}",
            get(lookup),
        )
        .route(
            "/admin/v2/{domain}/{tenant}/{ns}/{topic}/partitions",
            get(get_partitions).put(put_partitions),
        )
        .route(
            "/admin/v2/{domain}/{tenant}/{ns}/partitioned",
            get(list_partitioned),
        )
        .route(
            "/admin/v2/{domain}/{tenant}/{ns}/{topic}",
            axum::routing::put(create_topic),
        )
        .route(
            "/admin/v2/{domain}/{tenant}/{ns}/{topic}/stats",
            get(topic_stats),
        )
        .route(
            "/admin/v2/{domain}/{tenant}/{ns}/{topic}/internalStats",
            get(internal_stats),
        )
        .route(
            "/admin/v2/{domain}/{tenant}/{ns}/{topic}/unload",
            axum::routing::put(unload),
        )
        .route(
            "/admin/v2/{domain}/{tenant}/{ns}/{topic}/terminate",
            axum::routing::post(terminate),
        )
        .route(
            "/admin/v2/namespaces/{tenant}/{ns}/topics",
            get(list_topics),
        )
        .route(
            "/admin/v2/namespaces/{tenant}/{ns}",
            get(get_namespace).put(put_namespace),
        )
        .route("/admin/v2/namespaces/{tenant}", get(list_namespaces))
        .route("/admin/v2/tenants", get(list_tenants))
        .route(
            "/admin/v2/tenants/{tenant}",
            get(get_tenant).put(put_tenant),
        )
        .route(
            "/admin/v2/schemas/{tenant}/{ns}/{topic}/schema",
            get(get_schema).post(post_schema),
        )
        .route(
            "/admin/v2/schemas/{tenant}/{ns}/{topic}/schema/{version}",
            get(get_schema_version),
        )
        .with_state(service)
}

struct ApiError(BrokerError);

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            BrokerError::InvalidTopicName(_) => StatusCode::PRECONDITION_FAILED,
            BrokerError::TopicNotFound(_) | BrokerError::SubscriptionNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            BrokerError::NotAllowed(_) | BrokerError::TopicTerminated(_) => StatusCode::CONFLICT,
            BrokerError::ServiceNotReady(_) | BrokerError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({ "reason": self.0.to_string() }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn metrics(State(s): Svc) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn lookup(
    State(s): Svc,
    Path((domain, tenant, ns, topic)): Path<(String, String, String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let name = TopicName::from_parts(&domain, &tenant, &ns, &topic)?;
    let (broker_url, http_url) = match s.owner(&name).await? {
        Owner::Local => (s.broker_url(), s.http_url()),
        Owner::Remote {
            broker_url,
            http_url,
        } => (broker_url, http_url),
    };
    Ok(Json(json!({
        "brokerUrl": broker_url,
        "brokerUrlTls": "",
        "httpUrl": http_url,
        "httpUrlTls": "",
        "nativeUrl": broker_url,
    })))
}

async fn get_partitions(
    State(s): Svc,
    Path((domain, tenant, ns, topic)): Path<(String, String, String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let name = TopicName::from_parts(&domain, &tenant, &ns, &topic)?;
    let n = s.partitions(&name).await?;
    Ok(Json(json!({ "partitions": n, "deleted": false })))
}

async fn put_partitions(
    State(s): Svc,
    Path((domain, tenant, ns, topic)): Path<(String, String, String, String)>,
    body: String,
) -> ApiResult<StatusCode> {
    let name = TopicName::from_parts(&domain, &tenant, &ns, &topic)?;
    let n: u32 = body.trim().parse().map_err(|_| {
        BrokerError::NotAllowed(format!("partition count must be a number, got {body:?}"))
    })?;
    s.create_namespace(&tenant, &ns).await?;
    s.create_partitioned(&name, n).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_topic(
    State(s): Svc,
    Path((domain, tenant, ns, topic)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let name = TopicName::from_parts(&domain, &tenant, &ns, &topic)?;
    s.create_namespace(&tenant, &ns).await?;
    s.topic(&name, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn topic_stats(
    State(s): Svc,
    Path((domain, tenant, ns, topic)): Path<(String, String, String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let name = TopicName::from_parts(&domain, &tenant, &ns, &topic)?;
    let t = s.topic(&name, false).await?;
    let mut subs = serde_json::Map::new();
    for (sub, durable, _, backlog) in t.subscription_stats().await {
        subs.insert(sub, json!({ "msgBacklog": backlog, "isDurable": durable }));
    }
    let publishers: Vec<serde_json::Value> = t
        .producer_names()
        .into_iter()
        .map(|n| json!({ "producerName": n }))
        .collect();
    Ok(Json(json!({
        "storageSize": t.ledger().storage_size(),
        "publishers": publishers,
        "subscriptions": subs,
        "terminated": t.ledger().is_terminated(),
    })))
}

async fn internal_stats(
    State(s): Svc,
    Path((domain, tenant, ns, topic)): Path<(String, String, String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let name = TopicName::from_parts(&domain, &tenant, &ns, &topic)?;
    let t = s.topic(&name, false).await?;
    let ml = t.ledger();
    let ledgers: Vec<serde_json::Value> = ml
        .ledgers()
        .into_iter()
        .map(|l| json!({ "ledgerId": l.id, "entries": l.entries, "size": l.size, "closed": l.closed }))
        .collect();
    let mut cursors = serde_json::Map::new();
    for (sub, durable, md, backlog) in t.subscription_stats().await {
        cursors.insert(
            sub,
            json!({ "markDeletePosition": md.map(|p| p.to_string()), "durable": durable, "backlogEntries": backlog }),
        );
    }
    Ok(Json(json!({
        "lastConfirmedEntry": ml.last_confirmed().to_string(),
        "ledgers": ledgers,
        "cursors": cursors,
        "terminated": ml.is_terminated(),
    })))
}

async fn unload(
    State(s): Svc,
    Path((domain, tenant, ns, topic)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let name = TopicName::from_parts(&domain, &tenant, &ns, &topic)?;
    if s.unload(&name, None).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(BrokerError::TopicNotFound(format!("{name} is not loaded")).into())
    }
}

async fn terminate(
    State(s): Svc,
    Path((domain, tenant, ns, topic)): Path<(String, String, String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let name = TopicName::from_parts(&domain, &tenant, &ns, &topic)?;
    let t = s.topic(&name, false).await?;
    let last = t.ledger().terminate().await?;
    Ok(Json(
        json!({ "ledgerId": last.ledger, "entryId": last.entry, "partitionIndex": t.partition }),
    ))
}

async fn list_partitioned(
    State(s): Svc,
    Path((_domain, tenant, ns)): Path<(String, String, String)>,
) -> ApiResult<Json<Vec<String>>> {
    Ok(Json(s.partitioned_topics_of_namespace(&tenant, &ns).await?))
}

async fn list_topics(
    State(s): Svc,
    Path((tenant, ns)): Path<(String, String)>,
) -> ApiResult<Json<Vec<String>>> {
    Ok(Json(s.topics_of_namespace(&tenant, &ns).await?))
}

async fn get_namespace(
    State(s): Svc,
    Path((tenant, ns)): Path<(String, String)>,
) -> ApiResult<Response> {
    let all = s.namespaces(&tenant).await?;
    if all.contains(&format!("{tenant}/{ns}")) {
        Ok(Json(json!({})).into_response())
    } else {
        Ok((
            StatusCode::NOT_FOUND,
            Json(json!({ "reason": "Namespace does not exist" })),
        )
            .into_response())
    }
}

async fn put_namespace(
    State(s): Svc,
    Path((tenant, ns)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.create_namespace(&tenant, &ns).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_namespaces(
    State(s): Svc,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    Ok(Json(s.namespaces(&tenant).await?))
}

async fn list_tenants(State(s): Svc) -> ApiResult<Json<Vec<String>>> {
    Ok(Json(s.tenants().await?))
}

async fn get_tenant(State(s): Svc, Path(tenant): Path<String>) -> ApiResult<Response> {
    if s.tenants().await?.contains(&tenant) {
        Ok(Json(json!({ "adminRoles": [], "allowedClusters": ["standalone"] })).into_response())
    } else {
        Ok((
            StatusCode::NOT_FOUND,
            Json(json!({ "reason": "Tenant does not exist" })),
        )
            .into_response())
    }
}

async fn put_tenant(State(s): Svc, Path(tenant): Path<String>) -> ApiResult<StatusCode> {
    s.create_tenant(&tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pulsar's schema type names by `Schema.Type` value.
pub fn schema_type_name(t: i32) -> &'static str {
    const NAMES: [&str; 21] = [
        "NONE",
        "STRING",
        "JSON",
        "PROTOBUF",
        "AVRO",
        "BOOLEAN",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FLOAT",
        "DOUBLE",
        "DATE",
        "TIME",
        "TIMESTAMP",
        "KEY_VALUE",
        "INSTANT",
        "LOCAL_DATE",
        "LOCAL_TIME",
        "LOCAL_DATE_TIME",
        "PROTOBUF_NATIVE",
    ];
    usize::try_from(t)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("NONE")
}

fn schema_type_value(name: &str) -> i32 {
    (0..21)
        .find(|&i| schema_type_name(i).eq_ignore_ascii_case(name))
        .unwrap_or(0)
}

fn schema_json(v: &SchemaVersion) -> serde_json::Value {
    json!({
        "version": v.version,
        "type": schema_type_name(v.schema_type),
        "timestamp": v.timestamp,
        "data": String::from_utf8_lossy(&v.data_bytes()),
        "properties": v.properties,
    })
}

async fn get_schema(
    State(s): Svc,
    Path((tenant, ns, topic)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let name = TopicName::from_parts("persistent", &tenant, &ns, &topic)?;
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
    Path((tenant, ns, topic, version)): Path<(String, String, String, u64)>,
) -> ApiResult<Response> {
    let name = TopicName::from_parts("persistent", &tenant, &ns, &topic)?;
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
    Path((tenant, ns, topic)): Path<(String, String, String)>,
    Json(body): Json<PostSchema>,
) -> ApiResult<Json<serde_json::Value>> {
    let name = TopicName::from_parts("persistent", &tenant, &ns, &topic)?;
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
