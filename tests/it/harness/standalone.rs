//! A real `strata standalone` process on free loopback ports, for the Pulsar client tests and the
//! durability tests (kill with SIGKILL, restart on the same data directory), with extra flags
//! (TLS, authentication) when a test needs them.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, strata_bin};

/// How long a standalone may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `strata standalone`; killed (SIGKILL) when dropped.
pub struct Standalone {
    child: Option<Child>,
    /// Data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Pulsar protocol port.
    pub broker_port: u16,
    /// HTTP port.
    pub http_port: u16,
    log: PathBuf,
    /// Length of the log when the running process was started.
    log_start: usize,
    /// Flags appended to the command line, and more ports that must accept connections.
    extra_args: Vec<OsString>,
    extra_ports: Vec<u16>,
    /// Environment variables set for the process (object-store credentials, say).
    extra_env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

impl Standalone {
    /// Starts a standalone with a fresh temporary data directory.
    pub fn start() -> Standalone {
        Self::start_with(&[] as &[&str], &[])
    }

    /// Like [`Standalone::start`] with `args` appended to the command line; waits until `ports`
    /// accept connections too (TLS ports, say).
    pub fn start_with<S: AsRef<OsStr>>(args: &[S], ports: &[u16]) -> Standalone {
        let tmp = tempfile::tempdir().expect("create temp dir");
        let mut s = Self::new(&tmp.path().join("data"), free_port(), free_port());
        s.extra_args = args.iter().map(|a| a.as_ref().to_owned()).collect();
        s.extra_ports = ports.to_vec();
        s._tmp = Some(tmp);
        s.spawn();
        s
    }

    /// Like [`Standalone::start_with`] with environment variables for the process.
    pub fn start_with_env<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> Standalone {
        let tmp = tempfile::tempdir().expect("create temp dir");
        let mut s = Self::new(&tmp.path().join("data"), free_port(), free_port());
        s.extra_args = args.iter().map(|a| a.as_ref().to_owned()).collect();
        s.extra_env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s._tmp = Some(tmp);
        s.spawn();
        s
    }

    /// Starts a standalone on `data_dir` with the given ports and waits until the broker port
    /// accepts connections. Panics with the process log if it exits or does not come up.
    pub fn start_in(data_dir: &Path, broker_port: u16, http_port: u16) -> Standalone {
        let mut s = Self::new(data_dir, broker_port, http_port);
        s.spawn();
        s
    }

    fn new(data_dir: &Path, broker_port: u16, http_port: u16) -> Standalone {
        std::fs::create_dir_all(data_dir).expect("create data dir");
        let log = data_dir
            .parent()
            .unwrap_or(data_dir)
            .join(format!("standalone-{broker_port}.log"));
        Standalone {
            child: None,
            data_dir: data_dir.to_owned(),
            broker_port,
            http_port,
            log,
            log_start: 0,
            extra_args: vec![],
            extra_ports: vec![],
            extra_env: vec![],
            _tmp: None,
        }
    }

    fn spawn(&mut self) {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log file");
        self.log_start = self.log().len();
        let child = Command::new(strata_bin())
            .args(["standalone", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--broker-port", &self.broker_port.to_string()])
            .args(["--http-port", &self.http_port.to_string()])
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .env("STRATA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn()
            .expect("spawn strata standalone");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut ports = [self.broker_port, self.http_port]
                .into_iter()
                .chain(self.extra_ports.iter().copied());
            if ports.all(|p| TcpStream::connect(("127.0.0.1", p)).is_ok()) {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "strata standalone exited with {status} before listening\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "strata standalone did not listen on {} within {START_TIMEOUT:?}\n{}",
                    self.broker_port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `pulsar://127.0.0.1:<broker_port>`.
    pub fn url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.broker_port)
    }

    /// `http://127.0.0.1:<http_port>`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The process id (e.g. to read its RSS).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap the process (no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the process and starts a new one on the same data directory and ports.
    pub fn restart_after_kill(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGTERMs the process and waits (30 s at most) until it exits; returns its exit status.
    /// Panics with the log if it does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("standalone is running");
        // SAFETY-free: libc::kill on a child pid we own.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait for standalone") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no exit within 30 s of SIGTERM:\n{}", self.log_of_run());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again (after [`Standalone::terminate`] or [`Standalone::kill`]) on the
    /// same data directory, ports and flags.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "standalone is running");
        self.spawn();
    }

    /// The directory holding the data directory and the log.
    pub fn dir(&self) -> &Path {
        self.data_dir.parent().unwrap_or(&self.data_dir)
    }

    /// The whole process log (every run).
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// What the current (or last) run of the process logged.
    pub fn log_of_run(&self) -> String {
        let log = self.log();
        log.get(self.log_start..).unwrap_or_default().to_owned()
    }

    /// The last 8 KiB of the process log.
    pub fn log_tail(&self) -> String {
        let s = self.log();
        let start = s.len().saturating_sub(8192);
        let start = (start..s.len())
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(s.len());
        s[start..].to_owned()
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        self.kill();
    }
}
