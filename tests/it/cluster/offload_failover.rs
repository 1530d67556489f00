//! Tiered storage in a cluster (issue 11, acceptance 2, second half): etcd, 3 bookies and 2
//! `strata broker` processes offloading to the in-process S3 server. The official Python client
//! produces a topic whose closed ledgers get offloaded (namespace threshold 0) and deleted from
//! the bookies (deletion lag 0); the owner broker is SIGKILLed; after the other broker took the
//! topic over, a reader from earliest gets every message in order, byte for byte
//! (`tests/python/offload_read.py`), and seeks back into an offloaded ledger.

use std::time::Duration;

use strata_objstore::test_server::S3TestServer;

use super::sandbox::{BrokerOptions, Sandbox};
use crate::harness::python::{python_command, run_for};

const MESSAGES: &str = "300";

/// Runs `offload_read.py URL HTTP ARGS...`; panics with its output and the brokers' logs.
async fn script(sb: &Sandbox, url: String, http: String, args: &[&str]) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let what = format!("offload_read.py {args:?}");
    let py = crate::harness::python::python().expect("python");
    let out = tokio::task::spawn_blocking(move || {
        run_for(
            python_command(&py, "offload_read.py")
                .arg(url)
                .arg(http)
                .args(args),
            Duration::from_secs(150),
        )
    })
    .await
    .unwrap();
    let text = out.text();
    println!("{text}");
    assert!(
        out.success(),
        "{what} failed:\n{text}\n--- logs ---\n{}",
        sb.logs(6000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reads_offloaded_ledgers_after_the_owner_is_killed() {
    if crate::harness::python::python().is_none() {
        return;
    }
    let s3_dir = tempfile::tempdir().unwrap();
    let srv = S3TestServer::start(s3_dir.path(), "bkt").await.unwrap();
    let cfg = s3_dir.path().join("broker.toml");
    std::fs::write(
        &cfg,
        "[broker]\nmax_entries_per_ledger = 40\n\n[offload]\ncheck_interval = \"200ms\"\n\
         block_bytes = 4096\npart_bytes = 65536\njanitor_interval = \"1h\"\n",
    )
    .unwrap();
    let opts = BrokerOptions {
        extra_args: vec![
            "--config".into(),
            cfg.display().to_string(),
            "--offload-url".into(),
            "s3://bkt/cluster".into(),
            "--offload-endpoint".into(),
            srv.endpoint.clone(),
        ],
        env: S3TestServer::env()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..BrokerOptions::default()
    };
    let mut sb = Sandbox::start_cluster(3, 2, opts).await;
    let topic = super::workload::topic("tier-failover");
    // Produce, then wait until every closed ledger is offloaded and gone from the bookies.
    script(
        &sb,
        sb.service_url(),
        sb.brokers[0].http_url(),
        &["produce", &topic, MESSAGES],
    )
    .await;
    let owner = sb.wait_owner(&topic, Duration::from_secs(10)).await;
    let objects = srv.keys("bkt");
    assert!(objects.iter().any(|k| k.ends_with("/index")), "{objects:?}");
    sb.kill_broker(owner);
    let other = 1 - owner;
    eprintln!("SIGKILLed owner broker {owner}; reading through broker {other}");
    // The reader looks the topic up through the survivor, which takes it over once the dead
    // broker's session expires, and reads the offloaded ledgers from the object store.
    script(
        &sb,
        sb.service_url(),
        sb.brokers[other].http_url(),
        &["read", &topic, MESSAGES],
    )
    .await;
    let new_owner = sb.wait_owner(&topic, Duration::from_secs(30)).await;
    assert_eq!(new_owner, other);
    // The takeover deleted nothing from the bucket (the janitor runs hourly here).
    let after = srv.keys("bkt");
    assert!(
        objects.iter().all(|k| after.contains(k)),
        "{objects:?} -> {after:?}"
    );
    drop(sb);
    drop(srv);
}
