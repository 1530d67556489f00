//! Namespace policies enforced on live topics. The broker re-reads each loaded topic's
//! namespace policies every `policy_refresh_interval` (default 1 s) from the metadata store —
//! the one source of truth the admin API writes — so a change takes effect within seconds:
//!
//! - message TTL: cursors move past unacknowledged messages older than the TTL;
//! - backlog quota (`destination_storage` size limit and `message_age` time limit):
//!   `consumer_backlog_eviction` moves the subscriptions whose backlog exceeds the limit forward
//!   (oldest entries first);
//!   `producer_exception` fails SENDs with `ProducerBlockedQuotaExceededException` and new
//!   producers; `producer_request_hold` disconnects the producers and refuses them (and new
//!   ones) with the retryable `ProducerBlockedQuotaExceededError` until the backlog is under
//!   the quota again — clients keep their pending messages, so sends are held, not failed;
//! - retention (time and size) decides which fully consumed ledgers the trimmer deletes;
//! - max producers / consumers per topic (and consumers per subscription) are checked when a
//!   producer or consumer is added: `ProducerBusy` / `ConsumerBusy`, as Pulsar answers.
//!
//! - publish rate (messages and bytes per second): a connection that went over stops being
//!   read until the topic's reservation clock catches up — producers are throttled, nothing is
//!   dropped.
//!
//! - dispatch rate: dispatchers pause once they are ahead of a reservation clock — the topic's
//!   (`dispatchRate`, shared by all its subscriptions) or their own (`subscriptionDispatchRate`).
//!
//! - deduplication: SENDs whose sequence id a producer already persisted are acknowledged
//!   without being written (`crate::dedup`).
//!
//! The offload thresholds and deletion lag are applied by `crate::offload::policy`.

use std::collections::HashMap;
use strata_common::clock::now_ms;

use strata_meta::model::{BacklogQuotaPolicy, Policies};
use tracing::{debug, info, warn};

use crate::error::{BrokerError, Result, server_error};
use crate::position::Position;
use crate::service::BrokerService;
use crate::subscription::SeekTarget;
use crate::topic::Topic;

const LATEST: Position = Position::new(i64::MAX as u64, i64::MAX);

/// The policies of the topic's namespace.
async fn policies_of(s: &BrokerService, topic: &Topic) -> Result<Option<Policies>> {
    s.policies(&topic.name().tenant, &topic.name().namespace)
        .await
}

/// Checks a new producer against max-producers and the backlog quota.
pub async fn admit_producer(s: &BrokerService, topic: &Topic) -> Result<()> {
    let Some(p) = policies_of(s, topic).await? else {
        return Ok(());
    };
    if let Some(max) = p.max_producers_per_topic.filter(|m| *m > 0)
        && topic.producer_count() >= max as usize
    {
        return Err(BrokerError::LimitReached(
            "Topic reached max producers limit".into(),
            server_error::PRODUCER_BUSY,
        ));
    }
    if topic.quota_exceeded() {
        let code = match p.backlog_quota.map(|q| q.policy) {
            Some(BacklogQuotaPolicy::ProducerException) => {
                server_error::PRODUCER_BLOCKED_QUOTA_EXCEEDED_EXCEPTION
            }
            _ => server_error::PRODUCER_BLOCKED_QUOTA_EXCEEDED_ERROR,
        };
        return Err(BrokerError::LimitReached(
            "Cannot create producer on topic with backlog quota exceeded".into(),
            code,
        ));
    }
    Ok(())
}

/// Checks a new consumer against max-consumers per topic and per subscription.
pub async fn admit_consumer(s: &BrokerService, topic: &Topic, sub: &str) -> Result<()> {
    let Some(p) = policies_of(s, topic).await? else {
        return Ok(());
    };
    if let Some(max) = p.max_consumers_per_topic.filter(|m| *m > 0)
        && topic.consumer_count().await >= max as usize
    {
        return Err(BrokerError::LimitReached(
            "Topic reached max consumers limit".into(),
            server_error::CONSUMER_BUSY,
        ));
    }
    if let Some(max) = p.max_consumers_per_subscription.filter(|m| *m > 0)
        && let Some(x) = topic.get_subscription(sub).await
        && x.consumer_count().await >= max as usize
    {
        return Err(BrokerError::LimitReached(
            "Subscription reached max consumers limit".into(),
            server_error::CONSUMER_BUSY,
        ));
    }
    Ok(())
}

/// One enforcement pass over every loaded topic.
pub async fn enforce_all(s: &BrokerService) {
    let mut cache: HashMap<(String, String), Option<Policies>> = HashMap::new();
    for t in s.loaded_topics().await {
        let key = (t.name().tenant.clone(), t.name().namespace.clone());
        let pol = match cache.get(&key) {
            Some(p) => p.clone(),
            None => {
                let p = match s.policies(&key.0, &key.1).await {
                    Ok(p) => p,
                    Err(e) => {
                        warn!(namespace = %format!("{}/{}", key.0, key.1), error = %e, "read policies failed");
                        None
                    }
                };
                cache.insert(key, p.clone());
                p
            }
        };
        let Some(p) = pol else { continue };
        if let Err(e) = enforce(&t, &p).await {
            warn!(topic = %t.name(), error = %e, "policy enforcement failed");
        }
        crate::compaction::state::maybe_compact(s, &t, &p).await;
    }
}

/// Average stored entry size of a topic (bytes, at least 1).
fn avg_entry_size(t: &Topic) -> u64 {
    let ledgers = t.ledger().ledgers();
    let entries: u64 = ledgers.iter().map(|l| l.entries).sum();
    let size: u64 = ledgers.iter().map(|l| l.size).sum();
    size.checked_div(entries).unwrap_or(1).max(1)
}

/// Publish time (ms) of the oldest unacknowledged entry after `md`, if there is one.
async fn oldest_backlog_publish_time(t: &Topic, md: Position) -> Result<Option<u64>> {
    let Some(first) = t.ledger().next_position(md) else {
        return Ok(None);
    };
    Ok(t.ledger().read_one(first).await?.and_then(|raw| {
        strata_proto::frame::Payload::from_raw(raw)
            .ok()
            .map(|p| p.metadata.publish_time)
    }))
}

/// Applies the backlog quota (size limit: `limit_size` bytes; time limit: the oldest
/// unacknowledged message younger than `limit_time_seconds`). With
/// `consumer_backlog_eviction` the offending subscriptions are moved forward; with the producer
/// policies the topic is marked exceeded (new producers refused, SENDs failed or held).
/// Returns whether the topic is over its quota.
async fn enforce_backlog_quota(t: &Topic, q: &strata_meta::model::BacklogQuota) -> Result<bool> {
    let mut exceeded = false;
    let ml = t.ledger();
    let avg = avg_entry_size(t);
    for sub in t.durable_subscriptions().await {
        let md = sub.mark_delete().await.unwrap_or(ml.first_position());
        if q.limit_size >= 0 {
            let limit = q.limit_size as u64;
            let backlog = ml.entries_after(md);
            if backlog.saturating_mul(avg) > limit {
                match q.policy {
                    BacklogQuotaPolicy::ConsumerBacklogEviction => {
                        let keep = limit / avg;
                        let mut pos = md;
                        for _ in 0..backlog - keep {
                            match ml.next_position(pos) {
                                Some(n) => pos = n,
                                None => break,
                            }
                        }
                        let target = ml.next_position(pos).unwrap_or(LATEST);
                        sub.seek(SeekTarget::Position(target)).await?;
                        info!(topic = %t.name(), sub = sub.name(), evicted = backlog - keep, "backlog quota: evicted the oldest entries");
                    }
                    _ => exceeded = true,
                }
            }
        }
        if q.limit_time_seconds > 0 {
            let limit = q.limit_time_seconds as u64;
            let md = sub.mark_delete().await.unwrap_or(ml.first_position());
            let Some(published) = oldest_backlog_publish_time(t, md).await? else {
                continue;
            };
            let age_ms = now_ms().saturating_sub(published);
            if age_ms <= limit.saturating_mul(1000) {
                continue;
            }
            match q.policy {
                BacklogQuotaPolicy::ConsumerBacklogEviction => {
                    if crate::admin::topics::expire_older_than(t, &sub, limit).await? {
                        info!(topic = %t.name(), sub = sub.name(), limit_time_seconds = limit, "backlog quota: evicted messages past the time limit");
                    }
                }
                _ => exceeded = true,
            }
        }
    }
    Ok(exceeded)
}

/// Applies `p` to one live topic.
pub async fn enforce(t: &Topic, p: &Policies) -> Result<()> {
    if let Some(ttl) = p.message_ttl_seconds.filter(|v| *v > 0) {
        for sub in t.durable_subscriptions().await {
            if crate::admin::topics::expire_older_than(t, &sub, u64::from(ttl)).await? {
                info!(topic = %t.name(), sub = sub.name(), ttl, "expired messages past the TTL");
            }
        }
    }

    let mut exceeded = false;
    if let Some(q) = p.backlog_quota {
        exceeded = enforce_backlog_quota(t, &q).await?;
    }
    if t.set_quota_exceeded(exceeded) != exceeded {
        debug!(topic = %t.name(), exceeded, "backlog quota state changed");
        if exceeded
            && p.backlog_quota.map(|q| q.policy) == Some(BacklogQuotaPolicy::ProducerRequestHold)
        {
            let n = t.disconnect_producers();
            info!(topic = %t.name(), producers = n, "backlog quota exceeded: holding producers");
        }
    }

    t.dedup()
        .set_enabled(p.deduplication_enabled.unwrap_or(false));
    t.save_dedup().await;
    t.set_publish_rate(p.publish_rate.map(|r| (r.messages, r.bytes)));
    // The topic dispatch rate bounds the outflow of all subscriptions together; the
    // subscription dispatch rate bounds each one.
    let per_period = |r: strata_meta::model::RateLimit| {
        let period = i64::from(r.period_seconds.max(1));
        (
            if r.messages > 0 {
                (r.messages / period).max(1)
            } else {
                r.messages
            },
            if r.bytes > 0 {
                (r.bytes / period).max(1)
            } else {
                r.bytes
            },
        )
    };
    t.set_topic_dispatch_rate(p.dispatch_rate.map(per_period));
    t.set_dispatch_rate(p.subscription_dispatch_rate.map(per_period))
        .await;
    t.set_retention(p.retention.map(|r| {
        (
            u64::try_from(r.retention_time_minutes)
                .ok()
                .map(|m| m.saturating_mul(60_000)),
            u64::try_from(r.retention_size_mb)
                .ok()
                .map(|mb| mb.saturating_mul(1 << 20)),
        )
    }));
    if p.retention.is_some() {
        let n = t.trim().await?;
        if n > 0 {
            info!(topic = %t.name(), ledgers = n, "retention: trimmed consumed ledgers");
        }
    }
    Ok(())
}
