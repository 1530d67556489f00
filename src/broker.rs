//! `strata broker`: a stateless broker of a cluster. Metadata and ownership in etcd (the store
//! given by `--metadata`), ledgers replicated on the bookies registered there.
//!
//! Requires `strata init-cluster` to have run for `--cluster`. The broker id is
//! `{advertised-address}:{broker-port}`; it registers `/strata/brokers/{id}` (ephemeral), owns
//! namespace bundles through ephemeral keys (see `strata_broker::cluster`), and on SIGTERM
//! releases its bundles (so another broker takes over at once), closes ledgers and leaves.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use strata_broker::cluster::{ClusterOptions, ClusterOwnership};
use strata_broker::config::BrokerConfig;
use strata_broker::ledger_client::{BookieLedgerStorage, Quorum, RegisteredBookies};
use strata_broker::server::BrokerServer;
use strata_broker::service::BrokerService;
use strata_meta::model::{ClusterData, MetaClient, Paths};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Flags of `strata broker`. Flags (or their `STRATA_*` environment variables) override the
/// config file, which overrides defaults.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BrokerArgs {
    /// TOML config file (keys: `metadata`, `cluster`, `ensemble_size`, `write_quorum`,
    /// `ack_quorum`, `session_ttl_secs`, `autorecovery_grace_secs`,
    /// `autorecovery_objstore_grace_secs`, and `[broker]` /
    /// `[security]` tables as in `strata standalone`).
    #[arg(long, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Metadata store: `etcd://host:port[,host:port...]`.
    #[arg(long, env = "STRATA_METADATA")]
    pub metadata: Option<String>,
    /// Cluster name (as given to `strata init-cluster`).
    #[arg(long, env = "STRATA_CLUSTER")]
    pub cluster: Option<String>,
    /// Pulsar protocol port (default 6650; 0 picks a free port).
    #[arg(long, env = "STRATA_BROKER_PORT")]
    pub broker_port: Option<u16>,
    /// HTTP port: lookup, admin, /metrics, /health, /ready (default 8080; 0 picks a free port).
    #[arg(long, env = "STRATA_HTTP_PORT")]
    pub http_port: Option<u16>,
    /// Pulsar protocol TLS port (`pulsar+ssl://`; needs `--tls-cert-file`/`--tls-key-file`;
    /// 0 picks a free port).
    #[arg(long, env = "STRATA_BROKER_PORT_TLS")]
    pub broker_port_tls: Option<u16>,
    /// HTTPS port (needs the TLS certificate flags; 0 picks a free port).
    #[arg(long, env = "STRATA_HTTP_PORT_TLS")]
    pub http_port_tls: Option<u16>,
    /// Address to bind (default 127.0.0.1).
    #[arg(long, env = "STRATA_BIND_ADDRESS")]
    pub bind_address: Option<String>,
    /// Address advertised to clients and other brokers (default 127.0.0.1).
    #[arg(long, env = "STRATA_ADVERTISED_ADDRESS")]
    pub advertised_address: Option<String>,
    /// Advertised listeners: `name:pulsar://host:port,name:pulsar+ssl://host:port,...`.
    #[arg(long, env = "STRATA_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,
    /// The advertised listener whose URLs are this broker's own (default: the first).
    #[arg(long, env = "STRATA_INTERNAL_LISTENER_NAME")]
    pub internal_listener_name: Option<String>,
    /// Ensemble size E of new ledgers (cluster default; default 3).
    #[arg(long, env = "STRATA_ENSEMBLE_SIZE")]
    pub ensemble_size: Option<usize>,
    /// Write quorum Qw of new ledgers (default 2).
    #[arg(long, env = "STRATA_WRITE_QUORUM")]
    pub write_quorum: Option<usize>,
    /// Ack quorum Qa of new ledgers (default 2).
    #[arg(long, env = "STRATA_ACK_QUORUM")]
    pub ack_quorum: Option<usize>,
    /// TTL of the broker's metadata session: registration and bundle ownership expire this long
    /// after the broker died (default 10).
    #[arg(long, env = "STRATA_SESSION_TTL_SECS")]
    pub session_ttl_secs: Option<u64>,
    /// Re-replicate the ledgers of a bookie gone for longer than this (run by the leader;
    /// default 30).
    #[arg(long, env = "STRATA_AUTORECOVERY_GRACE_SECS")]
    pub autorecovery_grace_secs: Option<u64>,
    /// The same for a bookie on object storage (`strata bookie --storage-url`): its uploaded
    /// segments come back with it even on a new disk, so it is replaced only after this long
    /// (default 1800).
    #[arg(long, env = "STRATA_AUTORECOVERY_OBJSTORE_GRACE_SECS")]
    pub autorecovery_objstore_grace_secs: Option<u64>,
    /// Authentication, authorization and TLS (a token key turns authentication and
    /// authorization on).
    #[command(flatten)]
    pub security: strata_auth::SecurityArgs,
    /// Tiered storage.
    #[command(flatten)]
    pub offload: crate::offload_args::OffloadArgs,
}

/// The config file of `strata broker`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerFileConfig {
    /// Metadata store URL.
    pub metadata: Option<String>,
    /// Cluster name.
    pub cluster: Option<String>,
    /// E.
    pub ensemble_size: usize,
    /// Qw.
    pub write_quorum: usize,
    /// Qa.
    pub ack_quorum: usize,
    /// Session TTL in seconds.
    pub session_ttl_secs: u64,
    /// Auto-recovery grace in seconds.
    pub autorecovery_grace_secs: u64,
    /// Auto-recovery grace of bookies on object storage in seconds.
    pub autorecovery_objstore_grace_secs: u64,
    /// Broker settings.
    pub broker: BrokerConfig,
    /// Security settings.
    pub security: strata_auth::SecurityConfig,
    /// Tiered storage (`[offload]`).
    pub offload: strata_broker::offload::OffloadConfig,
}

impl Default for BrokerFileConfig {
    fn default() -> Self {
        Self {
            metadata: None,
            cluster: None,
            ensemble_size: 3,
            write_quorum: 2,
            ack_quorum: 2,
            session_ttl_secs: 10,
            autorecovery_grace_secs: 30,
            autorecovery_objstore_grace_secs: 30 * 60,
            broker: BrokerConfig::default(),
            security: strata_auth::SecurityConfig::default(),
            offload: Default::default(),
        }
    }
}

/// Everything `strata broker` runs with, after file → environment → flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Metadata store URL.
    pub metadata: String,
    /// Cluster name.
    pub cluster: String,
    /// Cluster default quorum of new ledgers.
    pub quorum: Quorum,
    /// Session TTL.
    pub session_ttl: Duration,
    /// Auto-recovery grace.
    pub autorecovery_grace: Duration,
    /// Auto-recovery grace of bookies on object storage.
    pub autorecovery_objstore_grace: Duration,
    /// Broker settings.
    pub broker: BrokerConfig,
    /// Security settings.
    pub security: strata_auth::SecurityConfig,
    /// Tiered storage.
    pub offload: strata_broker::offload::OffloadConfig,
}

impl Settings {
    /// Loads the config file (if any) and applies flags on top; checks the quorum.
    pub fn load(args: &BrokerArgs) -> anyhow::Result<Self> {
        let mut cfg = match &args.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("read config file {}", p.display()))?;
                toml::from_str::<BrokerFileConfig>(&text)
                    .with_context(|| format!("parse config file {}", p.display()))?
            }
            None => BrokerFileConfig::default(),
        };
        let Some(metadata) = args.metadata.clone().or(cfg.metadata.take()) else {
            bail!("--metadata etcd://host:port is required");
        };
        let Some(cluster) = args.cluster.clone().or(cfg.cluster.take()) else {
            bail!("--cluster NAME is required");
        };
        let quorum = Quorum {
            ensemble: args.ensemble_size.unwrap_or(cfg.ensemble_size),
            write: args.write_quorum.unwrap_or(cfg.write_quorum),
            ack: args.ack_quorum.unwrap_or(cfg.ack_quorum),
        };
        if !quorum.is_valid() {
            bail!(
                "invalid quorum E={} Qw={} Qa={}: need 1 <= Qa <= Qw <= E <= {}",
                quorum.ensemble,
                quorum.write,
                quorum.ack,
                strata_broker::ledger_client::MAX_ENSEMBLE
            );
        }
        let mut broker = cfg.broker;
        if let Some(p) = args.broker_port {
            broker.broker_port = p;
        }
        if let Some(p) = args.http_port {
            broker.http_port = p;
        }
        if args.broker_port_tls.is_some() {
            broker.broker_port_tls = args.broker_port_tls;
        }
        if args.http_port_tls.is_some() {
            broker.http_port_tls = args.http_port_tls;
        }
        if let Some(a) = &args.bind_address {
            broker.bind_address = a.clone();
        }
        if let Some(a) = &args.advertised_address {
            broker.advertised_address = a.clone();
        }
        if let Some(a) = &args.advertised_listeners {
            broker.advertised_listeners = Some(a.clone());
        }
        if let Some(a) = &args.internal_listener_name {
            broker.internal_listener_name = Some(a.clone());
        }
        broker.listeners().context("advertised listeners")?;
        broker.cluster_name = cluster.clone();
        let mut security = cfg.security;
        security.apply_args(&args.security);
        let mut offload = cfg.offload;
        args.offload.apply(&mut offload);
        Ok(Self {
            offload,
            metadata,
            cluster,
            quorum,
            session_ttl: Duration::from_secs(
                args.session_ttl_secs.unwrap_or(cfg.session_ttl_secs).max(1),
            ),
            autorecovery_grace: Duration::from_secs(
                args.autorecovery_grace_secs
                    .unwrap_or(cfg.autorecovery_grace_secs),
            ),
            autorecovery_objstore_grace: Duration::from_secs(
                args.autorecovery_objstore_grace_secs
                    .unwrap_or(cfg.autorecovery_objstore_grace_secs),
            ),
            broker,
            security,
        })
    }
}

/// Runs a cluster broker until `shutdown` fires.
pub async fn run(args: BrokerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = Settings::load(&args)?;
    let security = strata_auth::Security::from_config(&settings.security)
        .context("configure authentication/TLS")?;
    let store_cfg = strata_meta::StoreConfig::from_url(&settings.metadata)
        .with_context(|| format!("--metadata {}", settings.metadata))?;
    let store = tokio::select! {
        s = store_cfg.open() => s.with_context(|| format!("open metadata store {}", settings.metadata))?,
        () = shutdown.cancelled() => return Ok(()),
    };
    let res = run_with_store(settings, security, store.clone(), shutdown, started).await;
    store.close().await;
    res
}

async fn run_with_store(
    settings: Settings,
    security: strata_auth::Security,
    store: Arc<dyn strata_meta::MetadataStore>,
    shutdown: CancellationToken,
    started: Instant,
) -> anyhow::Result<()> {
    let meta = MetaClient::new(store.clone(), Paths::default());
    let cluster_key = meta.paths().cluster(&settings.cluster);
    if meta
        .get::<ClusterData>(&cluster_key)
        .await
        .context("read the cluster record")?
        .is_none()
    {
        bail!(
            "cluster {:?} is not initialized in {}: run `strata init-cluster --metadata {} --cluster {}` first",
            settings.cluster,
            settings.metadata,
            settings.metadata,
            settings.cluster
        );
    }
    let bookies = Arc::new(RegisteredBookies::new(meta.clone()));
    let owner_name = format!(
        "{}:{}",
        settings.broker.advertised_address, settings.broker.broker_port
    );
    let ledgers: Arc<dyn strata_broker::storage::LedgerStorage> = Arc::new(
        BookieLedgerStorage::new(meta.clone(), bookies.clone(), settings.quorum, &owner_name),
    );
    // A namespace persistence policy (E/Qw/Qa) wins over the cluster default: the managed
    // ledger passes it to `create` (one ledger client for every quorum).
    let cluster_opts = ClusterOptions {
        session_ttl: settings.session_ttl,
        autorecovery: Some((
            bookies.clone(),
            strata_broker::cluster::AutoRecoveryOptions {
                grace: settings.autorecovery_grace,
                objstore_grace: settings.autorecovery_objstore_grace,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let session = ClusterOwnership::open_session(&store, &cluster_opts)
        .await
        .context("open a metadata session")?;
    let auth_on = security.authentication_enabled();
    let (service, ownership) =
        BrokerService::builder(settings.broker.clone(), ledgers, meta.clone())
            .security(Arc::new(security))
            .offloader(crate::offload_args::open(&settings.offload)?)
            .build_with(|svc| {
                ClusterOwnership::new(store.clone(), meta.clone(), cluster_opts, session, svc)
            });
    service.set_ready(false);
    if let Ok(list) = meta.bookies().await {
        service.set_bookies(list.into_iter().map(|b| b.bookie_id.0).collect());
    }
    let server = BrokerServer::start(service.clone())
        .await
        .context("bind broker listeners")?;
    let info = match ownership.start(&service).await {
        Ok(i) => i,
        Err(e) => {
            ownership.shutdown().await;
            server.shutdown().await;
            return Err(e).context("register the broker");
        }
    };
    info!(
        broker_id = %info.broker_id,
        pulsar = %info.pulsar_url,
        http = %info.http_url,
        cluster = %settings.cluster,
        ensemble = settings.quorum.ensemble,
        write_quorum = settings.quorum.write,
        ack_quorum = settings.quorum.ack,
        session_ttl_s = settings.session_ttl.as_secs(),
        authentication = auth_on,
        startup_ms = started.elapsed().as_millis() as u64,
        "broker ready"
    );
    // Keep the admin API's bookie list fresh.
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => match meta.bookies().await {
                Ok(list) => {
                    let writable = list.iter().filter(|b| !b.read_only).count();
                    if writable < settings.quorum.ensemble {
                        warn!(writable, ensemble = settings.quorum.ensemble, "not enough bookies for new ledgers");
                    }
                    service.set_bookies(list.into_iter().map(|b| b.bookie_id.0).collect());
                }
                Err(e) => warn!(error = %e, "listing bookies failed"),
            },
        }
    }
    info!("shutting down: releasing bundles");
    ownership.shutdown().await;
    server.shutdown().await;
    info!("broker stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_quorum_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(
            &path,
            "metadata = \"etcd://127.0.0.1:1\"\ncluster = \"c1\"\nensemble_size = 4\n[broker]\nhttp_port = 9000\n",
        )
        .unwrap();
        let args = BrokerArgs {
            config: Some(path.clone()),
            broker_port: Some(7000),
            write_quorum: Some(3),
            ..Default::default()
        };
        let s = Settings::load(&args).unwrap();
        assert_eq!(s.metadata, "etcd://127.0.0.1:1");
        assert_eq!(s.cluster, "c1");
        assert_eq!(s.broker.cluster_name, "c1");
        assert_eq!((s.quorum.ensemble, s.quorum.write, s.quorum.ack), (4, 3, 2));
        assert_eq!(s.broker.broker_port, 7000);
        assert_eq!(s.broker.http_port, 9000);
        assert_eq!(s.session_ttl, Duration::from_secs(10));
        let bad = BrokerArgs {
            config: Some(path),
            ack_quorum: Some(5),
            ..Default::default()
        };
        assert!(Settings::load(&bad).is_err());
        assert!(Settings::load(&BrokerArgs::default()).is_err());
        let err = toml::from_str::<BrokerFileConfig>("ensemble = 3\n").unwrap_err();
        assert!(err.to_string().contains("ensemble"), "{err}");
    }
}
