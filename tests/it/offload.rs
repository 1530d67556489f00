//! Tiered storage end to end (issue 11): a real `strata standalone` offloading to the in-process
//! S3-compatible server (s3s + s3s-fs, in this test process), the official Python client reading
//! across a restart after the first ledgers were offloaded and deleted from the bookie; the same
//! against `moto_server`, a second, independent S3 implementation.

use std::path::Path;
use std::time::Duration;

use strata_objstore::test_server::{ACCESS_KEY, S3TestServer, SECRET_KEY};

use crate::harness::python::python;
use crate::harness::standalone::Standalone;
use crate::pulsar_python::run_script_with;

/// A config making ledgers small and the offload checks frequent.
fn config(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("offload.toml");
    std::fs::write(
        &p,
        "[broker]\nmax_entries_per_ledger = 40\n\n[offload]\ncheck_interval = \"200ms\"\n\
         block_bytes = 4096\npart_bytes = 65536\njanitor_interval = \"1h\"\n",
    )
    .unwrap();
    p
}

fn env() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
    ]
}

/// Produces, waits for the offload and the bookie deletion, restarts, reads from earliest.
fn produce_restart_read(py: &Path, endpoint: &str, bucket: &str, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let args = [
        "--config".to_string(),
        cfg.display().to_string(),
        "--offload-url".into(),
        format!("s3://{bucket}/strata"),
        "--offload-endpoint".into(),
        endpoint.to_string(),
    ];
    let mut node = Standalone::start_with_env(&args, env);
    let topic = format!("persistent://public/default/tier-{}", std::process::id());
    run_script_with(py, "offload_read", &node, &["produce", &topic, "300"]);
    node.terminate();
    node.start_again();
    run_script_with(py, "offload_read", &node, &["read", &topic, "300"]);
}

#[test]
fn python_reads_offloaded_ledgers_across_a_restart_s3s() {
    let Some(py) = python() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let srv = rt.block_on(S3TestServer::start(dir.path(), "bkt")).unwrap();
    produce_restart_read(&py, &srv.endpoint, "bkt", &env());
    // The objects are in the bucket, under the topic's directory.
    let objs = walk(&dir.path().join("bkt"));
    assert!(objs.iter().any(|p| p.ends_with("index")), "{objs:?}");
    drop(srv);
}

/// `moto_server` (PyPI `moto[server]`) as a second, independent S3 implementation.
#[test]
fn python_reads_offloaded_ledgers_across_a_restart_moto() {
    let Some(py) = python() else { return };
    let Some(moto) = moto_server() else {
        println!(
            "SKIP: moto_server not found (pip install 'moto[server]'); set STRATA_MOTO_SERVER"
        );
        return;
    };
    let port = crate::harness::free_port();
    let mut child = std::process::Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Create the bucket with a PUT (moto accepts unsigned requests).
    loop {
        let ok = std::process::Command::new(&py)
            .args([
                "-c",
                &format!(
                    "import urllib.request as u; u.urlopen(u.Request('{endpoint}/bkt', method='PUT'), timeout=2)"
                ),
            ])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    produce_restart_read(
        &py,
        &endpoint,
        "bkt",
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn moto_server() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("STRATA_MOTO_SERVER") {
        return Some(p.into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    })
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `strata admin` offload commands and the REST answers: 412 without an offload store; with one,
/// `topics offload -s 0` then `offload-status --wait` ends in SUCCESS and internal stats show the
/// closed ledgers offloaded.
#[test]
fn admin_offload_commands() {
    use crate::harness::cli::{produce, strata_ok};
    use crate::harness::http::http;
    // No store configured: a clear refusal.
    let plain = Standalone::start();
    produce(&plain.url(), "persistent://public/default/a", "m", 3, &[]);
    let (code, body) = http(
        plain.http_port,
        "GET",
        "/admin/v2/persistent/public/default/a/offload",
        "",
    );
    assert_eq!(code, 412, "{body}");
    assert!(body.contains("offload is not configured"), "{body}");
    drop(plain);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let srv = rt.block_on(S3TestServer::start(dir.path(), "bkt")).unwrap();
    let cfg = config(dir.path());
    let args = [
        "--config".to_string(),
        cfg.display().to_string(),
        "--offload-url".into(),
        "s3://bkt/cli".into(),
        "--offload-endpoint".into(),
        srv.endpoint.clone(),
    ];
    let node = Standalone::start_with_env(&args, &env());
    let topic = "persistent://public/default/cli-offload";
    // (Pipelined sends fill one ledger past max_entries_per_ledger: one run per ledger.)
    for _ in 0..4 {
        produce(&node.url(), topic, "hello", 45, &["--disable-batching"]);
    }
    let admin = node.http_url();
    let a = |args: &[&str]| {
        let mut all = vec!["admin", "--admin-url", admin.as_str()];
        all.extend_from_slice(args);
        strata_ok("strata admin", &all)
    };
    let st = a(&["topics", "offload-status", topic]);
    assert!(st.contains("NOT_RUN"), "{st}");
    let out = a(&["topics", "offload", topic, "-s", "0"]);
    assert!(out.contains("Offload triggered"), "{out}");
    let st = a(&["topics", "offload-status", topic, "--wait"]);
    assert!(st.contains("SUCCESS"), "{st}");
    let stats = a(&["--output", "json", "topics", "stats-internal", topic]);
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let ls = v["ledgers"].as_array().unwrap();
    assert!(ls.len() >= 4, "{stats}");
    assert!(
        ls[..ls.len() - 1].iter().all(|l| l["offloaded"] == true),
        "{stats}"
    );
    // Namespace policies through the CLI.
    a(&[
        "namespaces",
        "set-offload-deletion-lag",
        "public/default",
        "-l",
        "10m",
    ]);
    let lag = a(&["namespaces", "get-offload-deletion-lag", "public/default"]);
    assert!(lag.contains("600000"), "{lag}");
    a(&[
        "namespaces",
        "set-offload-threshold-in-seconds",
        "public/default",
        "-t",
        "1h",
    ]);
    let t = a(&[
        "namespaces",
        "get-offload-threshold-in-seconds",
        "public/default",
    ]);
    assert!(t.contains("3600"), "{t}");
    drop(node);
    drop(srv);
}
