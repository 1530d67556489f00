//! Message deduplication (namespace policy `deduplication`) on a real `strata standalone` with
//! the official Python client (`tests/python/dedup.py`): resent sequence ids are acknowledged
//! with `-1:-1` and not written — with a reconnecting producer, after an unload (snapshot on
//! close) and after a SIGKILL and restart (snapshot + replay of the entries after it); a
//! reader sees every message exactly once.

use std::process::Command;

use crate::pulsar_python::python;
use crate::pulsar_standalone::Standalone;

fn phase(py: &std::path::Path, node: &Standalone, phase: &str) {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let out = Command::new(py)
        .arg(dir.join("dedup.py"))
        .arg(node.url())
        .arg(node.http_url())
        .args([phase, "public/dedup"])
        .current_dir(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run dedup.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("dedup.py {phase}:\n{text}");
    assert!(
        out.status.success(),
        "dedup.py {phase} failed:\n{text}\n--- broker log ---\n{}",
        node.log_tail()
    );
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
