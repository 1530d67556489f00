//! Cross-process bookie tests: a real `strata bookie` process, killed with SIGKILL mid-stream and
//! restarted on the same directories.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use strata_bookie::{BookieClient, ClientError};

use crate::harness::{free_port, strata_bin};

const KEY: Bytes = Bytes::from_static(b"crash-test-key");

/// A `strata bookie` child process, SIGKILLed when dropped.
struct BookieProc {
    child: Child,
    addr: String,
}

impl BookieProc {
    async fn start(data: &Path, log: &Path) -> (Self, BookieClient) {
        let port = free_port();
        let http = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(strata_bin())
            .args(["--log", "info", "bookie", "--data-dir"])
            .arg(data)
            .args([
                "--port",
                &port.to_string(),
                "--http-port",
                &http.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let mut p = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = p.child.try_wait().unwrap() {
                panic!("bookie exited early: {st}");
            }
            if let Ok(c) = BookieClient::connect(&p.addr).await {
                // the gRPC server only listens once recovery finished
                if c.read_lac(u64::MAX, -1, Duration::ZERO)
                    .await
                    .is_err_and(|e| matches!(e, ClientError::NoLedger(_)))
                {
                    return (p, c);
                }
            }
            assert!(Instant::now() < deadline, "bookie did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    fn terminate(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "bookie did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BookieProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Deterministic payload of an entry (length varies from 1 byte to ~6 KiB).
fn payload(ledger: u64, entry: u64) -> Bytes {
    let x = ledger.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ entry.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let len = 1 + (x % 6000) as usize;
    let mut v = Vec::with_capacity(len + 16);
    v.extend_from_slice(&ledger.to_le_bytes());
    v.extend_from_slice(&entry.to_le_bytes());
    let mut random = vec![0u8; len];
    StdRng::seed_from_u64(x).fill_bytes(&mut random);
    v.extend_from_slice(&random);
    Bytes::from(v)
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("bookie.log")
}

/// Writers on `ledgers` ledgers (each with `window` adds in flight) until the bookie dies; returns
/// the acknowledged entries per ledger. The bookie is SIGKILLed once `kill_after` adds were acked.
async fn write_until_killed(
    proc_: &mut BookieProc,
    client: &BookieClient,
    ledgers: std::ops::Range<u64>,
    start_entry: &HashMap<u64, u64>,
    kill_after: u64,
) -> HashMap<u64, Vec<u64>> {
    let acked: Arc<Mutex<HashMap<u64, Vec<u64>>>> = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for l in ledgers {
        for lane in 0..4u64 {
            let c = client.clone();
            let acked = acked.clone();
            let count = count.clone();
            let first = start_entry.get(&l).copied().unwrap_or(0);
            tasks.spawn(async move {
                // lane k writes entries first+k, first+k+4, ...: 4 adds in flight per ledger
                let mut e = first + lane;
                loop {
                    match c.add(l, e, KEY, e as i64 - 1, payload(l, e)).await {
                        Ok(()) => {
                            acked.lock().unwrap().entry(l).or_default().push(e);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => return,
                    }
                    e += 4;
                }
            });
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < kill_after {
        assert!(Instant::now() < deadline, "writers too slow");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    proc_.kill();
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    assert!(drained.is_ok(), "writers did not notice the dead bookie");
    let mut guard = acked.lock().unwrap();
    std::mem::take(&mut *guard)
}

/// Acceptance 1: SIGKILL mid-stream; every acknowledged entry reads back identical after restart,
/// and nothing unacknowledged reads back with wrong content. Two kill/restart rounds; the second
/// writes on fresh entry ids above everything the first one tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookie_sigkill_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = log_path(dir.path());
    let (mut p, mut c) = BookieProc::start(&data, &log).await;
    let mut all_acked: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut next: HashMap<u64, u64> = HashMap::new();
    for round in 0..2 {
        let acked = write_until_killed(&mut p, &c, 0..16, &next, 3000).await;
        let n: usize = acked.values().map(Vec::len).sum();
        assert!(n >= 3000, "round {round}: only {n} acked");
        for (l, es) in acked {
            let max = es.iter().copied().max().unwrap_or(0);
            let nx = next.entry(l).or_insert(0);
            *nx = (*nx).max(max + 64);
            all_acked.entry(l).or_default().extend(es);
        }
        let (np, nc) = BookieProc::start(&data, &log).await;
        p = np;
        c = nc;
        verify(&c, &all_acked).await;
    }
}

async fn verify(c: &BookieClient, acked: &HashMap<u64, Vec<u64>>) {
    let mut checked = 0;
    for (l, es) in acked {
        for e in es {
            let (got, _) = c
                .read_entry(*l, *e)
                .await
                .unwrap_or_else(|err| panic!("acknowledged entry {l}/{e} unreadable: {err}"));
            assert_eq!(got, payload(*l, *e), "acknowledged entry {l}/{e} differs");
            checked += 1;
        }
        // whatever else is readable (adds that were in flight) must carry the right content
        let max = es.iter().copied().max().unwrap_or(0);
        for e in 0..max + 64 {
            match c.read_entry(*l, e).await {
                Ok((got, _)) => assert_eq!(
                    got,
                    payload(*l, e),
                    "unacknowledged entry {l}/{e} has wrong content"
                ),
                Err(ClientError::NoEntry(_)) => {}
                Err(err) => panic!("read {l}/{e}: {err}"),
            }
        }
    }
    assert!(checked > 0);
}

/// Acceptance 4: 10,000 ledgers written concurrently are all readable after a SIGKILL restart and
/// after a graceful restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookie_ten_thousand_ledgers_survive_restarts() {
    const LEDGERS: u64 = 10_000;
    const ENTRIES: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut p, c) = BookieProc::start(&data, &log_path(dir.path())).await;
    let clients: Vec<BookieClient> = {
        let mut v = vec![c];
        for _ in 0..3 {
            v.push(BookieClient::connect(&p.addr).await.unwrap());
        }
        v
    };
    let sem = Arc::new(tokio::sync::Semaphore::new(2048));
    let mut tasks = tokio::task::JoinSet::new();
    for l in 0..LEDGERS {
        for e in 0..ENTRIES {
            let c = clients[(l % 4) as usize].clone();
            let sem = sem.clone();
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await.unwrap();
                c.add(
                    1_000_000 + l,
                    e,
                    KEY,
                    e as i64 - 1,
                    payload(l, e).slice(..512.min(payload(l, e).len())),
                )
                .await
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    drop(clients);
    p.kill();
    let check = |c: BookieClient| async move {
        for l in 0..LEDGERS {
            let got = c
                .read_range(1_000_000 + l, 0, ENTRIES - 1, 0)
                .await
                .unwrap();
            assert_eq!(got.len() as u64, ENTRIES, "ledger {l}");
            for (e, b) in got {
                let want = payload(l, e);
                assert_eq!(b, want.slice(..512.min(want.len())), "ledger {l} entry {e}");
            }
        }
    };
    let (mut p, c) = BookieProc::start(&data, &log_path(dir.path())).await;
    check(c).await;
    p.terminate();
    let (_p, c) = BookieProc::start(&data, &log_path(dir.path())).await;
    check(c).await;
}
