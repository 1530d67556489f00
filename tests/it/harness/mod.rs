//! Launchers shared by the cross-process tests: the `strata` binary, free loopback ports, etcd,
//! a standalone (plain or with token authentication), Python scripts with the official client.
#![allow(dead_code)]

pub mod cli;
pub mod etcd;
pub mod http;
pub mod python;
pub mod secured;
pub mod standalone;

use std::fs::File;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Path of the `strata` binary cargo built for these tests, or `STRATA_TEST_BIN` when set (e.g. a
/// release build, to time the console with the binary users run).
pub fn strata_bin() -> PathBuf {
    std::env::var_os("STRATA_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_strata")))
}

/// The ports [`free_port`] hands out: below the kernel's ephemeral range (32768–60999 by default),
/// so no socket bound to port 0 — a standalone's own bookie, a client — can take one between the
/// test choosing it and its server binding it.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port that was free a moment ago and that no other test process will choose: each port
/// is claimed with a lock file held until this process exits (nextest runs one process per test).
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static CLAIMED: Mutex<Vec<File>> = Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("strata-it-ports");
    std::fs::create_dir_all(&dir).expect("create the port lock directory");
    let span = usize::from(TEST_PORTS.end - TEST_PORTS.start);
    // Processes start at different places of the range; a process walks it from there.
    let first = std::process::id() as usize * 7_919;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = TEST_PORTS.start + u16::try_from((first + step) % span).expect("in range");
        let lock = File::create(dir.join(port.to_string())).expect("create a port lock file");
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        #[allow(unsafe_code)]
        let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            CLAIMED.lock().expect("port claims").push(lock);
            return port;
        }
    }
    panic!("no free loopback port in {TEST_PORTS:?}");
}

/// A two-worker multi-thread tokio runtime for tests that drive async clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}
