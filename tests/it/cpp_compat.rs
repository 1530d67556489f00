//! Broker behaviour the official C++ client's test suite relies on (issue #17), against a real
//! `strata standalone` with the official Python client (`tests/python/cpp_compat.py`): producer
//! access modes with fencing and topic epochs (also across a broker restart), the dead-letter
//! producer's initial subscription, GET_LAST_MESSAGE_ID edge cases, the empty subscription
//! name's error, Key_Shared sticky range assignment errors and range splitting by join order.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use wait_timeout::ChildExt;

use crate::harness::python::{python, python_command};
use crate::harness::standalone::Standalone;
use crate::pulsar_python::run_script_with;

fn scenario(name: &str) {
    let Some(py) = python() else { return };
    let node = Standalone::start();
    run_script_with(&py, "cpp_compat", &node, &[name]);
}

#[test]
fn cpp_compat_exclusive_with_fencing_fences_connected_and_queued_producers() {
    scenario("fencing");
}

#[test]
fn cpp_compat_dead_letter_initial_subscription() {
    scenario("dlq_init_sub");
}

#[test]
fn cpp_compat_last_message_id_empty_topic_and_batch_index() {
    scenario("last_id");
}

#[test]
fn cpp_compat_empty_subscription_name() {
    scenario("empty_sub");
}

#[test]
fn cpp_compat_partition_beyond_count_and_namespace_created_with_limits() {
    scenario("partitions");
}

#[test]
fn cpp_compat_key_shared_sticky_ranges_consumer_assign_error() {
    scenario("sticky_assign");
}

/// Pulsar's auto-split without consistent hashing (the C++ suite's broker configuration).
#[test]
fn cpp_compat_key_shared_range_splitting_same_keys_across_topics() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("strata.toml");
    std::fs::write(
        &cfg,
        "[broker]\nkey_shared_use_consistent_hashing = false\n",
    )
    .expect("write config");
    let node = Standalone::start_with(&["--config".as_ref(), cfg.as_os_str()], &[]);
    run_script_with(&py, "cpp_compat", &node, &["key_shared_split"]);
}

/// An Exclusive producer keeps its topic across a SIGKILL and restart of the broker: the script
/// holds it while the broker restarts, then sends again and sees a second one refused.
#[test]
fn cpp_compat_exclusive_producer_across_broker_restart() {
    let Some(py) = python() else { return };
    let mut node = Standalone::start();
    let mut child = python_command(&py, "cpp_compat.py")
        .arg(node.url())
        .arg(node.http_url())
        .arg("restart")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::io::Result::ok)
        {
            let _ = tx.send(line.clone());
            lines.push(line);
        }
        lines
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(60))
        .is_ok_and(|l| l == "READY");
    if !ready {
        let _ = child.kill();
        panic!("script did not get ready:\n{}", node.log_tail());
    }
    node.restart_after_kill();
    let mut stdin = child.stdin.take().expect("stdin piped");
    writeln!(stdin, "GO").expect("tell the script to go on");
    drop(stdin);
    let status = child
        .wait_timeout(Duration::from_secs(120))
        .expect("wait for python");
    if status.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    let out = reader.join().unwrap_or_default().join("\n");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "restart scenario failed ({status:?})\n{out}\n{err}\n--- broker log tail ---\n{}",
        node.log_tail()
    );
}
