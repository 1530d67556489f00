//! `strata standalone`: a broker, one bookie and the embedded metadata store in one process.
//!
//! Layout under `--data-dir`: `metadata.redb` (the metadata store), `bookie/` (journal and
//! ledger segments). The broker's ledger client calls the bookie directly (in-process, no
//! network); the bookie also serves gRPC on a loopback port chosen at start, for tools. Ledgers
//! name it by the stable id `standalone-bookie`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;
use strata_bookie::BookieClient;
use strata_bookie::registration::NoopRegistrar;
use strata_bookie::{BookieNode, BookieOptions, StorageConfig};
use strata_broker::config::BrokerConfig;
use strata_broker::ledger_client::{BookieLedgerStorage, InProcessBookie, Quorum};
use strata_broker::server::BrokerServer;
use strata_broker::service::BrokerService;
use strata_meta::LocalStore;
use strata_meta::model::{MetaClient, Paths};
use strata_proto::BookieId;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Flags of `strata standalone`. Flags (or their `STRATA_*` environment variables) override the
/// config file, which overrides defaults.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StandaloneArgs {
    /// TOML config file (keys: `data_dir`, and a `[broker]` table with the broker settings).
    #[arg(long, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (default `./data`).
    #[arg(long, env = "STRATA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Pulsar protocol port (default 6650; 0 picks a free port).
    #[arg(long, env = "STRATA_BROKER_PORT")]
    pub broker_port: Option<u16>,
    /// HTTP port: lookup, admin, /metrics (default 8080; 0 picks a free port).
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
    #[arg(long)]
    pub bind_address: Option<String>,
    /// Address advertised to clients in lookups (default 127.0.0.1).
    #[arg(long)]
    pub advertised_address: Option<String>,
    /// Advertised listeners: `name:pulsar://host:port,name:pulsar+ssl://host:port,...`.
    #[arg(long, env = "STRATA_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,
    /// The advertised listener whose URLs are this broker's own (default: the first).
    #[arg(long, env = "STRATA_INTERNAL_LISTENER_NAME")]
    pub internal_listener_name: Option<String>,
    /// Authentication, authorization and TLS (a token key turns authentication and
    /// authorization on).
    #[command(flatten)]
    pub security: strata_auth::SecurityArgs,
    /// Tiered storage.
    #[command(flatten)]
    pub offload: crate::offload_args::OffloadArgs,
    /// Object storage for the embedded bookie's sealed segments (config `[bookie] storage_url`).
    #[arg(long, env = "STRATA_BOOKIE_STORAGE_URL")]
    pub bookie_storage_url: Option<String>,
    /// S3-compatible endpoint of `--bookie-storage-url`.
    #[arg(long)]
    pub bookie_storage_endpoint: Option<String>,
    /// S3 region of `--bookie-storage-url`.
    #[arg(long)]
    pub bookie_storage_region: Option<String>,
    /// Bound of the embedded bookie's local copies of sealed segments (default 4 GiB).
    #[arg(long)]
    pub bookie_segment_cache_bytes: Option<u64>,
}

/// `[bookie]` of the standalone config file: the embedded bookie on object storage.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StandaloneBookieConfig {
    /// Object storage URL for sealed segments (none: local disk only).
    pub storage_url: Option<String>,
    /// S3-compatible endpoint.
    pub storage_endpoint: Option<String>,
    /// S3 region.
    pub storage_region: Option<String>,
    /// Bound of the local copies of sealed segments.
    pub segment_cache_bytes: Option<u64>,
    /// Most bytes of written entries the bookie holds in memory before they are in segments
    /// (adds wait for a flush beyond it); the largest share of the standalone's memory under a
    /// write load.
    pub write_cache_bytes: Option<usize>,
    /// Write the journal with direct I/O (`O_DIRECT`); on by default.
    pub journal_direct_io: Option<bool>,
    /// Write segments with direct I/O (`O_DIRECT`); on by default.
    pub segment_direct_io: Option<bool>,
    /// Journal files hold the entries, each written to the disk once (on by default; off with
    /// object storage, where segments are what gets uploaded).
    pub journal_holds_entries: Option<bool>,
}

/// The config file of `strata standalone`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StandaloneConfig {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Broker settings.
    pub broker: BrokerConfig,
    /// Security settings (`[security]`: `auth_token_secret_key_file`, `superuser_roles`, ...).
    pub security: strata_auth::SecurityConfig,
    /// Tiered storage (`[offload]`: `url`, `endpoint`, `region`, block and cache sizes, ...).
    pub offload: strata_broker::offload::OffloadConfig,
    /// The embedded bookie (`[bookie]`: `storage_url`, `storage_endpoint`, `storage_region`,
    /// `segment_cache_bytes`, `write_cache_bytes`).
    pub bookie: StandaloneBookieConfig,
}

impl StandaloneConfig {
    /// Loads the file (if any) and applies flags on top.
    #[cfg(test)]
    pub fn load(args: &StandaloneArgs) -> anyhow::Result<(PathBuf, BrokerConfig)> {
        Self::load_all(args).map(|(d, c)| (d, c.broker))
    }

    /// Loads the file (if any) and applies flags on top, security settings included.
    pub fn load_all(args: &StandaloneArgs) -> anyhow::Result<(PathBuf, StandaloneConfig)> {
        let mut cfg = match &args.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("read config file {}", p.display()))?;
                toml::from_str::<StandaloneConfig>(&text)
                    .with_context(|| format!("parse config file {}", p.display()))?
            }
            None => StandaloneConfig::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(cfg.data_dir.take())
            .unwrap_or_else(|| PathBuf::from("./data"));
        if let Some(p) = args.broker_port {
            cfg.broker.broker_port = p;
        }
        if let Some(p) = args.http_port {
            cfg.broker.http_port = p;
        }
        if args.broker_port_tls.is_some() {
            cfg.broker.broker_port_tls = args.broker_port_tls;
        }
        if args.http_port_tls.is_some() {
            cfg.broker.http_port_tls = args.http_port_tls;
        }
        if let Some(a) = &args.bind_address {
            cfg.broker.bind_address = a.clone();
        }
        if let Some(a) = &args.advertised_address {
            cfg.broker.advertised_address = a.clone();
        }
        if let Some(a) = &args.advertised_listeners {
            cfg.broker.advertised_listeners = Some(a.clone());
        }
        if let Some(a) = &args.internal_listener_name {
            cfg.broker.internal_listener_name = Some(a.clone());
        }
        cfg.broker.listeners().context("advertised listeners")?;
        cfg.security.apply_args(&args.security);
        args.offload.apply(&mut cfg.offload);
        let b = &mut cfg.bookie;
        for (flag, field) in [
            (&args.bookie_storage_url, &mut b.storage_url),
            (&args.bookie_storage_endpoint, &mut b.storage_endpoint),
            (&args.bookie_storage_region, &mut b.storage_region),
        ] {
            if flag.is_some() {
                field.clone_from(flag);
            }
        }
        if args.bookie_segment_cache_bytes.is_some() {
            b.segment_cache_bytes = args.bookie_segment_cache_bytes;
        }
        Ok((data_dir, cfg))
    }
}

const BOOKIE_ID: &str = "standalone-bookie";

/// Runs standalone until `shutdown` fires.
pub async fn run(args: StandaloneArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = Instant::now();
    let (data_dir, cfg) = StandaloneConfig::load_all(&args)?;
    let (broker_cfg, security_cfg) = (cfg.broker, cfg.security);
    let offloader = crate::offload_args::open(&cfg.offload)?;
    let security = strata_auth::Security::from_config(&security_cfg)
        .context("configure authentication/TLS")?;
    let auth_on = security.authentication_enabled();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("create data directory {}", data_dir.display()))?;
    let store = LocalStore::open(data_dir.join("metadata.redb"))
        .await
        .context("open metadata store")?;
    let store: Arc<dyn strata_meta::MetadataStore> = Arc::new(store);

    let bookie = start_bookie(&data_dir, &cfg.bookie).await?;
    let bookie_addr = bookie.grpc_addr.to_string();

    let ledgers = BookieLedgerStorage::new(
        MetaClient::new(store.clone(), Paths::default()),
        // The broker calls its bookie directly (no gRPC, protobuf or HTTP/2 per entry); the
        // bookie's gRPC port stays open for tools.
        Arc::new(InProcessBookie {
            id: BookieId(BOOKIE_ID.into()),
            client: BookieClient::local(bookie.local()),
        }),
        Quorum {
            ensemble: 1,
            write: 1,
            ack: 1,
        },
        "standalone",
    );
    let service = BrokerService::builder(
        broker_cfg,
        Arc::new(ledgers),
        MetaClient::new(store.clone(), Paths::default()),
    )
    .security(Arc::new(security))
    .offloader(offloader)
    .build();
    service.set_bookies(vec![BOOKIE_ID.to_owned()]);
    let bookie_metrics = bookie.metrics.clone();
    service
        .metrics
        .add_source(Arc::new(move |out: &mut String| {
            bookie_metrics.encode_series(out)
        }));
    service
        .create_namespace("public", "default")
        .await
        .context("create namespace public/default")?;
    let server = match BrokerServer::start(service).await {
        Ok(s) => s,
        Err(e) => {
            bookie.shutdown().await;
            return Err(e).context("bind broker listeners");
        }
    };
    info!(
        pulsar = %format!("pulsar://{}", server.broker_addr),
        http = %format!("http://{}", server.http_addr),
        pulsar_tls = ?server.broker_tls_addr.map(|a| format!("pulsar+ssl://{a}")),
        https = ?server.http_tls_addr.map(|a| format!("https://{a}")),
        bookie = %bookie_addr,
        data_dir = %data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        authentication = auth_on,
        "strata standalone ready"
    );
    shutdown.cancelled().await;
    info!("shutting down");
    server.shutdown().await;
    bookie.shutdown().await;
    info!("standalone stopped");
    Ok(())
}

async fn start_bookie(
    data_dir: &Path,
    bcfg: &StandaloneBookieConfig,
) -> anyhow::Result<BookieNode> {
    let opts = BookieOptions {
        storage: storage_config(data_dir, bcfg)?,
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: None,
        advertised_address: None,
        registration_interval: Duration::from_secs(60),
    };
    BookieNode::start(opts, Arc::new(NoopRegistrar))
        .await
        .context("start bookie")
}

/// The embedded bookie's storage under `data_dir/bookie`, with the `[bookie]` settings.
fn storage_config(data_dir: &Path, bcfg: &StandaloneBookieConfig) -> anyhow::Result<StorageConfig> {
    let mut storage = StorageConfig::new(data_dir.join("bookie"));
    if let Some(bytes) = bcfg.write_cache_bytes {
        anyhow::ensure!(
            bytes >= 1 << 20,
            "[bookie] write_cache_bytes = {bytes}: it must be at least 1 MiB (1048576)"
        );
        storage.write_cache_bytes = bytes;
        storage.flush_bytes = storage.flush_bytes.min(bytes / 2);
    }
    if let Some(direct) = bcfg.journal_direct_io {
        storage.journal_direct_io = direct;
    }
    if let Some(direct) = bcfg.segment_direct_io {
        storage.segment_direct_io = direct;
    }
    if let Some(holds) = bcfg.journal_holds_entries {
        storage.journal_holds_entries = holds;
    }
    let objects = strata_bookie::cli::ObjectStorageArgs {
        storage_url: bcfg.storage_url.clone(),
        storage_endpoint: bcfg.storage_endpoint.clone(),
        storage_region: bcfg.storage_region.clone(),
        segment_cache_bytes: bcfg.segment_cache_bytes.unwrap_or(4 << 30),
        segment_max_age: Duration::from_secs(300),
    };
    Ok(storage.with_remote(objects.remote_config(BOOKIE_ID)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_loads_and_flags_override() {
        let text = include_str!("../broker/standalone.example.toml");
        let cfg: StandaloneConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.broker.broker_port, 6650);
        assert_eq!(cfg.broker.cursor_flush_interval, Duration::from_secs(1));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let args = StandaloneArgs {
            config: Some(path),
            broker_port: Some(7000),
            ..Default::default()
        };
        let (data, b) = StandaloneConfig::load(&args).unwrap();
        assert_eq!(data, PathBuf::from("./data"));
        assert_eq!(b.broker_port, 7000);
        assert_eq!(b.http_port, 8080);
    }

    #[test]
    fn write_cache_knob_sets_the_bookie_and_refuses_a_tiny_cache() {
        let cfg: StandaloneConfig =
            toml::from_str("[bookie]\nwrite_cache_bytes = 8388608\n").unwrap();
        let s = storage_config(Path::new("/d"), &cfg.bookie).unwrap();
        assert_eq!(s.write_cache_bytes, 8 << 20);
        assert!(s.flush_bytes <= 4 << 20);
        let default = storage_config(Path::new("/d"), &StandaloneBookieConfig::default()).unwrap();
        assert_eq!(default.write_cache_bytes, 256 << 20);
        let tiny = StandaloneBookieConfig {
            write_cache_bytes: Some(1000),
            ..Default::default()
        };
        let err = storage_config(Path::new("/d"), &tiny).unwrap_err();
        assert!(err.to_string().contains("write_cache_bytes"), "{err}");
    }

    #[test]
    fn direct_io_knob_sets_the_journal() {
        let off: StandaloneConfig =
            toml::from_str("[bookie]\njournal_direct_io = false\n").unwrap();
        assert!(
            !storage_config(Path::new("/d"), &off.bookie)
                .unwrap()
                .journal_direct_io
        );
        let default = storage_config(Path::new("/d"), &StandaloneBookieConfig::default()).unwrap();
        assert!(default.journal_direct_io);
    }

    #[test]
    fn direct_io_knob_sets_the_segments() {
        let off: StandaloneConfig = toml::from_str(
            "[bookie]
segment_direct_io = false
",
        )
        .unwrap();
        assert!(
            !storage_config(Path::new("/d"), &off.bookie)
                .unwrap()
                .segment_direct_io
        );
        let default = storage_config(Path::new("/d"), &StandaloneBookieConfig::default()).unwrap();
        assert!(default.segment_direct_io);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = toml::from_str::<StandaloneConfig>("[broker]\nbroker_prot = 1\n").unwrap_err();
        assert!(err.to_string().contains("broker_prot"), "{err}");
    }
}
