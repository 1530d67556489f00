//! Acceptance (issue 4, point 1) with the official Python client (`pulsar-client` 3.x, the C++
//! client underneath, protocol v20): each test starts a real `strata standalone` on free loopback
//! ports with a temporary data directory and runs one script of `tests/python/` against it.
//!
//! The interpreter comes from `STRATA_PYTHON` (set by `scripts/test` to the venv). Without it the
//! tests print why and pass vacuously, except under CI (`CI` set), where they fail.

use std::path::Path;
use std::time::Duration;

use crate::harness::python::{inline_command, python, python_command, run_for};
use crate::harness::standalone::Standalone;

/// Longest a script may run.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

/// Runs `tests/python/<script>.py <pulsar url> <http url> ARGS...` against `node` with a
/// timeout; panics with the script's output and the broker log tail on failure.
pub fn run_script_with(py: &Path, script: &str, node: &Standalone, args: &[&str]) {
    let out = run_for(
        python_command(py, &format!("{script}.py"))
            .arg(node.url())
            .arg(node.http_url())
            .args(args),
        SCRIPT_TIMEOUT,
    );
    let output = out.text();
    println!("{output}");
    match out.status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "{script}.py {args:?} failed ({s})\n--- script output ---\n{output}\n--- broker log tail ---\n{}",
            node.log_tail()
        ),
        None => panic!(
            "{script}.py {args:?} timed out after {SCRIPT_TIMEOUT:?}\n--- script output ---\n{output}\n--- broker log tail ---\n{}",
            node.log_tail()
        ),
    }
}

/// Runs the inline script `code` with `args` against `node`; asserts that it succeeds and
/// prints `OK` (panics with its output and the broker log tail otherwise).
pub fn run_inline_ok(py: &Path, code: &str, node: &Standalone, args: &[String]) {
    let out = run_for(inline_command(py, code).args(args), SCRIPT_TIMEOUT);
    let text = out.text();
    assert!(
        out.success() && text.contains("OK"),
        "{text}\n{}",
        node.log_tail()
    );
}

/// Skips (`None`) without Python; otherwise runs the inline script `code` against a fresh
/// standalone (arguments: its Pulsar URL, then its HTTP URL with `http_too`), asserts that it
/// prints `OK`, and returns the standalone for more checks.
pub fn inline_scenario(code: &str, http_too: bool) -> Option<Standalone> {
    let py = python()?;
    let node = Standalone::start();
    let mut args = vec![node.url()];
    if http_too {
        args.push(node.http_url());
    }
    run_inline_ok(&py, code, &node, &args);
    Some(node)
}

/// [`run_script_with`] without more arguments.
pub fn run_script(py: &Path, script: &str, node: &Standalone) {
    run_script_with(py, script, node, &[]);
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
