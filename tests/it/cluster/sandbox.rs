//! The cluster sandbox: one real etcd plus N `strata bookie` processes registered in it, each on
//! its own loopback ports and data directory, health-checked over HTTP (`/ready`). Processes are
//! SIGKILLed when the sandbox is dropped.
//!
//! ```ignore
//! let mut sb = Sandbox::start(4).await;      // etcd + 4 bookies, all ready and registered
//! sb.kill_bookie(2);                         // SIGKILL
//! sb.start_bookie(2).await;                  // same data dir, same ports
//! let meta = sb.meta().await;                // strata_meta::model::MetaClient on the etcd
//! ```

#![allow(dead_code)] // a harness: not every test uses every helper

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_meta::model::{MetaClient, Paths};
use strata_meta::{EtcdOptions, EtcdStore, MetadataStore};

use crate::harness::etcd::EtcdCluster;
use crate::harness::{free_port, strata_bin};

/// Lease TTL of bookie registrations in the sandbox (short: tests wait for expiry).
pub const REGISTRATION_TTL: Duration = Duration::from_secs(3);
/// How often sandbox bookies refresh their registration.
pub const REGISTRATION_INTERVAL: Duration = Duration::from_millis(500);

/// One `strata bookie` process of the sandbox.
pub struct BookieProcess {
    child: Option<Child>,
    /// gRPC `host:port` (also its bookie id).
    pub addr: String,
    port: u16,
    http_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
}

impl BookieProcess {
    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// HTTP `host:port` (health, readiness, metrics).
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for BookieProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// etcd + bookies.
pub struct Sandbox {
    /// The etcd cluster (one member).
    pub etcd: EtcdCluster,
    /// Bookies by index.
    pub bookies: Vec<BookieProcess>,
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// Starts etcd and `bookies` bookies, and waits until each is ready (HTTP `/ready`).
    pub async fn start(bookies: usize) -> Self {
        let etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
            .await
            .unwrap();
        let mut sb = Self {
            etcd,
            bookies: vec![],
            dir: tempfile::tempdir().unwrap(),
        };
        for i in 0..bookies {
            let data_dir = sb.dir.path().join(format!("bookie-{i}"));
            let port = free_port();
            sb.bookies.push(BookieProcess {
                child: None,
                addr: format!("127.0.0.1:{port}"),
                port,
                http_port: free_port(),
                log: sb.dir.path().join(format!("bookie-{i}.log")),
                data_dir,
            });
            sb.start_bookie(i).await;
        }
        sb
    }

    /// `etcd://host:port,...` for `--metadata`.
    pub fn metadata_url(&self) -> String {
        let eps: Vec<String> = self
            .etcd
            .endpoints()
            .iter()
            .map(|e| e.trim_start_matches("http://").to_string())
            .collect();
        format!("etcd://{}", eps.join(","))
    }

    /// The sandbox's directory (data dirs and logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A typed metadata client on the sandbox's etcd.
    pub async fn meta(&self) -> MetaClient {
        let store: Arc<dyn MetadataStore> = Arc::new(
            EtcdStore::connect(EtcdOptions::new(self.etcd.endpoints()))
                .await
                .unwrap(),
        );
        MetaClient::new(store, Paths::default())
    }

    /// (Re)starts bookie `i` on its data dir and ports; waits until it answers `/ready`.
    pub async fn start_bookie(&mut self, i: usize) {
        let url = self.metadata_url();
        let b = &mut self.bookies[i];
        assert!(!b.is_running(), "bookie {i} is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&b.log)
            .unwrap();
        let child = Command::new(strata_bin())
            .args(["--log", "info", "bookie", "--data-dir"])
            .arg(&b.data_dir)
            .args(["--port", &b.port.to_string()])
            .args(["--http-port", &b.http_port.to_string()])
            .args(["--metadata", &url])
            .args([
                "--registration-ttl",
                &format!("{}ms", REGISTRATION_TTL.as_millis()),
            ])
            .args([
                "--registration-interval",
                &format!("{}ms", REGISTRATION_INTERVAL.as_millis()),
            ])
            // small caches: several bookies share a small machine
            .args(["--write-cache-bytes", &(64u64 << 20).to_string()])
            .args(["--min-free-bytes", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        b.child = Some(child);
        let http = b.http_addr();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if !b.is_running() {
                panic!("bookie {i} exited early; log:\n{}", b.log());
            }
            let h = http.clone();
            let ok = tokio::task::spawn_blocking(move || http_status(&h, "/ready") == Some(200))
                .await
                .unwrap();
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bookie {i} not ready in 60 s; log:\n{}",
                b.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs bookie `i`.
    pub fn kill_bookie(&mut self, i: usize) {
        self.bookies[i].kill();
    }
}

/// Status code of `GET path` on `addr`, if it answered.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
