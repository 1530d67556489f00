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
//!
//! Files: this one holds [`ClusterOwnership`]'s state, construction, start/shutdown and the
//! [`Ownership`] answers; `ownership.rs` bundle lookup, acquisition and release (and the
//! leader's unload requests executed here); `session.rs` session loss and re-establishment;
//! `leadership.rs` assignment and balancing; `load_report.rs` the load reports; `metrics.rs`.

pub mod admin;
pub mod bundle;
pub mod fanout;
pub mod forward;
mod leadership;
mod load_report;
mod metrics;
mod ownership;
mod session;

use load_report::LoadRates;
pub use load_report::LoadReport;
use metrics::ClusterMetrics;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use strata_common::backoff::BackoffPolicy;
use strata_common::clock::now_ms;
pub use strata_ledger::autorecovery::AutoRecoveryOptions;
use strata_ledger::client::RegisteredBookies;
use strata_meta::model::{
    BrokerInfo, BundleOwner, BundleRange, BundlesData, MetaClient, decode_segment, encode_segment,
};
use strata_meta::{Expected, MetadataStore, Session};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

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
    /// The service this ownership serves (set at construction: the service is built around it).
    service: Weak<BrokerService>,
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
    /// Opens the broker's session on `store` (its lease; `opts.session_ttl`).
    pub async fn open_session(
        store: &Arc<dyn MetadataStore>,
        opts: &ClusterOptions,
    ) -> std::result::Result<Session, strata_meta::MetaError> {
        store.create_session(opts.session_ttl).await
    }

    /// The ownership of the broker `service` over `session` on `store` (keys under `meta`'s
    /// paths); built by [`crate::service::BrokerServiceBuilder::build_with`].
    pub fn new(
        store: Arc<dyn MetadataStore>,
        meta: MetaClient,
        opts: ClusterOptions,
        session: Session,
        service: Weak<BrokerService>,
    ) -> Arc<Self> {
        let (session_gen, _) = watch::channel(0);
        Arc::new(Self {
            store,
            meta,
            opts,
            session: RwLock::new(session),
            session_gen,
            me: RwLock::new(None),
            service,
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
        })
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
            listeners: service.listeners().all().clone(),
        };
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
        self.service.upgrade()
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
