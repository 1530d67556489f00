//! Offload against the in-process S3 server (s3s-fs: real HTTP, signatures, conditional puts),
//! the managed ledger over `MemStorage`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_objstore::test_server::S3TestServer;
use strata_objstore::{Fault, FaultRule, Faults, Op, RetryPolicy, Store};

use super::*;
use crate::cache::EntryCache;
use crate::managed_ledger::{ManagedLedger, ManagedLedgerConfig};
use crate::storage::MemStorage;

struct Env {
    _dir: tempfile::TempDir,
    srv: S3TestServer,
    st: MemStorage,
    ml: ManagedLedger,
    meta: crate::metadata::MetaClient,
    off: Arc<Offloader>,
    faults: Arc<Faults>,
    written: Vec<(Position, Bytes)>,
}

fn cfg() -> OffloadConfig {
    OffloadConfig {
        block_bytes: 300,
        part_bytes: 1000,
        janitor_grace: Duration::ZERO,
        ..Default::default()
    }
}

async fn env(entries: u8) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let srv = S3TestServer::start(dir.path(), "bkt").await.unwrap();
    let mut scfg = srv.config("bkt", "tier");
    scfg.retry = RetryPolicy::quick();
    let faults = Arc::new(Faults::new(11));
    let store = strata_objstore::open(&scfg)
        .unwrap()
        .with_faults(faults.clone());
    let off = Offloader::new(store, cfg());
    let st = MemStorage::default();
    let meta = crate::metadata::in_memory().unwrap();
    let ml = ManagedLedger::open(
        "t/ns/persistent/off",
        Arc::new(st.clone()),
        meta.clone(),
        EntryCache::new(0),
        ManagedLedgerConfig {
            max_entries_per_ledger: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    ml.set_tier(off.tier().clone());
    let mut written = vec![];
    for i in 0..entries {
        let data = Bytes::from(vec![i; 20 + i as usize]);
        written.push((ml.append(data.clone()).await.unwrap(), data));
    }
    Env {
        _dir: dir,
        srv,
        st,
        ml,
        meta,
        off,
        faults,
        written,
    }
}

async fn reopen(e: &Env) -> ManagedLedger {
    let ml = ManagedLedger::open(
        "t/ns/persistent/off",
        Arc::new(e.st.clone()),
        e.meta.clone(),
        EntryCache::new(0),
        ManagedLedgerConfig::default(),
    )
    .await
    .unwrap();
    ml.set_tier(e.off.tier().clone());
    ml
}

/// Every entry of the log, read forward as a subscription does.
async fn read_all(ml: &ManagedLedger) -> Vec<(Position, Bytes)> {
    let mut out = vec![];
    let mut p = ml.first_position();
    while let Some(n) = ml.next_position(p) {
        let got = ml.read(n, 7).await.unwrap();
        assert!(!got.is_empty());
        p = got.last().unwrap().0;
        out.extend(got);
    }
    out
}

async fn keys(e: &Env) -> Vec<String> {
    let mut k: Vec<String> = e
        .off
        .tier()
        .store()
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn offloaded_ledgers_read_back_byte_for_byte_after_bookies_delete() {
    let e = env(35).await;
    // 4 ledgers: 3 closed (10 entries each) + the open one.
    let n = e.off.offload_ledgers(&e.ml, |_| true).await.unwrap();
    assert_eq!(n, 3);
    let ls = e.ml.ledgers();
    assert!(ls[..3].iter().all(|l| l.offloaded && l.offload.is_some()));
    assert!(!ls[3].offloaded);
    assert!(e.ml.offloaded_size() > 0);
    // Several blocks and data objects per ledger.
    assert!(
        keys(&e)
            .await
            .iter()
            .filter(|k| k.contains("data-"))
            .count()
            >= 3
    );
    e.off.delete_offloaded_from_bookies(&e.ml, 0).await;
    assert!(
        e.ml.ledgers()[..3]
            .iter()
            .all(|l| l.offload.as_ref().unwrap().bookies_deleted)
    );
    assert_eq!(e.st.ledger_count(), 1);
    assert_eq!(read_all(&e.ml).await, e.written);
    // Random access and concurrent readers of one ledger.
    let p = e.written[13].0;
    assert_eq!(e.ml.read_one(p).await.unwrap().unwrap(), e.written[13].1);
    let (a, b) = tokio::join!(read_all(&e.ml), read_all(&e.ml));
    assert_eq!(a, e.written);
    assert_eq!(b, e.written);
    // The commit survives a reopen (it is in the ledger list).
    e.ml.close().await;
    let ml2 = ManagedLedger::open(
        "t/ns/persistent/off",
        Arc::new(e.st.clone()),
        e.meta.clone(),
        EntryCache::new(0),
        ManagedLedgerConfig::default(),
    )
    .await
    .unwrap();
    ml2.set_tier(e.off.tier().clone());
    assert_eq!(read_all(&ml2).await, e.written);
    // Topic deletion removes the objects.
    ml2.delete().await.unwrap();
    assert_eq!(keys(&e).await, Vec::<String>::new());
}

#[tokio::test]
async fn store_faults_leave_ledgers_on_bookies_with_status_error() {
    let e = env(25).await;
    for fault in [
        Fault::Status(503),
        Fault::Status(500),
        Fault::Unreachable,
        Fault::Truncate,
    ] {
        e.faults.clear();
        e.faults
            .add(FaultRule::always(Some(Op::Put), fault.clone()));
        e.off.request(e.ml.clone(), e.ml.last_confirmed()).unwrap();
        let st = loop {
            let s = e.off.status(&e.ml);
            if s.state != OffloadState::Running {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            matches!(&st.state, OffloadState::Error(m) if !m.is_empty()),
            "{fault:?}: {st:?}"
        );
        assert_eq!(
            st.first_unoffloaded,
            Some(Position::new(e.written[0].0.ledger, 0))
        );
        assert!(e.ml.ledgers().iter().all(|l| !l.offloaded));
        assert_eq!(read_all(&e.ml).await, e.written, "{fault:?}");
    }
    // Objects of failed attempts were removed.
    e.faults.clear();
    assert_eq!(keys(&e).await, Vec::<String>::new());
    // Faults that retries absorb: slow and flaky puts, cut reads.
    e.faults
        .add(FaultRule::always(Some(Op::Put), Fault::Status(503)).sometimes(0.3));
    e.faults
        .add(FaultRule::always(None, Fault::Latency(Duration::from_millis(5))).sometimes(0.5));
    e.faults
        .add(FaultRule::always(Some(Op::GetRange), Fault::Truncate).sometimes(0.3));
    e.off.offload_ledgers(&e.ml, |_| true).await.unwrap();
    e.off.delete_offloaded_from_bookies(&e.ml, 0).await;
    assert_eq!(read_all(&e.ml).await, e.written);
    // A second request while one runs is refused.
    e.off.begin(e.ml.name()).unwrap();
    assert_eq!(
        e.off.request(e.ml.clone(), e.ml.last_confirmed()),
        Err(AlreadyRunning)
    );
}

#[tokio::test]
async fn corrupt_objects_fall_back_to_bookies_then_fail_clearly() {
    let e = env(15).await;
    e.off.offload_ledgers(&e.ml, |_| true).await.unwrap();
    // Flip a byte every 40 bytes of every data object on the server's disk (every block).
    for entry in walk(e.srv.root()) {
        if entry.to_string_lossy().contains("data-") {
            let mut b = std::fs::read(&entry).unwrap();
            for i in (30..b.len()).step_by(40) {
                b[i] ^= 0xff;
            }
            std::fs::write(&entry, b).unwrap();
        }
    }
    // Bookies still hold the ledger: correct bytes from there.
    assert_eq!(read_all(&e.ml).await, e.written);
    e.off.delete_offloaded_from_bookies(&e.ml, 0).await;
    // A fresh instance (nothing in the tail cache) must read the objects: a clear error.
    e.ml.close().await;
    let ml = reopen(&e).await;
    let first = e.written[0].0;
    let err = ml.read(first, 5).await.unwrap_err().to_string();
    assert!(
        err.contains("offloaded ledger") && err.contains("corrupt"),
        "{err}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn janitor_removes_what_no_commit_names() {
    let e = env(25).await;
    e.off
        .offload_ledgers(&e.ml, |l| l.ledger_id == e.written[0].0.ledger.into())
        .await
        .unwrap();
    let committed = keys(&e).await;
    let store: &Store = e.off.tier().store();
    // A failed attempt of another ledger, a stale attempt of the offloaded ledger, a deleted topic.
    let l2 = e.written[10].0.ledger;
    for k in [
        keys::OffloadKeys::new(e.ml.name(), l2, "dead1").data(0),
        keys::OffloadKeys::new(e.ml.name(), e.written[0].0.ledger, "dead2").index(),
        keys::OffloadKeys::new("t/ns/persistent/gone", 3, "x").data(0),
    ] {
        store
            .put_create(&k, Bytes::from_static(b"orphan"))
            .await
            .unwrap();
    }
    assert_eq!(keys(&e).await.len(), committed.len() + 3);
    let swept = e.off.sweep(&e.meta).await.unwrap();
    assert_eq!(swept.deleted, 3);
    assert_eq!(keys(&e).await, committed);
    assert_eq!(read_all(&e.ml).await, e.written);
}

/// An upload that outlives half the janitor grace is abandoned (nothing committed, its objects
/// removed, the ledger still on the bookies), so a janitor on another broker sweeping meanwhile
/// never removes the objects of an attempt that is still running.
#[tokio::test]
async fn uploads_longer_than_half_the_grace_are_abandoned() {
    let e = env(25).await;
    let grace = Duration::from_millis(1200);
    let slow = Offloader::new(
        e.off.tier().store().clone(),
        OffloadConfig {
            janitor_grace: grace,
            ..cfg()
        },
    );
    // Another broker's janitor over the same store, same grace.
    let other = Offloader::new(
        e.off.tier().store().clone(),
        OffloadConfig {
            janitor_grace: grace,
            ..cfg()
        },
    );
    // Every index put takes longer than half the grace: the data objects are written, then
    // the upload waits on its index.
    e.faults
        .add(FaultRule::always(Some(Op::Put), Fault::Latency(grace)).on_keys("index"));
    let first = e.ml.ledgers().into_iter().find(|l| l.closed).unwrap();
    let t = std::time::Instant::now();
    let run = slow.offload_one(&e.ml, &first);
    let sweeps = async {
        let mut seen = 0;
        while t.elapsed() < grace / 2 {
            other.sweep(&e.meta).await.unwrap();
            seen = seen.max(keys(&e).await.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    };
    let (r, seen) = tokio::join!(run, sweeps);
    let err = r.unwrap_err().to_string();
    assert!(err.contains("janitor grace"), "{err}");
    assert!(
        seen > 0,
        "the running attempt's data objects were never seen"
    );
    assert!(t.elapsed() < grace, "abandoned after {:?}", t.elapsed());
    assert!(e.ml.ledgers().iter().all(|l| !l.offloaded));
    assert_eq!(keys(&e).await, Vec::<String>::new());
    assert_eq!(read_all(&e.ml).await, e.written);
    // Healed: the next attempt succeeds.
    e.faults.clear();
    slow.offload_one(&e.ml, &first).await.unwrap();
    assert_eq!(read_all(&reopen(&e).await).await, e.written);
}

#[tokio::test]
async fn a_commit_past_its_deadline_is_refused_and_changes_nothing() {
    let e = env(15).await;
    let first = e.ml.ledgers().into_iter().find(|l| l.closed).unwrap();
    let off = LedgerOffload {
        offload_id: "late".into(),
        data_parts: 1,
        stored_bytes: 1,
        completed_at_ms: 0,
        bookies_deleted: false,
    };
    let past = std::time::Instant::now() - Duration::from_millis(1);
    let err =
        e.ml.commit_offload(first.ledger_id.0, off.clone(), past)
            .await
            .unwrap_err();
    assert!(matches!(err, BrokerError::Conflict(_)), "{err}");
    assert!(e.ml.ledgers().iter().all(|l| l.offload.is_none()));
    // in time, the same commit lands (the refused one wrote nothing: the CAS version is the same)
    let future = std::time::Instant::now() + Duration::from_secs(60);
    e.ml.commit_offload(first.ledger_id.0, off, future)
        .await
        .unwrap();
    assert!(reopen(&e).await.ledgers()[0].offloaded);
}

#[tokio::test]
async fn thresholds_pick_the_oldest_closed_ledgers() {
    let e = env(35).await;
    let p = Policies {
        offload_threshold_bytes: Some(0),
        offload_deletion_lag_ms: Some(0),
        ..Default::default()
    };
    e.off.apply_policies(&e.ml, &p).await;
    assert_eq!(e.ml.ledgers().iter().filter(|l| l.offloaded).count(), 3);
    assert_eq!(e.st.ledger_count(), 1);
    assert_eq!(e.off.status(&e.ml).state, OffloadState::Success);
    let ls = e.ml.ledgers();
    let over = over_threshold(&ls, Some(1), None, now_ms());
    assert!(over.is_empty(), "offloaded ledgers do not count again");
}

#[tokio::test]
async fn shutdown_cancels_uploads_and_prefetches() {
    let e = env(35).await;
    // A slow store: every write takes 3 s, so the upload is in flight when we stop.
    e.faults.add(FaultRule::always(
        Some(Op::Put),
        Fault::Latency(Duration::from_secs(3)),
    ));
    e.off.request(e.ml.clone(), e.ml.last_confirmed()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(e.off.status(&e.ml).state, OffloadState::Running);
    let t = std::time::Instant::now();
    e.off.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        matches!(&e.off.status(&e.ml).state, OffloadState::Error(m) if m.contains("stopped")),
        "{:?}",
        e.off.status(&e.ml)
    );
    assert!(e.ml.ledgers().iter().all(|l| !l.offloaded));
    // No offload starts after the shutdown; reads still work from the bookies.
    e.faults.clear();
    assert!(e.off.offload_ledgers(&e.ml, |_| true).await.is_err());
    assert_eq!(read_all(&e.ml).await, e.written);
    assert_eq!(keys(&e).await, Vec::<String>::new());
}

#[tokio::test]
async fn prefetches_are_tracked_and_end_at_shutdown() {
    let e = env(35).await;
    e.off.offload_ledgers(&e.ml, |_| true).await.unwrap();
    e.off.delete_offloaded_from_bookies(&e.ml, 0).await;
    e.ml.close().await;
    let ml = reopen(&e).await;
    // Slow ranged reads: the read-ahead is still in flight when the first read returns.
    e.faults.add(FaultRule::always(
        Some(Op::GetRange),
        Fault::Latency(Duration::from_secs(2)),
    ));
    // The second ledger has two blocks: reading the first prefetches the second.
    let first = e.written[10].0;
    let got = tokio::time::timeout(Duration::from_secs(10), ml.read(first, 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got[0].1, e.written[10].1);
    assert!(e.off.tier().prefetch_tasks() > 0, "no read-ahead in flight");
    let t = std::time::Instant::now();
    e.off.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(e.off.tier().prefetch_tasks(), 0);
    // Reads still work (without read-ahead).
    e.faults.clear();
    assert_eq!(read_all(&ml).await, e.written);
    assert_eq!(e.off.tier().prefetch_tasks(), 0);
}
