//! `strata init-cluster`: writes a cluster's initial metadata — the cluster record, the default
//! tenant `public` and namespace `public/default` — through `strata_meta`'s typed layer.
//!
//! Idempotent: running it again for the same cluster creates only what is missing and changes
//! nothing that exists. It refuses to clobber a different cluster: the first run claims the
//! store with a marker key (`{root}/init-cluster`, created only if absent, so two concurrent runs
//! for different names cannot both win); a run for another name fails without writing anything.
//!
//! It waits for the store within `--wait-timeout` (etcd starting next to it, e.g. in Kubernetes):
//! transient errors (unreachable, no leader, timeouts) are retried with a growing delay until the
//! deadline; any other error fails at once. Nothing else waits: no shell loop is needed around it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use strata_common::backoff::BackoffPolicy;
use strata_meta::model::{ClusterData, MetaClient, Paths, Policies, TenantInfo};
use strata_meta::{Bytes, Expected, MetadataStore, StoreConfig};

/// Delays between attempts while the metadata store is not ready (jittered: the hook Job and every
/// broker's init container may be waiting at once).
const WAIT_BACKOFF: BackoffPolicy =
    BackoffPolicy::exponential(Duration::from_millis(100), Duration::from_secs(5)).with_jitter();

/// Flags of `strata init-cluster`.
#[derive(clap::Args, Debug, Clone)]
pub struct InitClusterArgs {
    /// Metadata store: `etcd://host:port[,host:port...]` or `local:PATH`.
    #[arg(long, env = "STRATA_METADATA")]
    pub metadata: String,
    /// Cluster name.
    #[arg(long)]
    pub cluster: String,
    /// HTTP service URL recorded in the cluster record (e.g. `http://broker:8080`).
    #[arg(long, default_value = "")]
    pub web_service_url: String,
    /// Pulsar service URL recorded in the cluster record (e.g. `pulsar://broker:6650`).
    #[arg(long, default_value = "")]
    pub broker_service_url: String,
    /// Root of Strata's keys in the store.
    #[arg(long, default_value = "/strata")]
    pub root: String,
    /// How long to wait for the metadata store to answer (unreachable, no leader yet) before
    /// failing, e.g. `0s`, `30s`, `5m`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub wait_timeout: Duration,
}

/// What [`init`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InitReport {
    /// Keys created by this run.
    pub created: Vec<String>,
    /// Keys that existed already (left as they were).
    pub existing: Vec<String>,
}

/// Runs `strata init-cluster`.
pub async fn run(args: InitClusterArgs) -> anyhow::Result<()> {
    let cfg = StoreConfig::from_url(&args.metadata)
        .with_context(|| format!("--metadata {}", args.metadata))?;
    let deadline = Instant::now() + args.wait_timeout;
    let mut backoff = WAIT_BACKOFF.start();
    let report = loop {
        // one attempt may hang (a name that does not resolve yet): bound it by the deadline too
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let res = match tokio::time::timeout(left, attempt(&cfg, &args)).await {
            Ok(res) => res,
            Err(_) => Err(anyhow::Error::new(strata_meta::MetaError::Timeout(left))
                .context(format!("open metadata store {}", args.metadata))),
        };
        match res {
            Ok(report) => break report,
            Err(e)
                if is_transient(&e)
                    && backoff
                        .peek_delay()
                        .is_some_and(|d| Instant::now() + d < deadline) =>
            {
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?backoff.peek_delay(), "metadata store not ready, retrying");
                backoff.sleep().await;
            }
            Err(e) if is_transient(&e) => {
                return Err(e.context(format!(
                    "metadata store not ready within --wait-timeout {}",
                    humantime::format_duration(args.wait_timeout)
                )));
            }
            Err(e) => return Err(e),
        }
    };
    for k in &report.created {
        println!("created {k}");
    }
    for k in &report.existing {
        println!("exists  {k}");
    }
    println!(
        "cluster {:?} initialized ({} created, {} already present)",
        args.cluster,
        report.created.len(),
        report.existing.len()
    );
    Ok(())
}

/// Opens the store and writes the initial metadata (one attempt).
async fn attempt(cfg: &StoreConfig, args: &InitClusterArgs) -> anyhow::Result<InitReport> {
    let store = cfg
        .open()
        .await
        .with_context(|| format!("open metadata store {}", args.metadata))?;
    let res = init(store.clone(), args).await;
    store.close().await;
    res
}

/// Whether `e` comes from a metadata store that may answer later (worth waiting for).
fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<strata_meta::MetaError>()
            .is_some_and(|m| m.is_retryable())
    })
}

/// Validates the flags without touching the store (`--check-config`); returns the effective
/// settings.
pub fn check_config(args: &InitClusterArgs) -> anyhow::Result<String> {
    StoreConfig::from_url(&args.metadata)
        .with_context(|| format!("--metadata {}", args.metadata))?;
    check_cluster_name(&args.cluster)?;
    if !args.root.starts_with('/') {
        bail!("--root {:?} must start with '/'", args.root);
    }
    Ok(format!("{args:#?}"))
}

fn check_cluster_name(name: &str) -> anyhow::Result<()> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.contains('/') {
        bail!("invalid cluster name {name:?}");
    }
    Ok(())
}

/// Writes the initial metadata of `args.cluster` into `store`.
pub async fn init(
    store: Arc<dyn MetadataStore>,
    args: &InitClusterArgs,
) -> anyhow::Result<InitReport> {
    check_cluster_name(&args.cluster)?;
    let name = args.cluster.trim();
    let meta = MetaClient::new(store.clone(), Paths::new(args.root.clone()));
    let mut report = InitReport::default();

    // 1. claim the store for this cluster (atomic: created only if absent)
    let marker = format!("{}/init-cluster", meta.paths().root());
    match store
        .put(
            &marker,
            Bytes::from(name.as_bytes().to_vec()),
            Expected::Absent,
        )
        .await
    {
        Ok(_) => report.created.push(marker.clone()),
        Err(e) if e.is_conflict() => {
            let cur = store
                .get(&marker)
                .await
                .context("read the cluster marker")?
                .map(|v| String::from_utf8_lossy(&v.value).into_owned())
                .unwrap_or_default();
            if cur != name {
                bail!(
                    "metadata store already initialized for cluster {cur:?}; refusing to initialize {name:?}"
                );
            }
            report.existing.push(marker.clone());
        }
        Err(e) => return Err(e).context("write the cluster marker"),
    }
    // a store initialized by hand (no marker) with another cluster: refuse as well
    let others: Vec<String> = store
        .children(&meta.paths().clusters())
        .await
        .context("list clusters")?
        .into_iter()
        .filter(|c| strata_meta::model::decode_segment(c) != name)
        .collect();
    if !others.is_empty() {
        bail!(
            "metadata store already holds other clusters {others:?}; refusing to initialize {name:?}"
        );
    }

    let clusters = BTreeSet::from([name.to_owned()]);
    // 2. the cluster record
    let cluster = ClusterData {
        service_url: args.web_service_url.clone(),
        broker_service_url: args.broker_service_url.clone(),
        ..ClusterData::default()
    };
    create(&meta, &meta.paths().cluster(name), &cluster, &mut report).await?;
    // 3. the default tenant and namespace
    let tenant = TenantInfo {
        admin_roles: BTreeSet::new(),
        allowed_clusters: clusters.clone(),
    };
    create(&meta, &meta.paths().tenant("public"), &tenant, &mut report).await?;
    let policies = Policies {
        replication_clusters: clusters,
        ..Policies::default()
    };
    create(
        &meta,
        &meta.paths().namespace("public", "default"),
        &policies,
        &mut report,
    )
    .await?;
    Ok(report)
}

/// Creates `key` unless it exists (then it is left alone).
async fn create<T: strata_meta::model::Model>(
    meta: &MetaClient,
    key: &str,
    value: &T,
    report: &mut InitReport,
) -> anyhow::Result<()> {
    match meta.create(key, value).await {
        Ok(_) => report.created.push(key.to_owned()),
        Err(e) if e.is_conflict() => report.existing.push(key.to_owned()),
        Err(e) => return Err(e).with_context(|| format!("create {key}")),
    }
    Ok(())
}
