//! Tiered storage on a topic: `PUT .../offload` (a message id: offload the closed ledgers
//! before it; 409 while one runs) and `GET .../offload` (Pulsar's `OffloadProcessStatus`).
//! Without an offload store configured both answer 412 with a reason saying so.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use strata_auth::RestOperation;

use super::{ApiError, ApiResult, Caller, Svc, parse_body};
use crate::offload::Offloader;
use crate::position::Position;
use crate::service::BrokerService;
use crate::topic_name::TopicName;

type TopicPathArgs = Path<(String, String, String, String)>;

/// The routes.
pub(super) fn routes() -> Router<Arc<BrokerService>> {
    Router::new().route(
        "/admin/v2/{domain}/{tenant}/{ns}/{topic}/offload",
        put(trigger).get(status),
    )
}

const NOT_CONFIGURED: &str =
    "offload is not configured on this broker: start it with --offload-url (or [offload] url)";

fn offloader(s: &BrokerService) -> ApiResult<Arc<Offloader>> {
    s.offloader()
        .cloned()
        .ok_or_else(|| ApiError::precondition(NOT_CONFIGURED))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageIdBody {
    ledger_id: u64,
    entry_id: i64,
}

async fn loaded(
    s: &BrokerService,
    d: &str,
    t: &str,
    ns: &str,
    tp: &str,
) -> ApiResult<Arc<crate::topic::Topic>> {
    let n = TopicName::from_parts(d, t, ns, tp)?;
    if !s.topic_exists(&n).await? {
        return Err(ApiError::not_found("Topic not found"));
    }
    Ok(s.topic(&n, false).await?)
}

async fn trigger(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let n = TopicName::from_parts(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::TriggerOffload, &n, None).await?;
    let o = offloader(&s)?;
    let id: MessageIdBody = parse_body(&body)?;
    let topic = loaded(&s, &d, &t, &ns, &tp).await?;
    o.request(
        topic.ledger().clone(),
        Position::new(id.ledger_id, id.entry_id),
    )
    .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn status(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
) -> ApiResult<Json<Value>> {
    let n = TopicName::from_parts(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::OffloadStatus, &n, None).await?;
    let o = offloader(&s)?;
    let topic = loaded(&s, &d, &t, &ns, &tp).await?;
    Ok(Json(o.status(topic.ledger()).to_json(topic.partition())))
}
