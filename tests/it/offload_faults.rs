//! Tiered storage under faults (issue 11, acceptance 3): a real `strata standalone` offloading to
//! the in-process S3 server, whose fault rules (the objstore `Faults`, applied server side to
//! the broker's requests) answer 500/503, drop connections, cut bodies short and add latency;
//! the official Python client produces and reads back, and the lost/duplicate/reorder checker
//! judges what it read. The bucket is listed after each fault: an object no committed offload
//! names is an orphan.
//!
//! - offload faults: status ERROR with the reason, ledgers stay on the bookies, no orphan, reads
//!   keep working; flaky faults are absorbed by the retries.
//! - read faults: after the bookie copies are deleted and a restart (nothing cached), reads from
//!   the object store through errors, latency and cut bodies lose, duplicate and reorder nothing.
//! - SIGKILL mid-offload: nothing half-offloaded is committed, the janitor of the restarted
//!   broker removes the attempt's objects (and only those), no message is lost; the offload then
//!   completes; topic deletion empties the topic's directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_objstore::test_server::S3TestServer;
use strata_objstore::{Fault, FaultRule, Faults, Op};

use crate::cluster::workload::{self, ProduceSpec, Rec, TestDir};
use crate::harness::http::http;
use crate::harness::standalone::Standalone;

const MESSAGES: u64 = 240;
const SIZE: usize = 200;

/// A standalone node, the S3 server it offloads to, and the workload files.
struct Tiered {
    node: Standalone,
    srv: S3TestServer,
    _rt: tokio::runtime::Runtime,
    _s3_dir: tempfile::TempDir,
    dir: TestDir,
    py: PathBuf,
    topic: String,
    produced: Vec<Rec>,
}

fn config(dir: &Path, janitor: &str) -> PathBuf {
    let p = dir.join("offload.toml");
    std::fs::write(
        &p,
        format!(
            "[broker]\nmax_entries_per_ledger = 40\n\n[offload]\ncheck_interval = \"200ms\"\n\
             block_bytes = 2048\npart_bytes = 8192\n{janitor}\n"
        ),
    )
    .unwrap();
    p
}

impl Tiered {
    /// Starts the server and the node (`janitor`: extra `[offload]` lines), produces
    /// [`MESSAGES`] unbatched messages (6 ledgers).
    fn start(janitor: &str) -> Option<Self> {
        let py = crate::harness::python::python()?;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let s3_dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(Faults::new(11));
        let srv = rt
            .block_on(S3TestServer::start_with_faults(
                s3_dir.path(),
                "bkt",
                faults,
            ))
            .unwrap();
        let dir = TestDir::new();
        let cfg = config(dir.path(), janitor);
        let args = [
            "--config".to_string(),
            cfg.display().to_string(),
            "--offload-url".into(),
            "s3://bkt/tier".into(),
            "--offload-endpoint".into(),
            srv.endpoint.clone(),
        ];
        let node = Standalone::start_with_env(&args, &S3TestServer::env());
        let mut t = Self {
            node,
            srv,
            _rt: rt,
            _s3_dir: s3_dir,
            dir,
            py,
            topic: workload::topic("tier-faults"),
            produced: vec![],
        };
        let spec = ProduceSpec {
            topics: vec![t.topic.clone()],
            count: MESSAGES,
            batching: false,
            size: SIZE,
            // Paced: sends pipelined all at once would fill one ledger past its limit.
            rate: 400.0,
            max_secs: 60,
            ..Default::default()
        };
        let mut p = workload::produce(&t.py, t.dir.path(), "produce", &t.node.url(), &spec);
        t.rt().block_on(p.wait(Duration::from_secs(90)));
        t.produced = p.records();
        assert_eq!(workload::acks(&t.produced).len() as u64, MESSAGES);
        Some(t)
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        &self._rt
    }

    fn faults(&self) -> &Faults {
        self.srv.faults()
    }

    fn path(&self, what: &str) -> String {
        format!(
            "/admin/v2/persistent/{}/{what}",
            self.topic.trim_start_matches("persistent://")
        )
    }

    fn get(&self, what: &str) -> Value {
        let (code, body) = http(self.node.http_port, "GET", &self.path(what), "");
        assert_eq!(code, 200, "GET {what}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn ledgers(&self) -> Vec<Value> {
        self.get("internalStats")["ledgers"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Asks for an offload of every closed ledger before ledger `before` (all: `u64::MAX >> 1`)
    /// and waits until it ends; returns the status.
    fn offload(&self, before: u64) -> Value {
        let body = format!("{{\"ledgerId\":{before},\"entryId\":0}}");
        let (code, b) = http(self.node.http_port, "PUT", &self.path("offload"), &body);
        assert_eq!(code, 204, "{b}");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let st = self.get("offload");
            if st["status"] != "RUNNING" {
                return st;
            }
            assert!(Instant::now() < deadline, "offload still running: {st}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Attempt directories in the bucket by ledger id, with their objects' names.
    fn attempts(&self) -> BTreeMap<u64, BTreeMap<String, BTreeSet<String>>> {
        let mut out: BTreeMap<u64, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for k in self.srv.keys("bkt") {
            let mut parts = k.rsplitn(3, '/');
            let (Some(obj), Some(attempt)) = (parts.next(), parts.next()) else {
                panic!("unexpected key {k}");
            };
            let ledger: u64 = attempt
                .split_once('-')
                .and_then(|(l, _)| l.parse().ok())
                .unwrap_or_else(|| panic!("unexpected key {k}"));
            out.entry(ledger)
                .or_default()
                .entry(attempt.to_string())
                .or_default()
                .insert(obj.to_string());
        }
        out
    }

    /// The bucket holds exactly one complete attempt (data and index) per offloaded ledger and
    /// nothing else.
    fn assert_no_orphan(&self) {
        let offloaded: BTreeSet<u64> = self
            .ledgers()
            .iter()
            .filter(|l| l["offloaded"] == true)
            .map(|l| l["ledgerId"].as_u64().unwrap())
            .collect();
        let attempts = self.attempts();
        assert_eq!(
            attempts.keys().copied().collect::<BTreeSet<_>>(),
            offloaded,
            "bucket: {attempts:?}"
        );
        for (l, a) in &attempts {
            assert_eq!(a.len(), 1, "ledger {l}: more than one attempt: {a:?}");
            let objs = a.values().next().unwrap();
            assert!(
                objs.contains("index") && objs.iter().any(|o| o.starts_with("data-")),
                "ledger {l}: {objs:?}"
            );
        }
    }

    /// A reader from earliest (official client) gets every acknowledged message once, in order,
    /// byte for byte.
    fn read_back(&self, name: &str) {
        let read = self.rt().block_on(workload::read_all(
            &self.py,
            self.dir.path(),
            name,
            &self.node.url(),
            std::slice::from_ref(&self.topic),
            Duration::from_secs(120),
        ));
        let a = workload::analyse(&self.produced, &read);
        eprintln!("RESULT: {name}: {}", a.report);
        assert!(
            a.report.is_exactly_once() && a.report.reordered.is_empty(),
            "{name}: {}\n{}",
            a.report,
            self.node.log_tail()
        );
        let reads: Vec<&Rec> = read.iter().filter(|r| r.e == "read").collect();
        assert_eq!(reads.len() as u64, MESSAGES, "{name}");
        assert!(
            reads.iter().all(|r| r.ok == Some(true)),
            "{name}: payloads differ"
        );
    }

    /// Sets the namespace's deletion lag to 0 and waits until every offloaded ledger's bookie
    /// copy is deleted (the policy check runs every 200 ms).
    fn delete_bookie_copies(&self) {
        let (code, b) = http(
            self.node.http_port,
            "PUT",
            "/admin/v2/namespaces/public/default/offloadDeletionLagMs",
            "0",
        );
        assert!(code == 204 || code == 200, "{code} {b}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self
            .ledgers()
            .iter()
            .filter(|l| l["offloaded"] == true)
            .all(|l| l["bookiesDeleted"] == true)
        {
            assert!(Instant::now() < deadline, "{:?}", self.ledgers());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn offload_and_read_faults_lose_nothing_and_orphan_nothing() {
    let Some(mut t) = Tiered::start("janitor_interval = \"1h\"") else {
        return;
    };
    // Each offload fault: the run ends in ERROR with the reason, nothing moved, nothing left
    // (faults on the index hit after the data objects were written: those must go too).
    for (fault, keys) in [
        (Fault::Status(503), ""),
        (Fault::Status(500), "index"),
        (Fault::Unreachable, "data-"),
        (Fault::Truncate, "index"),
    ] {
        t.faults().clear();
        t.faults()
            .add(FaultRule::always(Some(Op::Put), fault.clone()).on_keys(keys));
        let st = t.offload(u64::MAX >> 1);
        assert_eq!(st["status"], "ERROR", "{fault:?}: {st}");
        assert!(
            !st["lastError"].as_str().unwrap_or_default().is_empty(),
            "{st}"
        );
        assert!(t.ledgers().iter().all(|l| l["offloaded"] == false));
        t.faults().clear();
        t.assert_no_orphan();
        eprintln!("{fault:?}: {}", st["lastError"]);
    }
    t.read_back("read-after-offload-faults");
    // Flaky writes, slow requests: absorbed by the retries.
    t.faults()
        .add(FaultRule::always(Some(Op::Put), Fault::Status(503)).sometimes(0.3));
    t.faults()
        .add(FaultRule::always(Some(Op::Put), Fault::Truncate).sometimes(0.2));
    t.faults()
        .add(FaultRule::always(None, Fault::Latency(Duration::from_millis(30))).sometimes(0.5));
    let st = t.offload(u64::MAX >> 1);
    assert_eq!(st["status"], "SUCCESS", "{st}");
    t.faults().clear();
    let ls = t.ledgers();
    assert!(
        ls.iter()
            .filter(|l| l["closed"] == true && l["entries"].as_u64() > Some(0))
            .all(|l| l["offloaded"] == true),
        "{ls:?}"
    );
    t.assert_no_orphan();
    t.delete_bookie_copies();
    // Read faults, with nothing cached: errors, dropped connections, cut bodies, latency.
    t.node.terminate();
    for f in [
        Fault::Status(503),
        Fault::Status(500),
        Fault::Unreachable,
        Fault::Truncate,
    ] {
        t.faults()
            .add(FaultRule::always(Some(Op::GetRange), f.clone()).sometimes(0.08));
        t.faults()
            .add(FaultRule::always(Some(Op::Get), f).sometimes(0.08));
    }
    t.faults()
        .add(FaultRule::always(None, Fault::Latency(Duration::from_millis(40))).sometimes(0.5));
    t.node.start_again();
    let before = t.faults().injected();
    t.read_back("read-through-read-faults");
    let injected = t.faults().injected() - before;
    eprintln!("RESULT: read faults injected: {injected}");
    assert!(injected > 10, "too few faults injected: {injected}");
    t.faults().clear();
    t.assert_no_orphan();
}

#[test]
fn sigkill_mid_offload_leaves_no_orphan_and_loses_nothing() {
    let Some(mut t) = Tiered::start("janitor_interval = \"300ms\"\njanitor_grace = \"1s\"") else {
        return;
    };
    let ls = t.ledgers();
    let first = ls[0]["ledgerId"].as_u64().unwrap();
    let second = ls[1]["ledgerId"].as_u64().unwrap();
    // The first ledger offloads cleanly.
    let st = t.offload(second);
    assert_eq!(st["status"], "SUCCESS", "{st}");
    t.assert_no_orphan();
    let committed = t.attempts();
    // The next ones hang on their index (the last object of an attempt): SIGKILL then.
    t.faults().add(
        FaultRule::always(Some(Op::Put), Fault::Latency(Duration::from_secs(4))).on_keys("index"),
    );
    let body = "{\"ledgerId\":9223372036854775807,\"entryId\":0}";
    let (code, b) = http(t.node.http_port, "PUT", &t.path("offload"), body);
    assert_eq!(code, 204, "{b}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !t.attempts().contains_key(&second) {
        assert!(
            Instant::now() < deadline,
            "no upload started: {:?}",
            t.attempts()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.node.kill();
    let half = t.attempts();
    eprintln!("bucket at the SIGKILL: {half:?}");
    assert!(half.len() > committed.len(), "{half:?}");
    t.faults().clear();
    // The index write the broker started may still land after the kill: wait it out, so the
    // janitor sees the attempt in its final state.
    std::thread::sleep(Duration::from_secs(5));
    t.node.start_again();
    // Nothing half-offloaded is committed; the janitor removes the attempt, keeps the commit.
    let offloaded: Vec<u64> = t
        .ledgers()
        .iter()
        .filter(|l| l["offloaded"] == true)
        .map(|l| l["ledgerId"].as_u64().unwrap())
        .collect();
    assert_eq!(offloaded, vec![first]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.attempts() != committed {
        assert!(
            Instant::now() < deadline,
            "janitor left {:?} (committed {committed:?})",
            t.attempts()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.assert_no_orphan();
    t.read_back("read-after-kill");
    // The restarted broker finishes the work.
    let st = t.offload(u64::MAX >> 1);
    assert_eq!(st["status"], "SUCCESS", "{st}");
    t.assert_no_orphan();
    assert!(t.attempts().len() >= 5, "{:?}", t.attempts());
    t.delete_bookie_copies();
    t.node.terminate();
    t.node.start_again();
    t.read_back("read-after-restart");
    // Topic deletion removes the offloaded objects.
    let topic_path = t.path("");
    let (code, b) = http(
        t.node.http_port,
        "DELETE",
        topic_path.trim_end_matches('/'),
        "",
    );
    assert!(code == 204 || code == 200, "{code} {b}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !t.srv.keys("bkt").is_empty() {
        assert!(
            Instant::now() < deadline,
            "left after deletion: {:?}",
            t.srv.keys("bkt")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM during an offload: the broker cancels the upload, removes the attempt's objects and
/// exits promptly and cleanly; nothing is committed, nothing lost.
#[test]
fn sigterm_mid_offload_stops_cleanly() {
    let Some(mut t) = Tiered::start("janitor_interval = \"1h\"") else {
        return;
    };
    t.faults().add(
        FaultRule::always(Some(Op::Put), Fault::Latency(Duration::from_secs(20))).on_keys("index"),
    );
    let body = "{\"ledgerId\":9223372036854775807,\"entryId\":0}";
    let (code, b) = http(t.node.http_port, "PUT", &t.path("offload"), body);
    assert_eq!(code, 204, "{b}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.attempts().is_empty() {
        assert!(Instant::now() < deadline, "no upload started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let status = t.node.terminate();
    let took = started.elapsed();
    eprintln!("RESULT: SIGTERM mid-offload: exit {status} in {took:?}");
    assert!(status.success(), "{status}\n{}", t.node.log_of_run());
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(
        t.node.log_of_run().contains("offloader stopped"),
        "{}",
        t.node.log_of_run()
    );
    t.faults().clear();
    t.node.start_again();
    assert!(t.ledgers().iter().all(|l| l["offloaded"] == false));
    t.assert_no_orphan();
    t.read_back("read-after-sigterm");
}
