//! A real etcd (Debian `etcd-server`) for tests: one node or a cluster of members on free
//! loopback ports, data in a temp dir, killed (SIGKILL) on drop.
//!
//! ```ignore
//! let etcd = EtcdCluster::start(1);          // or start(3)
//! let eps = etcd.endpoints();                // ["http://127.0.0.1:PORT", ...]
//! etcd.kill(0);                              // SIGKILL member 0
//! etcd.restart(0);                           // same data dir, same ports; waits until healthy
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// Path of the etcd binary: `$STRATA_ETCD` or `etcd` on the `PATH`.
pub fn etcd_bin() -> PathBuf {
    std::env::var_os("STRATA_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// An etcd cluster of one or more members started as real processes.
pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster has a leader and every member answers.
    /// Retries with other ports if one was taken in the meantime.
    pub fn start(n: usize) -> Self {
        assert!(n >= 1);
        for attempt in 1.. {
            match Self::try_start(n) {
                Ok(c) => return c,
                Err(log) if attempt < 5 && log.contains("address already in use") => continue,
                Err(log) => panic!("etcd did not start; log:\n{log}"),
            }
        }
        unreachable!()
    }

    fn try_start(n: usize) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let name = format!("m{i}");
                Member {
                    client_port: free_port(),
                    peer_port: free_port(),
                    data_dir: dir.path().join(format!("{name}.etcd")),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    child: None,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("strata-test-{}", std::process::id());
        let mut cluster = Self {
            members,
            initial_cluster,
            token,
            dir,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.try_wait_healthy(i, Duration::from_secs(30))?;
        }
        Ok(cluster)
    }

    /// Client URLs of every member (`http://127.0.0.1:PORT`), in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// Client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The temp dir holding data dirs and logs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Whether member `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.members[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILLs member `i` and reaps it. No-op if it is not running.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts member `i` with its data dir and ports, and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_healthy(i, Duration::from_secs(30));
    }

    /// Starts member `i` without waiting (a single member of a 3-node cluster cannot become
    /// healthy alone).
    pub fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("open etcd log");
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let child = Command::new(etcd_bin())
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
            // Idle watches learn the current revision quickly (see strata-meta's watch resume).
            .args(["--experimental-watch-progress-notify-interval", "300ms"])
            .args(["--log-level", "warn", "--logger", "zap"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start etcd ({}): {e}; install Debian's etcd-server",
                    etcd_bin().display()
                )
            });
        self.members[i].child = Some(child);
    }

    /// Waits until member `i` reports healthy (`/health`: it sees a leader).
    pub fn wait_healthy(&mut self, i: usize, timeout: Duration) {
        if let Err(log) = self.try_wait_healthy(i, timeout) {
            panic!("etcd member {i} not healthy in {timeout:?}; log:\n{log}");
        }
    }

    fn try_wait_healthy(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let port = self.members[i].client_port;
        loop {
            if health(port) {
                return Ok(());
            }
            if !self.is_running(i) || Instant::now() > deadline {
                return Err(self.log(i));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Member `i`'s log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.members[i].log).unwrap_or_default()
    }
}

fn health(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
