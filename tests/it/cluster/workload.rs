//! The cluster workload: `tests/python/cluster_workload.py` (official Python client) run as child
//! processes — producers that record every acknowledged send with its message id, consumers and
//! readers that record every message they get — and the analysis the tests assert on: the
//! lost/duplicate/reorder checker, acknowledged ids that are not readable, message-id regressions,
//! the longest gap between acknowledgements and publish latency percentiles.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::checker::{self, Checker, MsgId, Report};
use crate::harness::python::python_command;

use super::sandbox::{BrokerOptions, Sandbox, tail};

/// The Python interpreter with `pulsar-client` (`STRATA_PYTHON`), or `None`: skip (outside CI).
pub fn python() -> Option<PathBuf> {
    crate::harness::python::python()
}

/// Seconds since the epoch (the clock the Python records use).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A temporary directory for workload files, kept (and its path printed) when the test panics.
pub struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    /// A fresh directory.
    pub fn new() -> Self {
        Self(Some(tempfile::tempdir().unwrap()))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(d) = self.0.take()
        {
            eprintln!("workload files kept in {}", d.keep().display());
        }
    }
}

/// One line of a workload output file.
#[derive(Debug, Clone, Deserialize)]
pub struct Rec {
    /// "ack", "err", "recv", "read" or "end".
    pub e: String,
    #[serde(default)]
    pub p: Option<String>,
    #[serde(default)]
    pub s: Option<i64>,
    #[serde(default)]
    pub l: Option<i64>,
    #[serde(default)]
    pub n: Option<i64>,
    #[serde(default)]
    pub pt: Option<i64>,
    #[serde(default)]
    pub b: Option<i64>,
    /// Time of the event (seconds since the epoch).
    #[serde(default)]
    pub t: Option<f64>,
    /// Publish latency (ms), on acks.
    #[serde(default)]
    pub lat: Option<f64>,
    /// Redelivery count, on receives.
    #[serde(default)]
    pub r: Option<i64>,
    /// Why a send failed.
    #[serde(default)]
    pub why: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    /// On receives and reads: the payload is the one the producer sent (byte for byte).
    #[serde(default)]
    pub ok: Option<bool>,
    /// On receives and reads: the payload's size.
    #[serde(default)]
    pub len: Option<i64>,
}

impl Rec {
    /// (producer, seq, message id) — for acks, receives and reads.
    pub fn key(&self) -> Option<(String, u64, MsgId)> {
        Some((
            self.p.clone()?,
            u64::try_from(self.s?).ok()?,
            (
                u64::try_from(self.l?).ok()?,
                u64::try_from(self.n?).ok()?,
                i32::try_from(self.b?).ok()?,
            ),
        ))
    }
}

/// A workload child process; killed when dropped.
pub struct Py {
    child: Option<Child>,
    /// Its JSON-lines output.
    pub out: PathBuf,
    log: PathBuf,
    /// Its name (file stem).
    pub name: String,
}

impl Py {
    /// Runs `cluster_workload.py <mode> --out DIR/NAME.jsonl <args>`.
    pub fn spawn(py: &Path, dir: &Path, name: &str, mode: &str, args: &[String]) -> Py {
        let out = dir.join(format!("{name}.jsonl"));
        let log = dir.join(format!("{name}.log"));
        let logf = std::fs::File::create(&log).unwrap();
        let child = python_command(py, "cluster_workload.py")
            .arg(mode)
            .arg("--out")
            .arg(&out)
            .args(args)
            .current_dir(dir)
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("spawn python");
        Py {
            child: Some(child),
            out,
            log,
            name: name.to_owned(),
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for it to exit, at most `timeout`; panics (with its log) if it failed or timed out.
    pub async fn wait(&mut self, timeout: Duration) {
        let started = Instant::now();
        loop {
            let c = self.child.as_mut().expect("running");
            if let Some(st) = c.try_wait().unwrap() {
                self.child = None;
                assert!(
                    st.success(),
                    "{} failed ({st}); log:\n{}",
                    self.name,
                    tail(&self.log(), 16384)
                );
                return;
            }
            if started.elapsed() > timeout {
                self.kill();
                panic!(
                    "{} did not finish within {timeout:?}; log:\n{}",
                    self.name,
                    tail(&self.log(), 16384)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for it to exit, at most `timeout`: `Some(success)`, or `None` (killed) on timeout.
    pub async fn wait_status(&mut self, timeout: Duration) -> Option<bool> {
        let started = Instant::now();
        loop {
            let c = self.child.as_mut()?;
            if let Some(st) = c.try_wait().unwrap() {
                self.child = None;
                return Some(st.success());
            }
            if started.elapsed() > timeout {
                self.kill();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its stdout/stderr (the client's own log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every record written so far.
    pub fn records(&self) -> Vec<Rec> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Number of records of kind `e` written so far (cheap enough to poll).
    pub fn count(&self, e: &str) -> usize {
        let needle = format!("{{\"e\":\"{e}\"");
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&needle))
            .count()
    }

    /// Waits until at least `n` records of kind `e` are written (panics after `timeout`).
    pub async fn wait_count(&mut self, e: &str, n: usize, timeout: Duration) {
        let started = Instant::now();
        loop {
            if self.count(e) >= n {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "{}: fewer than {n} '{e}' records after {timeout:?} ({} so far); log:\n{}",
                self.name,
                self.count(e),
                tail(&self.log(), 8192)
            );
            if !self.is_running() && self.count(e) < n {
                panic!(
                    "{} exited with {} '{e}' records (wanted {n}); log:\n{}",
                    self.name,
                    self.count(e),
                    tail(&self.log(), 8192)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a producer process sends.
#[derive(Debug, Clone)]
pub struct ProduceSpec {
    pub topics: Vec<String>,
    /// Messages per producer.
    pub count: u64,
    pub producers_per_topic: u32,
    pub batching: bool,
    /// Messages per second over all producers (0: as fast as possible).
    pub rate: f64,
    /// Payload size in bytes.
    pub size: usize,
    pub send_timeout_ms: u64,
    /// Hard limit of the sending loop.
    pub max_secs: u64,
    /// Stop sending once this file exists.
    pub stop_file: Option<PathBuf>,
    /// Prefix of the producer names (they are `<prefix><topic>-<i>`).
    pub name_prefix: String,
}

impl ProduceSpec {
    /// A million batched messages to `topics` at `rate` per second for at most `max_secs`: a
    /// steady load that runs until it is stopped.
    pub fn steady(topics: &[String], rate: f64, max_secs: u64) -> ProduceSpec {
        ProduceSpec {
            topics: topics.to_vec(),
            count: 1_000_000,
            rate,
            max_secs,
            ..Default::default()
        }
    }
}

impl Default for ProduceSpec {
    fn default() -> Self {
        Self {
            topics: vec![],
            count: 1000,
            producers_per_topic: 1,
            batching: true,
            rate: 0.0,
            size: 100,
            send_timeout_ms: 30_000,
            max_secs: 120,
            stop_file: None,
            name_prefix: String::new(),
        }
    }
}

fn topic_args(topics: &[String]) -> Vec<String> {
    topics
        .iter()
        .flat_map(|t| ["--topic".to_owned(), t.clone()])
        .collect()
}

/// Starts a producer process.
pub fn produce(py: &Path, dir: &Path, name: &str, url: &str, spec: &ProduceSpec) -> Py {
    let mut args = vec!["--url".to_owned(), url.to_owned()];
    args.extend(topic_args(&spec.topics));
    let flags = format!(
        "--count={} --producers-per-topic={} --rate={} --size={} --send-timeout-ms={} --max-secs={}",
        spec.count,
        spec.producers_per_topic,
        spec.rate,
        spec.size,
        spec.send_timeout_ms,
        spec.max_secs
    );
    args.extend(flags.split_whitespace().map(str::to_owned));
    args.push(format!("--name-prefix={}", spec.name_prefix));
    if spec.batching {
        args.push("--batching".into());
    }
    if let Some(f) = &spec.stop_file {
        args.extend(["--stop-file".into(), f.display().to_string()]);
    }
    Py::spawn(py, dir, name, "produce", &args)
}

/// Starts a consumer process (exclusive subscription `sub` on all `topics`, acks everything);
/// it stops once `stop_file` exists and nothing arrived for `idle_secs`.
#[allow(clippy::too_many_arguments)] // mirrors the script's flags one to one
pub fn consume(
    py: &Path,
    dir: &Path,
    name: &str,
    url: &str,
    topics: &[String],
    sub: &str,
    stop_file: &Path,
    idle_secs: f64,
    max_secs: u64,
) -> Py {
    let mut args = vec!["--url".to_owned(), url.to_owned()];
    args.extend(topic_args(topics));
    args.extend([
        "--sub".into(),
        sub.into(),
        "--stop-file".into(),
        stop_file.display().to_string(),
        "--idle-secs".into(),
        idle_secs.to_string(),
        "--max-secs".into(),
        max_secs.to_string(),
    ]);
    Py::spawn(py, dir, name, "consume", &args)
}

/// Reads every topic from the earliest message with a reader; returns the records.
pub async fn read_all(
    py: &Path,
    dir: &Path,
    name: &str,
    url: &str,
    topics: &[String],
    timeout: Duration,
) -> Vec<Rec> {
    let mut args = vec!["--url".to_owned(), url.to_owned()];
    args.extend(topic_args(topics));
    args.extend(["--max-secs".into(), timeout.as_secs().to_string()]);
    let mut p = Py::spawn(py, dir, name, "read", &args);
    p.wait(timeout).await;
    p.records()
}

/// Skips (`None`) without Python; otherwise starts a cluster sandbox (see
/// [`Sandbox::start_cluster`]) and a run on its service URL.
pub async fn start_cluster(
    bookies: usize,
    brokers: usize,
    opts: BrokerOptions,
) -> Option<(Sandbox, Run)> {
    let py = python()?;
    let sb = Sandbox::start_cluster(bookies, brokers, opts).await;
    let run = Run::new(py, sb.service_url());
    Some((sb, run))
}

/// The files of one workload run: the interpreter, a directory kept when the test panics, and
/// the service URL every client of the run uses.
pub struct Run {
    pub py: PathBuf,
    pub dir: TestDir,
    pub url: String,
}

impl Run {
    /// A run with a fresh directory.
    pub fn new(py: PathBuf, url: String) -> Run {
        Run {
            py,
            dir: TestDir::new(),
            url,
        }
    }

    /// `DIR/<name>` (a stop file, say).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts a producer process on the run's URL.
    pub fn produce(&self, name: &str, spec: &ProduceSpec) -> Py {
        produce(&self.py, self.dir.path(), name, &self.url, spec)
    }

    /// Starts a consumer process on the run's URL: subscription `sub` on `topics`, stopping
    /// once `stop` exists and nothing arrived for `idle` seconds, or after `max_secs`.
    pub fn consume(
        &self,
        topics: &[String],
        sub: &str,
        stop: &Path,
        idle: f64,
        max_secs: u64,
    ) -> Py {
        let (py, dir) = (&self.py, self.dir.path());
        consume(
            py, dir, "consumer", &self.url, topics, sub, stop, idle, max_secs,
        )
    }

    /// Reads every topic from the earliest message (see [`read_all`]).
    pub async fn read_all(&self, name: &str, topics: &[String], timeout: Duration) -> Vec<Rec> {
        read_all(&self.py, self.dir.path(), name, &self.url, topics, timeout).await
    }

    /// Restarts every broker, so that the reads come from the bookies and not from a broker's
    /// entry cache, then reads every topic from the earliest message.
    pub async fn read_back(
        &self,
        sb: &mut Sandbox,
        name: &str,
        topics: &[String],
        timeout: Duration,
    ) -> Vec<Rec> {
        sb.restart_all_brokers().await;
        self.read_all(name, topics, timeout).await
    }

    /// Starts a consumer (subscription `sub` on `spec.topics`, idle 5 s, at most 240 s), then a
    /// producer of `spec`; each stops once its own stop file exists.
    pub fn start_load(&self, sub: &str, spec: ProduceSpec) -> Load {
        let stop_consumer = self.path("stop-consumer");
        let spec = ProduceSpec {
            stop_file: Some(self.path("stop-producer")),
            ..spec
        };
        let consumer = self.consume(&spec.topics, sub, &stop_consumer, 5.0, 240);
        let producer = self.produce("producer", &spec);
        Load {
            producer,
            consumer,
            spec,
            stop_consumer,
        }
    }
}

/// A producer and a consumer on the same topics, started by [`Run::start_load`].
pub struct Load {
    pub producer: Py,
    pub consumer: Py,
    /// What the producer sends (its stop file included).
    pub spec: ProduceSpec,
    stop_consumer: PathBuf,
}

impl Load {
    /// Waits (120 s each) until the producer has `acks` acknowledgements and the consumer
    /// `received` messages.
    pub async fn wait_flowing(&mut self, acks: usize, received: usize) {
        let limit = Duration::from_secs(120);
        self.producer.wait_count("ack", acks, limit).await;
        self.consumer.wait_count("recv", received, limit).await;
    }

    /// Stops the producer (and every other producer on the same stop file) and waits for it.
    pub async fn stop_producing(&mut self, timeout: Duration) {
        if let Some(stop) = &self.spec.stop_file {
            touch(stop);
        }
        self.producer.wait(timeout).await;
    }

    /// Stops the consumer once it is idle, waits for it (120 s) and returns what it received.
    pub async fn stop_consuming(&mut self) -> Vec<Rec> {
        touch(&self.stop_consumer);
        self.consumer.wait(Duration::from_secs(120)).await;
        self.consumer.records()
    }

    /// Stops the producer, then the consumer; returns (produced, received).
    pub async fn stop(&mut self, producer_timeout: Duration) -> (Vec<Rec>, Vec<Rec>) {
        self.stop_producing(producer_timeout).await;
        let received = self.stop_consuming().await;
        (self.producer.records(), received)
    }
}

/// Creates `path` (a stop file).
pub fn touch(path: &Path) {
    std::fs::write(path, b"stop").unwrap();
}

/// The analysis of one run.
#[derive(Debug)]
pub struct Analysis {
    /// Checker over acknowledged/failed sends and what the consumer received.
    pub report: Report,
    /// Acknowledged (producer, seq, id) whose acknowledged id never showed up.
    pub acked_ids_missing: Vec<(String, u64, MsgId)>,
    /// Per-producer message-id regressions in the acknowledgements.
    pub id_regressions: Vec<(String, u64, MsgId, u64, MsgId)>,
    /// The acknowledged ids of the first lost messages.
    pub lost_ids: Vec<(String, u64, MsgId)>,
    /// Acknowledged and failed sends.
    pub acked: usize,
    pub failed: usize,
}

impl Analysis {
    /// Asserts zero acknowledged loss, no acknowledged id missing, no id regression, nothing
    /// unexpected; `ctx` (e.g. the sandbox logs) is added to the failure message.
    pub fn assert_safe(&self, what: &str) {
        assert!(
            self.report.lost.is_empty()
                && self.acked_ids_missing.is_empty()
                && self.report.unexpected.is_empty(),
            "{what}: ACKNOWLEDGED LOSS: {} — acked ids of the first lost: {:?}; acked ids not \
             readable: {} (first {:?})",
            self.report,
            self.lost_ids,
            self.acked_ids_missing.len(),
            self.acked_ids_missing.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            self.id_regressions.is_empty(),
            "{what}: MESSAGE ID REGRESSION: {} (first {:?})",
            self.id_regressions.len(),
            self.id_regressions.iter().take(5).collect::<Vec<_>>()
        );
    }
}

/// Acknowledged sends of `produced` records.
pub fn acks(produced: &[Rec]) -> Vec<(String, u64, MsgId)> {
    produced
        .iter()
        .filter(|r| r.e == "ack")
        .filter_map(Rec::key)
        .collect()
}

/// Runs the checks on producer records and the records of whoever read the topics back.
pub fn analyse(produced: &[Rec], received: &[Rec]) -> Analysis {
    let mut c = Checker::new();
    let mut failed = 0;
    for r in produced {
        match (r.e.as_str(), &r.p, r.s) {
            ("ack", Some(p), Some(s)) => c.sent_acked(p, s as u64),
            ("err", Some(p), Some(s)) => {
                failed += 1;
                c.sent_unacked(p, s as u64)
            }
            _ => {}
        }
    }
    let got: Vec<(String, u64, MsgId)> = received.iter().filter_map(Rec::key).collect();
    for (p, s, _) in &got {
        c.received(p, *s);
    }
    let acked = acks(produced);
    let report = c.report();
    let lost: std::collections::HashSet<(&str, u64)> = report
        .lost
        .iter()
        .take(5)
        .map(|(p, s)| (p.as_str(), *s))
        .collect();
    let lost_ids = acked
        .iter()
        .filter(|(p, s, _)| lost.contains(&(p.as_str(), *s)))
        .cloned()
        .collect();
    Analysis {
        lost_ids,
        report,
        acked_ids_missing: checker::acked_ids_not_received(&acked, &got),
        id_regressions: checker::id_regressions(&acked),
        acked: acked.len(),
        failed,
    }
}

/// The first per-producer reorder in `received` (if any), with the ids involved: the higher
/// sequence delivered first and the lower one delivered after it.
pub fn reorder_detail(received: &[Rec], report: &Report) -> Option<String> {
    let (p, s, h) = report.reordered.first()?;
    let find = |seq: u64| {
        received
            .iter()
            .position(|r| r.p.as_deref() == Some(p.as_str()) && r.s == Some(seq as i64))
            .map(|i| (i, received[i].key().map(|k| k.2)))
    };
    Some(format!(
        "producer {p}: seq {h} first delivered at #{:?}, then seq {s} at #{:?} (#index, (ledger, entry, batch))",
        find(*h),
        find(*s)
    ))
}

/// Checks storage (a reader from the earliest message) and delivery (the consumer) against what
/// was acknowledged: storage loss is asserted first, then delivery loss, then id regressions.
/// Returns both analyses (for the RESULT line).
pub fn assert_stored_and_delivered(
    what: &str,
    produced: &[Rec],
    read: &[Rec],
    received: &[Rec],
) -> (Analysis, Analysis) {
    let stored = analyse(produced, read);
    let delivered = analyse(produced, received);
    eprintln!(
        "RESULT: {what}: reader (storage) {}; consumer (delivery) {}{}",
        stored.report,
        delivered.report,
        reorder_detail(read, &stored.report)
            .map(|d| format!("; first stored reorder: {d}"))
            .unwrap_or_default()
    );
    if !stored.report.reordered.is_empty() {
        eprintln!(
            "WARNING: {what}: {} messages stored out of their producer's order (reported, not \
             asserted: the acceptance criterion is loss)",
            stored.report.reordered.len()
        );
    }
    stored.assert_safe(&format!("{what} (STORAGE: reader from earliest)"));
    delivered.assert_safe(&format!(
        "{what} (DELIVERY: the consumer; everything acknowledged is stored)"
    ));
    (stored, delivered)
}

/// The longest gap between consecutive acknowledgements within `[from, to]` (epoch seconds), with
/// the time it started.
pub fn max_ack_gap(produced: &[Rec], from: f64, to: f64) -> (Duration, f64) {
    let mut ts: Vec<f64> = produced
        .iter()
        .filter(|r| r.e == "ack")
        .filter_map(|r| r.t)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    ts.sort_by(f64::total_cmp);
    let mut best = (0.0, from);
    for w in ts.windows(2) {
        if w[1] - w[0] > best.0 {
            best = (w[1] - w[0], w[0]);
        }
    }
    (Duration::from_secs_f64(best.0), best.1)
}

/// Publish latency percentile `q` (0..=1, ms) of acknowledgements within `[from, to]`.
pub fn latency_percentile(produced: &[Rec], from: f64, to: f64, q: f64) -> Option<f64> {
    let mut v: Vec<f64> = produced
        .iter()
        .filter(|r| r.e == "ack" && r.t.is_some_and(|t| t >= from && t <= to))
        .filter_map(|r| r.lat)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    Some(v[i.min(v.len() - 1)])
}

/// Failed sends grouped by reason, with counts.
pub fn failure_reasons(produced: &[Rec]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in produced.iter().filter(|r| r.e == "err") {
        *m.entry(r.why.clone().unwrap_or_default()).or_default() += 1;
    }
    m
}

/// First deliveries whose id is lower than an earlier first delivery on the same topic
/// (a consumer on an exclusive subscription sees new messages in id order, also across a
/// failover; redeliveries are not counted).
pub fn first_delivery_regressions(received: &[Rec]) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut highest: BTreeMap<String, MsgId> = BTreeMap::new();
    let mut n = 0;
    for r in received {
        let Some(k) = r.key() else { continue };
        if !seen.insert(k.clone()) {
            continue;
        }
        let topic = r.topic.clone().unwrap_or_default();
        match highest.get(&topic) {
            Some(h) if *h > k.2 => n += 1,
            _ => {
                highest.insert(topic, k.2);
            }
        }
    }
    n
}

/// A fresh topic name `persistent://public/default/<prefix>-<n>`.
pub fn topic(prefix: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("persistent://public/default/{prefix}-{n:x}")
}
