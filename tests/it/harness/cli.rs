//! The `strata` binary's client commands run as real processes.

use std::process::{Command, Stdio};

use super::strata_bin;

/// Runs `strata ARGS...` (log level warn, stdin closed); asserts that it succeeds and returns its
/// stdout. `what` names the run in the failure message.
pub fn strata_ok(what: &str, args: &[&str]) -> String {
    let out = Command::new(strata_bin())
        .args(args)
        .env("STRATA_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run strata {what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `strata produce TOPIC -u URL -m MESSAGE -n N EXTRA...`: `n` messages, asserted to succeed.
pub fn produce(url: &str, topic: &str, message: &str, n: u32, extra: &[&str]) {
    let n = n.to_string();
    let mut args = vec!["produce", topic, "-u", url, "-m", message, "-n", &n];
    args.extend_from_slice(extra);
    strata_ok("produce failed", &args);
}
