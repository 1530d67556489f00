//! Durability of `strata standalone` with the official Python client, batching and batch-index
//! acknowledgements (complements `pulsar_durability.rs`, which drives strata-client):
//!
//! 1. three batching producers send until 3000 sends are acknowledged, then the standalone is
//!    SIGKILLed mid-run;
//! 2. after a restart a consumer (batch-index acks on) takes and acknowledges half of them one by
//!    one — partial batches included — and closes; the standalone is SIGKILLed again;
//! 3. after the second restart a consumer takes everything left.
//!
//! The checker must find no acknowledged send lost, no per-producer reordering and no
//! duplicates: messages acknowledged in step 2 (even single messages of a batch) are never
//! redelivered in step 3.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::checker::{self, Checker};
use crate::harness::standalone::Standalone;

const PRODUCE: &str = r#"
import sys, threading, pulsar
url = sys.argv[1]
c = pulsar.Client(url, operation_timeout_seconds=30, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
lock = threading.Lock()
def out(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
producers = [c.create_producer("persistent://public/default/durable-py", producer_name=f"p{i}",
             batching_enabled=True, batching_max_messages=20, batching_max_publish_delay_ms=5,
             block_if_queue_full=True) for i in range(3)]
def cb_for(name, seq):
    def cb(res, msg_id):
        out(("A " if res == pulsar.Result.Ok else "F ") + f"{name} {seq}")
    return cb
seq = 0
while True:
    for i, p in enumerate(producers):
        name = f"p{i}"
        out(f"S {name} {seq}")
        p.send_async(f"{name}:{seq}".encode(), cb_for(name, seq))
    seq += 1
"#;

const CONSUME: &str = r#"
import sys, pulsar
url, limit, silence_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = pulsar.Client(url, operation_timeout_seconds=30, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
cons = c.subscribe("persistent://public/default/durable-py", "durable-sub",
                   initial_position=pulsar.InitialPosition.Earliest,
                   consumer_type=pulsar.ConsumerType.Exclusive,
                   batch_index_ack_enabled=True)
n = 0
while n < limit:
    try:
        m = cons.receive(silence_ms)
    except pulsar.Timeout:
        break
    print("R " + m.data().decode(), flush=True)
    cons.acknowledge(m)
    n += 1
cons.close()
c.close()
print("DONE", flush=True)
"#;

fn script(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

fn spawn(py: &Path, script: &Path, args: &[String]) -> Child {
    Command::new(py)
        .arg(script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python")
}

/// Runs a consumer to completion, recording what it received; returns the payloads in order.
fn consume(
    py: &Path,
    script: &Path,
    url: &str,
    limit: usize,
    silence_ms: u64,
    check: &mut Checker,
) -> Vec<(String, u64)> {
    let mut child = spawn(
        py,
        script,
        &[url.to_owned(), limit.to_string(), silence_ms.to_string()],
    );
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    let mut done = false;
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("R ") {
            let (prod, seq) =
                checker::parse(p.as_bytes()).unwrap_or_else(|| panic!("bad payload {p}"));
            check.received(&prod, seq);
            got.push((prod, seq));
        } else if line == "DONE" {
            done = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(done && status.success(), "consumer failed: {status}");
    got
}

#[test]
fn python_batched_sigkill_twice_keeps_acked_and_acks() {
    let Some(py) = crate::harness::python::python() else {
        return;
    };
    let mut node = Standalone::start();
    let dir = node.data_dir.parent().unwrap().to_owned();
    let produce = script(&dir, "durable_produce.py", PRODUCE);
    let consume_py = script(&dir, "durable_consume.py", CONSUME);
    let mut check = Checker::new();

    // 1. Produce until 3000 sends are acknowledged, then SIGKILL the standalone mid-run.
    let mut producer = spawn(&py, &produce, &[node.url()]);
    let reader = BufReader::new(producer.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut acked = 0usize;
    let mut lines = reader.lines();
    while acked < 3000 {
        assert!(
            Instant::now() < deadline,
            "3000 sends not acknowledged within 120 s:\n{}",
            node.log_tail()
        );
        let Some(Ok(line)) = lines.next() else {
            panic!("producer exited early:\n{}", node.log_tail())
        };
        let mut it = line.split(' ');
        let (kind, prod, seq) = (
            it.next(),
            it.next(),
            it.next().and_then(|s| s.parse::<u64>().ok()),
        );
        match (kind, prod, seq) {
            (Some("S"), Some(p), Some(s)) => check.sent_unacked(p, s),
            (Some("A"), Some(p), Some(s)) => {
                check.sent_acked(p, s);
                acked += 1;
            }
            _ => {}
        }
    }
    node.kill();
    // Acknowledgements that raced with the kill still count.
    let drain = std::thread::spawn(move || {
        let mut late = Vec::new();
        for line in lines.map_while(Result::ok) {
            late.push(line);
        }
        late
    });
    std::thread::sleep(Duration::from_millis(200));
    let _ = producer.kill();
    let _ = producer.wait();
    for line in drain.join().unwrap() {
        let mut it = line.split(' ');
        match (
            it.next(),
            it.next(),
            it.next().and_then(|s| s.parse::<u64>().ok()),
        ) {
            (Some("S"), Some(p), Some(s)) => check.sent_unacked(p, s),
            (Some("A"), Some(p), Some(s)) => check.sent_acked(p, s),
            _ => {}
        }
    }
    let total_acked = check.report().acked;

    // 2. Restart; consume and acknowledge half, close (acks durable), SIGKILL again.
    node.restart_after_kill();
    let first = consume(
        &py,
        &consume_py,
        &node.url(),
        total_acked / 2,
        10_000,
        &mut check,
    );
    assert_eq!(
        first.len(),
        total_acked / 2,
        "first consumer got too few messages:\n{}",
        node.log_tail()
    );
    node.restart_after_kill();

    // 3. Everything left, and nothing acknowledged in step 2.
    let second = consume(&py, &consume_py, &node.url(), usize::MAX, 5_000, &mut check);
    let report = check.report();
    eprintln!(
        "{report}; first consumer {} second {}",
        first.len(),
        second.len()
    );
    assert!(
        report.is_exactly_once(),
        "checker: {report}\n{}",
        node.log_tail()
    );
}
