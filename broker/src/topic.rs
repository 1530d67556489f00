//! A loaded topic: its managed ledger, producers and subscriptions.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use strata_proto::commands;
use strata_proto::frame::Frame;
use strata_proto::pulsar::ProducerAccessMode;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::cursor_store::CursorStore;
use crate::error::{BrokerError, Result};
use crate::managed_ledger::ManagedLedger;
use crate::metadata::BrokerMetadata;
use crate::metrics::Metrics;
use crate::position::Position;
use crate::subscription::{InitialPosition, Outbound, Subscription, SubscriptionConfig};
use crate::topic_name::TopicName;

/// A producer attached to a topic.
struct ProducerEntry {
    name: String,
    producer_id: u64,
    mode: ProducerAccessMode,
    out: Outbound,
}

/// A producer waiting for exclusive access (WaitForExclusive).
struct Waiter {
    key: u64,
    entry: ProducerEntry,
    ready: oneshot::Sender<u64>,
}

#[derive(Default)]
struct Producers {
    by_key: HashMap<u64, ProducerEntry>,
    waiting: Vec<Waiter>,
}

/// Outcome of adding a producer.
pub enum ProducerAdmission {
    /// Ready; the topic epoch.
    Ready(u64),
    /// Queued for exclusive access; resolves with the topic epoch when granted.
    Waiting(oneshot::Receiver<u64>),
}

/// A loaded topic.
pub struct Topic {
    /// Its name.
    pub name: TopicName,
    /// Partition index, or -1.
    pub partition: i32,
    ml: ManagedLedger,
    meta: Arc<dyn BrokerMetadata>,
    cursors: CursorStore,
    metrics: Metrics,
    sub_config: SubscriptionConfig,
    producers: Mutex<Producers>,
    subs: tokio::sync::Mutex<HashMap<String, Subscription>>,
    epoch: AtomicU64,
    /// This topic's metric series.
    pub series: crate::metrics::TopicMetrics,
    /// Being unloaded: new producers and consumers are refused (clients retry via lookup).
    unloading: std::sync::atomic::AtomicBool,
    /// The backlog quota is exceeded (set by the policy task, `crate::policy`).
    pub quota_exceeded: std::sync::atomic::AtomicBool,
    /// Message deduplication state (`crate::dedup`).
    pub dedup: crate::dedup::Dedup,
    retention: Mutex<Option<(Option<u64>, Option<u64>)>>,
    publish_rate: crate::rate::RateClock,
    /// Cancelled once the topic is closed (unloaded).
    closed: tokio_util::sync::CancellationToken,
}

impl Topic {
    /// A topic over its opened managed ledger.
    pub fn new(
        name: TopicName,
        ml: ManagedLedger,
        meta: Arc<dyn BrokerMetadata>,
        metrics: Metrics,
        sub_config: SubscriptionConfig,
    ) -> Self {
        let partition = name.partition_index().map(|p| p as i32).unwrap_or(-1);
        let series = metrics.topic(&name);
        Topic {
            name,
            partition,
            ml,
            cursors: CursorStore::new(meta.clone()),
            meta,
            metrics,
            sub_config,
            producers: Mutex::new(Producers::default()),
            subs: tokio::sync::Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            series,
            unloading: std::sync::atomic::AtomicBool::new(false),
            quota_exceeded: std::sync::atomic::AtomicBool::new(false),
            dedup: crate::dedup::Dedup::default(),
            retention: Mutex::new(None),
            publish_rate: crate::rate::RateClock::default(),
            closed: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// The managed ledger.
    pub fn ledger(&self) -> &ManagedLedger {
        &self.ml
    }

    /// Appends an entry (the raw `[metadata_size][metadata][payload]` of a SEND). The order is
    /// fixed at call time.
    pub fn publish(
        &self,
        raw: Bytes,
        num_messages: u64,
    ) -> impl std::future::Future<Output = Result<Position>> + Send + 'static {
        self.series.in_messages.inc_by(num_messages);
        self.series.in_bytes.inc_by(raw.len() as u64);
        self.ml.append(raw)
    }

    /// Adds a producer with the given access mode.
    pub fn add_producer(
        &self,
        key: u64,
        producer_id: u64,
        name: &str,
        mode: ProducerAccessMode,
        out: Outbound,
    ) -> Result<ProducerAdmission> {
        if self.ml.is_terminated() {
            return Err(BrokerError::TopicTerminated(self.name.to_string()));
        }
        self.check_not_unloading()?;
        let mut p = self.producers.lock();
        if p.by_key.values().any(|e| e.name == name)
            || p.waiting.iter().any(|w| w.entry.name == name)
        {
            return Err(BrokerError::ProducerBusy(format!(
                "producer with name '{name}' is already connected to topic {}",
                self.name
            )));
        }
        let has_exclusive = p
            .by_key
            .values()
            .any(|e| e.mode != ProducerAccessMode::Shared);
        let entry = ProducerEntry {
            name: name.to_owned(),
            producer_id,
            mode,
            out,
        };
        match mode {
            ProducerAccessMode::Shared => {
                if has_exclusive {
                    return Err(BrokerError::ProducerBusy(format!(
                        "topic {} has an exclusive producer",
                        self.name
                    )));
                }
            }
            ProducerAccessMode::Exclusive => {
                if !p.by_key.is_empty() {
                    return Err(BrokerError::ProducerFenced(format!(
                        "topic {} already has producers",
                        self.name
                    )));
                }
                self.epoch.fetch_add(1, Ordering::Relaxed);
            }
            ProducerAccessMode::ExclusiveWithFencing => {
                for (_, old) in p.by_key.drain() {
                    info!(topic = %self.name, producer = %old.name, "fencing producer");
                    let _ = old.out.send(Frame::simple(commands::close_producer(
                        old.producer_id,
                        0,
                        None,
                    )));
                    self.metrics.producers.dec();
                }
                self.epoch.fetch_add(1, Ordering::Relaxed);
            }
            ProducerAccessMode::WaitForExclusive => {
                if !p.by_key.is_empty() {
                    let (tx, rx) = oneshot::channel();
                    p.waiting.push(Waiter {
                        key,
                        entry,
                        ready: tx,
                    });
                    return Ok(ProducerAdmission::Waiting(rx));
                }
                self.epoch.fetch_add(1, Ordering::Relaxed);
            }
        }
        p.by_key.insert(key, entry);
        self.metrics.producers.inc();
        Ok(ProducerAdmission::Ready(self.epoch.load(Ordering::Relaxed)))
    }

    /// Removes a producer; grants exclusive access to the next waiter if the topic is free.
    pub fn remove_producer(&self, key: u64) {
        let mut p = self.producers.lock();
        if p.by_key.remove(&key).is_some() {
            self.metrics.producers.dec();
        }
        p.waiting.retain(|w| w.key != key);
        while p.by_key.is_empty() && !p.waiting.is_empty() {
            let w = p.waiting.remove(0);
            let epoch = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
            if w.ready.send(epoch).is_ok() {
                p.by_key.insert(w.key, w.entry);
                self.metrics.producers.inc();
            }
        }
    }

    /// Closes every producer from the broker side (CLOSE_PRODUCER): clients reconnect and go
    /// through producer admission again (backlog quota `producer_request_hold`: they are
    /// refused with a retryable error while the quota is exceeded and keep their pending
    /// messages, i.e. the sends are held).
    pub fn disconnect_producers(&self) -> usize {
        let mut p = self.producers.lock();
        let n = p.by_key.len();
        for (_, e) in p.by_key.drain() {
            let _ = e.out.send(Frame::simple(commands::close_producer(
                e.producer_id,
                0,
                None,
            )));
            self.metrics.producers.dec();
        }
        n
    }

    /// Stores the deduplication snapshot if it changed.
    pub async fn save_dedup(&self) {
        if let Err(e) = self.dedup.save(&*self.meta, self.ml.name()).await {
            warn!(topic = %self.name, error = %e, "saving the deduplication snapshot failed");
        }
    }

    /// Number of producers connected.
    pub fn producer_count(&self) -> usize {
        self.producers.lock().by_key.len()
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
        if let Some(s) = subs.get(name) {
            if s.is_durable() || !durable {
                return Ok(s.clone());
            }
        }
        let sub = Subscription::open(
            &self.name.to_string(),
            self.partition,
            name,
            durable,
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
        self.dedup.load(&*self.meta, &self.ml).await?;
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
        let subs: Vec<Subscription> = self.subs.lock().await.values().cloned().collect();
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
        let subs: Vec<Subscription> = self.subs.lock().await.values().cloned().collect();
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
        self.producers
            .lock()
            .by_key
            .values()
            .map(|e| e.name.clone())
            .collect()
    }

    /// Entries not yet acknowledged, summed over durable subscriptions.
    pub async fn backlog(&self) -> u64 {
        let subs: Vec<Subscription> = self
            .subs
            .lock()
            .await
            .values()
            .filter(|s| s.is_durable())
            .cloned()
            .collect();
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
        let subs: Vec<Subscription> = self
            .subs
            .lock()
            .await
            .values()
            .filter(|s| s.is_durable())
            .cloned()
            .collect();
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
        let now = tokio::time::Instant::now();
        self.publish_rate
            .charge(msgs, bytes)
            .filter(|t| *t > now + std::time::Duration::from_millis(5))
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
        {
            let mut p = self.producers.lock();
            for (_, e) in p.by_key.drain() {
                let _ = e.out.send(Frame::simple(commands::close_producer(
                    e.producer_id,
                    0,
                    assigned.clone(),
                )));
                self.metrics.producers.dec();
            }
            p.waiting.clear();
        }
        let subs: Vec<Subscription> = self.subs.lock().await.drain().map(|(_, s)| s).collect();
        for s in subs {
            s.close_to(assigned.clone()).await;
        }
        self.ml.close().await;
        self.save_dedup().await;
        self.closed.cancel();
    }
}
