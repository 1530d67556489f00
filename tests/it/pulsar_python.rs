//! Acceptance (issue 4, point 1) with the official Python client (`pulsar-client` 3.x, the C++
//! client underneath, protocol v20): each test starts a real `strata standalone` on free loopback
//! ports with a temporary data directory and runs one script of `tests/python/` against it.
//!
//! The interpreter comes from `STRATA_PYTHON` (set by `scripts/test` to the venv). Without it the
//! tests print why and pass vacuously, except under CI (`CI` set), where they fail.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pulsar_standalone::Standalone;

/// Longest a script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

/// The Python interpreter with `pulsar-client`, or `None` (skip) outside CI.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("STRATA_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("STRATA_PYTHON is not set under CI: scripts/test must provide the venv python")
        }
        _ => {
            eprintln!(
                "SKIPPED: STRATA_PYTHON is not set (run scripts/test, which creates the venv)"
            );
            None
        }
    }
}

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// Runs `tests/python/<script>.py <pulsar url> <http url>` against `node` with a timeout;
/// panics with the script's output and the broker log tail on failure.
pub fn run_script(py: &PathBuf, script: &str, node: &Standalone) {
    let path = scripts_dir().join(format!("{script}.py"));
    let out_path = node.data_dir.with_file_name(format!("{script}.out"));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(py)
        .arg(&path)
        .arg(node.url())
        .arg(node.http_url())
        .current_dir(scripts_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn python");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    std::fs::File::open(&out_path)
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    println!("{output}");
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "{script}.py failed ({s})\n--- script output ---\n{output}\n--- broker log tail ---\n{}",
            node.log_tail()
        ),
        None => panic!(
            "{script}.py timed out after {SCRIPT_TIMEOUT:?}\n--- script output ---\n{output}\n--- broker log tail ---\n{}",
            node.log_tail()
        ),
    }
}

fn scenario(script: &str) {
    let Some(py) = python() else { return };
    let node = Standalone::start();
    run_script(&py, script, &node);
}

#[test]
fn produce_consume_with_and_without_batching() {
    scenario("produce_consume");
}

#[test]
fn compression_lz4_zlib_zstd_snappy() {
    scenario("compression");
}

#[test]
fn subscription_exclusive() {
    scenario("sub_exclusive");
}

#[test]
fn subscription_shared() {
    scenario("sub_shared");
}

#[test]
fn subscription_failover() {
    scenario("sub_failover");
}

#[test]
fn subscription_key_shared_order_with_joins_and_leaves() {
    scenario("sub_key_shared");
}

#[test]
fn negative_ack_redelivery_count() {
    scenario("nack_redelivery");
}

#[test]
fn dead_letter_policy() {
    scenario("dead_letter");
}

#[test]
fn reader_from_earliest_and_message_id() {
    scenario("reader");
}

#[test]
fn seek_by_message_id_and_time() {
    scenario("seek");
}

#[test]
fn partitioned_topic_with_4_partitions() {
    scenario("partitioned");
}

#[test]
fn json_schema_producer_and_consumer() {
    scenario("json_schema");
}

#[test]
fn http_service_url_lookup() {
    scenario("http_lookup");
}

#[test]
fn producer_access_modes_exclusive_and_wait_for_exclusive() {
    scenario("producer_access_modes");
}

#[test]
fn acks_cumulative_batch_index_grouped_and_unsubscribe() {
    scenario("acks");
}

#[test]
fn regex_subscription_and_delayed_delivery() {
    scenario("regex_and_delayed");
}
