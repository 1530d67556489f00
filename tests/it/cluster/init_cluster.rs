//! `strata init-cluster` as a separate process against a real etcd: writes the cluster record and
//! the default tenant/namespace, is idempotent, and refuses to clobber a different cluster.

use std::process::{Command, Output};

use strata_meta::model::{ClusterData, Policies, TenantInfo};

use crate::harness::etcd::EtcdCluster;
use crate::harness::strata_bin;

fn init(url: &str, cluster: &str) -> Output {
    Command::new(strata_bin())
        .args(["--log", "warn", "init-cluster", "--metadata", url])
        .args(["--cluster", cluster])
        .args(["--broker-service-url", "pulsar://127.0.0.1:6650"])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_cluster_is_idempotent_and_refuses_another_cluster() {
    let etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap();
    let url = format!("etcd://{}", etcd.endpoint(0).trim_start_matches("http://"));

    let out = init(&url, "alpha");
    assert!(out.status.success(), "first run: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("created"), "{stdout}");

    let store: std::sync::Arc<dyn strata_meta::MetadataStore> = std::sync::Arc::new(
        strata_meta::EtcdStore::connect(strata_meta::EtcdOptions::new(etcd.endpoints()))
            .await
            .unwrap(),
    );
    let meta =
        strata_meta::model::MetaClient::new(store.clone(), strata_meta::model::Paths::default());
    let (cluster, c_stat) = meta
        .get_required::<ClusterData>(&meta.paths().cluster("alpha"))
        .await
        .unwrap();
    assert_eq!(cluster.broker_service_url, "pulsar://127.0.0.1:6650");
    let (tenant, _) = meta
        .get_required::<TenantInfo>(&meta.paths().tenant("public"))
        .await
        .unwrap();
    assert!(tenant.allowed_clusters.contains("alpha"));
    let (ns, ns_stat) = meta
        .get_required::<Policies>(&meta.paths().namespace("public", "default"))
        .await
        .unwrap();
    assert!(ns.replication_clusters.contains("alpha"));

    // again: succeeds, changes nothing
    let out = init(&url, "alpha");
    assert!(out.status.success(), "second run: {out:?}");
    let (_, c2) = meta
        .get_required::<ClusterData>(&meta.paths().cluster("alpha"))
        .await
        .unwrap();
    let (_, ns2) = meta
        .get_required::<Policies>(&meta.paths().namespace("public", "default"))
        .await
        .unwrap();
    assert_eq!(c2.version, c_stat.version);
    assert_eq!(ns2.version, ns_stat.version);

    // another cluster: refused, nothing written
    let out = init(&url, "beta");
    assert!(!out.status.success(), "must refuse: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("alpha"), "{stderr}");
    assert!(
        meta.get::<ClusterData>(&meta.paths().cluster("beta"))
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;
}

/// `--wait-timeout`: init-cluster waits for an etcd that is not up yet (no shell loop around it,
/// as in the Helm chart's Job), and gives up after the timeout, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_cluster_waits_for_etcd_within_its_timeout() {
    let mut etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap();
    let url = format!("etcd://{}", etcd.endpoint(0).trim_start_matches("http://"));
    etcd.kill(0);

    // nobody there: fails after the timeout, not at once and not never
    let started = std::time::Instant::now();
    let out = Command::new(strata_bin())
        .args(["--log", "warn", "init-cluster", "--metadata", &url])
        .args(["--cluster", "alpha", "--wait-timeout", "2s"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--wait-timeout 2s"), "{stderr}");
    assert!(
        took >= std::time::Duration::from_millis(1500) && took < std::time::Duration::from_secs(15),
        "took {took:?}"
    );

    // etcd comes up while it waits: one run, success
    let started = std::time::Instant::now();
    let child = Command::new(strata_bin())
        .args(["--log", "warn", "init-cluster", "--metadata", &url])
        .args(["--cluster", "alpha", "--wait-timeout", "60s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let etcd = tokio::task::spawn_blocking(move || {
        etcd.spawn(0);
        etcd.wait_healthy(0, std::time::Duration::from_secs(30));
        etcd
    })
    .await
    .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "it cannot have finished before etcd started"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created"));
    drop(etcd);
}
