//! The cluster sandbox: one real etcd plus N `strata bookie` processes registered in it, each on
//! its own loopback ports and data directory, health-checked over HTTP (`/ready`). Processes are
//! SIGKILLed when the sandbox is dropped.
//!
//! ```ignore
//! let mut sb = Sandbox::start(4).await;      // etcd + 4 bookies, all ready and registered
//! sb.kill_bookie(2);                         // SIGKILL
//! sb.start_bookie(2).await;                  // same data dir, same ports
//! let meta = sb.meta().await;                // strata_meta::model::MetaClient on the etcd
//! sb.init_cluster();                         // `strata init-cluster`
//! sb.start_brokers(2, BrokerOptions::default()).await; // each behind its own cuttable etcd proxy
//! sb.cut_etcd(0);                            // broker 0 loses etcd only (split brain)
//! sb.kill_broker(1); sb.stop_broker(0).await; sb.start_broker(1).await;
//! ```
//!
//! Every log (etcd, bookies, brokers) is kept in the sandbox directory; when the sandbox is dropped
//! during a panic it prints the tail of each, so a failed test shows what the processes said.

#![allow(dead_code)] // a harness: not every test uses every helper

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_meta::model::{MetaClient, Paths};
use strata_meta::{EtcdOptions, EtcdStore, MetadataStore};

use crate::harness::etcd::EtcdCluster;
use crate::harness::{free_port, strata_bin};

use super::process::Process;
use super::proxy::CutProxy;

/// Lease TTL of bookie registrations in the sandbox (short: tests wait for expiry).
pub const REGISTRATION_TTL: Duration = Duration::from_secs(3);
/// How often sandbox bookies refresh their registration.
pub const REGISTRATION_INTERVAL: Duration = Duration::from_millis(500);

/// One `strata bookie` process of the sandbox.
pub struct BookieProcess {
    process: Process,
    /// gRPC `host:port` (also its bookie id).
    pub addr: String,
    port: u16,
    http_port: u16,
    data_dir: PathBuf,
}

impl BookieProcess {
    /// HTTP `host:port` (health, readiness, metrics).
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }
}

/// etcd + bookies (+ brokers once started).
pub struct Sandbox {
    /// Brokers by index (declared first: dropped, i.e. killed, before the bookies and etcd).
    pub brokers: Vec<BrokerProcess>,
    /// Bookies by index.
    pub bookies: Vec<BookieProcess>,
    /// The etcd cluster (one member).
    pub etcd: EtcdCluster,
    /// Cluster name used by `init_cluster` and the brokers.
    pub cluster: String,
    /// More flags of every bookie (e.g. object storage), appended as given.
    pub bookie_args: Vec<String>,
    /// Environment variables of the bookie processes (e.g. object-store credentials).
    pub bookie_env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// Starts etcd and `bookies` bookies, and waits until each is ready (HTTP `/ready`).
    pub async fn start(bookies: usize) -> Self {
        Self::start_with(bookies, vec![], vec![]).await
    }

    /// [`Sandbox::start`] with more bookie flags and environment (kept for restarts).
    pub async fn start_with(
        bookies: usize,
        bookie_args: Vec<String>,
        bookie_env: Vec<(String, String)>,
    ) -> Self {
        let etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
            .await
            .unwrap();
        let mut sb = Self {
            brokers: vec![],
            bookies: vec![],
            etcd,
            cluster: "sandbox".to_owned(),
            bookie_args,
            bookie_env,
            dir: tempfile::tempdir().unwrap(),
        };
        for i in 0..bookies {
            let data_dir = sb.dir.path().join(format!("bookie-{i}"));
            let port = free_port();
            sb.bookies.push(BookieProcess {
                process: Process::new(sb.dir.path().join(format!("bookie-{i}.log"))),
                addr: format!("127.0.0.1:{port}"),
                port,
                http_port: free_port(),
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
        let log = b.append_log();
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
            .args(&self.bookie_args)
            .envs(self.bookie_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        b.started(child);
        let http = b.http_addr();
        b.wait_ready(&format!("bookie {i}"), &http, Duration::from_secs(60))
            .await;
    }

    /// SIGKILLs bookie `i`.
    pub fn kill_bookie(&mut self, i: usize) {
        self.bookies[i].kill();
    }

    /// Bookie `i`'s data directory (journal and ledgers).
    pub fn bookie_data_dir(&self, i: usize) -> &Path {
        &self.bookies[i].data_dir
    }
}

/// Status code of `GET path` on `addr`, if it answered (within 2 s).
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    get(addr, path, Duration::from_secs(2)).map(|(status, _)| status)
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

/// Flags of the sandbox brokers.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// E/Qw/Qa of new ledgers.
    pub ensemble_size: u32,
    pub write_quorum: u32,
    pub ack_quorum: u32,
    /// etcd session TTL (ownership and registration).
    pub session_ttl_secs: u64,
    /// How long a bookie must be gone before auto-recovery re-replicates its ledgers.
    pub autorecovery_grace_secs: u64,
    /// More flags, appended as given (`{broker_port}` in one stands for the broker's port).
    pub extra_args: Vec<String>,
    /// Environment variables of the broker processes (e.g. object-store credentials).
    pub env: Vec<(String, String)>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            ensemble_size: 3,
            write_quorum: 2,
            ack_quorum: 2,
            session_ttl_secs: 4,
            autorecovery_grace_secs: 5,
            extra_args: vec![],
            env: vec![],
        }
    }
}

/// How long a broker may take to answer `/ready`.
pub const BROKER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERMed broker may take to exit before it is SIGKILLed (and the test fails).
pub const BROKER_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The brokers' log filter: `STRATA_SANDBOX_BROKER_LOG` (e.g.
/// `info,strata_ledger::autorecovery=debug` to diagnose a failure) or `info`.
pub fn broker_log_filter() -> String {
    std::env::var("STRATA_SANDBOX_BROKER_LOG").unwrap_or_else(|_| "info".to_owned())
}

/// One `strata broker` process of the sandbox; it reaches etcd through its own [`CutProxy`].
pub struct BrokerProcess {
    process: Process,
    /// Pulsar protocol port.
    pub broker_port: u16,
    /// HTTP port (`/health`, `/ready`, `/metrics`, admin, lookup).
    pub http_port: u16,
    /// The broker's own etcd proxy.
    pub etcd_proxy: CutProxy,
    opts: BrokerOptions,
}

impl BrokerProcess {
    /// Broker id / address `127.0.0.1:<broker_port>`.
    pub fn id(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    /// `pulsar://127.0.0.1:<broker_port>`.
    pub fn url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.broker_port)
    }

    /// `127.0.0.1:<http_port>`.
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// `http://127.0.0.1:<http_port>`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

/// `Deref`/`DerefMut` of a sandbox process type to its [`Process`] (log, kill, readiness).
macro_rules! deref_to_process {
    ($($t:ty),*) => {$(
        impl std::ops::Deref for $t {
            type Target = Process;

            fn deref(&self) -> &Process {
                &self.process
            }
        }

        impl std::ops::DerefMut for $t {
            fn deref_mut(&mut self) -> &mut Process {
                &mut self.process
            }
        }
    )*};
}

deref_to_process!(BookieProcess, BrokerProcess);

/// Sends `sig` (e.g. "TERM", "STOP", "CONT") to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// The last `max` bytes of `s` (on a char boundary).
pub fn tail(s: &str, max: usize) -> &str {
    let start = s.len().saturating_sub(max);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    &s[start..]
}

impl Sandbox {
    /// Runs `strata init-cluster` for [`Sandbox::cluster`]; panics with its output on failure.
    pub fn init_cluster(&self) {
        let out = Command::new(strata_bin())
            .args(["--log", "warn", "init-cluster", "--metadata"])
            .arg(self.metadata_url())
            .args(["--cluster", &self.cluster])
            .output()
            .unwrap();
        assert!(out.status.success(), "init-cluster failed: {out:?}");
    }

    /// Adds `n` brokers with `opts` (each with its own etcd proxy) and starts them; waits until
    /// every one is ready.
    pub async fn start_brokers(&mut self, n: usize, opts: BrokerOptions) {
        let upstream: std::net::SocketAddr = self
            .etcd
            .endpoint(0)
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        for _ in 0..n {
            let i = self.brokers.len();
            self.brokers.push(BrokerProcess {
                process: Process::new(self.dir.path().join(format!("broker-{i}.log"))),
                broker_port: free_port(),
                http_port: free_port(),
                etcd_proxy: CutProxy::start(upstream),
                opts: opts.clone(),
            });
            self.start_broker(i).await;
        }
    }

    /// (Re)starts broker `i` with its ports and options; waits until `/ready` answers 200.
    pub async fn start_broker(&mut self, i: usize) {
        let b = &mut self.brokers[i];
        assert!(!b.is_running(), "broker {i} is running");
        let mut log = b.append_log();
        let _ = writeln!(log, "===== sandbox: start broker {i} =====");
        let o = &b.opts;
        let child = Command::new(strata_bin())
            .args(["--log", &broker_log_filter(), "broker", "--metadata"])
            .arg(format!("etcd://{}", b.etcd_proxy.addr))
            .args(["--cluster", &self.cluster])
            .args(["--broker-port", &b.broker_port.to_string()])
            .args(["--http-port", &b.http_port.to_string()])
            .args([
                "--bind-address",
                "127.0.0.1",
                "--advertised-address",
                "127.0.0.1",
            ])
            .args(["--ensemble-size", &o.ensemble_size.to_string()])
            .args(["--write-quorum", &o.write_quorum.to_string()])
            .args(["--ack-quorum", &o.ack_quorum.to_string()])
            .args(["--session-ttl-secs", &o.session_ttl_secs.to_string()])
            .args([
                "--autorecovery-grace-secs",
                &o.autorecovery_grace_secs.to_string(),
            ])
            .args(
                o.extra_args
                    .iter()
                    .map(|a| a.replace("{broker_port}", &b.broker_port.to_string())),
            )
            .envs(o.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        b.started(child);
        self.wait_broker_ready(i, BROKER_READY_TIMEOUT).await;
    }

    /// Waits until broker `i` answers `/ready` with 200.
    pub async fn wait_broker_ready(&mut self, i: usize, timeout: Duration) {
        let b = &mut self.brokers[i];
        let http = b.http_addr();
        b.wait_ready(&format!("broker {i}"), &http, timeout).await;
    }

    /// SIGKILLs broker `i` (its ownership keys stay until its lease expires).
    pub fn kill_broker(&mut self, i: usize) {
        self.brokers[i].kill();
    }

    /// SIGTERMs broker `i` and waits until it exits (graceful: releases its bundles). Panics if
    /// it does not exit within [`BROKER_STOP_TIMEOUT`] or exits unsuccessfully. Returns how long
    /// the shutdown took.
    pub async fn stop_broker(&mut self, i: usize) -> Duration {
        let b = &mut self.brokers[i];
        let pid = b.pid().expect("broker is running");
        let started = Instant::now();
        signal(pid, "TERM");
        loop {
            if let Some(st) = b.exited() {
                assert!(
                    st.success(),
                    "broker {i} exited with {st} after SIGTERM; log:\n{}",
                    tail(&b.log(), 16384)
                );
                return started.elapsed();
            }
            if started.elapsed() > BROKER_STOP_TIMEOUT {
                b.kill();
                panic!(
                    "broker {i} did not exit within {BROKER_STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    tail(&b.log(), 16384)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Restarts every broker (SIGTERM if running, start, ready), one after the other, so that later
    /// reads come from the bookies and not from a broker's entry cache.
    pub async fn restart_all_brokers(&mut self) {
        for i in 0..self.brokers.len() {
            if self.brokers[i].is_running() {
                self.stop_broker(i).await;
            }
            self.start_broker(i).await;
        }
    }

    /// Cuts broker `i` off from etcd (drops its connections, refuses new ones).
    pub fn cut_etcd(&self, i: usize) {
        self.brokers[i].etcd_proxy.cut();
    }

    /// Reconnects broker `i` to etcd.
    pub fn restore_etcd(&self, i: usize) {
        self.brokers[i].etcd_proxy.restore();
    }

    /// A service URL listing every broker: `pulsar://127.0.0.1:p1,127.0.0.1:p2`.
    pub fn service_url(&self) -> String {
        let hosts: Vec<String> = self.brokers.iter().map(BrokerProcess::id).collect();
        format!("pulsar://{}", hosts.join(","))
    }

    /// The tail of every process log (etcd, bookies, brokers), for failure messages.
    pub fn logs(&self, max_each: usize) -> String {
        let mut s = String::new();
        for i in 0..self.etcd.len() {
            s += &format!(
                "\n===== etcd {i} =====\n{}",
                tail(&self.etcd.log(i), max_each)
            );
        }
        for (i, b) in self.bookies.iter().enumerate() {
            s += &format!(
                "\n===== bookie {i} ({}) =====\n{}",
                b.addr,
                tail(&b.log(), max_each)
            );
        }
        for (i, b) in self.brokers.iter().enumerate() {
            s += &format!(
                "\n===== broker {i} ({}) =====\n{}",
                b.id(),
                tail(&b.log(), max_each)
            );
        }
        s
    }

    /// Broker `i`'s log lines containing `needle`.
    pub fn broker_log_lines(&self, i: usize, needle: &str) -> Vec<String> {
        self.brokers[i]
            .log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Kill brokers before bookies and etcd so that their shutdown does not spam the logs.
        for b in &mut self.brokers {
            b.kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- sandbox logs (dir {}, kept) -----{}",
                self.dir.path().display(),
                self.logs(12 * 1024)
            );
            // Keep the data dirs and full logs for a post-mortem.
            if let Ok(spare) = tempfile::tempdir() {
                let _ = std::mem::replace(&mut self.dir, spare).keep();
            }
        }
    }
}

/// `GET path` on `addr`: (status, raw response including headers), if it answered (within 5 s).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    get(addr, path, Duration::from_secs(5))
}

/// `GET path` on `addr` with a read timeout: (status, raw response), if it answered.
fn get(addr: &str, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf))
}

/// The value of `"field":"..."` in a JSON text (no escapes in the values we look for).
fn json_str_field<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    let key = format!("\"{field}\":\"");
    let at = text.find(&key)? + key.len();
    let end = text[at..].find('"')?;
    Some(&text[at..at + end])
}

impl Sandbox {
    /// Index of the broker that owns `topic` (`persistent://t/ns/name`), by an HTTP lookup on the
    /// running brokers (following one redirect); `None` if no broker answered with an owner.
    pub async fn lookup_owner(&mut self, topic: &str) -> Option<usize> {
        let path = format!(
            "/lookup/v2/topic/{}",
            topic.replacen("persistent://", "persistent/", 1)
        );
        let candidates: Vec<String> = self
            .brokers
            .iter_mut()
            .filter_map(|b| b.is_running().then(|| b.http_addr()))
            .collect();
        let ports: Vec<u16> = self.brokers.iter().map(|b| b.broker_port).collect();
        tokio::task::spawn_blocking(move || {
            for addr in candidates {
                let mut target = (addr, path.clone());
                for _ in 0..3 {
                    let Some((status, resp)) = http_get(&target.0, &target.1) else {
                        break;
                    };
                    if status == 200 {
                        let url = json_str_field(&resp, "brokerUrl")?;
                        let port: u16 =
                            url.rsplit(':').next()?.trim_end_matches('/').parse().ok()?;
                        return ports.iter().position(|p| *p == port);
                    }
                    if (300..400).contains(&status) {
                        let loc = resp
                            .lines()
                            .find(|l| l.to_ascii_lowercase().starts_with("location:"))?
                            .split_once(':')?
                            .1
                            .trim()
                            .to_owned();
                        let rest = loc.split_once("://").map_or(loc.as_str(), |x| x.1);
                        let (host, p) = rest.split_once('/').unwrap_or((rest, ""));
                        target = (host.to_owned(), format!("/{p}"));
                        continue;
                    }
                    break;
                }
            }
            None
        })
        .await
        .unwrap()
    }

    /// Waits until some broker reports an owner of `topic`; returns its index.
    pub async fn wait_owner(&mut self, topic: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.lookup_owner(topic).await {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no owner for {topic} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every ledger's metadata (`/strata/ledgers/`), read directly from etcd.
    pub async fn ledgers(&self) -> Vec<strata_meta::model::LedgerMetadata> {
        let meta = self.meta().await;
        let v = meta
            .list::<strata_meta::model::LedgerMetadata>(&meta.paths().ledgers())
            .await
            .unwrap();
        v.into_iter().map(|(_, m, _)| m).collect()
    }

    /// Starts etcd, `bookies` bookies, runs `init-cluster` and starts `brokers` brokers.
    pub async fn start_cluster(bookies: usize, brokers: usize, opts: BrokerOptions) -> Sandbox {
        let mut sb = Sandbox::start(bookies).await;
        sb.init_cluster();
        sb.start_brokers(brokers, opts).await;
        sb
    }
}

impl Sandbox {
    /// Every key under `prefix` with its value (lossy UTF-8, binary values shown by length), for
    /// failure messages.
    pub async fn dump_prefix(&self, prefix: &str) -> String {
        let meta = self.meta().await;
        let scan = meta.store().scan(prefix).await.unwrap();
        let mut s = String::new();
        for kv in scan.entries {
            let v = &kv.value.value;
            let text = match std::str::from_utf8(v) {
                Ok(t) => t.to_owned(),
                Err(_) => format!("<{} binary bytes>", v.len()),
            };
            s += &format!("\n  {} = {}", kv.key, text);
        }
        s
    }

    /// One line per ledger: id, state, last entry, segments (first entry: bookies).
    pub async fn ledger_summary(&self) -> String {
        let mut s = String::new();
        for l in self.ledgers().await {
            let segs: Vec<String> = l
                .ensembles
                .iter()
                .map(|e| {
                    let b: Vec<&str> = e.bookies.iter().map(|b| b.0.as_str()).collect();
                    format!("{}:{}", e.first_entry.0, b.join("|"))
                })
                .collect();
            s += &format!(
                "\n  ledger {} {:?} last={:?} {:?} custom={:?}",
                l.ledger_id.0,
                l.state,
                l.last_entry_id.map(|e| e.0),
                segs,
                l.custom_metadata
            );
        }
        s
    }
}
