//! Python scripts with the official client (`pulsar-client` 3.x from `STRATA_PYTHON`): the
//! interpreter, the `tests/python/` directory, and a run bounded in time whose output is kept.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

/// The Python interpreter with `pulsar-client`, or `None` (skip) outside CI.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("STRATA_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("STRATA_PYTHON is not set under CI: scripts/test must provide the venv python")
        }
        _ => {
            eprintln!(
                "SKIPPED: STRATA_PYTHON is not set (run scripts/test, which creates the venv)"
            );
            None
        }
    }
}

/// `tests/python/`: the scripts run with the official Python client.
pub fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// `py tests/python/<script>` in that directory, unbuffered, writing no bytecode, stdin closed.
pub fn python_command(py: &Path, script: &str) -> Command {
    let mut cmd = Command::new(py);
    cmd.arg(scripts_dir().join(script))
        .current_dir(scripts_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    cmd
}

/// `py -c <code> args...`: an inline script.
pub fn inline_command(py: &Path, code: &str) -> Command {
    let mut cmd = Command::new(py);
    cmd.arg("-c")
        .arg(code)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
    cmd
}

/// What a process printed, and how it ended.
pub struct Output {
    /// `None`: it ran out of time and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// It exited with status 0 in time.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// stdout followed by stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to its end, or kills it after `timeout`. Its output goes to temp files, so a
/// chatty process never blocks on a full pipe.
pub fn run_for(cmd: &mut Command, timeout: Duration) -> Output {
    let mut out = tempfile::tempfile().expect("temp file for stdout");
    let mut err = tempfile::tempfile().expect("temp file for stderr");
    let mut child = cmd
        .stdout(out.try_clone().expect("clone stdout file"))
        .stderr(err.try_clone().expect("clone stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let status = child.wait_timeout(timeout).expect("wait for the child");
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let read = |f: &mut std::fs::File| {
        let mut s = Vec::new();
        let _ = f.rewind();
        let _ = f.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    };
    Output {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}
