//! The loaded non-persistent topics of this broker (`crate::nonpersistent`): loading them under
//! the same ownership rules as persistent topics, listing, unloading and collecting idle ones.
//! They live in memory only; a partitioned non-persistent topic's partition count is the one
//! thing kept in the metadata store (as Pulsar does).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use strata_meta::model::{PartitionedTopicMetadata, decode_segment};
use tracing::info;

use super::BrokerService;
use crate::error::{BrokerError, Result};
use crate::nonpersistent::NonPersistentTopic;
use crate::topic_name::TopicName;

/// A non-persistent topic with no producer and no subscription for this long is unloaded
/// (Pulsar's `brokerDeleteInactiveTopicsFrequencySeconds` default).
pub const NP_IDLE_UNLOAD: Duration = Duration::from_secs(60);

impl BrokerService {
    /// The loaded non-persistent topic, loading it if it is served here and either `create`
    /// is set or it is a partition of an existing partitioned topic.
    pub async fn np_topic(
        &self,
        name: &TopicName,
        create: bool,
    ) -> Result<Arc<NonPersistentTopic>> {
        self.ensure_owned_here(name).await?;
        let key = name.to_string();
        if let Some(t) = self.np_topics.lock().get(&key) {
            return Ok(t.clone());
        }
        let parts = self.partitions(&name.partitioned_parent()).await?;
        if parts > 0 && name.partition_index().is_none() {
            return Err(BrokerError::NotAllowed(format!(
                "{name} is a partitioned topic; use its partitions"
            )));
        }
        let partition_of_existing = name.partition_index().is_some_and(|i| i < parts);
        if !create && !partition_of_existing {
            return Err(BrokerError::TopicNotFound(key));
        }
        let mut topics = self.np_topics.lock();
        let t = topics
            .entry(key)
            .or_insert_with(|| {
                self.metrics.topics.inc();
                info!(topic = %name, "non-persistent topic loaded");
                Arc::new(NonPersistentTopic::new(name.clone(), self.metrics.clone()))
            })
            .clone();
        Ok(t)
    }

    /// The non-persistent topic if it is loaded here.
    pub fn loaded_np_topic(&self, name: &TopicName) -> Option<Arc<NonPersistentTopic>> {
        self.np_topics.lock().get(&name.to_string()).cloned()
    }

    /// Loaded non-persistent topics.
    pub fn loaded_np_topics(&self) -> Vec<Arc<NonPersistentTopic>> {
        self.np_topics.lock().values().cloned().collect()
    }

    /// Unloads a non-persistent topic: its producers and consumers are closed (told to
    /// reconnect to `assigned` when given). Returns false if it was not loaded.
    pub fn unload_np(&self, name: &TopicName, assigned: Option<String>) -> bool {
        let Some(t) = self.np_topics.lock().remove(&name.to_string()) else {
            return false;
        };
        t.close_to(assigned);
        self.metrics.topics.dec();
        info!(topic = %name, "non-persistent topic unloaded");
        true
    }

    /// Unloads the non-persistent topics idle (no producer, no subscription) for `idle`.
    pub fn unload_idle_np_topics(&self, idle: Duration) {
        let idle: Vec<TopicName> = self
            .np_topics
            .lock()
            .values()
            .filter(|t| t.idle_for().is_some_and(|d| d >= idle))
            .map(|t| t.name().clone())
            .collect();
        for n in idle {
            self.unload_np(&n, None);
        }
    }

    /// Whether a non-persistent topic of the namespace has producers or consumers.
    pub fn np_namespace_in_use(&self, tenant: &str, ns: &str) -> bool {
        self.np_topics.lock().values().any(|t| {
            t.name().tenant == tenant
                && t.name().namespace == ns
                && (t.producer_count() > 0 || t.consumer_count() > 0)
        })
    }

    /// Unloads the non-persistent topics of a namespace (it is being deleted).
    pub(super) fn unload_np_namespace(&self, tenant: &str, ns: &str) {
        let names: Vec<TopicName> = self
            .np_topics
            .lock()
            .values()
            .filter(|t| t.name().tenant == tenant && t.name().namespace == ns)
            .map(|t| t.name().clone())
            .collect();
        for n in names {
            self.unload_np(&n, None);
        }
    }

    /// Closes every non-persistent topic (shutdown).
    pub(super) fn close_all_np(&self) {
        let topics: Vec<Arc<NonPersistentTopic>> =
            self.np_topics.lock().drain().map(|(_, t)| t).collect();
        for t in topics {
            t.close_to(None);
            self.metrics.topics.dec();
        }
    }

    /// Non-persistent topics of a namespace: those loaded here and the partitions of its
    /// partitioned non-persistent topics.
    pub async fn np_topics_of_namespace(&self, tenant: &str, ns: &str) -> Result<Vec<String>> {
        let mut out: BTreeSet<String> = self
            .np_topics
            .lock()
            .values()
            .filter(|t| t.name().tenant == tenant && t.name().namespace == ns)
            .map(|t| t.name().to_string())
            .collect();
        let paths = self.meta.paths();
        let dir = Self::topics_dir_in("non-persistent", tenant, ns, |t| paths.partitioned_topic(t));
        let scan = self.meta.store().scan(&dir).await?;
        for kv in scan.entries {
            let local = decode_segment(kv.key.strip_prefix(dir.as_str()).unwrap_or(&kv.key));
            if let Ok(m) = self
                .meta
                .decode::<PartitionedTopicMetadata>(&kv.key, &kv.value.value)
            {
                for i in 0..m.partitions {
                    out.insert(format!(
                        "non-persistent://{tenant}/{ns}/{local}-partition-{i}"
                    ));
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Partitioned non-persistent topics of a namespace.
    pub async fn np_partitioned_topics_of_namespace(
        &self,
        tenant: &str,
        ns: &str,
    ) -> Result<Vec<String>> {
        let paths = self.meta.paths();
        let dir = Self::topics_dir_in("non-persistent", tenant, ns, |t| paths.partitioned_topic(t));
        let (mut keys, _) = self.meta.store().scan_keys(&dir).await?;
        keys.sort();
        Ok(keys
            .iter()
            .map(|k| {
                let local = decode_segment(k.strip_prefix(dir.as_str()).unwrap_or(k));
                format!("non-persistent://{tenant}/{ns}/{local}")
            })
            .collect())
    }
}
