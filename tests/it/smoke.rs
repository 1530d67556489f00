//! The binary starts and knows its subcommands.

use std::process::Command;

use crate::harness::strata_bin;

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
