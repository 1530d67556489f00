//! Launchers shared by the cross-process tests: the `strata` binary, free loopback ports, etcd,
//! a standalone (plain or with token authentication), Python scripts with the official client.
#![allow(dead_code)]

pub mod cli;
pub mod etcd;
pub mod http;
pub mod python;
pub mod secured;
pub mod standalone;

use std::net::TcpListener;
use std::path::PathBuf;

/// Path of the `strata` binary cargo built for these tests, or `STRATA_TEST_BIN` when set (e.g. a
/// release build, to time the console with the binary users run).
pub fn strata_bin() -> PathBuf {
    std::env::var_os("STRATA_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_strata")))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// A two-worker multi-thread tokio runtime for tests that drive async clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}
