//! Topic compaction over REST: `PUT|GET /admin/v2/persistent/{t}/{ns}/{topic}/compaction`
//! (trigger; status as Pulsar's `LongRunningProcessStatus`, every partition of a partitioned
//! topic), and the `compactionThreshold` policy of a namespace and of a topic (automatic
//! compaction, see `crate::compaction::state`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use strata_auth::RestOperation;
use strata_meta::model::TopicPolicies;

use super::topics::{name_of, targets};
use super::{ApiError, ApiResult, Caller, Svc, parse_body};
use crate::compaction::CompactionStatus;
use crate::schema::admission::{topic_policies, topic_policies_key};
use crate::service::BrokerService;

type TopicArgs = Path<(String, String, String, String)>;

pub(super) fn routes() -> Router<Arc<BrokerService>> {
    const T: &str = "/admin/v2/{domain}/{tenant}/{ns}/{topic}";
    Router::new()
        .route(
            &format!("{T}/compaction"),
            get(compaction_status).put(compact),
        )
        .route(
            "/admin/v2/namespaces/{tenant}/{ns}/compactionThreshold",
            get(get_ns_threshold)
                .put(set_ns_threshold)
                .post(set_ns_threshold)
                .delete(remove_ns_threshold),
        )
        .route(
            &format!("{T}/compactionThreshold"),
            get(get_topic_threshold)
                .put(set_topic_threshold)
                .post(set_topic_threshold)
                .delete(remove_topic_threshold),
        )
}

async fn compact(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicArgs,
) -> ApiResult<StatusCode> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::TriggerCompaction, &n, None)
        .await?;
    for topic in targets(&s, &n).await? {
        topic.compaction().trigger(&s, topic.clone())?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn compaction_status(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicArgs,
) -> ApiResult<Json<Value>> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::CompactionStatus, &n, None)
        .await?;
    let statuses: Vec<CompactionStatus> = targets(&s, &n)
        .await?
        .iter()
        .map(|t| t.compaction().status())
        .collect();
    // Partitions: running while one runs, an error if one failed, else the common status.
    let merged = statuses
        .iter()
        .find(|s| **s == CompactionStatus::Running)
        .or_else(|| {
            statuses
                .iter()
                .find(|s| matches!(s, CompactionStatus::Error(_)))
        })
        .or_else(|| statuses.iter().find(|s| **s == CompactionStatus::NotRun))
        .cloned()
        .unwrap_or(CompactionStatus::Success);
    Ok(Json(merged.to_json()))
}

fn threshold(body: &str) -> ApiResult<i64> {
    let v: i64 = parse_body(body)?;
    if v < 0 {
        return Err(ApiError::precondition(
            "compactionThreshold must be 0 or greater",
        ));
    }
    Ok(v)
}

async fn get_ns_threshold(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    c.namespace(&s, RestOperation::GetNamespacePolicies, &t, &ns)
        .await?;
    let p = s
        .policies(&t, &ns)
        .await?
        .ok_or_else(|| ApiError::not_found("Namespace does not exist"))?;
    Ok(Json(json!(p.compaction_threshold)))
}

async fn set_ns(
    s: &BrokerService,
    c: &Caller,
    t: &str,
    ns: &str,
    v: Option<i64>,
) -> ApiResult<StatusCode> {
    c.namespace(s, RestOperation::SetNamespacePolicy, t, ns)
        .await?;
    s.update_policies(t, ns, move |p| p.compaction_threshold = v)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_ns_threshold(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): Path<(String, String)>,
    body: String,
) -> ApiResult<StatusCode> {
    let v = threshold(&body)?;
    set_ns(&s, &c, &t, &ns, Some(v)).await
}

async fn remove_ns_threshold(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    set_ns(&s, &c, &t, &ns, None).await
}

async fn get_topic_threshold(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicArgs,
) -> ApiResult<Json<Value>> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::TopicPolicies, &n, None).await?;
    Ok(Json(json!(
        topic_policies(&s, &n).await?.compaction_threshold
    )))
}

async fn set_topic(
    s: &BrokerService,
    c: &Caller,
    args: &(String, String, String, String),
    v: Option<i64>,
) -> ApiResult<StatusCode> {
    let (d, t, ns, tp) = args;
    let n = name_of(d, t, ns, tp)?;
    c.topic(s, RestOperation::TopicPolicies, &n, None).await?;
    s.metadata()
        .update(&topic_policies_key(s, &n), |cur: Option<TopicPolicies>| {
            let mut p = cur.unwrap_or_default();
            p.compaction_threshold = v;
            Ok(Some(p))
        })
        .await
        .map_err(crate::error::BrokerError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_topic_threshold(
    State(s): Svc,
    c: Caller,
    Path(args): TopicArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let v = threshold(&body)?;
    set_topic(&s, &c, &args, Some(v)).await
}

async fn remove_topic_threshold(
    State(s): Svc,
    c: Caller,
    Path(args): TopicArgs,
) -> ApiResult<StatusCode> {
    set_topic(&s, &c, &args, None).await
}
