//! The HTTP port (axum): REST lookup the clients use with an `http://` service URL,
//! `/metrics` (superusers only once authentication is on), `/health` (open: liveness), the admin
//! API ([`crate::admin`]) and the web console ([`crate::console`]).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use strata_auth::RestOperation;

use crate::admin::{ApiResult, Caller, Svc};
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
        .merge(crate::admin::router())
        .merge(crate::cluster::admin::routes())
        .merge(crate::console::routes())
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
    let mut topics = crate::metrics::topics::TopicCollector::gather(
        &s.config.cluster_name,
        &s.loaded_topics().await,
        s.config.expose_topic_level_metrics,
    )
    .await;
    topics.add_non_persistent(
        &s.config.cluster_name,
        &s.loaded_np_topics(),
        s.config.expose_topic_level_metrics,
    );
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(Some(Box::new(topics))),
    ))
}

/// Query of `/lookup/v2/topic/...`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct LookupQuery {
    /// Sent by the leader's redirect: acquire an unowned bundle instead of asking the leader.
    authoritative: bool,
    /// An advertised listener whose URLs to answer with (also the `X-Pulsar-ListenerName`
    /// header, as Pulsar's Java client sends it).
    #[serde(rename = "listenerName")]
    listener_name: Option<String>,
}

async fn lookup(
    State(s): Svc,
    c: Caller,
    Path((domain, tenant, ns, topic)): Path<(String, String, String, String)>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<LookupQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let name = TopicName::from_parts(&domain, &tenant, &ns, &topic)?;
    c.topic(&s, RestOperation::LookupTopic, &name, None).await?;
    let listener = q
        .listener_name
        .or_else(|| {
            headers
                .get("X-Pulsar-ListenerName")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|l| !l.is_empty());
    let owner = s.lookup(&name, q.authoritative).await?;
    let listener_urls = match (&listener, &owner) {
        (Some(l), Owner::Local | Owner::Remote { .. }) => match s.listener_urls(&owner, l).await? {
            Some(u) => Some(u),
            None => {
                return Err(crate::admin::ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    crate::listeners::unknown_listener(l),
                ));
            }
        },
        _ => None,
    };
    let (mut broker_url, http_url, mut broker_url_tls, http_url_tls) = match owner {
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
                challenge: false,
            });
        }
    };
    if let Some(u) = listener_urls {
        broker_url = u.pulsar_url.unwrap_or_default();
        broker_url_tls = u.pulsar_url_tls.unwrap_or_default();
    }
    Ok(Json(json!({
        "brokerUrl": broker_url,
        "brokerUrlTls": broker_url_tls,
        "httpUrl": http_url,
        "httpUrlTls": http_url_tls,
        "nativeUrl": broker_url,
    })))
}
