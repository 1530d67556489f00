//! Non-persistent topics (`non-persistent://tenant/ns/topic`), with Pulsar's semantics: a
//! published message is never stored (no bookie, no metadata write); its SEND_RECEIPT goes out
//! at once with the id `0:0` Pulsar gives non-persistent messages; it is sent to the consumers
//! connected at that moment, one per subscription chosen by the subscription type
//! (`dispatcher.rs`), if that consumer has permits and its connection keeps up — otherwise it is
//! dropped and counted (`msgDropRate` of the subscription, of the publisher when no subscription
//! took it, and of the topic). Acks are accepted and ignored; a subscription goes away with its
//! last consumer.
//!
//! Files: this one holds [`NonPersistentTopic`] (producers, subscriptions, publish, close);
//! `subscription.rs` a subscription; `member.rs` a consumer of it; `dispatcher.rs` the choice
//! of consumer;
//! `stats.rs` Pulsar's `NonPersistentTopicStats` and an internal-stats answer. The registry of
//! loaded non-persistent topics is `crate::service::np_registry`.

mod dispatcher;
mod member;
mod stats;
mod subscription;

#[cfg(test)]
mod tests;

pub use subscription::{NpConsumerSpec, NpSubscription, NpSubscriptionView};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use strata_proto::frame::Payload;

use crate::error::{BrokerError, Result};
use crate::metrics::{Metrics, TopicMetrics};
use crate::stats::RateMeter;
use crate::subscription::murmur3_32;
use crate::topic::{ProducerAdmission, ProducerRequest, Producers};
use crate::topic_name::TopicName;

/// A loaded non-persistent topic.
pub struct NonPersistentTopic {
    name: TopicName,
    /// Partition index, or -1.
    partition: i32,
    metrics: Metrics,
    producers: Producers,
    subs: RwLock<HashMap<String, Arc<NpSubscription>>>,
    series: TopicMetrics,
    /// Per producer name: messages no subscription took.
    publisher_drops: Mutex<HashMap<String, Arc<RateMeter>>>,
    /// Messages published (the topic's `entriesAddedCounter`).
    published: AtomicU64,
    /// Being unloaded: new producers and consumers are refused (clients retry via lookup).
    closing: AtomicBool,
    /// When the topic last had neither producers nor consumers (garbage collection).
    idle_since: Mutex<Option<std::time::Instant>>,
}

impl NonPersistentTopic {
    /// An empty topic.
    pub fn new(name: TopicName, metrics: Metrics) -> Self {
        let partition = name.partition_index().map(|p| p as i32).unwrap_or(-1);
        let series = metrics.topic(&name);
        NonPersistentTopic {
            name,
            partition,
            producers: Producers::new(metrics.clone()),
            metrics,
            subs: RwLock::new(HashMap::new()),
            series,
            publisher_drops: Mutex::new(HashMap::new()),
            published: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            idle_since: Mutex::new(Some(std::time::Instant::now())),
        }
    }

    /// Its name.
    pub fn name(&self) -> &TopicName {
        &self.name
    }

    /// Its partition index, or -1.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    fn check_open(&self) -> Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(BrokerError::ServiceNotReady(format!(
                "topic {} is being unloaded",
                self.name
            )));
        }
        Ok(())
    }

    /// Adds a producer (access modes as on persistent topics); `drops` counts its messages
    /// that no subscription took.
    pub fn add_producer(
        &self,
        req: ProducerRequest<'_>,
        drops: Arc<RateMeter>,
    ) -> Result<ProducerAdmission> {
        self.check_open()?;
        let name = req.name.to_owned();
        let admission = self.producers.admit(&self.name, req)?;
        self.publisher_drops.lock().insert(name, drops);
        self.touch();
        Ok(admission)
    }

    /// Removes a producer.
    pub fn remove_producer(&self, key: u64, name: &str) {
        self.producers.remove(key);
        self.publisher_drops.lock().remove(name);
        self.touch();
    }

    /// Number of producers connected.
    pub fn producer_count(&self) -> usize {
        self.producers.count()
    }

    /// Publishes a message: sent to each subscription's chosen consumer now, or dropped.
    /// Counts it on `drops` (the producer's) when no subscription took it. Returns how many
    /// subscriptions took it.
    pub fn publish(&self, payload: &Payload, drops: &RateMeter) -> usize {
        let md = &payload.metadata;
        let messages = i64::from(md.num_messages_in_batch.unwrap_or(1).max(1));
        let bytes = payload.raw.len() as u64;
        self.series.appended(messages as u64, bytes);
        self.published.fetch_add(1, Ordering::Relaxed);
        let key: &[u8] = match (&md.ordering_key, &md.partition_key) {
            (Some(k), _) if !k.is_empty() => k,
            (_, Some(k)) => k.as_bytes(),
            _ => b"",
        };
        let slot = murmur3_32(key) % dispatcher::HASH_SLOTS;
        let mut taken = 0;
        for sub in self.subs.read().values() {
            if sub.deliver(payload, messages, slot) {
                taken += 1;
                self.series.msg_out.record(messages as u64, bytes);
            }
        }
        if taken == 0 {
            drops.record(messages as u64, bytes);
        }
        taken
    }

    /// Attaches a consumer to subscription `sub` (created if needed).
    pub fn subscribe(&self, sub: &str, spec: NpConsumerSpec) -> Result<Arc<NpSubscription>> {
        self.check_open()?;
        if spec.name.is_empty() {
            return Err(BrokerError::NotAllowed("empty consumer name".into()));
        }
        let sampler = self.metrics.sampler().clone();
        let mut subs = self.subs.write();
        let s = subs
            .entry(sub.to_owned())
            .or_insert_with(|| Arc::new(NpSubscription::new(sub, self.partition, &sampler)))
            .clone();
        if let Err(e) = s.add(spec, &sampler) {
            if s.consumer_count() == 0 {
                subs.remove(sub);
            }
            return Err(e);
        }
        drop(subs);
        self.metrics.consumers.inc();
        self.touch();
        Ok(s)
    }

    /// Detaches a consumer; the subscription goes away with its last consumer.
    pub fn detach(&self, sub: &Arc<NpSubscription>, key: u64) {
        let (removed, left) = sub.remove(key);
        if removed {
            self.metrics.consumers.dec();
        }
        if left == 0 {
            let mut subs = self.subs.write();
            if subs
                .get(sub.name())
                .is_some_and(|s| Arc::ptr_eq(s, sub) && s.consumer_count() == 0)
            {
                subs.remove(sub.name());
            }
        }
        self.touch();
    }

    /// UNSUBSCRIBE: refused while other consumers are attached.
    pub fn unsubscribe(&self, sub: &Arc<NpSubscription>, key: u64) -> Result<()> {
        if sub.consumer_count() > 1 {
            return Err(BrokerError::ConsumerBusy(format!(
                "subscription {} has other connected consumers",
                sub.name()
            )));
        }
        self.detach(sub, key);
        Ok(())
    }

    /// Its metric series.
    pub fn series(&self) -> &TopicMetrics {
        &self.series
    }

    /// Every subscription.
    pub fn subscriptions(&self) -> Vec<Arc<NpSubscription>> {
        self.subs.read().values().cloned().collect()
    }

    /// A subscription, if it exists.
    pub fn subscription(&self, name: &str) -> Option<Arc<NpSubscription>> {
        self.subs.read().get(name).cloned()
    }

    /// Names of the subscriptions, sorted.
    pub fn subscription_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.subs.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Closes a subscription's consumers and forgets it (admin delete).
    pub fn remove_subscription(&self, name: &str) -> bool {
        let removed = self.subs.write().remove(name);
        if let Some(s) = &removed {
            let n = s.close(None);
            self.metrics.consumers.dec_by(n as i64);
        }
        self.touch();
        removed.is_some()
    }

    /// Consumers attached to any subscription.
    pub fn consumer_count(&self) -> usize {
        self.subs.read().values().map(|s| s.consumer_count()).sum()
    }

    /// Notes whether the topic is idle (no producer, no subscription) from now.
    fn touch(&self) {
        let idle = self.producers.count() == 0 && self.subs.read().is_empty();
        let mut since = self.idle_since.lock();
        match (idle, since.is_some()) {
            (true, false) => *since = Some(std::time::Instant::now()),
            (false, true) => *since = None,
            _ => {}
        }
    }

    /// How long the topic has been idle (None while in use).
    pub fn idle_for(&self) -> Option<std::time::Duration> {
        self.idle_since.lock().map(|t| t.elapsed())
    }

    /// Unloads the topic: producers and consumers are closed by the broker (told to reconnect
    /// to `assigned`, the new owner, when given).
    pub fn close_to(&self, assigned: Option<String>) {
        self.closing.store(true, Ordering::Release);
        self.producers.close_all(assigned.clone(), true);
        let subs: Vec<Arc<NpSubscription>> = self.subs.write().drain().map(|(_, s)| s).collect();
        for s in subs {
            let n = s.close(assigned.clone());
            self.metrics.consumers.dec_by(n as i64);
        }
    }
}
