//! Issue 14: a topic's compacted view survives a failover. In a 2-broker cluster the official
//! Python client writes keys, compacts the topic over REST and checks the compacted view; the
//! owner broker is SIGKILLed, the other takes the topic over and serves the same compacted view
//! (the pointer is in the metadata store, the compacted ledger on the bookies), then the tail.

use std::time::Duration;

use super::sandbox::{BrokerOptions, Sandbox};
use crate::harness::python::{python, python_command, run_for};

fn run(py: &std::path::Path, sb: &Sandbox, mode: &str, topic: &str) {
    let https: Vec<String> = sb.brokers.iter().map(|b| b.http_url()).collect();
    let out = run_for(
        python_command(py, "compaction.py")
            .arg(sb.service_url())
            .arg(https.join(","))
            .arg(mode)
            .arg(topic),
        Duration::from_secs(150),
    );
    let text = out.text();
    assert!(
        out.success() && text.contains("OK"),
        "{mode}: {text}\n{}",
        sb.logs(40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_view_survives_owner_failover() {
    let Some(py) = python() else { return };
    let mut sb = Sandbox::start_cluster(3, 2, BrokerOptions::default()).await;
    let topic = super::workload::topic("compacted-failover");
    run(&py, &sb, "produce", &topic);
    let owner = sb.wait_owner(&topic, Duration::from_secs(10)).await;
    sb.kill_broker(owner);
    run(&py, &sb, "verify", &topic);
    let new_owner = sb.wait_owner(&topic, Duration::from_secs(30)).await;
    assert_ne!(new_owner, owner);
}
