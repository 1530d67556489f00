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
use strata_auth::Security;
use strata_meta::model::{Model, Paths, Policies, TenantInfo, decode_segment};

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

/// Builds the ledger storage of a namespace persistence policy `(E, Qw, Qa)`.
pub type StorageForQuorum = Arc<dyn Fn(u32, u32, u32) -> Arc<dyn LedgerStorage> + Send + Sync>;

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
    /// Ledger storage for a namespace persistence policy `(E, Qw, Qa)` (cluster mode); `None`:
    /// every topic uses `storage`.
    storage_for_quorum: parking_lot::RwLock<Option<StorageForQuorum>>,
    meta: Arc<dyn BrokerMetadata>,
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
        meta: Arc<dyn BrokerMetadata>,
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
            storage_for_quorum: parking_lot::RwLock::new(None),
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
    pub fn metadata(&self) -> &Arc<dyn BrokerMetadata> {
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

    /// Makes topics of namespaces with a persistence policy (E/Qw/Qa) write their new ledgers
    /// with it (set before serving); other topics use the default storage.
    pub fn set_storage_for_quorum(&self, f: StorageForQuorum) {
        *self.storage_for_quorum.write() = Some(f);
    }

    /// The ledger storage for a new managed ledger of `name`: its namespace's persistence
    /// policy when one is set (and valid), the default otherwise.
    async fn storage_for(&self, name: &TopicName) -> Result<Arc<dyn LedgerStorage>> {
        let Some(f) = self.storage_for_quorum.read().clone() else {
            return Ok(self.storage.clone());
        };
        let p = self
            .policies(&name.tenant, &name.namespace)
            .await?
            .and_then(|p| p.persistence);
        Ok(match p {
            Some(p)
                if p.ack_quorum >= 1
                    && p.ack_quorum <= p.write_quorum
                    && p.write_quorum <= p.ensemble_size =>
            {
                f(p.ensemble_size, p.write_quorum, p.ack_quorum)
            }
            _ => self.storage.clone(),
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
                    self.storage_for(name).await?,
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
                        svc.on_fenced(&watched.name()).await;
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
            return Err(BrokerError::Conflict(format!(
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
            Err(MetaError::BadVersion(_)) => Err(BrokerError::Conflict(format!(
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

    // Tenants and namespaces live in `strata_meta`'s shared layout (`/strata/tenants/{t}`,
    // `/strata/namespaces/{t}/{ns}`, versioned JSON), the same keys `strata init-cluster` writes.
    fn tenant_key(tenant: &str) -> String {
        Paths::default().tenant(tenant)
    }

    fn namespace_key(tenant: &str, ns: &str) -> String {
        Paths::default().namespace(tenant, ns)
    }

    fn encode<T: Model>(v: &T) -> Result<Bytes> {
        Ok(strata_meta::model::encode(v).map_err(|e| MetaError::Other(e.to_string()))?)
    }

    fn decode<T: Model>(key: &str, v: &[u8]) -> Result<T> {
        Ok(strata_meta::model::decode(key, v)
            .map_err(|e| MetaError::Corrupt(key.to_owned(), e.to_string()))?)
    }

    /// Creates a tenant (idempotent; an existing one keeps its info).
    pub async fn create_tenant(&self, tenant: &str) -> Result<()> {
        let k = Self::tenant_key(tenant);
        if self.meta.get(&k).await?.is_none() {
            let v = Self::encode(&TenantInfo::default())?;
            match self.meta.put(&k, v, Expect::Absent).await {
                Ok(_) | Err(MetaError::BadVersion(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// A tenant's info (`strata_meta`'s [`TenantInfo`], stored at `tenants/{tenant}`).
    pub async fn tenant_info(&self, tenant: &str) -> Result<Option<TenantInfo>> {
        let k = Self::tenant_key(tenant);
        match self.meta.get(&k).await? {
            Some(v) => Ok(Some(Self::decode(&k, &v.value)?)),
            None => Ok(None),
        }
    }

    /// Creates a tenant with its info; [`BrokerError::Conflict`] if it exists.
    pub async fn create_tenant_with(&self, tenant: &str, info: &TenantInfo) -> Result<()> {
        let v = Self::encode(info)?;
        match self
            .meta
            .put(&Self::tenant_key(tenant), v, Expect::Absent)
            .await
        {
            Ok(_) => Ok(()),
            Err(MetaError::BadVersion(_)) => {
                Err(BrokerError::Conflict("Tenant already exists".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a tenant's info; [`BrokerError::NotFound`] if it does not exist.
    pub async fn update_tenant(&self, tenant: &str, info: &TenantInfo) -> Result<()> {
        let k = Self::tenant_key(tenant);
        let Some(cur) = self.meta.get(&k).await? else {
            return Err(BrokerError::NotFound("Tenant does not exist".into()));
        };
        let v = Self::encode(info)?;
        self.meta.put(&k, v, Expect::Version(cur.version)).await?;
        Ok(())
    }

    /// Deletes a tenant; refuses ([`BrokerError::Conflict`]) while it has namespaces.
    pub async fn delete_tenant(&self, tenant: &str) -> Result<()> {
        if self.tenant_info(tenant).await?.is_none() {
            return Err(BrokerError::NotFound("Tenant does not exist".into()));
        }
        if !self.namespaces(tenant).await?.is_empty() {
            return Err(BrokerError::Conflict(
                "The tenant still has active namespaces".into(),
            ));
        }
        self.meta.delete(&Self::tenant_key(tenant)).await?;
        info!(tenant, "tenant deleted");
        Ok(())
    }

    /// Creates a namespace (idempotent, creating its tenant if needed).
    pub async fn create_namespace(&self, tenant: &str, ns: &str) -> Result<()> {
        self.create_tenant(tenant).await?;
        let k = Self::namespace_key(tenant, ns);
        if self.meta.get(&k).await?.is_none() {
            let v = Self::encode(&Policies::default())?;
            match self.meta.put(&k, v, Expect::Absent).await {
                Ok(_) | Err(MetaError::BadVersion(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Creates a namespace of an existing tenant; [`BrokerError::Conflict`] if it exists.
    pub async fn create_namespace_strict(
        &self,
        tenant: &str,
        ns: &str,
        policies: &Policies,
    ) -> Result<()> {
        if self.tenant_info(tenant).await?.is_none() {
            return Err(BrokerError::NotFound("Tenant does not exist".into()));
        }
        let v = Self::encode(policies)?;
        match self
            .meta
            .put(&Self::namespace_key(tenant, ns), v, Expect::Absent)
            .await
        {
            Ok(_) => Ok(()),
            Err(MetaError::BadVersion(_)) => {
                Err(BrokerError::Conflict("Namespace already exists".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A namespace's policies (`strata_meta`'s [`Policies`], stored at `namespaces/{t}/{ns}`);
    /// `None` if the namespace does not exist.
    pub async fn policies(&self, tenant: &str, ns: &str) -> Result<Option<Policies>> {
        let k = Self::namespace_key(tenant, ns);
        match self.meta.get(&k).await? {
            Some(v) => Ok(Some(Self::decode(&k, &v.value)?)),
            None => Ok(None),
        }
    }

    /// Changes a namespace's policies (compare-and-set, retried on conflicts); live topics pick
    /// the change up within `policy_refresh_interval`.
    pub async fn update_policies(
        &self,
        tenant: &str,
        ns: &str,
        f: impl Fn(&mut Policies),
    ) -> Result<Policies> {
        let k = Self::namespace_key(tenant, ns);
        for _ in 0..16 {
            let Some(cur) = self.meta.get(&k).await? else {
                return Err(BrokerError::NotFound("Namespace does not exist".into()));
            };
            let mut p: Policies = Self::decode(&k, &cur.value)?;
            f(&mut p);
            let v = Self::encode(&p)?;
            match self.meta.put(&k, v, Expect::Version(cur.version)).await {
                Ok(_) => return Ok(p),
                Err(MetaError::BadVersion(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BrokerError::Conflict(
            "concurrent policy updates; retry".into(),
        ))
    }

    /// Deletes an empty namespace; [`BrokerError::Conflict`] while it has topics.
    pub async fn delete_namespace(&self, tenant: &str, ns: &str) -> Result<()> {
        if self.policies(tenant, ns).await?.is_none() {
            return Err(BrokerError::NotFound("Namespace does not exist".into()));
        }
        if !self.topics_of_namespace(tenant, ns).await?.is_empty()
            || !self
                .partitioned_topics_of_namespace(tenant, ns)
                .await?
                .is_empty()
        {
            return Err(BrokerError::Conflict(
                "Cannot delete non empty namespace".into(),
            ));
        }
        self.meta.delete(&Self::namespace_key(tenant, ns)).await?;
        info!(tenant, ns, "namespace deleted");
        Ok(())
    }

    /// Tenants.
    pub async fn tenants(&self) -> Result<Vec<String>> {
        let p = format!("{}/", Paths::default().tenants());
        Ok(self
            .meta
            .list(&p)
            .await?
            .into_iter()
            .map(|(k, _)| decode_segment(k.strip_prefix(p.as_str()).unwrap_or(&k)))
            .collect())
    }

    /// Namespaces of a tenant (`tenant/ns`).
    pub async fn namespaces(&self, tenant: &str) -> Result<Vec<String>> {
        let p = format!("{}/", Paths::default().namespaces(tenant));
        Ok(self
            .meta
            .list(&p)
            .await?
            .into_iter()
            .map(|(k, _)| {
                format!(
                    "{tenant}/{}",
                    decode_segment(k.strip_prefix(p.as_str()).unwrap_or(&k))
                )
            })
            .collect())
    }

    /// Whether a non-partitioned topic (or partition) exists.
    pub async fn topic_exists(&self, name: &TopicName) -> Result<bool> {
        Ok(self
            .meta
            .get(&ml_key(&name.persistence_name()))
            .await?
            .is_some())
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
        let pname = name.persistence_name();
        let cursors = format!("{}/", crate::subscription::cursor_key(&pname, ""));
        let cursors = cursors.trim_end_matches('/').to_owned() + "/";
        for (k, _) in self.meta.list(&cursors).await? {
            self.meta.delete(&k).await?;
        }
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
        self.meta.delete(&Self::partitioned_key(name)).await?;
        info!(topic = %name, "partitioned topic deleted");
        Ok(())
    }

    /// Raises the partition count of a partitioned topic (never lowers it).
    pub async fn update_partitions(&self, name: &TopicName, partitions: u32) -> Result<()> {
        let k = Self::partitioned_key(name);
        let Some(cur) = self.meta.get(&k).await? else {
            return Err(BrokerError::NotFound(
                "Partitioned topic does not exist".into(),
            ));
        };
        let m: PartitionedMeta = serde_json::from_slice(&cur.value)
            .map_err(|e| MetaError::Corrupt(k.clone(), e.to_string()))?;
        if partitions <= m.partitions || partitions > 10_000 {
            return Err(BrokerError::PreconditionFailed(format!(
                "the number of partitions must be more than the existing {}",
                m.partitions
            )));
        }
        let v = serde_json::to_vec(&PartitionedMeta { partitions })
            .map_err(|e| MetaError::Other(e.to_string()))?;
        self.meta
            .put(&k, Bytes::from(v), Expect::Version(cur.version))
            .await?;
        info!(topic = %name, from = m.partitions, to = partitions, "partitions updated");
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
