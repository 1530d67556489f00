//! The topic endpoints for `non-persistent://` topics (`/admin/v2/non-persistent/...`), called
//! by the handlers of `topics.rs` when the domain is `non-persistent`: list, create, delete,
//! stats (Pulsar's `NonPersistentTopicStats`), internal stats, partitioned stats, unload and
//! subscriptions. A non-persistent topic exists while it is loaded; a partitioned one is its
//! partition count in the metadata store.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use serde_json::Value;

use super::{ApiError, ApiResult, partitioned_stats};
use crate::error::BrokerError;
use crate::nonpersistent::NonPersistentTopic;
use crate::service::{BrokerService, Owner};
use crate::topic_name::TopicName;

/// The topic loaded here; a redirect if another broker serves it, 404 if it is not loaded.
async fn loaded(s: &BrokerService, n: &TopicName) -> ApiResult<Arc<NonPersistentTopic>> {
    if let Owner::Remote {
        broker_url,
        http_url,
        ..
    }
    | Owner::Leader {
        broker_url,
        http_url,
        ..
    } = s.owner(n).await?
    {
        return Err(BrokerError::OwnedElsewhere {
            topic: n.to_string(),
            broker_url,
            http_url,
        }
        .into());
    }
    if let Some(t) = s.loaded_np_topic(n) {
        return Ok(t);
    }
    if s.partitions(n).await? > 0 {
        return Err(ApiError::precondition(format!(
            "{n} is a partitioned topic: use partitioned-stats or a partition"
        )));
    }
    Err(ApiError::not_found("Topic not found"))
}

/// The loaded topics an operation applies to: the loaded partitions of a partitioned topic,
/// or the topic itself.
async fn targets(s: &BrokerService, n: &TopicName) -> ApiResult<Vec<Arc<NonPersistentTopic>>> {
    let parts = s.partitions(n).await?;
    if parts == 0 {
        return Ok(vec![loaded(s, n).await?]);
    }
    Ok((0..parts)
        .filter_map(|i| s.loaded_np_topic(&n.partition(i)))
        .collect())
}

/// The non-persistent topics (or partitioned topics) of a namespace.
pub(super) async fn list(
    s: &BrokerService,
    t: &str,
    ns: &str,
    partitioned: bool,
) -> ApiResult<Json<Vec<String>>> {
    Ok(Json(if partitioned {
        s.np_partitioned_topics_of_namespace(t, ns).await?
    } else {
        s.np_topics_of_namespace(t, ns).await?
    }))
}

/// Creates (loads) a non-partitioned non-persistent topic.
pub(super) async fn create(s: &BrokerService, n: &TopicName) -> ApiResult<StatusCode> {
    if s.loaded_np_topic(n).is_some() || s.partitions(n).await? > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "This topic already exists",
        ));
    }
    s.np_topic(n, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a topic: unloads it (or each partition) and, for a partitioned topic, removes its
/// partition count. Without `force`, refused while producers are connected.
pub(super) async fn delete(s: &BrokerService, n: &TopicName, force: bool) -> ApiResult<StatusCode> {
    let parts = s.partitions(n).await?;
    let topics = targets(s, n).await?;
    if !force && topics.iter().any(|t| t.producer_count() > 0) {
        return Err(ApiError::precondition(
            "Topic has active producers/subscriptions",
        ));
    }
    for t in &topics {
        s.unload_np(t.name(), None);
    }
    if parts > 0 {
        s.delete_partitioned(n, force).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Unloads a topic (or each loaded partition).
pub(super) async fn unload(s: &BrokerService, n: &TopicName) -> ApiResult<StatusCode> {
    for t in targets(s, n).await? {
        s.unload_np(t.name(), None);
    }
    Ok(StatusCode::NO_CONTENT)
}

fn owner_host(s: &BrokerService) -> String {
    let owner = s.http_url();
    owner
        .split_once("://")
        .map(|(_, hp)| hp.to_owned())
        .unwrap_or(owner)
}

/// `GET .../stats`.
pub(super) async fn stats(s: &BrokerService, n: &TopicName) -> ApiResult<Json<Value>> {
    let t = loaded(s, n).await?;
    Ok(Json(t.stats(&owner_host(s))))
}

/// `GET .../internalStats`.
pub(super) async fn internal_stats(s: &BrokerService, n: &TopicName) -> ApiResult<Json<Value>> {
    Ok(Json(loaded(s, n).await?.internal_stats()))
}

/// `GET .../partitioned-stats`.
pub(super) async fn partitioned_stats(
    s: &BrokerService,
    n: &TopicName,
    per_partition: bool,
) -> ApiResult<Json<Value>> {
    let parts = s.partitions(n).await?;
    if parts == 0 {
        return Err(ApiError::not_found("Partitioned topic does not exist"));
    }
    let owner = owner_host(s);
    let per = (0..parts)
        .map(|i| {
            let p = n.partition(i);
            let st = match s.loaded_np_topic(&p) {
                Some(t) => t.stats(&owner),
                None => partitioned_stats::unloaded_partition(),
            };
            (p.to_string(), st)
        })
        .collect();
    Ok(Json(partitioned_stats::merge(parts, per, per_partition)))
}

/// `GET .../subscriptions`.
pub(super) async fn subscriptions(
    s: &BrokerService,
    n: &TopicName,
) -> ApiResult<Json<Vec<String>>> {
    let mut out = std::collections::BTreeSet::new();
    for t in targets(s, n).await? {
        out.extend(t.subscription_names());
    }
    Ok(Json(out.into_iter().collect()))
}

/// `DELETE .../subscription/{sub}`: its consumers are closed and it is forgotten.
pub(super) async fn delete_subscription(
    s: &BrokerService,
    n: &TopicName,
    sub: &str,
) -> ApiResult<StatusCode> {
    let mut found = false;
    for t in targets(s, n).await? {
        found |= t.remove_subscription(sub);
    }
    if !found {
        return Err(ApiError::not_found("Subscription not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}
