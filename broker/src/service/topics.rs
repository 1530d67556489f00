//! Topics in the metadata store: non-partitioned topics (managed ledgers) and partitioned topics
//! of a namespace; creating, listing and deleting them.

use std::collections::BTreeSet;

use strata_meta::Expected;
use strata_meta::model::{PartitionedTopicMetadata, decode_segment};
use tracing::info;

use super::BrokerService;
use crate::cursor_store::CursorStore;
use crate::error::{BrokerError, Result};
use crate::metadata::{TopicPath, topic_path};
use crate::topic_name::TopicName;

impl BrokerService {
    pub(super) fn partitioned_key(&self, name: &TopicName) -> String {
        self.meta
            .paths()
            .partitioned_topic(&topic_path(&name.persistence_name()))
    }

    /// Whether the managed ledger `ml_name` exists.
    pub(super) async fn ml_exists(&self, ml_name: &str) -> Result<bool> {
        let key = crate::managed_ledger::ml_key(&self.meta, ml_name);
        Ok(self.meta.store().get(&key).await?.is_some())
    }

    /// The directory of a namespace's persistent topics under `kind` (a key of a topic path
    /// with an empty topic).
    pub(super) fn topics_dir(tenant: &str, ns: &str, key: impl Fn(&TopicPath) -> String) -> String {
        Self::topics_dir_in("persistent", tenant, ns, key)
    }

    /// [`Self::topics_dir`] of the topics of `domain`.
    pub(super) fn topics_dir_in(
        domain: &str,
        tenant: &str,
        ns: &str,
        key: impl Fn(&TopicPath) -> String,
    ) -> String {
        key(&TopicPath {
            domain: domain.into(),
            tenant: tenant.into(),
            namespace: ns.into(),
            topic: String::new(),
        })
    }

    /// Partition count of a partitioned topic, 0 for a non-partitioned one.
    pub async fn partitions(&self, name: &TopicName) -> Result<u32> {
        if name.partition_index().is_some() {
            return Ok(0);
        }
        let k = self.partitioned_key(name);
        Ok(self
            .meta
            .get::<PartitionedTopicMetadata>(&k)
            .await?
            .map(|(m, _)| m.partitions)
            .unwrap_or(0))
    }

    /// Creates a partitioned topic.
    pub async fn create_partitioned(&self, name: &TopicName, partitions: u32) -> Result<()> {
        if partitions == 0 || partitions > 10_000 {
            return Err(BrokerError::NotAllowed(format!(
                "invalid partition count {partitions}"
            )));
        }
        if name.partition_index().is_some() {
            return Err(BrokerError::InvalidTopicName(format!(
                "{name} is a partition name"
            )));
        }
        if self.ml_exists(&name.persistence_name()).await? {
            return Err(BrokerError::Conflict(format!(
                "{name} already exists as a non-partitioned topic"
            )));
        }
        let m = PartitionedTopicMetadata {
            partitions,
            ..Default::default()
        };
        match self.meta.create(&self.partitioned_key(name), &m).await {
            Ok(_) => {
                info!(topic = %name, partitions, "partitioned topic created");
                Ok(())
            }
            Err(e) if e.is_conflict() => Err(BrokerError::Conflict(format!(
                "partitioned topic {name} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Persistent topics of a namespace (partitions listed individually, as Pulsar does).
    pub async fn topics_of_namespace(&self, tenant: &str, ns: &str) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        let paths = self.meta.paths();
        let dir = Self::topics_dir(tenant, ns, |t| paths.managed_ledger(t));
        let (keys, _) = self.meta.store().scan_keys(&dir).await?;
        for k in keys {
            let local = decode_segment(k.strip_prefix(dir.as_str()).unwrap_or(&k));
            out.insert(format!("persistent://{tenant}/{ns}/{local}"));
        }
        let dir = Self::topics_dir(tenant, ns, |t| paths.partitioned_topic(t));
        let scan = self.meta.store().scan(&dir).await?;
        for kv in scan.entries {
            let local = decode_segment(kv.key.strip_prefix(dir.as_str()).unwrap_or(&kv.key));
            if let Ok(m) = self
                .meta
                .decode::<PartitionedTopicMetadata>(&kv.key, &kv.value.value)
            {
                for i in 0..m.partitions {
                    out.insert(format!("persistent://{tenant}/{ns}/{local}-partition-{i}"));
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Partitioned topics of a namespace.
    pub async fn partitioned_topics_of_namespace(
        &self,
        tenant: &str,
        ns: &str,
    ) -> Result<Vec<String>> {
        let paths = self.meta.paths();
        let dir = Self::topics_dir(tenant, ns, |t| paths.partitioned_topic(t));
        let (mut keys, _) = self.meta.store().scan_keys(&dir).await?;
        keys.sort();
        Ok(keys
            .iter()
            .map(|k| {
                let local = decode_segment(k.strip_prefix(dir.as_str()).unwrap_or(k));
                format!("persistent://{tenant}/{ns}/{local}")
            })
            .collect())
    }

    /// Whether a non-partitioned topic (or partition) exists.
    pub async fn topic_exists(&self, name: &TopicName) -> Result<bool> {
        self.ml_exists(&name.persistence_name()).await
    }

    /// Deletes a non-partitioned topic (or one partition): its ledgers, cursors and metadata.
    /// Without `force`, refuses ([`BrokerError::PreconditionFailed`]) while producers are
    /// connected.
    pub async fn delete_topic(&self, name: &TopicName, force: bool) -> Result<()> {
        if !self.topic_exists(name).await? {
            return Err(BrokerError::NotFound("Topic not found".into()));
        }
        let t = self.topic(name, false).await?;
        if !force && t.producer_count() > 0 {
            return Err(BrokerError::PreconditionFailed(
                "Topic has active producers/subscriptions".into(),
            ));
        }
        self.unload(name, None).await;
        CursorStore::new(self.meta.clone())
            .delete_all(&name.persistence_name())
            .await?;
        t.ledger().delete().await?;
        crate::compaction::state::delete_compacted(self, name).await?;
        info!(topic = %name, "topic deleted");
        Ok(())
    }

    /// Deletes a partitioned topic and its partitions.
    pub async fn delete_partitioned(&self, name: &TopicName, force: bool) -> Result<()> {
        let n = self.partitions(name).await?;
        if n == 0 {
            return Err(BrokerError::NotFound(
                "Partitioned topic does not exist".into(),
            ));
        }
        for i in 0..n {
            let p = name.partition(i);
            if self.topic_exists(&p).await? {
                self.delete_topic(&p, force).await?;
            }
        }
        self.meta
            .store()
            .delete(&self.partitioned_key(name), Expected::Any)
            .await?;
        self.meta
            .store()
            .delete(
                &crate::schema::admission::topic_policies_key(self, name),
                Expected::Any,
            )
            .await?;
        info!(topic = %name, "partitioned topic deleted");
        Ok(())
    }

    /// Raises the partition count of a partitioned topic (never lowers it).
    pub async fn update_partitions(&self, name: &TopicName, partitions: u32) -> Result<()> {
        let k = self.partitioned_key(name);
        let Some((mut m, stat)) = self.meta.get::<PartitionedTopicMetadata>(&k).await? else {
            return Err(BrokerError::NotFound(
                "Partitioned topic does not exist".into(),
            ));
        };
        let from = m.partitions;
        if partitions <= from || partitions > 10_000 {
            return Err(BrokerError::PreconditionFailed(format!(
                "the number of partitions must be more than the existing {from}"
            )));
        }
        m.partitions = partitions;
        self.meta
            .put(&k, &m, Expected::Version(stat.version))
            .await?;
        info!(topic = %name, from, to = partitions, "partitions updated");
        Ok(())
    }
}
