//! CAS races from two processes: 8 tasks in each process increment one counter and draw ledger
//! ids from the allocator; no update may be lost and no id handed out twice.
//!
//! The parent test re-executes this test binary twice, running `child` with the etcd endpoints
//! in the environment; `child` does nothing when run on its own.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_meta::model::LedgerIdAllocator;
use strata_meta::retry::{Change, RetryPolicy, update};
use strata_meta::{Bytes, MetadataStore};

use super::connect;
use crate::harness::etcd::EtcdCluster;

const ENV_ENDPOINTS: &str = "STRATA_META_CHILD_ENDPOINTS";
const ENV_OUT: &str = "STRATA_META_CHILD_OUT";
const TASKS: u64 = 8;
const EACH: u64 = 25;
const COUNTER: &str = "/cc/counter";
const ALLOC: &str = "/cc/ledger-id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child() {
    let (Ok(endpoints), Ok(out)) = (std::env::var(ENV_ENDPOINTS), std::env::var(ENV_OUT)) else {
        return; // Only does something when started by `two_processes_race`.
    };
    let store: Arc<dyn MetadataStore> =
        Arc::new(connect(endpoints.split(',').map(str::to_owned).collect()).await);
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            // Half the tasks reserve one id per CAS, half a range of 4.
            let alloc =
                LedgerIdAllocator::new(store.clone(), ALLOC, if t % 2 == 0 { 1 } else { 4 });
            let mut ids = Vec::new();
            for _ in 0..EACH {
                update(store.as_ref(), COUNTER, RetryPolicy::default(), |cur| {
                    let n: u64 = cur
                        .map(|v| std::str::from_utf8(&v.value).unwrap().parse().unwrap())
                        .unwrap_or(0);
                    Ok(Change::Put(Bytes::from((n + 1).to_string())))
                })
                .await
                .unwrap();
                ids.push(alloc.next().await.unwrap().0);
            }
            assert!(ids.windows(2).all(|w| w[0] < w[1]));
            ids
        }));
    }
    let mut lines = String::new();
    for h in handles {
        for id in h.await.unwrap() {
            lines.push_str(&format!("{id}\n"));
        }
    }
    let conflicts = strata_meta::metrics::global()
        .cas_conflicts
        .get_or_create(&strata_meta::metrics::BackendLabels { name: "etcd" })
        .get();
    std::fs::write(format!("{out}.conflicts"), conflicts.to_string()).unwrap();
    std::fs::write(out, lines).unwrap();
}

/// SIGKILLs the child when dropped (also when the test fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race() {
    let etcd = EtcdCluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for p in 0..2 {
        let out = dir.path().join(format!("ids-{p}"));
        let child = Command::new(&exe)
            .args([
                "meta::concurrency::child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_ENDPOINTS, etcd.endpoints().join(","))
            .env(ENV_OUT, &out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        children.push((KillOnDrop(child), out));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut ids = Vec::new();
    let mut conflicts = 0;
    for (mut child, out) in children {
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "child process did not finish in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "child failed: {status}");
        let text = std::fs::read_to_string(&out).unwrap();
        let c = std::fs::read_to_string(format!("{}.conflicts", out.display())).unwrap();
        conflicts += c.trim().parse::<u64>().unwrap();
        ids.extend(text.lines().map(|l| l.parse::<u64>().unwrap()));
    }

    let store = connect(etcd.endpoints()).await;
    let counter = store.get(COUNTER).await.unwrap().unwrap();
    let total = 2 * TASKS * EACH;
    assert_eq!(
        std::str::from_utf8(&counter.value).unwrap(),
        total.to_string(),
        "lost update"
    );
    assert_eq!(counter.stat.version, total);
    assert_eq!(ids.len() as u64, total);
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate ledger id");
    println!(
        "{total} increments, {total} unique ledger ids from two processes, {conflicts} CAS conflicts retried"
    );
    assert!(conflicts > 0, "the processes did race");
}
