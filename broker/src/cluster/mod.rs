//! Cluster mode: namespace-bundle ownership over the metadata store (etcd), the leader's
//! assignment and balancing, load reports, and what a broker does when its session is lost.
//!
//! - A topic belongs to a bundle of its namespace ([`bundle::bundle_of`]: CRC32C of the full
//!   name over the namespace's `Policies.bundles`, default 4 ranges). A broker owns a bundle by
//!   creating the ephemeral key `/strata/bundle-owners/{t}/{ns}/{range}` ([`BundleOwner`],
//!   create-if-absent, bound to its session, never re-created by a session re-establish).
//! - LOOKUP: own bundle → Connect; owned elsewhere → Redirect to the owner (authoritative);
//!   unowned → a non-leader redirects to the leader (`/strata/leader`, authoritative = false),
//!   the leader picks the least loaded live broker ([`bundle::least_loaded`]) and redirects
//!   there (authoritative = true); the chosen broker acquires the bundle on the authoritative
//!   lookup, or when a producer/consumer attaches.
//! - Releasing a bundle (unload, balancing, shutdown): mark the owner key `disabled` (other
//!   brokers answer "retry" instead of redirecting here), close its topics (clients are told the
//!   assigned broker when there is one), delete the key.
//! - Leases are not locks: when the session is lost, open topics keep serving (the bookies'
//!   fencing protects the data) but no bundle is acquired; after re-establishing the session the
//!   broker re-creates the owner keys of the bundles it still holds, and unloads those another
//!   broker took meanwhile. A topic whose ledger gets fenced is unloaded and its bundle released.
//! - The leader (election on `/strata/leader`) balances conservatively ([`bundle::plan_move`],
//!   an imbalance must be seen twice in a row, one move per cooldown) by writing an unload
//!   request `/strata/loadbalance/unload/{owner}/{t}/{ns}/{range}` that the owner executes, and
//!   runs ledger auto-recovery.

pub mod admin;
pub mod bundle;
pub mod fanout;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use strata_common::backoff::BackoffPolicy;
use strata_common::clock::now_ms;
pub use strata_ledger::autorecovery::AutoRecoveryOptions;
use strata_ledger::client::RegisteredBookies;
use strata_meta::model::{
    BrokerInfo, BundleOwner, BundleRange, BundlesData, MetaClient, Policies, decode_segment,
    encode_segment,
};
use strata_meta::{EphemeralOptions, Expected, MetadataStore, Session};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::error::{BrokerError, Result};
use crate::metadata::MetaError;
use crate::service::{BrokerService, Owner, Ownership};
use crate::topic_name::TopicName;
pub use bundle::NsBundle;

/// Settings of cluster mode.
#[derive(Clone)]
pub struct ClusterOptions {
    /// TTL of the broker's session (its registration and bundle ownership).
    pub session_ttl: Duration,
    /// How often the load report is written.
    pub load_report_interval: Duration,
    /// How often the leader checks the balance.
    pub balance_interval: Duration,
    /// Bundle-count gap (most vs least loaded broker) that makes the leader move a bundle.
    pub balance_threshold: usize,
    /// Auto-recovery run by the leader (`None`: off).
    pub autorecovery: Option<(Arc<RegisteredBookies>, AutoRecoveryOptions)>,
    /// Take over a bundle whose owner refuses TCP connections (dead) without waiting for its
    /// lease to expire.
    pub probe_owners: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(10),
            load_report_interval: Duration::from_secs(5),
            balance_interval: Duration::from_secs(10),
            balance_threshold: 2,
            autorecovery: None,
            probe_owners: true,
        }
    }
}

/// A broker's load report (`/strata/loadbalance/brokers/{id}`, ephemeral JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadReport {
    /// Broker id.
    pub broker_id: String,
    /// `pulsar://` URL.
    pub pulsar_url: String,
    /// `http://` URL.
    pub http_url: String,
    /// Bundles owned.
    pub bundles: usize,
    /// Topics loaded.
    pub topics: usize,
    /// Messages in per second over the last interval.
    pub msg_rate_in: f64,
    /// Messages out per second over the last interval.
    pub msg_rate_out: f64,
    /// When it was written (ms since the epoch).
    pub timestamp_ms: u64,
}

/// An unload request from the leader to a bundle's owner.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct UnloadRequest {
    assigned_broker_id: String,
    assigned_broker_url: String,
}

/// Cluster mode's metrics (registered with the broker's on start).
#[derive(Clone, Default)]
struct ClusterMetrics {
    bundles_owned: prometheus_client::metrics::gauge::Gauge,
    is_leader: prometheus_client::metrics::gauge::Gauge,
    acquired: prometheus_client::metrics::counter::Counter,
    released: prometheus_client::metrics::counter::Counter,
    sessions_lost: prometheus_client::metrics::counter::Counter,
    fenced: prometheus_client::metrics::counter::Counter,
}

impl ClusterMetrics {
    fn register(&self, m: &crate::metrics::Metrics) {
        m.register(
            "strata_broker_bundles_owned",
            "Namespace bundles owned by this broker",
            self.bundles_owned.clone(),
        );
        m.register(
            "strata_broker_is_leader",
            "1 while this broker is the cluster leader",
            self.is_leader.clone(),
        );
        m.register(
            "strata_broker_bundles_acquired",
            "Bundles acquired",
            self.acquired.clone(),
        );
        m.register(
            "strata_broker_bundles_released",
            "Bundles released (unload, balancing, fencing, shutdown)",
            self.released.clone(),
        );
        m.register(
            "strata_broker_sessions_lost",
            "Metadata sessions lost",
            self.sessions_lost.clone(),
        );
        m.register(
            "strata_broker_topics_fenced",
            "Topics whose ledger was fenced by another broker",
            self.fenced.clone(),
        );
    }
}

#[derive(Debug, Clone)]
struct Owned {
    releasing: bool,
}

/// Bundle ownership of a cluster broker ([`Ownership`] over the metadata store).
pub struct ClusterOwnership {
    store: Arc<dyn MetadataStore>,
    meta: MetaClient,
    opts: ClusterOptions,
    session: RwLock<Session>,
    session_gen: watch::Sender<u64>,
    me: RwLock<Option<BrokerInfo>>,
    service: RwLock<Weak<BrokerService>>,
    owned: Mutex<HashMap<NsBundle, Owned>>,
    acquire_lock: tokio::sync::Mutex<()>,
    bundles_cache: Mutex<HashMap<(String, String), (BundlesData, Instant)>>,
    /// Assignments handed out by this leader and maybe not acquired yet: (broker, when).
    pending: Mutex<Vec<(String, Instant)>>,
    /// Bundles this leader assigned recently, to whom (answered the same way meanwhile).
    assignments: Mutex<HashMap<NsBundle, (BrokerInfo, Instant)>>,
    /// Bundles this leader moved: when, and to which broker (not moved again for a while, and
    /// counted on their target meanwhile).
    moved: Mutex<HashMap<NsBundle, (Instant, String, String)>>,
    leadership: tokio::sync::Mutex<Option<strata_meta::election::Leadership>>,
    /// Owners' addresses that accepted a probe connection recently.
    reachable: Mutex<HashMap<String, Instant>>,
    is_leader: AtomicBool,
    stopping: AtomicBool,
    cancel: CancellationToken,
    tasks: TaskTracker,
    metrics: ClusterMetrics,
}

/// How long a leader's assignment counts as load on the chosen broker.
const PENDING_FOR: Duration = Duration::from_secs(10);
/// A moved bundle is not moved again for this long.
const MOVED_COOLDOWN: Duration = Duration::from_secs(120);
/// Bundle boundaries of a namespace are re-read this often.
const BUNDLES_TTL: Duration = Duration::from_secs(30);

/// A metadata error as a broker error; a lost session is worth retrying (on a new session).
fn meta_err(e: MetaError) -> BrokerError {
    match e {
        MetaError::SessionLost(_) => BrokerError::Metadata(MetaError::Unavailable(e.to_string())),
        e => BrokerError::Metadata(e),
    }
}

/// Delays between attempts to re-establish a lost session.
const REESTABLISH_BACKOFF: BackoffPolicy =
    BackoffPolicy::exponential(Duration::from_millis(200), Duration::from_secs(1));

fn not_ready(msg: impl Into<String>) -> BrokerError {
    BrokerError::ServiceNotReady(msg.into())
}

impl ClusterOwnership {
    /// Opens a session on `store` (keys under `meta`'s paths).
    pub async fn connect(
        store: Arc<dyn MetadataStore>,
        meta: MetaClient,
        opts: ClusterOptions,
    ) -> std::result::Result<Arc<Self>, strata_meta::MetaError> {
        let session = store.create_session(opts.session_ttl).await?;
        let (session_gen, _) = watch::channel(0);
        Ok(Arc::new(Self {
            store,
            meta,
            opts,
            session: RwLock::new(session),
            session_gen,
            me: RwLock::new(None),
            service: RwLock::new(Weak::new()),
            owned: Mutex::new(HashMap::new()),
            acquire_lock: tokio::sync::Mutex::new(()),
            bundles_cache: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
            assignments: Mutex::new(HashMap::new()),
            moved: Mutex::new(HashMap::new()),
            leadership: tokio::sync::Mutex::new(None),
            reachable: Mutex::new(HashMap::new()),
            is_leader: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            metrics: ClusterMetrics::default(),
        }))
    }

    /// Registers the broker (ephemeral [`BrokerInfo`] under `/strata/brokers/{id}`, re-created
    /// when the session is re-established) and starts the background tasks: session watch,
    /// leader election (balancing, auto-recovery), load reports, unload requests. Call once the
    /// service's listeners are bound. The broker id is `{advertised_address}:{broker_port}`.
    pub async fn start(
        self: &Arc<Self>,
        service: &Arc<BrokerService>,
    ) -> std::result::Result<BrokerInfo, strata_meta::MetaError> {
        let info = BrokerInfo {
            broker_id: format!(
                "{}:{}",
                service.config.advertised_address,
                service.ports.lock().0
            ),
            pulsar_url: service.broker_url(),
            pulsar_url_tls: service.broker_url_tls(),
            http_url: service.http_url(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at_ms: now_ms(),
        };
        *self.service.write() = Arc::downgrade(service);
        self.metrics.register(&service.metrics);
        *self.me.write() = Some(info.clone());
        let session = self.session();
        self.meta.register_broker(&session, &info).await?;
        self.write_load_report(&mut LoadRates::default()).await;
        service.set_ready(true);
        let me = self.clone();
        self.tasks.spawn(async move { me.session_loop().await });
        let me = self.clone();
        self.tasks.spawn(async move { me.leader_loop().await });
        let me = self.clone();
        self.tasks.spawn(async move { me.load_report_loop().await });
        let me = self.clone();
        self.tasks
            .spawn(async move { me.unload_request_loop().await });
        Ok(info)
    }

    /// This broker's registration (once started).
    pub fn me(&self) -> Option<BrokerInfo> {
        self.me.read().clone()
    }

    /// Whether this broker is the leader now.
    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    /// Bundles owned now.
    pub fn owned_bundles(&self) -> Vec<NsBundle> {
        let mut v: Vec<NsBundle> = self.owned.lock().keys().cloned().collect();
        v.sort();
        v
    }

    fn session(&self) -> Session {
        self.session.read().clone()
    }

    fn service(&self) -> Option<Arc<BrokerService>> {
        self.service.read().upgrade()
    }

    fn root(&self) -> String {
        self.meta.paths().root().to_owned()
    }

    fn leader_key(&self) -> String {
        format!("{}/leader", self.root())
    }

    fn load_report_key(&self, id: &str) -> String {
        format!("{}/loadbalance/brokers/{}", self.root(), encode_segment(id))
    }

    fn unload_prefix(&self, broker: &str) -> String {
        format!(
            "{}/loadbalance/unload/{}/",
            self.root(),
            encode_segment(broker)
        )
    }

    fn owner_key(&self, b: &NsBundle) -> String {
        self.meta
            .paths()
            .bundle_owner(&b.tenant, &b.namespace, &b.range)
    }

    fn owner_value(&self, me: &BrokerInfo, disabled: bool) -> BundleOwner {
        BundleOwner {
            broker_id: me.broker_id.clone(),
            broker_url: me.pulsar_url.clone(),
            broker_url_tls: me.pulsar_url_tls.clone(),
            http_url: me.http_url.clone(),
            disabled,
        }
    }

    /// The bundle `topic` belongs to (namespace bundle boundaries cached for a while).
    pub async fn bundle_for(&self, topic: &TopicName) -> Result<NsBundle> {
        let k = (topic.tenant.clone(), topic.namespace.clone());
        let cached = self
            .bundles_cache
            .lock()
            .get(&k)
            .filter(|(_, at)| at.elapsed() < BUNDLES_TTL)
            .map(|(d, _)| d.clone());
        let data = match cached {
            Some(d) => d,
            None => {
                let key = self.meta.paths().namespace(&k.0, &k.1);
                let data = match self.meta.get::<Policies>(&key).await {
                    Ok(Some((p, _))) => p.bundles,
                    Ok(None) => BundlesData::default(),
                    Err(e) => {
                        // Fall back on a stale value rather than failing during an outage.
                        match self.bundles_cache.lock().get(&k) {
                            Some((d, _)) => return Ok(bundle::bundle_of(topic, d)),
                            None => return Err(meta_err(e)),
                        }
                    }
                };
                self.bundles_cache
                    .lock()
                    .insert(k, (data.clone(), Instant::now()));
                data
            }
        };
        Ok(bundle::bundle_of(topic, &data))
    }

    async fn read_owner(&self, b: &NsBundle) -> Result<Option<(BundleOwner, strata_meta::Stat)>> {
        self.meta
            .get::<BundleOwner>(&self.owner_key(b))
            .await
            .map_err(meta_err)
    }

    /// Who owns `b` according to the store, clearing a key left by an earlier incarnation of
    /// this broker (same id, another session: that process is gone, since we hold its port).
    async fn remote_owner(&self, b: &NsBundle, me: &BrokerInfo) -> Result<Option<Owner>> {
        let Some((o, stat)) = self.read_owner(b).await? else {
            return Ok(None);
        };
        if o.broker_id == me.broker_id {
            if stat.session == Some(self.session().id()) && !o.disabled {
                // Held by our session but not tracked (a create whose answer was lost, or a
                // delete that failed): it is ours, serve it.
                let mut g = self.owned.lock();
                if !g.contains_key(b) {
                    info!(bundle = %b, "bundle acquired (owner key already held by this session)");
                    g.insert(b.clone(), Owned { releasing: false });
                }
                return Ok(Some(Owner::Local));
            }
            info!(bundle = %b, "removing a stale owner key of this broker (earlier run or unfinished release)");
            match self
                .store
                .delete(&self.owner_key(b), Expected::Version(stat.version))
                .await
            {
                Ok(_) => return Ok(None),
                Err(e) if e.is_conflict() => return Err(not_ready("bundle ownership changing")),
                Err(e) => return Err(meta_err(e)),
            }
        }
        if o.disabled {
            return Err(not_ready(format!(
                "bundle {b} is being unloaded by {}",
                o.broker_id
            )));
        }
        if self.refused(&o.broker_url).await {
            // Nothing listens where the owner was (it died; its lease has not expired yet):
            // take the bundle over now. Leases are not locks; the new owner fences the old
            // one's ledgers, so this is safe even if the owner were somehow alive.
            warn!(bundle = %b, owner = %o.broker_id, "bundle owner refuses connections: taking the bundle over before its lease expires");
            match self
                .store
                .delete(&self.owner_key(b), Expected::Version(stat.version))
                .await
            {
                Ok(_) => return Ok(None),
                Err(e) if e.is_conflict() => return Err(not_ready("bundle ownership changing")),
                Err(e) => return Err(meta_err(e)),
            }
        }
        Ok(Some(Owner::Remote {
            broker_url: o.broker_url,
            http_url: o.http_url,
            broker_url_tls: o.broker_url_tls,
        }))
    }

    /// Whether a `pulsar://host:port` refuses TCP connections right now (nothing listens: the
    /// process is gone). Timeouts and other errors count as reachable (be conservative).
    async fn refused(&self, url: &str) -> bool {
        if !self.opts.probe_owners {
            return false;
        }
        let Some(addr) = url
            .strip_prefix("pulsar://")
            .map(|a| a.trim_end_matches('/').to_owned())
        else {
            return false;
        };
        if self
            .reachable
            .lock()
            .get(&addr)
            .is_some_and(|at| at.elapsed() < Duration::from_secs(2))
        {
            return false;
        }
        match tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr.as_str()),
        )
        .await
        {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => true,
            _ => {
                self.reachable.lock().insert(addr, Instant::now());
                false
            }
        }
    }

    fn local_state(&self, b: &NsBundle) -> Option<Result<Owner>> {
        let g = self.owned.lock();
        let st = g.get(b)?;
        Some(if st.releasing {
            Err(not_ready(format!("bundle {b} is being unloaded")))
        } else {
            Ok(Owner::Local)
        })
    }

    /// Acquires `b` (create-if-absent owner key) unless the session is lost or we are stopping.
    async fn acquire(&self, b: &NsBundle, me: &BrokerInfo) -> Result<Owner> {
        let _g = self.acquire_lock.lock().await;
        if let Some(r) = self.local_state(b) {
            return r;
        }
        if self.stopping.load(Ordering::Acquire) {
            return Err(not_ready("broker is shutting down"));
        }
        let session = self.session();
        if session.is_lost() {
            return Err(not_ready(
                "metadata session lost: not acquiring bundles until it is re-established",
            ));
        }
        let owner = self.owner_value(me, false);
        match self
            .meta
            .try_own_bundle(&session, &b.tenant, &b.namespace, &b.range, &owner)
            .await
        {
            Ok(Some(_)) => {
                let n = {
                    let mut g = self.owned.lock();
                    g.insert(b.clone(), Owned { releasing: false });
                    g.len()
                };
                self.metrics.acquired.inc();
                self.metrics.bundles_owned.set(n as i64);
                info!(bundle = %b, broker = %me.broker_id, "bundle acquired");
                Ok(Owner::Local)
            }
            Ok(None) => match self.remote_owner(b, me).await? {
                Some(o) => Ok(o),
                None => Err(not_ready(format!("bundle {b} ownership changing; retry"))),
            },
            Err(e) => Err(meta_err(e)),
        }
    }

    /// The live brokers and the one an unowned bundle should go to.
    async fn choose_broker(&self, exclude: Option<&str>) -> Result<Option<BrokerInfo>> {
        let brokers: Vec<BrokerInfo> = self
            .meta
            .brokers()
            .await
            .map_err(meta_err)?
            .into_iter()
            .filter(|b| Some(b.broker_id.as_str()) != exclude)
            .collect();
        let mut owned: HashMap<String, usize> = HashMap::new();
        for (_, o, _) in self
            .meta
            .list::<BundleOwner>(&format!("{}/bundle-owners", self.root()))
            .await
            .map_err(meta_err)?
        {
            *owned.entry(o.broker_id).or_default() += 1;
        }
        let mut topics: HashMap<String, usize> = HashMap::new();
        if let Ok(scan) = self
            .store
            .scan(&format!("{}/loadbalance/brokers/", self.root()))
            .await
        {
            for kv in scan.entries {
                if let Ok(r) = serde_json::from_slice::<LoadReport>(&kv.value.value) {
                    topics.insert(r.broker_id, r.topics);
                }
            }
        }
        let pending: HashMap<String, usize> = {
            let mut p = self.pending.lock();
            p.retain(|(_, at)| at.elapsed() < PENDING_FOR);
            let mut m = HashMap::new();
            for (b, _) in p.iter() {
                *m.entry(b.clone()).or_default() += 1;
            }
            m
        };
        let mut ids: Vec<String> = brokers.iter().map(|b| b.broker_id.clone()).collect();
        // Skip brokers that died (registration not expired yet: nothing listens any more).
        let id = loop {
            let Some(id) = bundle::least_loaded(&ids, &owned, &pending, &topics).cloned() else {
                return Ok(None);
            };
            let url = brokers
                .iter()
                .find(|b| b.broker_id == id)
                .map(|b| b.pulsar_url.clone())
                .unwrap_or_default();
            if self.me().is_some_and(|m| m.broker_id == id) || !self.refused(&url).await {
                break id;
            }
            ids.retain(|x| *x != id);
        };
        self.pending.lock().push((id.clone(), Instant::now()));
        Ok(brokers.into_iter().find(|b| b.broker_id == id))
    }

    async fn resolve(&self, topic: &TopicName, acquire: bool) -> Result<Owner> {
        let b = self.bundle_for(topic).await?;
        if let Some(r) = self.local_state(&b) {
            return r;
        }
        let Some(me) = self.me() else {
            return Err(not_ready("broker is starting"));
        };
        if let Some(o) = self.remote_owner(&b, &me).await? {
            return Ok(o);
        }
        let stopping = self.stopping.load(Ordering::Acquire);
        if acquire && !stopping {
            return self.acquire(&b, &me).await;
        }
        // Unowned and not ours to take: the leader decides.
        let leader = self
            .meta
            .get::<BrokerInfo>(&self.leader_key())
            .await
            .map_err(meta_err)?
            .map(|(l, _)| l);
        let leader = match leader {
            // A dead leader (its lease not expired yet) cannot answer: decide here.
            Some(l) if l.broker_id != me.broker_id && self.refused(&l.pulsar_url).await => None,
            l => l,
        };
        match leader {
            Some(l) if l.broker_id != me.broker_id => Ok(Owner::Leader {
                broker_url: l.pulsar_url,
                http_url: l.http_url,
                broker_url_tls: l.pulsar_url_tls,
            }),
            // We lead (or nobody does yet): pick the least loaded broker.
            _ => {
                let exclude = stopping.then_some(me.broker_id.as_str());
                // The same answer for a bundle until the chosen broker took it.
                let recent = {
                    let mut g = self.assignments.lock();
                    g.retain(|_, (_, at)| at.elapsed() < PENDING_FOR);
                    g.get(&b)
                        .map(|(c, _)| c.clone())
                        .filter(|c| !stopping || c.broker_id != me.broker_id)
                };
                let chosen = match recent {
                    Some(c) => Some(c),
                    None => {
                        let c = self.choose_broker(exclude).await?;
                        if let Some(c) = &c {
                            self.assignments
                                .lock()
                                .insert(b.clone(), (c.clone(), Instant::now()));
                        }
                        c
                    }
                };
                match chosen {
                    Some(c) if c.broker_id != me.broker_id => {
                        debug!(bundle = %b, to = %c.broker_id, "assigning bundle");
                        Ok(Owner::Remote {
                            broker_url: c.pulsar_url,
                            http_url: c.http_url,
                            broker_url_tls: c.pulsar_url_tls,
                        })
                    }
                    Some(_) => self.acquire(&b, &me).await,
                    None if stopping => Err(not_ready("no other broker to assign the bundle to")),
                    None => self.acquire(&b, &me).await,
                }
            }
        }
    }

    /// Gives `b` up: marks the owner key disabled, closes its topics (telling clients
    /// `assigned` when given), deletes the key if this session still holds it. Returns false if
    /// the bundle was not owned (or is already being released).
    pub async fn release(&self, b: &NsBundle, assigned: Option<String>) -> bool {
        {
            let mut g = self.owned.lock();
            match g.get_mut(b) {
                Some(st) if !st.releasing => st.releasing = true,
                _ => return false,
            }
        }
        let key = self.owner_key(b);
        let session = self.session();
        let ours = match tokio::time::timeout(Duration::from_secs(3), self.read_owner(b)).await {
            Ok(Ok(Some((_, stat)))) if stat.session == Some(session.id()) => Some(stat),
            _ => None,
        };
        if let (Some(stat), Some(me)) = (ours, self.me()) {
            let v = self.owner_value(&me, true);
            if let Ok(bytes) = strata_meta::model::encode(&v) {
                let _ = tokio::time::timeout(
                    Duration::from_secs(3),
                    self.store.put(&key, bytes, Expected::Version(stat.version)),
                )
                .await;
            }
        }
        self.unload_topics(b, assigned.clone()).await;
        let _g = self.acquire_lock.lock().await;
        if ours.is_some() {
            match tokio::time::timeout(
                Duration::from_secs(3),
                self.store.delete_ephemeral(&session, &key, Expected::Any),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(bundle = %b, error = %e, "delete bundle owner key failed"),
                Err(_) => warn!(bundle = %b, "delete bundle owner key timed out"),
            }
        } else {
            session.forget(&key);
        }
        self.forget_bundle(b);
        info!(bundle = %b, assigned = assigned.as_deref().unwrap_or(""), "bundle released");
        true
    }

    fn forget_bundle(&self, b: &NsBundle) {
        let n = {
            let mut g = self.owned.lock();
            g.remove(b);
            g.len()
        };
        self.metrics.released.inc();
        self.metrics.bundles_owned.set(n as i64);
    }

    /// Closes the loaded topics of `b`.
    async fn unload_topics(&self, b: &NsBundle, assigned: Option<String>) {
        let Some(svc) = self.service() else { return };
        let mut names = Vec::new();
        for t in svc.loaded_topics().await {
            if t.name().tenant == b.tenant
                && t.name().namespace == b.namespace
                && self.bundle_for(t.name()).await.is_ok_and(|x| x == *b)
            {
                names.push(t.name().clone());
            }
        }
        futures::future::join_all(names.iter().map(|n| svc.unload(n, assigned.clone()))).await;
    }

    /// Forgets `b` without touching its key (another broker owns it now) and closes its topics.
    async fn drop_lost_bundle(&self, b: &NsBundle) {
        self.forget_bundle(b);
        self.unload_topics(b, None).await;
        info!(bundle = %b, "bundle released (owned by another broker now)");
    }

    async fn session_loop(self: Arc<Self>) {
        loop {
            let s = self.session();
            tokio::select! {
                () = s.lost() => {}
                () = self.cancel.cancelled() => return,
            }
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            self.metrics.sessions_lost.inc();
            warn!(
                session = s.id(),
                bundles = self.owned.lock().len(),
                "session lost: open topics keep serving, no bundle is acquired until it is re-established"
            );
            if let Some(svc) = self.service() {
                svc.set_ready(false);
            }
            let mut backoff = REESTABLISH_BACKOFF.start();
            let new = loop {
                match self.store.reestablish_session(&s).await {
                    Ok(r) => break r,
                    Err(e) => {
                        debug!(error = %e, "re-establishing the session failed; retrying");
                        tokio::select! {
                            _ = backoff.sleep() => {}
                            () = self.cancel.cancelled() => return,
                        }
                    }
                }
            };
            *self.session.write() = new.session.clone();
            self.session_gen.send_modify(|g| *g += 1);
            info!(
                session = new.session.id(),
                recreated = new.recreated.len(),
                "session re-established"
            );
            self.reclaim_bundles().await;
            if let Some(svc) = self.service() {
                svc.set_ready(true);
            }
        }
    }

    /// After a re-establish (and every load-report interval): make sure every bundle still held
    /// has its owner key under the current session, re-creating it if absent (create-if-absent).
    /// A bundle another broker owns now is dropped (its topics unloaded: they were or will be
    /// fenced). On errors the bundle is kept (the bookies' fencing protects the data) and checked
    /// again next time.
    async fn reclaim_bundles(&self) {
        let Some(me) = self.me() else { return };
        let bundles: Vec<NsBundle> = self
            .owned
            .lock()
            .iter()
            .filter(|(_, st)| !st.releasing)
            .map(|(b, _)| b.clone())
            .collect();
        let owner = self.owner_value(&me, false);
        for b in bundles {
            let session = self.session();
            if session.is_lost() {
                return;
            }
            match self.read_owner(&b).await {
                Ok(Some((o, stat))) => {
                    if o.broker_id == me.broker_id && stat.session == Some(session.id()) {
                        continue;
                    }
                    if o.broker_id != me.broker_id {
                        warn!(bundle = %b, owner = %o.broker_id, "bundle taken by another broker while our session was away");
                        self.drop_lost_bundle(&b).await;
                        continue;
                    }
                    // Ours under an old session: its lease is ending; re-create below.
                    if let Err(e) = self
                        .store
                        .delete(&self.owner_key(&b), Expected::Version(stat.version))
                        .await
                    {
                        debug!(bundle = %b, error = %e, "clearing our old owner key failed");
                        continue;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    debug!(bundle = %b, error = %e, "checking bundle ownership failed; will retry");
                    continue;
                }
            }
            // Not while the bundle is being released (that would re-create the key it deletes).
            let _g = self.acquire_lock.lock().await;
            if self.owned.lock().get(&b).is_none_or(|st| st.releasing) {
                continue;
            }
            match self
                .meta
                .try_own_bundle(&session, &b.tenant, &b.namespace, &b.range, &owner)
                .await
            {
                Ok(Some(_)) => info!(bundle = %b, "bundle ownership re-established"),
                Ok(None) => match self.read_owner(&b).await {
                    Ok(Some((o, _))) if o.broker_id != me.broker_id => {
                        warn!(bundle = %b, owner = %o.broker_id, "bundle taken by another broker while our session was away");
                        self.drop_lost_bundle(&b).await;
                    }
                    _ => {}
                },
                Err(e) => {
                    debug!(bundle = %b, error = %e, "re-creating bundle owner key failed; will retry")
                }
            }
        }
    }

    async fn leader_loop(self: Arc<Self>) {
        let mut gen_rx = self.session_gen.subscribe();
        let Some(me) = self.me() else { return };
        let value = match strata_meta::model::encode(&me) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cannot encode the leader value");
                return;
            }
        };
        let key = self.leader_key();
        while !self.cancel.is_cancelled() {
            let session = self.session();
            if session.is_lost() {
                tokio::select! {
                    _ = gen_rx.changed() => continue,
                    () = self.cancel.cancelled() => return,
                }
            }
            let r = tokio::select! {
                r = strata_meta::election::acquire(&self.store, &session, &key, value.clone()) => r,
                () = self.cancel.cancelled() => return,
            };
            let l = match r {
                Ok(l) => l,
                Err(e) => {
                    debug!(error = %e, "leader election failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = self.cancel.cancelled() => return,
                    }
                    continue;
                }
            };
            info!(broker = %me.broker_id, "became leader");
            self.is_leader.store(true, Ordering::Release);
            self.metrics.is_leader.set(1);
            *self.leadership.lock().await = Some(l.clone());
            let duties = self.cancel.child_token();
            if let Some((bookies, opts)) = self.opts.autorecovery.clone() {
                let meta = self.meta.clone();
                let c = duties.clone();
                self.tasks.spawn(async move {
                    strata_ledger::autorecovery::run(meta, bookies, opts, c).await;
                });
            }
            let mut tick = tokio::time::interval(self.opts.balance_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut last_plan: Option<bundle::Move> = None;
            let mut last_move: Option<Instant> = None;
            loop {
                tokio::select! {
                    () = l.lost() => {
                        warn!("leadership lost with the session");
                        break;
                    }
                    () = duties.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = self.balance(&mut last_plan, &mut last_move).await {
                            debug!(error = %e, "balancing skipped");
                        }
                    }
                }
            }
            duties.cancel();
            self.is_leader.store(false, Ordering::Release);
            self.metrics.is_leader.set(0);
            self.leadership.lock().await.take();
        }
    }

    /// One balancing round of the leader.
    async fn balance(
        &self,
        last_plan: &mut Option<bundle::Move>,
        last_move: &mut Option<Instant>,
    ) -> Result<()> {
        let live: Vec<String> = self
            .meta
            .brokers()
            .await
            .map_err(meta_err)?
            .into_iter()
            .map(|b| b.broker_id)
            .collect();
        let mut owned: BTreeMap<String, Vec<NsBundle>> = BTreeMap::new();
        let prefix = format!("{}/bundle-owners/", self.root());
        for (k, o, _) in self
            .meta
            .list::<BundleOwner>(&format!("{}/bundle-owners", self.root()))
            .await
            .map_err(meta_err)?
        {
            if o.disabled {
                continue;
            }
            let Some(b) = parse_bundle_key(k.strip_prefix(&prefix).unwrap_or(&k)) else {
                continue;
            };
            owned.entry(o.broker_id).or_default().push(b);
        }
        let moved = {
            let mut m = self.moved.lock();
            m.retain(|_, (at, _, _)| at.elapsed() < MOVED_COOLDOWN);
            m.clone()
        };
        // Moves in flight (not executed yet, or the bundle not picked up yet) count on their
        // target, so one imbalance is not corrected twice.
        for (b, (_, from, to)) in &moved {
            let holder = owned
                .iter()
                .find(|(_, v)| v.contains(b))
                .map(|(k, _)| k.clone());
            let in_flight = holder.as_ref().is_none_or(|h| h == from);
            if in_flight {
                if let Some(h) = holder
                    && let Some(v) = owned.get_mut(&h)
                {
                    v.retain(|x| x != b);
                }
                owned.entry(to.clone()).or_default().push(b.clone());
            }
        }
        let recent = |b: &NsBundle| moved.contains_key(b);
        let plan = bundle::plan_move(&live, &owned, &recent, self.opts.balance_threshold);
        // Act only on an imbalance seen twice in a row, and at most once per cooldown.
        let seen_before =
            matches!((&plan, &*last_plan), (Some(p), Some(q)) if p.from == q.from && p.to == q.to);
        *last_plan = plan.clone();
        let Some(m) = plan else { return Ok(()) };
        if !seen_before || last_move.is_some_and(|t| t.elapsed() < self.opts.balance_interval * 3) {
            return Ok(());
        }
        let Some(to) = self
            .meta
            .brokers()
            .await
            .map_err(meta_err)?
            .into_iter()
            .find(|b| b.broker_id == m.to)
        else {
            return Ok(());
        };
        let req = UnloadRequest {
            assigned_broker_id: to.broker_id.clone(),
            assigned_broker_url: to.pulsar_url.clone(),
        };
        let key = format!(
            "{}{}/{}/{}",
            self.unload_prefix(&m.from),
            encode_segment(&m.bundle.tenant),
            encode_segment(&m.bundle.namespace),
            m.bundle.range
        );
        let bytes =
            serde_json::to_vec(&req).map_err(|e| MetaError::InvalidArgument(e.to_string()))?;
        self.store
            .put(&key, Bytes::from(bytes), Expected::Any)
            .await
            .map_err(meta_err)?;
        self.moved.lock().insert(
            m.bundle.clone(),
            (Instant::now(), m.from.clone(), m.to.clone()),
        );
        self.pending.lock().push((m.to.clone(), Instant::now()));
        self.assignments
            .lock()
            .insert(m.bundle.clone(), (to.clone(), Instant::now()));
        *last_move = Some(Instant::now());
        *last_plan = None;
        info!(bundle = %m.bundle, from = %m.from, to = %m.to, "balancing: asked the owner to unload a bundle");
        Ok(())
    }

    async fn unload_request_loop(self: Arc<Self>) {
        let Some(me) = self.me() else { return };
        let prefix = self.unload_prefix(&me.broker_id);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.cancel.cancelled() => return,
            }
            let Ok(scan) = self.store.scan(&prefix).await else {
                continue;
            };
            for kv in scan.entries {
                let rel = kv.key.strip_prefix(&prefix).unwrap_or(&kv.key);
                if let Some(b) = parse_bundle_key(rel) {
                    let req: UnloadRequest =
                        serde_json::from_slice(&kv.value.value).unwrap_or_default();
                    let assigned = (!req.assigned_broker_url.is_empty())
                        .then(|| req.assigned_broker_url.clone());
                    if self.release(&b, assigned).await {
                        info!(bundle = %b, to = %req.assigned_broker_id, "bundle unloaded on the leader's request");
                    }
                }
                let _ = self.store.delete(&kv.key, Expected::Any).await;
            }
        }
    }

    async fn load_report_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.opts.load_report_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut rates = LoadRates::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.write_load_report(&mut rates).await;
                    self.reclaim_bundles().await;
                }
                () = self.cancel.cancelled() => return,
            }
        }
    }

    async fn write_load_report(&self, rates: &mut LoadRates) {
        let (Some(me), Some(svc)) = (self.me(), self.service()) else {
            return;
        };
        let session = self.session();
        if session.is_lost() {
            return;
        }
        let topics = svc.loaded_topics().await;
        let (mut msg_in, mut msg_out) = (0u64, 0u64);
        for t in &topics {
            msg_in += t.series().in_messages.get();
            msg_out += t.series().out_messages.get();
        }
        let (rate_in, rate_out) = rates.update(msg_in, msg_out);
        let report = LoadReport {
            broker_id: me.broker_id.clone(),
            pulsar_url: me.pulsar_url.clone(),
            http_url: me.http_url.clone(),
            bundles: self.owned.lock().len(),
            topics: topics.len(),
            msg_rate_in: rate_in,
            msg_rate_out: rate_out,
            timestamp_ms: now_ms(),
        };
        let Ok(bytes) = serde_json::to_vec(&report) else {
            return;
        };
        if let Err(e) = self
            .store
            .put_ephemeral(
                &session,
                &self.load_report_key(&me.broker_id),
                Bytes::from(bytes),
                Expected::Any,
                EphemeralOptions::default(),
            )
            .await
        {
            debug!(error = %e, "writing the load report failed");
        }
    }

    /// Graceful stop: leaves the leadership, deregisters (so nothing new is assigned here),
    /// releases every bundle (their topics are closed, the owner keys deleted so other brokers
    /// take over at once), stops the background tasks and closes the session.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(svc) = self.service() {
            svc.set_ready(false);
        }
        // Resign first (another broker takes the leadership at once), then stop the tasks.
        if let Some(l) = self.leadership.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), l.resign()).await;
            info!("leadership resigned");
        }
        self.cancel.cancel();
        let session = self.session();
        if let Some(me) = self.me() {
            let _ = tokio::time::timeout(
                Duration::from_secs(3),
                self.store.delete_ephemeral(
                    &session,
                    &self.meta.paths().broker(&me.broker_id),
                    Expected::Any,
                ),
            )
            .await;
        }
        let bundles = self.owned_bundles();
        let n = bundles.len();
        if tokio::time::timeout(
            Duration::from_secs(20),
            futures::future::join_all(bundles.iter().map(|b| self.release(b, None))),
        )
        .await
        .is_err()
        {
            warn!("releasing bundles did not finish within 20s");
        }
        info!(bundles = n, "released all bundles");
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            warn!("cluster tasks did not stop within 5s");
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            self.store.close_session(&self.session()),
        )
        .await;
    }
}

#[derive(Default)]
struct LoadRates {
    last: Option<(Instant, u64, u64)>,
}

impl LoadRates {
    fn update(&mut self, msg_in: u64, msg_out: u64) -> (f64, f64) {
        let now = Instant::now();
        let r = match self.last {
            Some((at, i, o)) => {
                let secs = now.duration_since(at).as_secs_f64().max(0.001);
                (
                    msg_in.saturating_sub(i) as f64 / secs,
                    msg_out.saturating_sub(o) as f64 / secs,
                )
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, msg_in, msg_out));
        r
    }
}

/// Parses `{tenant}/{ns}/{range}` (escaped segments).
fn parse_bundle_key(rel: &str) -> Option<NsBundle> {
    let mut it = rel.split('/');
    let (t, ns, r) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    Some(NsBundle {
        tenant: decode_segment(t),
        namespace: decode_segment(ns),
        range: BundleRange::parse(r)?,
    })
}

#[async_trait::async_trait]
impl Ownership for ClusterOwnership {
    async fn owner(&self, topic: &TopicName) -> Result<Owner> {
        self.resolve(topic, true).await
    }

    async fn lookup(&self, topic: &TopicName, authoritative: bool) -> Result<Owner> {
        self.resolve(topic, authoritative).await
    }

    async fn fenced(&self, topic: &TopicName) {
        self.metrics.fenced.inc();
        if let Ok(b) = self.bundle_for(topic).await {
            self.release(&b, None).await;
        }
    }

    async fn unload_bundle(&self, tenant: &str, ns: &str, bundle: &str) -> Result<Owner> {
        let range = BundleRange::parse(bundle)
            .ok_or_else(|| BrokerError::PreconditionFailed(format!("invalid bundle {bundle:?}")))?;
        let b = NsBundle {
            tenant: tenant.to_owned(),
            namespace: ns.to_owned(),
            range,
        };
        if self.release(&b, None).await {
            return Ok(Owner::Local);
        }
        match self.read_owner(&b).await? {
            Some((o, _)) if self.me().is_some_and(|m| m.broker_id != o.broker_id) => {
                Ok(Owner::Remote {
                    broker_url: o.broker_url,
                    http_url: o.http_url,
                    broker_url_tls: o.broker_url_tls,
                })
            }
            _ => Ok(Owner::Local),
        }
    }
}

#[cfg(test)]
mod tests;
