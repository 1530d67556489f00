//! Message deduplication (namespace policy `deduplication`) on a real `strata standalone` with
//! the official Python client (`tests/python/dedup.py`): resent sequence ids are acknowledged
//! with `-1:-1` and not written — with a reconnecting producer, after an unload (snapshot on
//! close) and after a SIGKILL and restart (snapshot + replay of the entries after it); a
//! reader sees every message exactly once.

use crate::harness::python::python;
use crate::harness::standalone::Standalone;
use crate::pulsar_python::run_script_with;

fn phase(py: &std::path::Path, node: &Standalone, phase: &str) {
    run_script_with(py, "dedup", node, &[phase, "public/dedup"]);
}

#[test]
fn duplicates_are_dropped_across_reconnect_unload_and_sigkill() {
    let Some(py) = python() else { return };
    let mut node = Standalone::start();
    phase(&py, &node, "setup");
    phase(&py, &node, "first");
    node.kill();
    node.restart_after_kill();
    phase(&py, &node, "second");
    phase(&py, &node, "verify");
}
