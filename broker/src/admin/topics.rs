//! Topics: `/admin/v2/{domain}/{tenant}/{ns}[/{topic}[/...]]` — create, delete, list, stats,
//! partitions, unload, terminate, subscriptions and their cursors, peek, get-message-by-id,
//! last message id (compaction: `super::compaction`).
//!
//! An operation on a subscription of a partitioned topic applies to every partition. In
//! cluster mode a request for a topic another broker owns is refused with 503 (no redirect yet).

use std::sync::Arc;
use strata_common::clock::now_ms;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use strata_auth::RestOperation;
use strata_proto::frame::Payload;

use super::non_persistent as np;
use super::{ApiError, ApiResult, Caller, Svc, parse_body, partitioned_stats};
use crate::position::Position;
use crate::service::BrokerService;
use crate::subscription::{InitialPosition, SeekTarget};
use crate::topic::Topic;
use crate::topic_name::TopicName;

type TopicPathArgs = Path<(String, String, String, String)>;
type SubPathArgs = Path<(String, String, String, String, String)>;

pub(super) fn routes() -> Router<Arc<BrokerService>> {
    const T: &str = "/admin/v2/{domain}/{tenant}/{ns}/{topic}";
    const S: &str = "/admin/v2/{domain}/{tenant}/{ns}/{topic}/subscription/{sub}";
    Router::new()
        .route("/admin/v2/{domain}/{tenant}/{ns}", get(list))
        .route(
            "/admin/v2/{domain}/{tenant}/{ns}/partitioned",
            get(list_partitioned),
        )
        .route(T, put(create).delete(delete))
        .route(
            &format!("{T}/partitions"),
            get(get_partitions)
                .put(create_partitioned)
                .post(update_partitions)
                .delete(delete_partitioned),
        )
        .route(&format!("{T}/stats"), get(stats))
        .route(&format!("{T}/internalStats"), get(internal_stats))
        .route(&format!("{T}/partitioned-stats"), get(partitioned_stats))
        .route(&format!("{T}/unload"), put(unload))
        .route(&format!("{T}/terminate"), post(terminate))
        .route(&format!("{T}/subscriptions"), get(subscriptions))
        .route(S, put(create_subscription).delete(delete_subscription))
        .route(&format!("{S}/resetcursor"), post(reset_to_id))
        .route(&format!("{S}/resetcursor/{{ts}}"), post(reset_to_time))
        .route(&format!("{S}/skip/{{n}}"), post(skip))
        .route(&format!("{S}/skip_all"), post(clear_backlog))
        .route(&format!("{S}/expireMessages/{{secs}}"), post(expire))
        .route(&format!("{S}/position/{{n}}"), get(peek))
        .route(&format!("{T}/ledger/{{l}}/entry/{{e}}"), get(message_by_id))
        .route(&format!("{T}/lastMessageId"), get(last_message_id))
        .route(&format!("{T}/examinemessage"), get(examine_message))
        .route(&format!("{T}/permissions"), get(get_permissions))
        .route(
            &format!("{T}/permissions/{{role}}"),
            post(grant_permission).delete(revoke_permission),
        )
}

/// A persistent topic's name: operations on cursors, ledgers and stored messages have no
/// meaning for a non-persistent topic (501).
pub(super) fn name_of(domain: &str, tenant: &str, ns: &str, topic: &str) -> ApiResult<TopicName> {
    let n = any_name_of(domain, tenant, ns, topic)?;
    if !n.is_persistent() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "this operation is not supported on non-persistent topics",
        ));
    }
    Ok(n)
}

/// A topic name of either domain.
fn any_name_of(domain: &str, tenant: &str, ns: &str, topic: &str) -> ApiResult<TopicName> {
    Ok(TopicName::from_parts(domain, tenant, ns, topic)?)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ForceQuery {
    force: bool,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct StatsQuery {
    per_partition: bool,
}

/// A message id as Pulsar's admin API takes it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageIdBody {
    ledger_id: i64,
    entry_id: i64,
}

async fn list(
    State(s): Svc,
    c: Caller,
    Path((domain, t, ns)): Path<(String, String, String)>,
) -> ApiResult<Json<Vec<String>>> {
    namespace_topics(&s, &c, &domain, &t, &ns, false).await
}

async fn list_partitioned(
    State(s): Svc,
    c: Caller,
    Path((domain, t, ns)): Path<(String, String, String)>,
) -> ApiResult<Json<Vec<String>>> {
    namespace_topics(&s, &c, &domain, &t, &ns, true).await
}

/// The topics (or the partitioned topics) of a namespace, after the caller's permission check.
async fn namespace_topics(
    s: &Arc<BrokerService>,
    c: &Caller,
    domain: &str,
    t: &str,
    ns: &str,
    partitioned: bool,
) -> ApiResult<Json<Vec<String>>> {
    c.namespace(s, RestOperation::ListTopics, t, ns).await?;
    if domain != "persistent" && domain != "non-persistent" {
        return Ok(Json(Vec::new()));
    }
    if s.policies(t, ns).await?.is_none() {
        return Err(ApiError::not_found("Namespace does not exist"));
    }
    if domain == "non-persistent" {
        return np::list(s, t, ns, partitioned).await;
    }
    let topics = if partitioned {
        s.partitioned_topics_of_namespace(t, ns).await?
    } else {
        s.topics_of_namespace(t, ns).await?
    };
    Ok(Json(topics))
}

async fn create(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
) -> ApiResult<StatusCode> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::CreateTopic, &n, None).await?;
    s.create_namespace(&t, &ns).await?;
    if !n.is_persistent() {
        return np::create(&s, &n).await;
    }
    if s.topic_exists(&n).await? || s.partitions(&n).await? > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "This topic already exists",
        ));
    }
    s.topic(&n, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
    Query(q): Query<ForceQuery>,
) -> ApiResult<StatusCode> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::DeleteTopic, &n, None).await?;
    if !n.is_persistent() {
        return np::delete(&s, &n, q.force).await;
    }
    if s.partitions(&n).await? > 0 {
        s.delete_partitioned(&n, q.force).await?;
    } else {
        s.delete_topic(&n, q.force).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn get_partitions(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
) -> ApiResult<Json<Value>> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::GetPartitionedMetadata, &n, None)
        .await?;
    let p = s.partitions(&n).await?;
    Ok(Json(json!({ "partitions": p, "deleted": false })))
}

fn parse_count(body: &str) -> ApiResult<u32> {
    parse_body::<u32>(body).map_err(|_| {
        ApiError::precondition(format!("partition count must be a number, got {body:?}"))
    })
}

async fn create_partitioned(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::CreateTopic, &n, None).await?;
    let count = parse_count(&body)?;
    s.create_namespace(&t, &ns).await?;
    s.create_partitioned(&n, count).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update_partitions(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::UpdatePartitions, &n, None)
        .await?;
    s.update_partitions(&n, parse_count(&body)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_partitioned(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
    Query(q): Query<ForceQuery>,
) -> ApiResult<StatusCode> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::DeleteTopic, &n, None).await?;
    if !n.is_persistent() {
        if s.partitions(&n).await? == 0 {
            return Err(ApiError::not_found("Partitioned topic does not exist"));
        }
        return np::delete(&s, &n, q.force).await;
    }
    s.delete_partitioned(&n, q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The loaded topic; 404 if it does not exist.
async fn existing(s: &BrokerService, n: &TopicName) -> ApiResult<Arc<Topic>> {
    if !s.topic_exists(n).await? {
        if s.partitions(n).await? > 0 {
            return Err(ApiError::precondition(format!(
                "{n} is a partitioned topic: use partitioned-stats or a partition"
            )));
        }
        return Err(ApiError::not_found("Topic not found"));
    }
    Ok(s.topic(n, false).await?)
}

/// The topics a subscription operation applies to: the partitions of a partitioned topic, or
/// the topic itself.
pub(super) async fn targets(s: &BrokerService, n: &TopicName) -> ApiResult<Vec<Arc<Topic>>> {
    let parts = s.partitions(n).await?;
    if parts == 0 {
        return Ok(vec![existing(s, n).await?]);
    }
    let mut out = Vec::new();
    for i in 0..parts {
        out.push(s.topic(&n.partition(i), true).await?);
    }
    Ok(out)
}

/// Pulsar's topic stats of a loaded topic, as JSON.
pub async fn topic_stats_json(s: &BrokerService, t: &Topic) -> Value {
    let owner = s.http_url();
    let owner = owner.split_once("://").map(|(_, hp)| hp).unwrap_or(&owner);
    serde_json::to_value(t.stats(owner).await).unwrap_or_default()
}

async fn stats(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
) -> ApiResult<Json<Value>> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::TopicStats, &n, None).await?;
    if !n.is_persistent() {
        return np::stats(&s, &n).await;
    }
    let topic = existing(&s, &n).await?;
    Ok(Json(topic_stats_json(&s, &topic).await))
}

async fn partitioned_stats(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<Value>> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::PartitionedStats, &n, None)
        .await?;
    if !n.is_persistent() {
        return np::partitioned_stats(&s, &n, q.per_partition).await;
    }
    let parts = s.partitions(&n).await?;
    if parts == 0 {
        return Err(ApiError::not_found("Partitioned topic does not exist"));
    }
    let mut per = Vec::with_capacity(parts as usize);
    for i in 0..parts {
        let p = n.partition(i);
        let st = if s.topic_exists(&p).await? {
            topic_stats_json(&s, &*s.topic(&p, false).await?).await
        } else {
            partitioned_stats::unloaded_partition()
        };
        per.push((p.to_string(), st));
    }
    Ok(Json(partitioned_stats::merge(parts, per, q.per_partition)))
}

async fn internal_stats(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
) -> ApiResult<Json<Value>> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::InternalStats, &n, None).await?;
    if !n.is_persistent() {
        return np::internal_stats(&s, &n).await;
    }
    let topic = existing(&s, &n).await?;
    Ok(Json(topic.internal_stats().await))
}

async fn unload(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
) -> ApiResult<StatusCode> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::Unload, &n, None).await?;
    if !n.is_persistent() {
        return np::unload(&s, &n).await;
    }
    let parts = s.partitions(&n).await?;
    if parts > 0 {
        for i in 0..parts {
            s.unload(&n.partition(i), None).await;
        }
        return Ok(StatusCode::NO_CONTENT);
    }
    if !s.topic_exists(&n).await? {
        return Err(ApiError::not_found("Topic not found"));
    }
    s.unload(&n, None).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn terminate(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
) -> ApiResult<Json<Value>> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::Terminate, &n, None).await?;
    let topic = existing(&s, &n).await?;
    let last = topic.ledger().terminate().await?;
    Ok(Json(
        json!({ "ledgerId": last.ledger, "entryId": last.entry, "partitionIndex": topic.partition() }),
    ))
}

async fn subscriptions(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
) -> ApiResult<Json<Vec<String>>> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::ListSubscriptions, &n, None)
        .await?;
    if !n.is_persistent() {
        return np::subscriptions(&s, &n).await;
    }
    let mut out = std::collections::BTreeSet::new();
    for topic in targets(&s, &n).await? {
        out.extend(topic.subscription_names().await);
    }
    Ok(Json(out.into_iter().collect()))
}

fn position_of(id: &MessageIdBody) -> Position {
    // -1:-1 is earliest, i64::MAX:i64::MAX latest (the seek code's conventions).
    Position::new(id.ledger_id as u64, id.entry_id)
}

async fn create_subscription(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, sub)): SubPathArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::CreateSubscription, &n, Some(&sub))
        .await?;
    let initial = if body.trim().is_empty() {
        InitialPosition::Latest
    } else {
        let id: MessageIdBody = parse_body(&body)?;
        if id.ledger_id < 0 {
            InitialPosition::Earliest
        } else if id.ledger_id == i64::MAX {
            InitialPosition::Latest
        } else {
            InitialPosition::At(position_of(&id))
        }
    };
    let topics = targets(&s, &n).await?;
    for topic in &topics {
        if topic.get_subscription(&sub).await.is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Subscription already exists for topic",
            ));
        }
    }
    for topic in topics {
        topic.subscribe(&sub, true, initial).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_subscription(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, sub)): SubPathArgs,
) -> ApiResult<StatusCode> {
    let n = any_name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::DeleteSubscription, &n, Some(&sub))
        .await?;
    if !n.is_persistent() {
        return np::delete_subscription(&s, &n, &sub).await;
    }
    let mut found = false;
    for topic in targets(&s, &n).await? {
        if topic.get_subscription(&sub).await.is_some() {
            found = true;
            topic.remove_subscription(&sub, true).await;
        }
    }
    if !found {
        return Err(ApiError::not_found("Subscription not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A cursor operation of the admin API.
#[derive(Clone, Copy)]
enum CursorOp {
    Seek(SeekTarget),
    Skip(u64),
    Expire(u64),
}

async fn apply(
    topic: &Topic,
    x: &crate::subscription::Subscription,
    op: CursorOp,
) -> ApiResult<()> {
    match op {
        CursorOp::Seek(t) => x.seek(t).await?,
        CursorOp::Skip(count) => {
            let ml = topic.ledger();
            let mut p = x.mark_delete().await.unwrap_or(ml.first_position());
            for _ in 0..count {
                match ml.next_position(p) {
                    Some(q) => p = q,
                    None => break,
                }
            }
            let target = ml.next_position(p).unwrap_or(LATEST);
            x.seek(SeekTarget::Position(target)).await?;
        }
        CursorOp::Expire(secs) => {
            expire_older_than(topic, x, secs).await?;
        }
    }
    Ok(())
}

/// Applies `op` to the subscription in every target topic; 404 if no topic has it.
async fn each_sub(
    s: &BrokerService,
    n: &TopicName,
    sub: &str,
    op: CursorOp,
) -> ApiResult<StatusCode> {
    let mut found = false;
    for topic in targets(s, n).await? {
        if let Some(x) = topic.get_subscription(sub).await {
            found = true;
            apply(&topic, &x, op).await?;
        }
    }
    if !found {
        return Err(ApiError::not_found("Subscription not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}

const LATEST: Position = Position::new(i64::MAX as u64, i64::MAX);

async fn reset_to_id(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, sub)): SubPathArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::ResetCursor, &n, Some(&sub))
        .await?;
    let id: MessageIdBody = parse_body(&body)?;
    let p = position_of(&id);
    each_sub(&s, &n, &sub, CursorOp::Seek(SeekTarget::Position(p))).await
}

async fn reset_to_time(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, sub, ts)): Path<(String, String, String, String, String, u64)>,
) -> ApiResult<StatusCode> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::ResetCursor, &n, Some(&sub))
        .await?;
    each_sub(&s, &n, &sub, CursorOp::Seek(SeekTarget::PublishTime(ts))).await
}

async fn skip(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, sub, count)): Path<(String, String, String, String, String, u64)>,
) -> ApiResult<StatusCode> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::SkipMessages, &n, Some(&sub))
        .await?;
    each_sub(&s, &n, &sub, CursorOp::Skip(count)).await
}

async fn clear_backlog(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, sub)): SubPathArgs,
) -> ApiResult<StatusCode> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::SkipMessages, &n, Some(&sub))
        .await?;
    each_sub(&s, &n, &sub, CursorOp::Seek(SeekTarget::Position(LATEST))).await
}

/// Moves the cursor past every message published more than `secs` seconds ago (never back).
pub async fn expire_older_than(
    topic: &Topic,
    sub: &crate::subscription::Subscription,
    secs: u64,
) -> crate::Result<bool> {
    let cutoff = now_ms().saturating_sub(secs.saturating_mul(1000));
    let ml = topic.ledger();
    let first_live = ml
        .find_first(|d| {
            Payload::from_raw(d.clone())
                .map(|p| p.metadata.publish_time >= cutoff)
                .unwrap_or(false)
        })
        .await?;
    let md = sub.mark_delete().await.unwrap_or(ml.first_position());
    let new_md = match first_live {
        Some(p) => Position::new(p.ledger, p.entry - 1),
        None => ml.last_confirmed(),
    };
    // Expiry only moves forward (and never over the first unexpired entry).
    let advance = match first_live {
        Some(p) => p > md && ml.next_position(md).is_some_and(|nx| nx < p),
        None => md < ml.last_confirmed(),
    };
    if !advance || new_md <= md {
        return Ok(false);
    }
    sub.seek(SeekTarget::Position(first_live.unwrap_or(LATEST)))
        .await?;
    Ok(true)
}

async fn expire(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, sub, secs)): Path<(String, String, String, String, String, u64)>,
) -> ApiResult<StatusCode> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::ExpireMessages, &n, Some(&sub))
        .await?;
    each_sub(&s, &n, &sub, CursorOp::Expire(secs)).await
}

fn header(name: &str, v: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_bytes(name.as_bytes()).ok()?,
        HeaderValue::from_str(v).ok()?,
    ))
}

/// A stored entry as Pulsar's admin API returns a message: payload as the body, id and metadata
/// in `X-Pulsar-*` headers.
fn message_response(p: Position, raw: bytes::Bytes) -> ApiResult<Response> {
    let payload = Payload::from_raw(raw)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("bad entry: {e}")))?;
    let md = &payload.metadata;
    let mut headers = vec![
        header("X-Pulsar-Message-ID", &format!("{}:{}", p.ledger, p.entry)),
        header("X-Pulsar-publish-time", &md.publish_time.to_string()),
        header("X-Pulsar-producer-name", &md.producer_name),
        header("X-Pulsar-sequence-id", &md.sequence_id.to_string()),
    ];
    if md.num_messages_in_batch.is_some() {
        headers.push(header(
            "X-Pulsar-num-batch-message",
            &md.num_messages_in_batch().to_string(),
        ));
    }
    if let Some(c) = md.compression {
        let name = match c {
            1 => "LZ4",
            2 => "ZLIB",
            3 => "ZSTD",
            4 => "SNAPPY",
            _ => "NONE",
        };
        headers.push(header("X-Pulsar-compression", name));
    }
    if let Some(u) = md.uncompressed_size {
        headers.push(header("X-Pulsar-uncompressed-size", &u.to_string()));
    }
    if let Some(k) = &md.partition_key {
        headers.push(header("X-Pulsar-partition-key", k));
    }
    for kv in &md.properties {
        headers.push(header(&format!("X-Pulsar-PROPERTY-{}", kv.key), &kv.value));
    }
    let mut resp = Response::new(Body::from(payload.data.clone()));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (k, v) in headers.into_iter().flatten() {
        resp.headers_mut().insert(k, v);
    }
    Ok(resp)
}

async fn peek(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, sub, nth)): Path<(String, String, String, String, String, u64)>,
) -> ApiResult<Response> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::PeekMessages, &n, Some(&sub))
        .await?;
    let topic = existing(&s, &n).await?;
    let Some(x) = topic.get_subscription(&sub).await else {
        return Err(ApiError::not_found("Subscription not found"));
    };
    let ml = topic.ledger();
    let mut p = x.mark_delete().await.unwrap_or(ml.first_position());
    for _ in 0..nth.max(1) {
        match ml.next_position(p) {
            Some(q) => p = q,
            None => return Err(ApiError::not_found("Message not found")),
        }
    }
    match ml.read_one(p).await? {
        Some(raw) => message_response(p, raw),
        None => Err(ApiError::not_found("Message not found")),
    }
}

async fn message_by_id(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, l, e)): Path<(String, String, String, String, u64, i64)>,
) -> ApiResult<Response> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::GetMessageById, &n, None).await?;
    let topic = existing(&s, &n).await?;
    let ml = topic.ledger();
    let p = Position::new(l, e);
    let known = ml
        .ledgers()
        .iter()
        .any(|x| x.ledger_id.0 == l && e >= 0 && (e as u64) < x.entries);
    if !known || p > ml.last_confirmed() {
        return Err(ApiError::not_found("Message not found"));
    }
    match ml.read_one(p).await? {
        Some(raw) => message_response(p, raw),
        None => Err(ApiError::not_found("Message not found")),
    }
}

/// `examinemessage` query: `initialPosition` (`earliest`/`latest`), `messagePosition` (1-based).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExamineQuery {
    initial_position: Option<String>,
    message_position: Option<u64>,
}

/// `GET .../examinemessage`: the n-th message from the start or from the end of the topic.
async fn examine_message(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
    Query(q): Query<ExamineQuery>,
) -> ApiResult<Response> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::ExamineMessage, &n, None).await?;
    let nth = q.message_position.unwrap_or(1).max(1);
    let latest = match q.initial_position.as_deref().unwrap_or("latest") {
        p if p.eq_ignore_ascii_case("latest") => true,
        p if p.eq_ignore_ascii_case("earliest") => false,
        other => {
            return Err(ApiError::precondition(format!(
                "Invalid initialPosition {other:?}: earliest or latest"
            )));
        }
    };
    let topic = existing(&s, &n).await?;
    let ml = topic.ledger();
    let mut p = ml.first_position();
    let found = if latest {
        // the last `nth` positions, walking the stored entries once
        let mut window = std::collections::VecDeque::new();
        while let Some(q) = ml.next_position(p) {
            p = q;
            window.push_back(q);
            if window.len() as u64 > nth {
                window.pop_front();
            }
        }
        (window.len() as u64 == nth)
            .then(|| window.front().copied())
            .flatten()
    } else {
        let mut at = None;
        for _ in 0..nth {
            match ml.next_position(p) {
                Some(q) => {
                    p = q;
                    at = Some(q);
                }
                None => {
                    at = None;
                    break;
                }
            }
        }
        at
    };
    let Some(p) = found else {
        return Err(ApiError::not_found("Message not found"));
    };
    match ml.read_one(p).await? {
        Some(raw) => message_response(p, raw),
        None => Err(ApiError::not_found("Message not found")),
    }
}

async fn last_message_id(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
) -> ApiResult<Json<Value>> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::GetLastMessageIdRest, &n, None)
        .await?;
    let topic = existing(&s, &n).await?;
    let p = topic.ledger().last_confirmed();
    Ok(Json(
        json!({ "ledgerId": p.ledger, "entryId": p.entry, "partitionIndex": topic.partition() }),
    ))
}

/// `GET .../permissions`: role -> actions on this topic (namespace grants merged with the
/// topic's own, as Pulsar answers).
async fn get_permissions(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp)): TopicPathArgs,
) -> ApiResult<Json<Value>> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::GetTopicPermissions, &n, None)
        .await?;
    let Some(p) = s.policies(&t, &ns).await? else {
        return Err(ApiError::not_found("Namespace does not exist"));
    };
    let mut out = p.auth_policies.namespace_auth.clone();
    if let Some(roles) = p.auth_policies.destination_auth.get(&n.to_string()) {
        for (role, actions) in roles {
            out.entry(role.clone())
                .or_default()
                .extend(actions.iter().cloned());
        }
    }
    Ok(Json(json!(out)))
}

/// `POST .../permissions/{role}` with a JSON list of actions (`["produce","consume"]`).
async fn grant_permission(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, role)): SubPathArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::GrantRevokeTopicPermission, &n, None)
        .await?;
    let actions = super::namespaces::parse_actions(&body)?;
    let key = n.to_string();
    s.update_policies(&t, &ns, |p| {
        p.auth_policies
            .destination_auth
            .entry(key.clone())
            .or_default()
            .insert(role.clone(), actions.clone());
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../permissions/{role}`: removes the role's topic-level grant.
async fn revoke_permission(
    State(s): Svc,
    c: Caller,
    Path((d, t, ns, tp, role)): SubPathArgs,
) -> ApiResult<StatusCode> {
    let n = name_of(&d, &t, &ns, &tp)?;
    c.topic(&s, RestOperation::GrantRevokeTopicPermission, &n, None)
        .await?;
    let key = n.to_string();
    let found = std::sync::atomic::AtomicBool::new(false);
    s.update_policies(&t, &ns, |p| {
        if let Some(roles) = p.auth_policies.destination_auth.get_mut(&key) {
            let removed = roles.remove(&role).is_some();
            found.store(removed, std::sync::atomic::Ordering::Relaxed);
            if roles.is_empty() {
                p.auth_policies.destination_auth.remove(&key);
            }
        }
    })
    .await?;
    if !found.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::precondition(format!(
            "Permissions are not set at the topic level for role {role}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
