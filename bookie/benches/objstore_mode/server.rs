//! The object store of the object-storage mode: the in-process S3 server (s3s-fs) run in a
//! child process (`bookie_bench --s3-server DIR [--cpus LIST]`), or, with
//! `BENCH_OBJSTORE_S3=inproc`, on its own runtime in the bench process.
//!
//! Why a child: a real object store runs on other machines, so its CPU (HTTP parsing, the ETag
//! md5, storing the bytes) is not the bookie host's. By default the child is pinned to CPUs of its
//! own (`pin.rs`; the bench process to the others) at normal priority. Without pinning
//! (`BENCH_OBJSTORE_PIN=none`) it shares the bench's CPUs at a lower priority (nice 10 by default,
//! `BENCH_OBJSTORE_S3_NICE=N`, or `idle` for SCHED_IDLE), so it yields to the bookie and the load
//! generator but still takes what they leave. The bench reports after each object-storage phase
//! how much of the phase's data was uploaded meanwhile and how long the rest took to drain, so a
//! store that fell behind is seen.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use strata_objstore::ObjStoreConfig;
use strata_objstore::test_server::{ACCESS_KEY, S3TestServer, SECRET_KEY};

/// The running store; dropping it stops the child process.
pub enum S3 {
    Child {
        child: Child,
        endpoint: String,
    },
    InProcess {
        srv: S3TestServer,
        /// Runs the server (dropped with it).
        _rt: tokio::runtime::Runtime,
    },
}

impl S3 {
    /// Starts the store on `root` as configured, its process pinned to `cpus` if given; returns
    /// it and a description.
    pub fn start(root: &Path, cpus: Option<&[usize]>) -> (Self, String) {
        // a niceness, or `idle` (SCHED_IDLE: runs only on CPU time nothing else wants); pinned
        // to CPUs of its own it needs no lower priority
        let default_prio = if cpus.is_some() { "0" } else { "10" };
        let prio = std::env::var("BENCH_OBJSTORE_S3_NICE").unwrap_or_else(|_| default_prio.into());
        if inproc() {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let srv = rt.block_on(S3TestServer::start(root, "bench")).unwrap();
            return (
                S3::InProcess { srv, _rt: rt },
                "in the bench process on its own runtime (BENCH_OBJSTORE_S3=inproc)".into(),
            );
        }
        let (cmd, args, how) = if prio == "idle" {
            (
                "chrt",
                vec!["--idle".to_string(), "0".into()],
                "SCHED_IDLE".to_string(),
            )
        } else {
            (
                "nice",
                vec!["-n".to_string(), prio.clone()],
                format!("nice {prio}"),
            )
        };
        let mut child = Command::new(cmd)
            .args(args)
            .arg(std::env::current_exe().unwrap())
            .arg("--s3-server")
            .arg(root)
            .args(
                cpus.map(|c| ["--cpus".to_string(), super::pin::show(c)])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .trim()
            .strip_prefix("ENDPOINT ")
            .unwrap_or_else(|| panic!("S3 server process said {line:?}"))
            .to_string();
        (
            S3::Child { child, endpoint },
            format!(
                "in a separate process at {how}{} (BENCH_OBJSTORE_S3_NICE=N|idle; BENCH_OBJSTORE_S3=inproc \
                 runs it in the bench process)",
                cpus.map(|c| format!(" pinned to CPU {}", super::pin::show(c)))
                    .unwrap_or_default()
            ),
        )
    }

    /// CPU seconds the store's process used so far (`None` in-process: not separable).
    pub fn cpu_secs(&self) -> Option<f64> {
        match self {
            S3::Child { child, .. } => Some(super::super::proc_cpu_secs(&child.id().to_string())),
            S3::InProcess { .. } => None,
        }
    }

    /// A store config for `bucket`/`prefix`.
    pub fn config(&self, prefix: &str) -> ObjStoreConfig {
        match self {
            S3::InProcess { srv, .. } => srv.config("bench", prefix),
            S3::Child { endpoint, .. } => ObjStoreConfig {
                url: format!("s3://bench/{prefix}"),
                endpoint: Some(endpoint.clone()),
                region: Some("us-east-1".into()),
                credentials: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
                ..Default::default()
            },
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        if let S3::Child { child, .. } = self {
            // its stdin closes: it exits
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// `BENCH_OBJSTORE_S3=inproc`: the server runs in the bench process.
pub fn inproc() -> bool {
    std::env::var("BENCH_OBJSTORE_S3").is_ok_and(|v| v == "inproc")
}

/// The child side (started under `nice`/`chrt`): `--s3-server DIR [--cpus LIST]` serves bucket
/// `bench` from DIR until stdin closes, its threads on the CPUs of LIST.
pub fn server_main(argv: &[String]) {
    let arg = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
    };
    let root = arg("--s3-server").expect("--s3-server DIR");
    if let Some(list) = arg("--cpus") {
        let cpus: Vec<usize> = list.split(',').filter_map(|c| c.parse().ok()).collect();
        super::pin::pin_self(&cpus).expect("pin the S3 server process");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let srv = rt
        .block_on(S3TestServer::start(Path::new(root), "bench"))
        .unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "ENDPOINT {}", srv.endpoint).unwrap();
    out.flush().unwrap();
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
        sink.clear();
    }
    drop(srv);
    drop(rt);
}
