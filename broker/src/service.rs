//! The broker service: loaded topics, partitioned-topic metadata, namespaces, lookups, schemas.
//! Shared by every connection and the HTTP API. Built whole ([`BrokerService::builder`]): no
//! setter completes it after construction.
//!
//! Files by concept: this one holds the state, construction, URLs and readiness;
//! `registry.rs` the loaded topics; `np_registry.rs` the loaded non-persistent topics; `lookup.rs` ownership and lookups; `topics.rs` topics and
//! partitioned topics in the metadata store; `tenants.rs` tenants and namespaces.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::OnceCell;

use crate::cache::EntryCache;
use crate::config::BrokerConfig;
use crate::metadata::MetaClient;
use crate::metrics::Metrics;
use crate::offload::Offloader;
use crate::schema::SchemaRegistry;
use crate::storage::LedgerStorage;
use crate::topic::Topic;

mod listener_urls;
mod lookup;
pub mod np_registry;
mod registry;
mod tenants;
mod topics;

pub use lookup::{LocalOwnership, Owner, Ownership};
use strata_auth::Security;

/// Builds a [`BrokerService`]; security is off and every topic is owned here
/// ([`LocalOwnership`]) unless given.
pub struct BrokerServiceBuilder {
    config: BrokerConfig,
    storage: Arc<dyn LedgerStorage>,
    meta: MetaClient,
    ownership: Arc<dyn Ownership>,
    security: Arc<Security>,
    offloader: Option<Arc<Offloader>>,
}

impl BrokerServiceBuilder {
    /// Tiered storage (none: offload is off).
    pub fn offloader(mut self, offloader: Option<Arc<Offloader>>) -> Self {
        self.offloader = offloader;
        self
    }

    /// Who owns which topic.
    pub fn ownership(mut self, ownership: Arc<dyn Ownership>) -> Self {
        self.ownership = ownership;
        self
    }

    /// The service with an ownership that needs to reach the service (cluster mode: it unloads
    /// topics and reports load): `make` builds it with the service's weak handle, at
    /// construction, before anything runs.
    pub fn build_with<O, F>(mut self, make: F) -> (Arc<BrokerService>, Arc<O>)
    where
        O: Ownership + 'static,
        F: FnOnce(std::sync::Weak<BrokerService>) -> Arc<O>,
    {
        let mut made = None;
        let service = Arc::new_cyclic(|me| {
            let ownership = make(me.clone());
            made = Some(ownership.clone());
            self.ownership = ownership;
            self.assemble(me.clone())
        });
        let Some(ownership) = made else {
            unreachable!("new_cyclic runs its closure once")
        };
        (service, ownership)
    }

    /// Authentication, authorization and the TLS ports' settings.
    pub fn security(mut self, security: Arc<Security>) -> Self {
        self.security = security;
        self
    }

    /// The service.
    pub fn build(self) -> Arc<BrokerService> {
        Arc::new_cyclic(|me| self.assemble(me.clone()))
    }

    fn assemble(self, me: std::sync::Weak<BrokerService>) -> BrokerService {
        let Self {
            config,
            storage,
            meta,
            ownership,
            security,
            offloader,
        } = self;
        let cache = EntryCache::new(config.cache_size_bytes);
        // validated at start-up by the binaries (`BrokerConfig::listeners`)
        let listeners = config.listeners().unwrap_or_default();
        let name_prefix = format!("strata-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        BrokerService {
            me,
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
            np_topics: parking_lot::Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(1),
            name_prefix,
            listeners,
            security,
            bookies: parking_lot::RwLock::new(Vec::new()),
            offloader,
        }
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
    /// Loaded non-persistent topics (`np_registry.rs`).
    np_topics: parking_lot::Mutex<HashMap<String, Arc<crate::nonpersistent::NonPersistentTopic>>>,
    next_key: AtomicU64,
    /// Ports actually bound (set by the server once listening).
    pub ports: parking_lot::Mutex<(u16, u16)>,
    /// TLS ports actually bound (Pulsar, HTTPS), when TLS is on.
    pub tls_ports: parking_lot::Mutex<(Option<u16>, Option<u16>)>,
    name_prefix: String,
    /// Advertised listeners (empty without them).
    listeners: crate::listeners::AdvertisedListeners,
    security: Arc<Security>,
    bookies: parking_lot::RwLock<Vec<String>>,
    me: std::sync::Weak<BrokerService>,
    /// Serving and (in a cluster) registered: `/ready` answers 200.
    ready: std::sync::atomic::AtomicBool,
    /// Per-topic watchers (fencing); each ends when its topic closes.
    tasks: tokio_util::task::TaskTracker,
    offloader: Option<Arc<Offloader>>,
}

impl BrokerService {
    /// A service over the given storage and metadata, security off (see
    /// [`BrokerService::builder`]).
    pub fn new(
        config: BrokerConfig,
        storage: Arc<dyn LedgerStorage>,
        meta: MetaClient,
        ownership: Arc<dyn Ownership>,
    ) -> Arc<Self> {
        Self::builder(config, storage, meta)
            .ownership(ownership)
            .build()
    }

    /// A builder of a service over the given storage and metadata.
    pub fn builder(
        config: BrokerConfig,
        storage: Arc<dyn LedgerStorage>,
        meta: MetaClient,
    ) -> BrokerServiceBuilder {
        BrokerServiceBuilder {
            config,
            storage,
            meta,
            ownership: Arc::new(LocalOwnership),
            security: Arc::new(Security::disabled()),
            offloader: None,
        }
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

    /// The ledger storage.
    pub fn storage(&self) -> &Arc<dyn LedgerStorage> {
        &self.storage
    }

    /// The entry cache.
    pub fn cache(&self) -> &EntryCache {
        &self.cache
    }

    /// `pulsar://` URL of this broker (the internal listener's, with advertised listeners).
    pub fn broker_url(&self) -> String {
        if let Some(u) = self.listeners.internal().and_then(|l| l.pulsar_url.clone()) {
            return u;
        }
        self.config.service_url(self.ports.lock().0)
    }

    /// The advertised listeners (Pulsar's `advertisedListeners`).
    pub fn listeners(&self) -> &crate::listeners::AdvertisedListeners {
        &self.listeners
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
        if let Some(l) = self.listeners.internal()
            && l.pulsar_url_tls.is_some()
        {
            return l.pulsar_url_tls.clone();
        }
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

    /// Whether the broker is ready to serve (`/ready`): always in standalone; in a cluster once
    /// registered and while its metadata session holds.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Sets readiness (see [`BrokerService::is_ready`]).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Authentication and authorization (as built: [`BrokerServiceBuilder::security`]).
    pub fn security(&self) -> Arc<Security> {
        self.security.clone()
    }

    /// The bookies this broker writes to (`/admin/v2/bookies`): `(id, address)`.
    pub fn bookies(&self) -> Vec<String> {
        self.bookies.read().clone()
    }

    /// Tiered storage, when configured.
    pub fn offloader(&self) -> Option<&Arc<Offloader>> {
        self.offloader.as_ref()
    }

    /// Sets the bookie list shown by the admin API.
    pub fn set_bookies(&self, bookies: Vec<String>) {
        *self.bookies.write() = bookies;
    }
}
