//! The broker service: loaded topics, partitioned-topic metadata, namespaces, lookups, schemas.
//! Shared by every connection and the HTTP API.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::cache::EntryCache;
use crate::config::BrokerConfig;
use crate::cursor_store::CursorStore;
use crate::error::{BrokerError, Result};
use crate::managed_ledger::{ManagedLedger, ManagedLedgerConfig};
use crate::metadata::{MetaClient, TopicPath, topic_path};
use crate::metrics::Metrics;
use crate::schema::SchemaRegistry;
use crate::storage::{CreateOptions, LedgerStorage, Quorum};
use crate::topic::Topic;
use crate::topic_name::TopicName;

mod tenants;
use strata_auth::Security;
use strata_meta::Expected;
use strata_meta::model::{PartitionedTopicMetadata, decode_segment};

/// Who serves a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This broker.
    Local,
    /// Another broker: its `pulsar://` and `http://` URLs (and `pulsar+ssl://` when it has a
    /// TLS port).
    Remote {
        broker_url: String,
        http_url: String,
        broker_url_tls: Option<String>,
    },
    /// Nobody owns the topic yet and another broker (the leader, at these URLs) assigns it: a
    /// LOOKUP is redirected there with `authoritative = false`.
    Leader {
        broker_url: String,
        http_url: String,
        broker_url_tls: Option<String>,
    },
}

/// Topic ownership. Standalone owns everything ([`LocalOwnership`]); cluster mode answers from
/// namespace-bundle ownership in etcd ([`crate::cluster::ClusterOwnership`]).
#[async_trait::async_trait]
pub trait Ownership: Send + Sync + 'static {
    /// Owner of `topic`, acquiring its bundle if nobody owns it (a producer or consumer is
    /// being attached here).
    async fn owner(&self, topic: &TopicName) -> Result<Owner>;

    /// The answer to a LOOKUP. `authoritative`: the client was sent here by the leader or the
    /// owner, so an unowned bundle is acquired rather than redirected.
    async fn lookup(&self, topic: &TopicName, _authoritative: bool) -> Result<Owner> {
        self.owner(topic).await
    }

    /// `topic`'s ledger was fenced by another writer (it was taken over): give up its bundle.
    /// The topic itself has already been unloaded.
    async fn fenced(&self, _topic: &TopicName) {}

    /// Unloads a namespace bundle (`0xSTART_0xEND`) if this broker owns it: [`Owner::Local`]
    /// when done here (or nobody owns it), [`Owner::Remote`] when another broker owns it.
    async fn unload_bundle(&self, _tenant: &str, _ns: &str, _bundle: &str) -> Result<Owner> {
        Ok(Owner::Local)
    }
}

/// Owns every topic.
pub struct LocalOwnership;

#[async_trait::async_trait]
impl Ownership for LocalOwnership {
    async fn owner(&self, _topic: &TopicName) -> Result<Owner> {
        Ok(Owner::Local)
    }
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
    meta: MetaClient,
    ownership: Arc<dyn Ownership>,
    cache: EntryCache,
    topics: tokio::sync::Mutex<HashMap<String, Arc<OnceCell<Arc<Topic>>>>>,
    next_key: AtomicU64,
    /// Ports actually bound (set by the server once listening).
    pub ports: parking_lot::Mutex<(u16, u16)>,
    /// TLS ports actually bound (Pulsar, HTTPS), when TLS is on.
    pub tls_ports: parking_lot::Mutex<(Option<u16>, Option<u16>)>,
    name_prefix: String,
    security: parking_lot::RwLock<Arc<Security>>,
    bookies: parking_lot::RwLock<Vec<String>>,
    me: std::sync::Weak<BrokerService>,
    /// Serving and (in a cluster) registered: `/ready` answers 200.
    ready: std::sync::atomic::AtomicBool,
    /// Per-topic watchers (fencing); each ends when its topic closes.
    tasks: tokio_util::task::TaskTracker,
}

impl BrokerService {
    /// A service over the given storage and metadata.
    pub fn new(
        config: BrokerConfig,
        storage: Arc<dyn LedgerStorage>,
        meta: MetaClient,
        ownership: Arc<dyn Ownership>,
    ) -> Arc<Self> {
        let cache = EntryCache::new(config.cache_size_bytes);
        let name_prefix = format!("strata-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        Arc::new_cyclic(|me| BrokerService {
            me: me.clone(),
            ready: std::sync::atomic::AtomicBool::new(true),
            tasks: tokio_util::task::TaskTracker::new(),
            ports: parking_lot::Mutex::new((config.broker_port, config.http_port)),
            tls_ports: parking_lot::Mutex::new((None, None)),
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
            security: parking_lot::RwLock::new(Arc::new(Security::disabled())),
            bookies: parking_lot::RwLock::new(Vec::new()),
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

    /// The metadata store.
    pub fn metadata(&self) -> &MetaClient {
        &self.meta
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

    /// `pulsar+ssl://` URL of this broker, when its TLS port is open.
    pub fn broker_url_tls(&self) -> Option<String> {
        self.tls_ports
            .lock()
            .0
            .map(|p| format!("pulsar+ssl://{}:{p}", self.config.advertised_address))
    }

    /// `https://` URL of this broker, when its HTTPS port is open.
    pub fn http_url_tls(&self) -> Option<String> {
        self.tls_ports
            .lock()
            .1
            .map(|p| format!("https://{}:{p}", self.config.advertised_address))
    }

    /// Who serves `topic` (acquiring its bundle if nobody does).
    pub async fn owner(&self, topic: &TopicName) -> Result<Owner> {
        self.ownership.owner(topic).await
    }

    /// The managed-ledger settings of `name`: new ledgers use its namespace's persistence
    /// policy (E/Qw/Qa) when one is set and valid, the storage's default otherwise.
    async fn managed_ledger_config(&self, name: &TopicName) -> Result<ManagedLedgerConfig> {
        let quorum = self
            .policies(&name.tenant, &name.namespace)
            .await?
            .and_then(|p| p.persistence)
            .and_then(|p| Quorum::checked(p.ensemble_size, p.write_quorum, p.ack_quorum));
        Ok(ManagedLedgerConfig {
            create: CreateOptions { quorum },
            ..self.config.managed_ledger()
        })
    }

    /// Whether the broker is ready to serve (`/ready`): always in standalone; in a cluster once
    /// registered and while its metadata session holds.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Sets readiness (see [`BrokerService::is_ready`]).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Unloads a namespace bundle owned here (see [`Ownership::unload_bundle`]).
    pub async fn unload_bundle(&self, tenant: &str, ns: &str, bundle: &str) -> Result<Owner> {
        self.ownership.unload_bundle(tenant, ns, bundle).await
    }

    /// The answer to a LOOKUP of `topic` (see [`Ownership::lookup`]).
    pub async fn lookup(&self, topic: &TopicName, authoritative: bool) -> Result<Owner> {
        self.ownership.lookup(topic, authoritative).await
    }

    /// The topic's ledger was fenced by another broker: unload it and give up its bundle.
    async fn on_fenced(&self, name: &TopicName) {
        self.unload(name, None).await;
        self.ownership.fenced(name).await;
    }

    /// The loaded topic, loading (and with `create`, creating) it.
    pub async fn topic(&self, name: &TopicName, create: bool) -> Result<Arc<Topic>> {
        if !name.is_persistent() {
            return Err(BrokerError::NotAllowed(
                "non-persistent topics are not supported".into(),
            ));
        }
        match self.owner(name).await? {
            Owner::Local => {}
            Owner::Remote {
                broker_url,
                http_url,
                ..
            }
            | Owner::Leader {
                broker_url,
                http_url,
                ..
            } => {
                return Err(BrokerError::OwnedElsewhere {
                    topic: name.to_string(),
                    broker_url,
                    http_url,
                });
            }
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
                if !create && !self.ml_exists(&pname).await? {
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
                    self.managed_ledger_config(name).await?,
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
                // Deduplication applies from the first SEND (other policies follow within
                // `policy_refresh_interval`).
                if let Some(p) = self.policies(&name.tenant, &name.namespace).await? {
                    t.dedup()
                        .set_enabled(p.deduplication_enabled.unwrap_or(false));
                }
                self.metrics.topics.inc();
                info!(topic = %name, "topic loaded");
                // Unload the topic (and give its bundle up) if another broker fences it.
                let (me, watched) = (self.me.clone(), t.clone());
                self.tasks.spawn(async move {
                    tokio::select! {
                        () = watched.ledger().fenced() => {}
                        () = watched.closed() => return,
                    }
                    if let Some(svc) = me.upgrade() {
                        svc.on_fenced(watched.name()).await;
                    }
                });
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

    fn partitioned_key(&self, name: &TopicName) -> String {
        self.meta
            .paths()
            .partitioned_topic(&topic_path(&name.persistence_name()))
    }

    /// Whether the managed ledger `ml_name` exists.
    async fn ml_exists(&self, ml_name: &str) -> Result<bool> {
        let key = crate::managed_ledger::ml_key(&self.meta, ml_name);
        Ok(self.meta.store().get(&key).await?.is_some())
    }

    /// The directory of a namespace's persistent topics under `kind` (a key of a topic path
    /// with an empty topic).
    fn topics_dir(tenant: &str, ns: &str, key: impl Fn(&TopicPath) -> String) -> String {
        key(&TopicPath {
            domain: "persistent".into(),
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

    /// Authentication and authorization (disabled until [`BrokerService::set_security`]).
    pub fn security(&self) -> Arc<Security> {
        self.security.read().clone()
    }

    /// Turns security on (call before serving).
    pub fn set_security(&self, security: Arc<Security>) {
        *self.security.write() = security;
    }

    /// The bookies this broker writes to (`/admin/v2/bookies`): `(id, address)`.
    pub fn bookies(&self) -> Vec<String> {
        self.bookies.read().clone()
    }

    /// Sets the bookie list shown by the admin API.
    pub fn set_bookies(&self, bookies: Vec<String>) {
        *self.bookies.write() = bookies;
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

    /// Trims consumed ledgers of every loaded topic.
    pub async fn trim_all(&self) {
        for t in self.loaded_topics().await {
            if let Err(e) = t.trim().await {
                warn!(topic = %t.name(), error = %e, "trim failed");
            }
        }
        for t in self.loaded_topics().await {
            t.series()
                .storage_size
                .set(t.ledger().storage_size() as i64);
            t.series().msg_backlog.set(t.backlog().await as i64);
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
