//! One child process of the sandbox (a bookie or a broker) with its log file: started, checked
//! for readiness over HTTP, SIGKILLed when dropped.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use super::sandbox::{http_status, tail};

/// A child process and the file its output is appended to (across restarts).
pub struct Process {
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Not started yet; its output will go to `log`.
    pub fn new(log: PathBuf) -> Process {
        Process { child: None, log }
    }

    /// The log file opened for appending, for the next run's output.
    pub fn append_log(&self) -> File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open process log")
    }

    /// Records the started child.
    pub fn started(&mut self, child: Child) {
        self.child = Some(child);
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Its log so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its exit status once it has exited (then it is no longer running).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let st = self.child.as_mut()?.try_wait().expect("wait for child")?;
        self.child = None;
        Some(st)
    }

    /// SIGKILLs and reaps it; no-op if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    /// Waits until `GET /ready` on `http_addr` answers 200; panics (naming it `what`, with the
    /// tail of its log) if it exits first or `timeout` passes.
    pub async fn wait_ready(&mut self, what: &str, http_addr: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                panic!("{what} exited early; log:\n{}", tail(&self.log(), 16384));
            }
            let h = http_addr.to_owned();
            let ok = tokio::task::spawn_blocking(move || http_status(&h, "/ready") == Some(200))
                .await
                .unwrap();
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} not ready in {timeout:?}; log:\n{}",
                tail(&self.log(), 16384)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
