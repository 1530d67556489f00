//! Issue 14 (part B) with the official Python client against `strata standalone`: topic
//! compaction survives a restart, and the schema compatibility table (strategy × change →
//! accepted/refused) holds through producers, consumers and REST.

use crate::harness::python::python;
use crate::harness::standalone::Standalone;
use crate::pulsar_python::{run_script, run_script_with};

#[test]
fn compaction_view_survives_a_restart() {
    let Some(py) = python() else { return };
    let mut node = Standalone::start();
    let topic = format!(
        "persistent://public/default/compacted-{}",
        std::process::id()
    );
    run_script_with(&py, "compaction", &node, &["produce", &topic]);
    node.restart_after_kill();
    run_script_with(&py, "compaction", &node, &["verify", &topic]);
}

#[test]
fn schema_compatibility_table() {
    let Some(py) = python() else { return };
    let node = Standalone::start();
    run_script(&py, "schema_compat", &node);
}

#[test]
fn compaction_threshold_compacts_automatically() {
    let Some(py) = python() else { return };
    let node = Standalone::start();
    let topic = format!(
        "persistent://public/default/auto-compacted-{}",
        std::process::id()
    );
    run_script_with(&py, "compaction", &node, &["auto", &topic]);
}
