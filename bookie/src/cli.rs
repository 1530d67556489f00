//! `strata bookie`: command-line flags and the entry point of the bookie role.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::StorageConfig;
use crate::registration::{MetaRegistrar, NoopRegistrar, Registrar};
use crate::server::{BookieNode, BookieOptions};

/// Flags of `strata bookie`.
#[derive(clap::Args, Debug, Clone)]
pub struct BookieArgs {
    /// Directory for segments, index files and the checkpoint (and the journal unless
    /// --journal-dir is given).
    #[arg(long, default_value = "./data/bookie")]
    pub data_dir: PathBuf,
    /// Journal directory (put it on its own disk in production). Default: DATA_DIR/journal.
    #[arg(long)]
    pub journal_dir: Option<PathBuf>,
    /// gRPC port.
    #[arg(long, default_value_t = 3181)]
    pub port: u16,
    /// HTTP port (health, readiness, /metrics).
    #[arg(long, default_value_t = 8000)]
    pub http_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Address announced to the cluster (default: BIND:PORT).
    #[arg(long)]
    pub advertised_address: Option<String>,
    /// Group commit: most bytes in one journal write + fdatasync.
    #[arg(long, default_value_t = 4 << 20)]
    pub journal_max_batch_bytes: usize,
    /// Group commit: longest wait for more records (e.g. `0s`, `1ms`).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub journal_max_wait: Duration,
    /// Most bytes held in the write cache (adds wait beyond it).
    #[arg(long, default_value_t = 256 << 20)]
    pub write_cache_bytes: usize,
    /// Flush the write cache to segments once it holds this many bytes.
    #[arg(long, default_value_t = 16 << 20)]
    pub flush_bytes: usize,
    /// Roll journal files at this size.
    #[arg(long, default_value_t = 64 << 20)]
    pub journal_max_file_bytes: u64,
    /// Old journal files kept for reuse.
    #[arg(long, default_value_t = 4)]
    pub journal_recycle_files: usize,
    /// Write the journal with direct I/O (`O_DIRECT`: less CPU per entry; slower where the
    /// device's direct writes are slower than buffered ones).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub journal_direct_io: bool,
    /// Write segments with direct I/O (`O_DIRECT`: no page-cache copy; a filesystem that refuses
    /// it gets buffered writes).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub segment_direct_io: bool,
    /// Journal files hold the entries (each entry written to the device once; GC reclaims and
    /// compacts journal files like segments). Turned off with object storage and when the
    /// journal directory is on another filesystem than the ledger directory; `false` copies
    /// every entry into segments as well.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub journal_holds_entries: bool,
    /// Write a checkpoint (and free old journal files) at most this often.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Duration,
    /// Flush the write cache at least this often.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub flush_interval: Duration,
    /// Roll segments at this size.
    #[arg(long, default_value_t = 128 << 20)]
    pub segment_max_bytes: u64,
    /// Garbage collection and compaction interval.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub gc_interval: Duration,
    /// Go read-only when a data filesystem has less free space than this.
    #[arg(long, default_value_t = 64 << 20)]
    pub min_free_bytes: u64,
    /// Metadata store to register in: `etcd://host:port[,host:port...]` or `local:PATH`.
    /// Without it the bookie announces itself nowhere.
    #[arg(long, env = "STRATA_METADATA")]
    pub metadata: Option<String>,
    /// TTL of the registration's lease: the key vanishes this long after the process died.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub registration_ttl: Duration,
    /// How often free space and the read-only flag are re-published.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub registration_interval: Duration,
    /// Rack / failure domain announced for ensemble placement.
    #[arg(long)]
    pub rack: Option<String>,
    /// Object storage for sealed segments: `s3://bucket/prefix`, `gs://...`, `az://...`,
    /// `file:///path`. Without it the bookie keeps everything on its local disk.
    #[command(flatten)]
    pub object_storage: ObjectStorageArgs,
    /// With --storage-url: sealed segments uploaded at once (their objects put concurrently,
    /// then committed by one manifest).
    #[arg(
        long,
        env = "STRATA_UPLOAD_CONCURRENCY",
        default_value_t = 4,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256)
    )]
    pub upload_concurrency: usize,
}

/// Object-storage flags of a bookie (also used by `strata standalone` for its bookie).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ObjectStorageArgs {
    /// Object storage URL for sealed segments (config `storage_url`).
    #[arg(long, env = "STRATA_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// S3-compatible endpoint (`http://host:port`; path-style requests).
    #[arg(long, env = "STRATA_STORAGE_ENDPOINT")]
    pub storage_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "STRATA_STORAGE_REGION")]
    pub storage_region: Option<String>,
    /// Bound of the local copies of sealed segments (uploaded ones beyond it are evicted; not
    /// yet uploaded ones beyond it make the bookie read-only).
    #[arg(long, default_value_t = 4 << 30)]
    pub segment_cache_bytes: u64,
    /// Seal (and upload) the current segment once it is this old, even if not full.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub segment_max_age: Duration,
}

impl ObjectStorageArgs {
    /// The remote configuration for bookie `bookie_id`, if a URL is given.
    pub fn remote_config(&self, bookie_id: &str) -> Option<crate::config::RemoteConfig> {
        let url = self.storage_url.as_ref()?;
        let store = strata_objstore::ObjStoreConfig {
            url: url.clone(),
            endpoint: self.storage_endpoint.clone(),
            region: self.storage_region.clone(),
            // segment objects carry CRCs (frames, index, footer), checked on every read
            unsigned_payload: true,
            ..Default::default()
        };
        let mut r = crate::config::RemoteConfig::new(store, bookie_id);
        r.segment_cache_bytes = self.segment_cache_bytes;
        r.segment_max_age = self.segment_max_age;
        Some(r)
    }

    /// Checks the URL without connecting.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(r) = self.remote_config("check") {
            strata_objstore::open(&r.store)
                .with_context(|| format!("--storage-url {}", r.store.url))?;
        }
        Ok(())
    }
}

impl BookieArgs {
    /// Validates the flags without starting anything (`strata bookie --check-config`); returns
    /// the effective settings.
    pub fn check_config(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.metadata {
            strata_meta::StoreConfig::from_url(url).with_context(|| format!("--metadata {url}"))?;
        }
        if self.port != 0 && self.port == self.http_port {
            anyhow::bail!("--port and --http-port are both {}", self.port);
        }
        if let Some(a) = &self.advertised_address {
            let port_ok = a
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                anyhow::bail!("--advertised-address {a:?} is not HOST:PORT");
            }
        }
        let storage = self.storage_config();
        for (flag, dir) in [
            ("--data-dir", &self.data_dir),
            ("--journal-dir", &storage.journal_dir),
        ] {
            if dir.exists() && !dir.is_dir() {
                anyhow::bail!("{flag} {} is not a directory", dir.display());
            }
        }
        self.object_storage.check()?;
        if self.registration_ttl < Duration::from_secs(1) {
            anyhow::bail!("--registration-ttl must be at least 1s");
        }
        if self.flush_bytes > self.write_cache_bytes {
            anyhow::bail!(
                "--flush-bytes ({}) exceeds --write-cache-bytes ({})",
                self.flush_bytes,
                self.write_cache_bytes
            );
        }
        Ok(format!("{self:#?}"))
    }

    /// The storage configuration these flags describe.
    pub fn storage_config(&self) -> StorageConfig {
        let mut c = StorageConfig::new(&self.data_dir);
        c.ledger_dir = self.data_dir.join("ledgers");
        c.journal_dir = self
            .journal_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("journal"));
        c.journal_max_batch_bytes = self.journal_max_batch_bytes;
        c.journal_max_wait = self.journal_max_wait;
        c.write_cache_bytes = self.write_cache_bytes;
        c.flush_bytes = self.flush_bytes;
        c.journal_max_file_bytes = self.journal_max_file_bytes;
        c.journal_recycle_files = self.journal_recycle_files;
        c.journal_direct_io = self.journal_direct_io;
        c.segment_direct_io = self.segment_direct_io;
        c.journal_holds_entries = self.journal_holds_entries;
        c.checkpoint_interval = self.checkpoint_interval;
        c.flush_interval = self.flush_interval;
        c.segment_max_bytes = self.segment_max_bytes;
        c.gc_interval = self.gc_interval;
        c.min_free_bytes = self.min_free_bytes;
        let remote = self
            .object_storage
            .remote_config(&self.bookie_id())
            .map(|mut r| {
                r.upload_concurrency = self.upload_concurrency;
                r
            });
        c.with_remote(remote)
    }

    /// The stable id of this bookie (object keys live under it): the advertised address, else
    /// BIND:PORT.
    pub fn bookie_id(&self) -> String {
        self.advertised_address
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.bind, self.port))
    }
}

/// Runs a bookie until `shutdown` fires, registered in the metadata store given by `--metadata`
/// (announced nowhere without it; see [`run_with_registrar`]).
pub async fn run(args: BookieArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(url) = args.metadata.clone() else {
        return run_with_registrar(args, shutdown, Arc::new(NoopRegistrar)).await;
    };
    let cfg =
        strata_meta::StoreConfig::from_url(&url).with_context(|| format!("--metadata {url}"))?;
    let store = tokio::select! {
        s = cfg.open() => s.with_context(|| format!("open metadata store {url}"))?,
        () = shutdown.cancelled() => return Ok(()),
    };
    let registrar = Arc::new(MetaRegistrar::new(
        store.clone(),
        args.registration_ttl,
        args.rack.clone(),
    ));
    let res = run_with_registrar(args, shutdown, registrar).await;
    store.close().await;
    res
}

/// Runs a bookie until `shutdown` fires, announcing it through `registrar` (e.g. the metadata
/// store's bookie registry).
pub async fn run_with_registrar(
    args: BookieArgs,
    shutdown: CancellationToken,
    registrar: Arc<dyn Registrar>,
) -> anyhow::Result<()> {
    let opts = BookieOptions {
        storage: args.storage_config(),
        grpc_addr: SocketAddr::new(args.bind, args.port),
        http_addr: Some(SocketAddr::new(args.bind, args.http_port)),
        advertised_address: args.advertised_address.clone(),
        registration_interval: args.registration_interval,
    };
    let node = BookieNode::start(opts, registrar)
        .await
        .context("start bookie")?;
    shutdown.cancelled().await;
    node.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BookieArgs,
    }

    #[test]
    fn defaults_match_the_storage_defaults() {
        let cli = Cli::parse_from(["bookie", "--data-dir", "/d"]);
        let c = cli.args.storage_config();
        let d = StorageConfig::new("/d");
        // Every field, the ones without a flag too.
        assert_eq!(c, d);
    }

    #[test]
    fn check_config_names_what_is_wrong() {
        let ok = Cli::parse_from(["bookie", "--advertised-address", "b-0.b.ns.svc:3181"]);
        assert!(ok.args.check_config().is_ok());
        let same = Cli::parse_from(["bookie", "--port", "9000", "--http-port", "9000"]);
        let e = same.args.check_config().unwrap_err().to_string();
        assert!(e.contains("--http-port"), "{e}");
        let bad = Cli::parse_from(["bookie", "--advertised-address", "no-port"]);
        let e = bad.args.check_config().unwrap_err().to_string();
        assert!(e.contains("--advertised-address"), "{e}");
        let url = Cli::parse_from(["bookie", "--metadata", "http://x"]);
        assert!(url.args.check_config().is_err());
    }

    #[test]
    fn journal_dir_can_be_elsewhere() {
        let cli = Cli::parse_from([
            "bookie",
            "--data-dir",
            "/d",
            "--journal-dir",
            "/j",
            "--journal-max-wait",
            "2ms",
        ]);
        let c = cli.args.storage_config();
        assert_eq!(c.journal_dir, PathBuf::from("/j"));
        assert_eq!(c.ledger_dir, PathBuf::from("/d/ledgers"));
        assert_eq!(c.journal_max_wait, Duration::from_millis(2));
    }

    /// `strata bookie` on the object store `s3://bkt/bookies` at a local endpoint, plus `extra`.
    fn on_object_storage(extra: &[&str]) -> Cli {
        let base = [
            "bookie",
            "--storage-url",
            "s3://bkt/bookies",
            "--storage-endpoint",
            "http://127.0.0.1:9000",
        ];
        Cli::parse_from(base.iter().chain(extra))
    }

    #[test]
    fn storage_url_turns_object_storage_on() {
        let cli = on_object_storage(&[
            "--segment-cache-bytes",
            "1000000",
            "--advertised-address",
            "b-0:3181",
        ]);
        let r = cli.args.storage_config().remote.unwrap();
        assert_eq!(r.store.url, "s3://bkt/bookies");
        assert_eq!(r.store.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(r.segment_cache_bytes, 1_000_000);
        assert_eq!(r.bookie_id, "b-0:3181");
        assert_eq!(r.upload_concurrency, 4, "the RemoteConfig default");
        assert!(cli.args.check_config().is_ok());
        let bad = Cli::parse_from(["bookie", "--storage-url", "ftp://x/y"]);
        assert!(bad.args.check_config().is_err());
    }

    #[test]
    fn upload_concurrency_flag() {
        let cli = on_object_storage(&["--upload-concurrency", "9"]);
        let r = cli.args.storage_config().remote.unwrap();
        assert_eq!(r.upload_concurrency, 9);
        let shown = cli.args.check_config().unwrap();
        assert!(shown.contains("upload_concurrency: 9"), "{shown}");
        for bad in ["0", "x"] {
            let r = Cli::try_parse_from(["bookie", "--upload-concurrency", bad]);
            assert!(r.is_err(), "--upload-concurrency {bad} accepted");
        }
    }
}
