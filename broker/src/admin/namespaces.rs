//! Namespaces and their policies: `/admin/v2/namespaces/{tenant}[/{ns}[/{policy}]]`.
//!
//! Policies are stored as `strata_meta`'s typed `Policies` (the broker's `namespaces/{t}/{ns}`
//! key, the one source of truth) and shown in Pulsar's JSON (`retention_policies`,
//! `message_ttl_in_seconds`, `backlog_quota_map`, ...; per-policy endpoints in camelCase).
//! Live topics re-read them every `policy_refresh_interval` (see `crate::policy`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use strata_auth::RestOperation;
use strata_meta::model::{
    AuthAction, BacklogQuota, BacklogQuotaPolicy, PersistencePolicies, Policies, RateLimit,
    RetentionPolicies,
};

use super::{ApiError, ApiResult, Caller, Svc, parse_body};
use crate::service::BrokerService;

pub(super) fn routes() -> Router<Arc<BrokerService>> {
    Router::new()
        .route("/admin/v2/namespaces/{tenant}", get(list))
        .route(
            "/admin/v2/namespaces/{tenant}/{ns}",
            get(get_policies).put(create).delete(delete),
        )
        .route(
            "/admin/v2/namespaces/{tenant}/{ns}/{policy}",
            get(get_policy)
                .post(set_policy)
                .put(set_policy)
                .delete(remove_policy),
        )
        .route(
            "/admin/v2/namespaces/{tenant}/{ns}/permissions/{role}",
            post(grant).delete(revoke),
        )
}

async fn list(State(s): Svc, c: Caller, Path(t): Path<String>) -> ApiResult<Json<Vec<String>>> {
    c.tenant(&s, RestOperation::ListNamespaces, &t).await?;
    if s.tenant_info(&t).await?.is_none() {
        return Err(ApiError::not_found("Tenant does not exist"));
    }
    Ok(Json(s.namespaces(&t).await?))
}

/// The part of Pulsar's `Policies` JSON a namespace may be created with (`PUT` body). Other
/// fields are ignored, as Pulsar's admin clients send the whole object; each has its own
/// endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CreatePolicies {
    auth_policies: Option<strata_meta::model::AuthPolicies>,
    replication_clusters: Option<BTreeSet<String>>,
    message_ttl_in_seconds: Option<u32>,
    #[serde(rename = "deduplicationEnabled")]
    deduplication_enabled: Option<bool>,
    schema_compatibility_strategy: Option<String>,
    max_producers_per_topic: Option<u32>,
    max_consumers_per_topic: Option<u32>,
    max_consumers_per_subscription: Option<u32>,
}

/// `PUT /admin/v2/namespaces/{t}/{ns}`, optionally with a policies body.
async fn create(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): Path<(String, String)>,
    body: String,
) -> ApiResult<StatusCode> {
    c.namespace(&s, RestOperation::CreateNamespace, &t, &ns)
        .await?;
    if ns.is_empty() || ns.contains('/') {
        return Err(ApiError::precondition("Invalid namespace name"));
    }
    let b: CreatePolicies = if body.trim().is_empty() {
        CreatePolicies::default()
    } else {
        parse_body(&body)?
    };
    let mut p = Policies::default();
    match b.replication_clusters.filter(|c| !c.is_empty()) {
        Some(clusters) => {
            if let Some(c) = clusters.iter().find(|c| **c != s.config.cluster_name) {
                return Err(ApiError::precondition(format!("Invalid cluster id: {c}")));
            }
            p.replication_clusters = clusters;
        }
        None => {
            p.replication_clusters.insert(s.config.cluster_name.clone());
        }
    }
    p.auth_policies = b.auth_policies.unwrap_or_default();
    p.message_ttl_seconds = b.message_ttl_in_seconds;
    p.deduplication_enabled = b.deduplication_enabled;
    p.schema_compatibility_strategy = b.schema_compatibility_strategy.filter(|v| v != "UNDEFINED");
    p.max_producers_per_topic = b.max_producers_per_topic;
    p.max_consumers_per_topic = b.max_consumers_per_topic;
    p.max_consumers_per_subscription = b.max_consumers_per_subscription;
    s.create_namespace_strict(&t, &ns, &p).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    c.namespace(&s, RestOperation::DeleteNamespace, &t, &ns)
        .await?;
    s.delete_namespace(&t, &ns).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn load(s: &BrokerService, t: &str, ns: &str) -> ApiResult<Policies> {
    s.policies(t, ns)
        .await?
        .ok_or_else(|| ApiError::not_found("Namespace does not exist"))
}

async fn get_policies(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    c.namespace(&s, RestOperation::GetNamespacePolicies, &t, &ns)
        .await?;
    Ok(Json(policies_json(&load(&s, &t, &ns).await?)))
}

/// Pulsar's `Policies` JSON.
pub fn policies_json(p: &Policies) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("auth_policies".into(), json!(p.auth_policies));
    m.insert("replication_clusters".into(), json!(p.replication_clusters));
    m.insert(
        "bundles".into(),
        json!({
            "boundaries": p.bundles.boundaries.iter().map(|b| format!("0x{b:08x}")).collect::<Vec<_>>(),
            "numBundles": p.bundles.boundaries.len().saturating_sub(1),
        }),
    );
    let mut quotas = serde_json::Map::new();
    // One stored quota holds both limits; Pulsar shows them per type.
    if let Some(q) = &p.backlog_quota {
        if q.limit_size >= 0 || q.limit_time_seconds < 0 {
            quotas.insert("destination_storage".into(), quota_json(q));
        }
        if q.limit_time_seconds >= 0 {
            quotas.insert("message_age".into(), quota_json(q));
        }
    }
    m.insert("backlog_quota_map".into(), Value::Object(quotas));
    let opt = |m: &mut serde_json::Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    opt(
        &mut m,
        "message_ttl_in_seconds",
        p.message_ttl_seconds.map(|v| json!(v)),
    );
    opt(
        &mut m,
        "retention_policies",
        p.retention.as_ref().map(retention_json),
    );
    opt(
        &mut m,
        "persistence",
        p.persistence.as_ref().map(persistence_json),
    );
    opt(
        &mut m,
        "deduplicationEnabled",
        p.deduplication_enabled.map(|v| json!(v)),
    );
    opt(
        &mut m,
        "max_producers_per_topic",
        p.max_producers_per_topic.map(|v| json!(v)),
    );
    opt(
        &mut m,
        "max_consumers_per_topic",
        p.max_consumers_per_topic.map(|v| json!(v)),
    );
    opt(
        &mut m,
        "max_consumers_per_subscription",
        p.max_consumers_per_subscription.map(|v| json!(v)),
    );
    opt(
        &mut m,
        "topicDispatchRate",
        p.dispatch_rate.as_ref().map(dispatch_json),
    );
    opt(
        &mut m,
        "publishMaxMessageRate",
        p.publish_rate.as_ref().map(publish_json),
    );
    m.insert(
        "offload_threshold".into(),
        json!(p.offload_threshold_bytes.unwrap_or(-1)),
    );
    opt(
        &mut m,
        "schema_compatibility_strategy",
        p.schema_compatibility_strategy.as_ref().map(|v| json!(v)),
    );
    m.insert("deleted".into(), json!(p.deleted));
    Value::Object(m)
}

fn retention_json(r: &RetentionPolicies) -> Value {
    json!({ "retentionTimeInMinutes": r.retention_time_minutes, "retentionSizeInMB": r.retention_size_mb })
}

fn quota_json(q: &BacklogQuota) -> Value {
    json!({ "limitSize": q.limit_size, "limitTime": q.limit_time_seconds, "policy": q.policy })
}

fn persistence_json(p: &PersistencePolicies) -> Value {
    json!({
        "bookkeeperEnsemble": p.ensemble_size,
        "bookkeeperWriteQuorum": p.write_quorum,
        "bookkeeperAckQuorum": p.ack_quorum,
        "managedLedgerMaxMarkDeleteRate": p.managed_ledger_max_mark_delete_rate,
    })
}

fn dispatch_json(r: &RateLimit) -> Value {
    json!({
        "dispatchThrottlingRateInMsg": r.messages,
        "dispatchThrottlingRateInByte": r.bytes,
        "relativeToPublishRate": false,
        "ratePeriodInSecond": r.period_seconds,
    })
}

fn publish_json(r: &RateLimit) -> Value {
    json!({ "publishThrottlingRateInMsg": r.messages, "publishThrottlingRateInByte": r.bytes })
}

fn unknown(policy: &str) -> ApiError {
    ApiError::not_found(format!("Unknown namespace policy {policy:?}"))
}

/// `?mode=` of `GET .../topics`: `PERSISTENT` (default), `NON_PERSISTENT` or `ALL`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct TopicsModeQuery {
    mode: Option<String>,
}

async fn get_policy(
    State(s): Svc,
    c: Caller,
    Path((t, ns, policy)): Path<(String, String, String)>,
    Query(q): Query<TopicsModeQuery>,
) -> ApiResult<Response> {
    if policy == "topics" {
        c.namespace(&s, RestOperation::ListTopics, &t, &ns).await?;
        load(&s, &t, &ns).await?;
        let mode = q.mode.as_deref().unwrap_or("PERSISTENT");
        let mut topics = Vec::new();
        if mode != "NON_PERSISTENT" {
            topics.extend(s.topics_of_namespace(&t, &ns).await?);
        }
        if mode == "NON_PERSISTENT" || mode == "ALL" {
            topics.extend(s.np_topics_of_namespace(&t, &ns).await?);
        }
        return Ok(Json(topics).into_response());
    }
    let op = if policy == "permissions" {
        RestOperation::GetNamespacePermissions
    } else {
        RestOperation::GetNamespacePolicies
    };
    c.namespace(&s, op, &t, &ns).await?;
    let p = load(&s, &t, &ns).await?;
    let v = match policy.as_str() {
        "retention" => p
            .retention
            .as_ref()
            .map(retention_json)
            .unwrap_or(Value::Null),
        "messageTTL" => json!(p.message_ttl_seconds),
        "backlogQuotaMap" => policies_json(&p)["backlog_quota_map"].clone(),
        "persistence" => p
            .persistence
            .as_ref()
            .map(persistence_json)
            .unwrap_or(Value::Null),
        "deduplication" => json!(p.deduplication_enabled),
        "maxProducersPerTopic" => json!(p.max_producers_per_topic),
        "maxConsumersPerTopic" => json!(p.max_consumers_per_topic),
        "maxConsumersPerSubscription" => json!(p.max_consumers_per_subscription),
        "dispatchRate" => p
            .dispatch_rate
            .as_ref()
            .map(dispatch_json)
            .unwrap_or(Value::Null),
        "subscriptionDispatchRate" => p
            .subscription_dispatch_rate
            .as_ref()
            .map(dispatch_json)
            .unwrap_or(Value::Null),
        "publishRate" => p
            .publish_rate
            .as_ref()
            .map(publish_json)
            .unwrap_or(Value::Null),
        "offloadThreshold" => json!(p.offload_threshold_bytes.unwrap_or(-1)),
        "offloadThresholdInSeconds" => json!(p.offload_threshold_in_seconds.unwrap_or(-1)),
        "offloadDeletionLagMs" => json!(p.offload_deletion_lag_ms),
        "permissions" => json!(p.auth_policies.namespace_auth),
        "replication" => json!(p.replication_clusters),
        _ => return Err(unknown(&policy)),
    };
    Ok(Json(v).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RetentionBody {
    retention_time_in_minutes: i64,
    #[serde(rename = "retentionSizeInMB")]
    retention_size_in_mb: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuotaBody {
    #[serde(default = "minus_one")]
    limit_size: i64,
    #[serde(default = "minus_one")]
    limit_time: i64,
    #[serde(default)]
    policy: BacklogQuotaPolicy,
}

fn minus_one() -> i64 {
    -1
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PersistenceBody {
    bookkeeper_ensemble: u32,
    bookkeeper_write_quorum: u32,
    bookkeeper_ack_quorum: u32,
    managed_ledger_max_mark_delete_rate: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DispatchBody {
    dispatch_throttling_rate_in_msg: i64,
    dispatch_throttling_rate_in_byte: i64,
    rate_period_in_second: u32,
}

impl Default for DispatchBody {
    fn default() -> Self {
        Self {
            dispatch_throttling_rate_in_msg: -1,
            dispatch_throttling_rate_in_byte: -1,
            rate_period_in_second: 1,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PublishBody {
    publish_throttling_rate_in_msg: i64,
    publish_throttling_rate_in_byte: i64,
}

impl Default for PublishBody {
    fn default() -> Self {
        Self {
            publish_throttling_rate_in_msg: -1,
            publish_throttling_rate_in_byte: -1,
        }
    }
}

#[derive(Deserialize, Default)]
struct QuotaQuery {
    #[serde(rename = "backlogQuotaType")]
    backlog_quota_type: Option<String>,
}

fn non_negative_u32(v: i64, what: &str) -> ApiResult<u32> {
    u32::try_from(v).map_err(|_| ApiError::precondition(format!("{what} must be >= 0")))
}

async fn set_policy(
    State(s): Svc,
    c: Caller,
    Path((t, ns, policy)): Path<(String, String, String)>,
    Query(q): Query<QuotaQuery>,
    body: String,
) -> ApiResult<StatusCode> {
    c.namespace(&s, RestOperation::SetNamespacePolicy, &t, &ns)
        .await?;
    let change: Box<dyn Fn(&mut Policies) + Send + Sync> = match policy.as_str() {
        "retention" => {
            let b: RetentionBody = parse_body(&body)?;
            let r = RetentionPolicies {
                retention_time_minutes: b.retention_time_in_minutes,
                retention_size_mb: b.retention_size_in_mb,
            };
            Box::new(move |p| p.retention = Some(r))
        }
        "messageTTL" => {
            let v = non_negative_u32(parse_body::<i64>(&body)?, "messageTTL")?;
            Box::new(move |p| p.message_ttl_seconds = (v > 0).then_some(v))
        }
        "backlogQuota" => {
            // One quota holds both limits: `destination_storage` sets the size limit,
            // `message_age` the time limit; the policy is shared.
            let age = match q.backlog_quota_type.as_deref() {
                None | Some("destination_storage") => false,
                Some("message_age") => true,
                Some(other) => {
                    return Err(ApiError::precondition(format!(
                        "unknown backlogQuotaType {other:?} (destination_storage or message_age)"
                    )));
                }
            };
            let b: QuotaBody = parse_body(&body)?;
            Box::new(move |p| {
                let mut quota = p.backlog_quota.unwrap_or(BacklogQuota {
                    limit_size: -1,
                    limit_time_seconds: -1,
                    policy: b.policy,
                });
                quota.policy = b.policy;
                if age {
                    quota.limit_time_seconds = b.limit_time;
                } else {
                    quota.limit_size = b.limit_size;
                    if b.limit_time >= 0 {
                        quota.limit_time_seconds = b.limit_time;
                    }
                }
                p.backlog_quota = Some(quota);
            })
        }
        "persistence" => {
            let b: PersistenceBody = parse_body(&body)?;
            if b.bookkeeper_ack_quorum == 0
                || b.bookkeeper_ack_quorum > b.bookkeeper_write_quorum
                || b.bookkeeper_write_quorum > b.bookkeeper_ensemble
            {
                return Err(ApiError::precondition(
                    "Bookkeeper Ensemble >= WriteQuorum >= AckQuoru >= 1 must hold",
                ));
            }
            if b.bookkeeper_ensemble as usize > strata_ledger::MAX_ENSEMBLE {
                return Err(ApiError::precondition(format!(
                    "Bookkeeper Ensemble must be at most {}",
                    strata_ledger::MAX_ENSEMBLE
                )));
            }
            let pp = PersistencePolicies {
                ensemble_size: b.bookkeeper_ensemble,
                write_quorum: b.bookkeeper_write_quorum,
                ack_quorum: b.bookkeeper_ack_quorum,
                managed_ledger_max_mark_delete_rate: b.managed_ledger_max_mark_delete_rate,
            };
            Box::new(move |p| p.persistence = Some(pp))
        }
        "deduplication" => {
            let v: bool = parse_body(&body)?;
            Box::new(move |p| p.deduplication_enabled = Some(v))
        }
        "maxProducersPerTopic" => {
            let v = non_negative_u32(parse_body(&body)?, "maxProducersPerTopic")?;
            Box::new(move |p| p.max_producers_per_topic = Some(v))
        }
        "maxConsumersPerTopic" => {
            let v = non_negative_u32(parse_body(&body)?, "maxConsumersPerTopic")?;
            Box::new(move |p| p.max_consumers_per_topic = Some(v))
        }
        "maxConsumersPerSubscription" => {
            let v = non_negative_u32(parse_body(&body)?, "maxConsumersPerSubscription")?;
            Box::new(move |p| p.max_consumers_per_subscription = Some(v))
        }
        "dispatchRate" | "subscriptionDispatchRate" => {
            let b: DispatchBody = parse_body(&body)?;
            let r = RateLimit {
                messages: b.dispatch_throttling_rate_in_msg,
                bytes: b.dispatch_throttling_rate_in_byte,
                period_seconds: b.rate_period_in_second.max(1),
            };
            if policy == "dispatchRate" {
                Box::new(move |p| p.dispatch_rate = Some(r))
            } else {
                Box::new(move |p| p.subscription_dispatch_rate = Some(r))
            }
        }
        "publishRate" => {
            let b: PublishBody = parse_body(&body)?;
            let r = RateLimit {
                messages: b.publish_throttling_rate_in_msg,
                bytes: b.publish_throttling_rate_in_byte,
                period_seconds: 1,
            };
            Box::new(move |p| p.publish_rate = Some(r))
        }
        "offloadThreshold" => {
            let v: i64 = parse_body(&body)?;
            Box::new(move |p| p.offload_threshold_bytes = Some(v))
        }
        "offloadThresholdInSeconds" => {
            let v: i64 = parse_body(&body)?;
            Box::new(move |p| p.offload_threshold_in_seconds = Some(v))
        }
        "offloadDeletionLagMs" => {
            let v: i64 = parse_body(&body)?;
            Box::new(move |p| p.offload_deletion_lag_ms = Some(v))
        }
        _ => return Err(unknown(&policy)),
    };
    s.update_policies(&t, &ns, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_policy(
    State(s): Svc,
    c: Caller,
    Path((t, ns, policy)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    c.namespace(&s, RestOperation::SetNamespacePolicy, &t, &ns)
        .await?;
    let change: fn(&mut Policies) = match policy.as_str() {
        "retention" => |p| p.retention = None,
        "messageTTL" => |p| p.message_ttl_seconds = None,
        "backlogQuota" => |p| p.backlog_quota = None,
        "persistence" => |p| p.persistence = None,
        "deduplication" => |p| p.deduplication_enabled = None,
        "maxProducersPerTopic" => |p| p.max_producers_per_topic = None,
        "maxConsumersPerTopic" => |p| p.max_consumers_per_topic = None,
        "maxConsumersPerSubscription" => |p| p.max_consumers_per_subscription = None,
        "dispatchRate" => |p| p.dispatch_rate = None,
        "subscriptionDispatchRate" => |p| p.subscription_dispatch_rate = None,
        "publishRate" => |p| p.publish_rate = None,
        "offloadThreshold" => |p| p.offload_threshold_bytes = None,
        "offloadThresholdInSeconds" => |p| p.offload_threshold_in_seconds = None,
        "offloadDeletionLagMs" => |p| p.offload_deletion_lag_ms = None,
        _ => return Err(unknown(&policy)),
    };
    s.update_policies(&t, &ns, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn parse_actions(body: &str) -> ApiResult<BTreeSet<AuthAction>> {
    let names: Vec<String> = parse_body(body)?;
    names
        .iter()
        .map(|n| {
            serde_json::from_value::<AuthAction>(json!(n))
                .map_err(|_| ApiError::bad_request(format!("unknown action {n:?}")))
        })
        .collect()
}

async fn grant(
    State(s): Svc,
    c: Caller,
    Path((t, ns, role)): Path<(String, String, String)>,
    body: String,
) -> ApiResult<StatusCode> {
    c.namespace(&s, RestOperation::GrantRevokeNamespacePermission, &t, &ns)
        .await?;
    let actions = parse_actions(&body)?;
    s.update_policies(&t, &ns, |p| {
        p.auth_policies
            .namespace_auth
            .insert(role.clone(), actions.clone());
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke(
    State(s): Svc,
    c: Caller,
    Path((t, ns, role)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    c.namespace(&s, RestOperation::GrantRevokeNamespacePermission, &t, &ns)
        .await?;
    s.update_policies(&t, &ns, |p| {
        p.auth_policies.namespace_auth.remove(&role);
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
