//! A loaded topic: its managed ledger, producers (`producers.rs`: access modes) and
//! subscriptions. [`Topic::publish`] applies what a SEND goes through before it is appended:
//! the backlog quota, the publish rate and deduplication.

mod producers;
mod stats;

pub(crate) use producers::Producers;
pub use producers::{ProducerAdmission, ProducerRequest};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use strata_proto::frame::Payload;
use tracing::{debug, warn};

use crate::cursor_store::CursorStore;
use crate::dedup::{DUPLICATE_POSITION, Dedup, Verdict};
use crate::error::server_error::PRODUCER_BLOCKED_QUOTA_EXCEEDED_EXCEPTION;
use crate::error::{BrokerError, Result};
use crate::managed_ledger::{ManagedLedger, Reply};
use crate::metadata::MetaClient;
use crate::metrics::{Metrics, TopicMetrics};
use crate::position::Position;
use crate::subscription::{InitialPosition, Subscription, SubscriptionConfig, SubscriptionId};
use crate::topic_name::TopicName;

/// A loaded topic.
///
/// `repr(C)` keeps the fields in the order written: the ones every SEND reads come first, so
/// that with thousands of topics (each cold in the CPU's caches) a SEND misses on one or two of
/// the topic's cache lines rather than on one per field.
#[repr(C)]
pub struct Topic {
    // read by every SEND (`publish`)
    ml: ManagedLedger,
    series: TopicMetrics,
    /// Partition index, or -1.
    partition: i32,
    /// The backlog quota is exceeded (set by the policy task, `crate::policy`).
    quota_exceeded: AtomicBool,
    /// Message deduplication state (`crate::dedup`); held inline, so that a SEND's check of
    /// whether it is on reads the topic's own memory.
    dedup: Dedup,
    publish_rate: crate::rate::RateClock,
    // the rest
    name: TopicName,
    meta: MetaClient,
    cursors: CursorStore,
    metrics: Metrics,
    sub_config: SubscriptionConfig,
    producers: Producers,
    subs: tokio::sync::Mutex<HashMap<String, Subscription>>,
    /// Being unloaded: new producers and consumers are refused (clients retry via lookup).
    unloading: AtomicBool,
    retention: Mutex<Option<(Option<u64>, Option<u64>)>>,
    /// Cancelled once the topic is closed (unloaded).
    closed: tokio_util::sync::CancellationToken,
    /// Compacted view and compaction status (`crate::compaction`).
    compaction: Arc<crate::compaction::TopicCompaction>,
}

impl Topic {
    /// A topic over its opened managed ledger.
    pub fn new(
        name: TopicName,
        ml: ManagedLedger,
        meta: MetaClient,
        metrics: Metrics,
        sub_config: SubscriptionConfig,
    ) -> Self {
        let partition = name.partition_index().map(|p| p as i32).unwrap_or(-1);
        let series = metrics.topic(&name);
        ml.observe_writes(series.clone());
        Topic {
            name,
            partition,
            ml,
            cursors: CursorStore::new(meta.clone()),
            meta,
            producers: Producers::new(metrics.clone()),
            metrics,
            sub_config,
            subs: tokio::sync::Mutex::new(HashMap::new()),
            series,
            unloading: AtomicBool::new(false),
            quota_exceeded: AtomicBool::new(false),
            dedup: Dedup::default(),
            retention: Mutex::new(None),
            publish_rate: crate::rate::RateClock::default(),
            closed: tokio_util::sync::CancellationToken::new(),
            compaction: Arc::default(),
        }
    }

    /// Compacted view and compaction status.
    pub fn compaction(&self) -> &Arc<crate::compaction::TopicCompaction> {
        &self.compaction
    }

    /// The metadata store.
    pub fn metadata(&self) -> &MetaClient {
        &self.meta
    }

    /// The managed ledger.
    pub fn ledger(&self) -> &ManagedLedger {
        &self.ml
    }

    /// Its name.
    pub fn name(&self) -> &TopicName {
        &self.name
    }

    /// Its partition index, or -1.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Its metric series.
    pub fn series(&self) -> &TopicMetrics {
        &self.series
    }

    /// Its deduplication state.
    pub fn dedup(&self) -> &Dedup {
        &self.dedup
    }

    /// Whether the backlog quota is exceeded.
    pub fn quota_exceeded(&self) -> bool {
        self.quota_exceeded.load(Ordering::Acquire)
    }

    /// Sets the backlog quota state (the policy task); returns the previous one.
    pub fn set_quota_exceeded(&self, exceeded: bool) -> bool {
        self.quota_exceeded.swap(exceeded, Ordering::AcqRel)
    }

    /// Publishes a SEND's payload: refused while the backlog quota is exceeded, charged to the
    /// publish rate, checked against deduplication, then appended (its order is fixed now).
    /// `reply` gets the entry's position ([`DUPLICATE_POSITION`] for a message deduplication
    /// dropped) or why the message is refused. Returns when to resume reading from the
    /// producer's connection (the publish rate: Pulsar throttles by pausing reads, nothing is
    /// dropped).
    pub fn publish(&self, payload: Payload, reply: Reply) -> Option<tokio::time::Instant> {
        if self.quota_exceeded() {
            reply.send(Err(BrokerError::LimitReached(
                "backlog quota exceeded".into(),
                PRODUCER_BLOCKED_QUOTA_EXCEEDED_EXCEPTION,
            )));
            return None;
        }
        let messages = payload.metadata.num_messages_in_batch.unwrap_or(1).max(1) as u64;
        let pause_reads_until = self.throttle(messages, payload.raw.len() as u64);
        self.append(payload, messages, reply);
        pause_reads_until
    }

    /// Appends unless deduplication says the message is already stored (then the reply is
    /// [`DUPLICATE_POSITION`]) or an earlier copy is still in flight (refused).
    fn append(&self, payload: Payload, messages: u64, reply: Reply) {
        if !self.dedup.enabled() {
            return self.start_append(payload, messages, reply);
        }
        let m = &payload.metadata;
        let producer = m.producer_name.clone();
        let highest = m.highest_sequence_id.unwrap_or(0).max(m.sequence_id);
        match self.dedup.check(&producer, highest) {
            Verdict::Publish => {
                let outcome = self.dedup.outcome();
                let tracked = Reply::new(move |r| {
                    let stored = r.as_ref().ok().copied();
                    // the receipt first: a copy of this message resent meanwhile is refused as
                    // in flight (retryable) rather than answered before this one
                    reply.send(r);
                    match stored {
                        Some(pos) => outcome.persisted(&producer, highest, pos),
                        None => outcome.failed(&producer),
                    }
                });
                self.start_append(payload, messages, tracked);
            }
            Verdict::Duplicate => {
                debug!(producer = %producer, seq = highest, "duplicate message dropped");
                reply.send(Ok(DUPLICATE_POSITION));
            }
            Verdict::InFlight => reply.send(Err(BrokerError::ServiceNotReady(
                "an earlier copy of this message is still being persisted; retry".into(),
            ))),
        }
    }

    /// Counts and appends an entry; its order is fixed now. The managed ledger counts its
    /// write latency when it is durable (`ManagedLedger::observe_writes`).
    fn start_append(&self, payload: Payload, messages: u64, reply: Reply) {
        self.series.appended(messages, payload.raw.len() as u64);
        let crc = payload.verified_checksum();
        self.ml.append_then(payload.raw, crc, reply);
    }

    /// Adds a producer with the given access mode.
    pub fn add_producer(&self, req: ProducerRequest<'_>) -> Result<ProducerAdmission> {
        if self.ml.is_terminated() {
            return Err(BrokerError::TopicTerminated(self.name.to_string()));
        }
        self.check_not_unloading()?;
        self.producers.admit(&self.name, req)
    }

    /// Removes a producer; grants exclusive access to the next waiter if the topic is free.
    pub fn remove_producer(&self, key: u64) {
        self.producers.remove(key)
    }

    /// Closes every producer from the broker side (CLOSE_PRODUCER): clients reconnect and go
    /// through producer admission again (backlog quota `producer_request_hold`: they are
    /// refused with a retryable error while the quota is exceeded and keep their pending
    /// messages, i.e. the sends are held).
    pub fn disconnect_producers(&self) -> usize {
        self.producers.close_all(None, false)
    }

    /// Stores the deduplication snapshot if it changed.
    pub async fn save_dedup(&self) {
        if let Err(e) = self.dedup.save(&self.meta, self.ml.name()).await {
            warn!(topic = %self.name, error = %e, "saving the deduplication snapshot failed");
        }
    }

    /// Number of producers connected.
    pub fn producer_count(&self) -> usize {
        self.producers.count()
    }

    /// Gets or creates a subscription.
    pub async fn subscribe(
        &self,
        name: &str,
        durable: bool,
        initial: InitialPosition,
    ) -> Result<Subscription> {
        self.check_not_unloading()?;
        let mut subs = self.subs.lock().await;
        if let Some(s) = subs.get(name)
            && (s.is_durable() || !durable)
        {
            return Ok(s.clone());
        }
        let id = SubscriptionId {
            topic: self.name.to_string(),
            partition: self.partition,
            name: name.to_owned(),
            durable,
        };
        let sub = Subscription::open(
            id,
            initial,
            self.ml.clone(),
            self.cursors.clone(),
            self.sub_config.clone(),
            self.metrics.clone(),
        )
        .await?;
        subs.insert(name.to_owned(), sub.clone());
        Ok(sub)
    }

    /// Loads every durable subscription stored for this topic (so retention sees them).
    pub async fn load_durable_subscriptions(&self) -> Result<()> {
        self.dedup.load(&self.meta, &self.ml).await?;
        for sub in self.cursors.list(self.ml.name()).await? {
            self.subscribe(&sub, true, InitialPosition::Latest).await?;
        }
        Ok(())
    }

    /// Forgets a subscription; `delete_cursor` also removes its stored cursor.
    pub async fn remove_subscription(&self, name: &str, delete_cursor: bool) {
        let removed = self.subs.lock().await.remove(name);
        if let Some(s) = removed {
            s.close().await;
        }
        if delete_cursor && let Err(e) = self.cursors.delete(self.ml.name(), name).await {
            warn!(topic = %self.name, sub = name, error = %e, "delete cursor failed");
        }
    }

    /// Consumers attached to any subscription.
    pub async fn consumer_count(&self) -> usize {
        let subs = self.subscriptions().await;
        let mut n = 0;
        for s in subs {
            n += s.consumer_count().await;
        }
        n
    }

    /// Sets the topic's dispatch rate limit `(messages, bytes)` per second: the total outflow
    /// of all its subscriptions together.
    pub fn set_topic_dispatch_rate(&self, limit: Option<(i64, i64)>) {
        self.sub_config.topic_dispatch.set(limit);
    }

    /// Applies a dispatch rate limit `(messages, bytes)` per second to every subscription.
    pub async fn set_dispatch_rate(&self, limit: Option<(i64, i64)>) {
        for s in self.subs.lock().await.values() {
            s.set_dispatch_rate(limit);
        }
    }

    /// Every subscription.
    pub async fn subscriptions(&self) -> Vec<Subscription> {
        self.subs.lock().await.values().cloned().collect()
    }

    /// Durable subscriptions.
    pub async fn durable_subscriptions(&self) -> Vec<Subscription> {
        self.subs
            .lock()
            .await
            .values()
            .filter(|s| s.is_durable())
            .cloned()
            .collect()
    }

    /// A subscription of this topic, if it exists.
    pub async fn get_subscription(&self, name: &str) -> Option<Subscription> {
        self.subs.lock().await.get(name).cloned()
    }

    /// Names of the subscriptions.
    pub async fn subscription_names(&self) -> Vec<String> {
        self.subs.lock().await.keys().cloned().collect()
    }

    /// Per-subscription `(name, durable, mark-delete, backlog entries)`.
    pub async fn subscription_stats(&self) -> Vec<(String, bool, Option<Position>, u64)> {
        let subs = self.subscriptions().await;
        let mut out = Vec::new();
        for s in subs {
            let md = s.mark_delete().await;
            let backlog = md.map(|p| self.ml.entries_after(p)).unwrap_or(0);
            out.push((s.name().to_owned(), s.is_durable(), md, backlog));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Names of connected producers.
    pub fn producer_names(&self) -> Vec<String> {
        self.producers.names()
    }

    /// Entries not yet acknowledged, summed over durable subscriptions.
    pub async fn backlog(&self) -> u64 {
        let subs = self.durable_subscriptions().await;
        let mut total = 0;
        for s in subs {
            if let Some(md) = s.mark_delete().await {
                total += self.ml.entries_after(md);
            }
        }
        total
    }

    /// The slowest durable mark-delete position (None when there is no durable subscription).
    pub async fn slowest_durable(&self) -> Option<Position> {
        let subs = self.durable_subscriptions().await;
        let mut slowest: Option<Position> = None;
        let mut any = false;
        for s in subs {
            any = true;
            if let Some(md) = s.mark_delete().await {
                slowest = Some(slowest.map_or(md, |x| x.min(md)));
            }
        }
        if any {
            Some(slowest.unwrap_or(Position::EARLIEST))
        } else {
            None
        }
    }

    /// Trims consumed ledgers past retention (the namespace's retention policy when the policy
    /// task has set one, else the broker's `retention_time`).
    pub async fn trim(&self) -> Result<usize> {
        let slowest = self.slowest_durable().await;
        let retention = *self.retention.lock();
        match retention {
            Some((ms, bytes)) => self.ml.trim_retained(slowest, ms, bytes).await,
            None => self.ml.trim(slowest).await,
        }
    }

    /// Sets the publish rate limit `(messages, bytes)` per second (`None` or `<= 0`: unlimited).
    pub fn set_publish_rate(&self, limit: Option<(i64, i64)>) {
        self.publish_rate.set(limit);
    }

    /// Accounts a SEND against the publish rate; returns until when the connection should stop
    /// reading (Pulsar throttles by pausing reads: nothing is dropped).
    pub fn throttle(&self, msgs: u64, bytes: u64) -> Option<tokio::time::Instant> {
        // no limit (the common case): no clock read
        let charged = self.publish_rate.charge(msgs, bytes)?;
        let until = Some(charged)
            .filter(|t| *t > tokio::time::Instant::now() + std::time::Duration::from_millis(5));
        if until.is_some() {
            self.series.publish_throttled();
        }
        until
    }

    /// Sets the namespace retention: `(max age ms, max bytes)`, `None` = unlimited.
    pub fn set_retention(&self, retention: Option<(Option<u64>, Option<u64>)>) {
        *self.retention.lock() = retention;
    }

    fn check_not_unloading(&self) -> Result<()> {
        if self.unloading.load(Ordering::Acquire) {
            return Err(BrokerError::ServiceNotReady(format!(
                "topic {} is being unloaded",
                self.name
            )));
        }
        Ok(())
    }

    /// Resolves once the topic is closed (unloaded).
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// Closes every subscription (flushing cursors) and the managed ledger.
    pub async fn close(&self) {
        self.close_to(None).await
    }

    /// Unloads the topic: producers and consumers are closed by the broker (told to reconnect to
    /// `assigned`, the new owner, when given), cursors flushed, the ledger closed.
    pub async fn close_to(&self, assigned: Option<String>) {
        self.unloading.store(true, Ordering::Release);
        self.producers.close_all(assigned.clone(), true);
        let subs: Vec<Subscription> = self.subs.lock().await.drain().map(|(_, s)| s).collect();
        for s in subs {
            s.close_to(assigned.clone()).await;
        }
        self.ml.close().await;
        self.save_dedup().await;
        self.closed.cancel();
    }
}
