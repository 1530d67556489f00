//! The binary starts and knows its subcommands.

use std::process::Command;

use crate::harness::{cli, strata_bin};

#[test]
fn help_lists_roles() {
    let out = Command::new(strata_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bookie"), "{text}");
}

#[test]
fn completions_are_generated() {
    let out = Command::new(strata_bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("strata"));
}

/// The first-run experience through the binary itself: `strata produce` then `strata consume`
/// against a real `strata standalone`.
#[test]
fn produce_then_consume_with_the_cli() {
    let sa = crate::harness::standalone::Standalone::start();
    cli::produce(&sa.url(), "cli-smoke", "hello strata", 3, &[]);
    let text = cli::strata_ok(
        "consume",
        &["consume", "-u", &sa.url(), "cli-smoke", "-n", "3"],
    );
    assert_eq!(text.matches("hello strata").count(), 3, "{text}");
}
