//! The broker service: loaded topics, partitioned-topic metadata, namespaces, lookups, schemas.
//! Shared by every connection and the HTTP API.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::cache::EntryCache;
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::managed_ledger::{ManagedLedger, ml_key};
use crate::metadata::{BrokerMetadata, Expect, MetaError, ROOT};
use crate::metrics::Metrics;
use crate::schema::SchemaRegistry;
use crate::storage::LedgerStorage;
use crate::topic::Topic;
use crate::topic_name::TopicName;

/// Who serves a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This broker.
    Local,
    /// Another broker: its `pulsar://` and `http://` URLs.
    Remote {
        broker_url: String,
        http_url: String,
    },
}

/// Topic ownership. Standalone owns everything ([`LocalOwnership`]); cluster mode (issue 5)
/// answers from namespace-bundle ownership in etcd.
#[async_trait::async_trait]
pub trait Ownership: Send + Sync + 'static {
    /// Owner of `topic`, acquiring it if nobody owns it.
    async fn owner(&self, topic: &TopicName) -> Result<Owner>;
}

/// Owns every topic.
pub struct LocalOwnership;

#[async_trait::async_trait]
impl Ownership for LocalOwnership {
    async fn owner(&self, _topic: &TopicName) -> Result<Owner> {
        Ok(Owner::Local)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartitionedMeta {
    partitions: u32,
}

/// Shared state of a broker.
pub struct BrokerService {
    /// Configuration.
    pub config: BrokerConfig,
    /// Metrics.
    pub metrics: Metrics,
    /// Schemas.
    pub schemas: SchemaRegistry,
    storage: Arc<dyn LedgerStorage>,
    meta: Arc<dyn BrokerMetadata>,
    ownership: Arc<dyn Ownership>,
    cache: EntryCache,
    topics: tokio::sync::Mutex<HashMap<String, Arc<OnceCell<Arc<Topic>>>>>,
    next_key: AtomicU64,
    /// Ports actually bound (set by the server once listening).
    pub ports: parking_lot::Mutex<(u16, u16)>,
    name_prefix: String,
}

impl BrokerService {
    /// A service over the given storage and metadata.
    pub fn new(
        config: BrokerConfig,
        storage: Arc<dyn LedgerStorage>,
        meta: Arc<dyn BrokerMetadata>,
        ownership: Arc<dyn Ownership>,
    ) -> Arc<Self> {
        let cache = EntryCache::new(config.cache_size_bytes);
        let name_prefix = format!("strata-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        Arc::new(BrokerService {
            ports: parking_lot::Mutex::new((config.broker_port, config.http_port)),
            config,
            metrics: Metrics::new(),
            schemas: SchemaRegistry::new(meta.clone()),
            storage,
            meta,
            ownership,
            cache,
            topics: tokio::sync::Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(1),
            name_prefix,
        })
    }

    /// A broker-unique key for a producer or consumer.
    pub fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// A generated producer name.
    pub fn producer_name(&self) -> String {
        format!("{}-{}", self.name_prefix, self.next_key())
    }

    /// The entry cache.
    pub fn cache(&self) -> &EntryCache {
        &self.cache
    }

    /// `pulsar://` URL of this broker.
    pub fn broker_url(&self) -> String {
        self.config.service_url(self.ports.lock().0)
    }

    /// `http://` URL of this broker.
    pub fn http_url(&self) -> String {
        format!(
            "http://{}:{}",
            self.config.advertised_address,
            self.ports.lock().1
        )
    }

    /// Who serves `topic`.
    pub async fn owner(&self, topic: &TopicName) -> Result<Owner> {
        self.ownership.owner(topic).await
    }

    /// The loaded topic, loading (and with `create`, creating) it.
    pub async fn topic(&self, name: &TopicName, create: bool) -> Result<Arc<Topic>> {
        if !name.is_persistent() {
            return Err(BrokerError::NotAllowed(
                "non-persistent topics are not supported".into(),
            ));
        }
        if self.owner(name).await? != Owner::Local {
            return Err(BrokerError::ServiceNotReady(format!(
                "topic {name} is served by another broker"
            )));
        }
        let key = name.to_string();
        let cell = self
            .topics
            .lock()
            .await
            .entry(key.clone())
            .or_default()
            .clone();
        let res = cell
            .get_or_try_init(|| async {
                let pname = name.persistence_name();
                if !create && self.meta.get(&ml_key(&pname)).await?.is_none() {
                    return Err(BrokerError::TopicNotFound(key.clone()));
                }
                if self.partitions(&name.partitioned_parent()).await? > 0
                    && name.partition_index().is_none()
                {
                    return Err(BrokerError::NotAllowed(format!(
                        "{name} is a partitioned topic; use its partitions"
                    )));
                }
                let ml = ManagedLedger::open(
                    &pname,
                    self.storage.clone(),
                    self.meta.clone(),
                    self.cache.clone(),
                    self.config.managed_ledger(),
                )
                .await?;
                let t = Arc::new(Topic::new(
                    name.clone(),
                    ml,
                    self.meta.clone(),
                    self.metrics.clone(),
                    self.config.subscription(),
                ));
                t.load_durable_subscriptions().await?;
                self.metrics.topics.inc();
                info!(topic = %name, "topic loaded");
                Ok::<_, BrokerError>(t)
            })
            .await
            .cloned();
        if res.is_err() {
            let mut topics = self.topics.lock().await;
            if topics.get(&key).is_some_and(|c| c.get().is_none()) {
                topics.remove(&key);
            }
        }
        res
    }

    /// Loaded topics.
    pub async fn loaded_topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .lock()
            .await
            .values()
            .filter_map(|c| c.get().cloned())
            .collect()
    }

    fn partitioned_key(name: &TopicName) -> String {
        format!("{ROOT}/partitioned-topics/{}", name.persistence_name())
    }

    /// Partition count of a partitioned topic, 0 for a non-partitioned one.
    pub async fn partitions(&self, name: &TopicName) -> Result<u32> {
        if name.partition_index().is_some() {
            return Ok(0);
        }
        let k = Self::partitioned_key(name);
        match self.meta.get(&k).await? {
            Some(v) => {
                let m: PartitionedMeta = serde_json::from_slice(&v.value)
                    .map_err(|e| MetaError::Corrupt(k, e.to_string()))?;
                Ok(m.partitions)
            }
            None => Ok(0),
        }
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
        if self
            .meta
            .get(&ml_key(&name.persistence_name()))
            .await?
            .is_some()
        {
            return Err(BrokerError::NotAllowed(format!(
                "{name} already exists as a non-partitioned topic"
            )));
        }
        let v = serde_json::to_vec(&PartitionedMeta { partitions })
            .map_err(|e| MetaError::Other(e.to_string()))?;
        match self
            .meta
            .put(&Self::partitioned_key(name), Bytes::from(v), Expect::Absent)
            .await
        {
            Ok(_) => {
                info!(topic = %name, partitions, "partitioned topic created");
                Ok(())
            }
            Err(MetaError::BadVersion(_)) => Err(BrokerError::NotAllowed(format!(
                "partitioned topic {name} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Persistent topics of a namespace (partitions listed individually, as Pulsar does).
    pub async fn topics_of_namespace(&self, tenant: &str, ns: &str) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        let prefix = format!("{ROOT}/managed-ledgers/{tenant}/{ns}/persistent/");
        for (k, _) in self.meta.list(&prefix).await? {
            out.insert(format!(
                "persistent://{tenant}/{ns}/{}",
                k.strip_prefix(prefix.as_str()).unwrap_or(&k)
            ));
        }
        let prefix = format!("{ROOT}/partitioned-topics/{tenant}/{ns}/persistent/");
        for (k, v) in self.meta.list(&prefix).await? {
            if let Ok(m) = serde_json::from_slice::<PartitionedMeta>(&v) {
                for i in 0..m.partitions {
                    out.insert(format!(
                        "persistent://{tenant}/{ns}/{}-partition-{i}",
                        k.strip_prefix(prefix.as_str()).unwrap_or(&k)
                    ));
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
        let prefix = format!("{ROOT}/partitioned-topics/{tenant}/{ns}/persistent/");
        Ok(self
            .meta
            .list(&prefix)
            .await?
            .into_iter()
            .map(|(k, _)| {
                format!(
                    "persistent://{tenant}/{ns}/{}",
                    k.strip_prefix(prefix.as_str()).unwrap_or(&k)
                )
            })
            .collect())
    }

    /// Creates a tenant (idempotent).
    pub async fn create_tenant(&self, tenant: &str) -> Result<()> {
        let k = format!("{ROOT}/tenants/{tenant}");
        if self.meta.get(&k).await?.is_none() {
            self.meta
                .put(&k, Bytes::from_static(b"{}"), Expect::Any)
                .await?;
        }
        Ok(())
    }

    /// Creates a namespace (idempotent).
    pub async fn create_namespace(&self, tenant: &str, ns: &str) -> Result<()> {
        self.create_tenant(tenant).await?;
        let k = format!("{ROOT}/namespaces/{tenant}/{ns}");
        if self.meta.get(&k).await?.is_none() {
            self.meta
                .put(&k, Bytes::from_static(b"{}"), Expect::Any)
                .await?;
        }
        Ok(())
    }

    /// Tenants.
    pub async fn tenants(&self) -> Result<Vec<String>> {
        let p = format!("{ROOT}/tenants/");
        Ok(self
            .meta
            .list(&p)
            .await?
            .into_iter()
            .map(|(k, _)| k.strip_prefix(p.as_str()).unwrap_or(&k).to_owned())
            .collect())
    }

    /// Namespaces of a tenant (`tenant/ns`).
    pub async fn namespaces(&self, tenant: &str) -> Result<Vec<String>> {
        let p = format!("{ROOT}/namespaces/{tenant}/");
        Ok(self
            .meta
            .list(&p)
            .await?
            .into_iter()
            .map(|(k, _)| format!("{tenant}/{}", k.strip_prefix(p.as_str()).unwrap_or(&k)))
            .collect())
    }

    /// Trims consumed ledgers of every loaded topic.
    pub async fn trim_all(&self) {
        for t in self.loaded_topics().await {
            if let Err(e) = t.trim().await {
                warn!(topic = %t.name, error = %e, "trim failed");
            }
        }
        for t in self.loaded_topics().await {
            t.series.storage_size.set(t.ledger().storage_size() as i64);
            t.series.msg_backlog.set(t.backlog().await as i64);
        }
    }

    /// Unloads a loaded topic (closing its clients, who reconnect through a new lookup — to
    /// `assigned` if given). The topic stays registered until it is fully closed, so a client
    /// that comes back meanwhile is refused with a retryable error rather than opening the
    /// ledger a second time. Returns false if the topic was not loaded.
    pub async fn unload(&self, name: &TopicName, assigned: Option<String>) -> bool {
        let key = name.to_string();
        let cell = self.topics.lock().await.get(&key).cloned();
        let Some(t) = cell.and_then(|c| c.get().cloned()) else {
            return false;
        };
        t.close_to(assigned).await;
        let mut topics = self.topics.lock().await;
        if topics
            .get(&key)
            .and_then(|c| c.get())
            .is_some_and(|x| Arc::ptr_eq(x, &t))
        {
            topics.remove(&key);
            self.metrics.topics.dec();
        }
        info!(topic = %name, "topic unloaded");
        true
    }

    /// Closes every topic: flushes cursors and closes ledgers.
    pub async fn close_all(&self) {
        let topics: Vec<Arc<Topic>> = self
            .topics
            .lock()
            .await
            .drain()
            .filter_map(|(_, c)| c.get().cloned())
            .collect();
        // Topics close independently: do them concurrently (bounded) so shutdown stays quick.
        futures::stream::iter(topics)
            .for_each_concurrent(64, |t| async move { t.close().await })
            .await;
    }
}
