//! Launchers shared by the cross-process tests: the `strata` binary, free loopback ports.
#![allow(dead_code)]

pub mod etcd;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Path of the `strata` binary cargo built for these tests.
pub fn strata_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata"))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// `tests/python/`: the scripts run with the official Python client.
pub fn python_scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// `py tests/python/<script>` in that directory, unbuffered, writing no bytecode, stdin closed.
pub fn python_command(py: &Path, script: &str) -> Command {
    let mut cmd = Command::new(py);
    cmd.arg(python_scripts().join(script))
        .current_dir(python_scripts())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    cmd
}
