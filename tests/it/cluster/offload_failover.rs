//! Tiered storage in a cluster (issue 11, acceptance 2, second half): etcd, 3 bookies and 2
//! `strata broker` processes offloading to the in-process S3 server. The official Python client
//! produces a topic whose closed ledgers get offloaded (namespace threshold 0) and deleted from
//! the bookies (deletion lag 0); the owner broker is SIGKILLed; after the other broker took the
//! topic over, a reader from earliest gets every message in order, byte for byte
//! (`tests/python/offload_read.py`), and seeks back into an offloaded ledger. Second test: the
//! owner is SIGKILLed mid-offload; the survivor finishes without duplicate commit or orphan.

use std::time::Duration;

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_objstore::test_server::S3TestServer;
use strata_objstore::{Fault, FaultRule, Faults, Op};

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

/// Attempt directories of the bucket → their object names (`data-N`, `index`).
fn attempts(srv: &S3TestServer) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in srv.keys("bkt") {
        if let Some((dir, obj)) = k.rsplit_once('/') {
            out.entry(dir.to_string())
                .or_default()
                .push(obj.to_string());
        }
    }
    out
}

/// The owner is SIGKILLed while an offload is uploading (index puts held 5 s by the server, so
/// an attempt has its data objects and no index): the survivor takes the topic over and offloads
/// every closed ledger (one committed attempt each, nothing committed twice), the janitor removes
/// the killed attempt's objects (the bucket listed until every attempt left is complete and
/// ledger ids are unique), and the official client reads everything in order, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_killed_mid_offload_survivor_finishes_without_orphans() {
    if crate::harness::python::python().is_none() {
        return;
    }
    let s3_dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::new(7));
    faults.add(
        FaultRule::always(Some(Op::Put), Fault::Latency(Duration::from_secs(5))).on_keys("index"),
    );
    let srv = S3TestServer::start_with_faults(s3_dir.path(), "bkt", faults.clone())
        .await
        .unwrap();
    let cfg = s3_dir.path().join("broker.toml");
    std::fs::write(
        &cfg,
        "[broker]\nmax_entries_per_ledger = 40\n\n[offload]\ncheck_interval = \"200ms\"\n\
         block_bytes = 4096\npart_bytes = 65536\njanitor_interval = \"500ms\"\njanitor_grace = \"3s\"\n",
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
    let topic = super::workload::topic("tier-kill-mid-offload");
    script(
        &sb,
        sb.service_url(),
        sb.brokers[0].http_url(),
        &["produce-nowait", &topic, MESSAGES],
    )
    .await;
    let owner = sb.wait_owner(&topic, Duration::from_secs(10)).await;
    // Wait for an upload in flight: data objects, no index yet.
    let t = std::time::Instant::now();
    let in_flight = loop {
        let a = attempts(&srv);
        if let Some((dir, _)) = a.iter().find(|(_, o)| !o.iter().any(|o| o == "index")) {
            break dir.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no upload in flight: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("bucket at the kill: {:#?}", attempts(&srv));
    sb.kill_broker(owner);
    faults.clear();
    let other = 1 - owner;
    eprintln!("SIGKILLed owner broker {owner} while {in_flight} was uploading");
    // Reading through the survivor makes it take the topic over; it then offloads the rest.
    script(
        &sb,
        sb.service_url(),
        sb.brokers[other].http_url(),
        &["read", &topic, MESSAGES],
    )
    .await;
    script(
        &sb,
        sb.service_url(),
        sb.brokers[other].http_url(),
        &["wait-offloaded", &topic, MESSAGES],
    )
    .await;
    // The janitor leaves exactly one complete attempt per offloaded ledger.
    let t = std::time::Instant::now();
    loop {
        let a = attempts(&srv);
        let complete = a.values().all(|o| o.iter().any(|o| o == "index"));
        let mut ledgers: Vec<&str> = a
            .keys()
            .filter_map(|d| d.rsplit('/').next()?.split('-').next())
            .collect();
        let n = ledgers.len();
        ledgers.dedup();
        if complete && ledgers.len() == n && !a.contains_key(&in_flight) {
            println!("bucket after the takeover: {a:#?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "orphans left: {a:#?}\n{}",
            sb.logs(4000)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Everything still reads back, in order, byte for byte, from the offloaded ledgers.
    script(
        &sb,
        sb.service_url(),
        sb.brokers[other].http_url(),
        &["read", &topic, MESSAGES],
    )
    .await;
    drop(sb);
    drop(srv);
}
