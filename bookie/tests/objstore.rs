//! Bookies on object storage, against the in-process S3 server (s3s-fs) and the fault layer:
//! upload + eviction + ranged reads, empty-disk restart, outage then recovery, CRC on corrupted
//! objects, GC and the sweep, and SIGKILL of a bookie process during uploads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{KEY, check_ledgers, payload};
use strata_bookie::config::RemoteConfig;
use strata_bookie::metrics::Metrics;
use strata_bookie::{BookieError, Storage, StorageConfig};
use strata_objstore::test_server::S3TestServer;
use strata_objstore::{Fault, FaultRule, Faults, ObjStoreConfig, Op, RetryPolicy};

const ID: &str = "bookie-1:3181";

fn store_cfg(endpoint: &str) -> ObjStoreConfig {
    ObjStoreConfig {
        url: "s3://bkt/pre".into(),
        endpoint: Some(endpoint.into()),
        region: Some("us-east-1".into()),
        credentials: Some((
            strata_objstore::test_server::ACCESS_KEY.into(),
            strata_objstore::test_server::SECRET_KEY.into(),
        )),
        retry: RetryPolicy::quick(),
        unsigned_payload: true, // as `strata bookie` sets it
        ..Default::default()
    }
}

/// Small segments sealed quickly, a small local bound.
fn cfg(dir: &Path, endpoint: &str, cache: u64) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    c.min_free_bytes = 0;
    c.segment_max_bytes = 64 << 10;
    c.flush_bytes = 16 << 10;
    c.flush_interval = Duration::from_millis(50);
    c.checkpoint_interval = Duration::from_millis(100);
    c.journal_max_file_bytes = 256 << 10;
    c.gc_interval = Duration::from_millis(500);
    let mut r = RemoteConfig::new(store_cfg(endpoint), ID);
    r.segment_cache_bytes = cache;
    r.read_block_bytes = 16 << 10;
    r.segment_max_age = Duration::from_millis(300);
    r.upload_interval = Duration::from_millis(50);
    c.remote = Some(r);
    c
}

async fn open(c: StorageConfig, faults: Option<Arc<Faults>>) -> Result<Arc<Storage>, BookieError> {
    let store = match (&faults, &c.remote) {
        (Some(f), Some(r)) => Some(
            strata_objstore::open(&r.store)
                .unwrap()
                .with_faults(f.clone()),
        ),
        _ => None,
    };
    tokio::task::spawn_blocking(move || {
        Storage::open_with_store(c, Arc::new(Metrics::new()), store)
    })
    .await
    .unwrap()
}

async fn close(s: Arc<Storage>) {
    tokio::task::spawn_blocking(move || s.shutdown())
        .await
        .unwrap();
}

/// Adds entries; waits and adds again while uploads are behind (read-only, on a busy machine).
async fn add_all(s: &Storage, ledgers: std::ops::Range<u64>, entries: u64, len: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for e in 0..entries {
        for l in ledgers.clone() {
            loop {
                match s.add(l, e, KEY, e as i64 - 1, payload(l, e, len)).await {
                    Ok(()) => break,
                    Err(BookieError::ReadOnly { .. }) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(err) => panic!("add {l}/{e}: {err}"),
                }
            }
        }
    }
}

/// Seals and waits until every sealed segment is uploaded.
async fn settle(s: &Arc<Storage>) {
    let st = s.clone();
    tokio::task::spawn_blocking(move || st.seal_now())
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, pending) = s.object_stats();
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "uploads did not finish: {pending} bytes pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Object keys under the bookie's prefix in the bucket.
fn objects(root: &Path) -> Vec<String> {
    let base = root.join("bkt/pre/bookies/bookie-1_3181");
    let mut out = vec![];
    for sub in ["", "segments"] {
        let Ok(rd) = std::fs::read_dir(base.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if e.path().is_file() && !name.starts_with('.') {
                out.push(if sub.is_empty() {
                    name
                } else {
                    format!("{sub}/{name}")
                });
            }
        }
    }
    out.sort();
    out
}

async fn server() -> (tempfile::TempDir, S3TestServer) {
    let d = tempfile::tempdir().unwrap();
    let s = S3TestServer::start(d.path(), "bkt").await.unwrap();
    (d, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_evict_read_back_and_empty_disk_restart() {
    let (s3dir, srv) = server().await;
    let data = tempfile::tempdir().unwrap();
    let bound = 128 << 10;
    let s = open(cfg(data.path(), &srv.endpoint, bound), None)
        .await
        .unwrap();
    add_all(&s, 0..4, 200, 1000).await;
    settle(&s).await;
    let (uploaded, local, _) = s.object_stats();
    eprintln!("upload: {uploaded} segments uploaded, {local} local segment bytes (bound {bound})");
    assert!(uploaded >= 8, "uploaded {uploaded}");
    // sealed local copies within the bound (plus the current segment)
    assert!(local <= bound + (64 << 10) + 4096, "local bytes {local}");
    check_ledgers(&s, 0..4, 200, 1000).await;
    close(s).await;
    assert!(
        objects(s3dir.path())
            .iter()
            .any(|k| k.starts_with("manifest-"))
    );

    // the bookie loses its whole disk; same id and URL: every uploaded entry is served
    std::fs::remove_dir_all(data.path()).unwrap();
    let s = open(cfg(data.path(), &srv.endpoint, bound), None)
        .await
        .unwrap();
    check_ledgers(&s, 0..4, 200, 1000).await;
    let info = s.lac_info(2).unwrap();
    assert_eq!(info.last_entry, 199);
    // and it keeps working
    add_all(&s, 4..5, 50, 1000).await;
    settle(&s).await;
    check_ledgers(&s, 4..5, 50, 1000).await;
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_goes_read_only_at_the_bound_and_recovers() {
    let (_s3dir, srv) = server().await;
    let data = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::new(7));
    let bound = 256 << 10;
    let s = open(cfg(data.path(), &srv.endpoint, bound), Some(faults.clone()))
        .await
        .unwrap();
    faults.add(FaultRule::always(Some(Op::Put), Fault::Unreachable));
    // adds keep being acknowledged from the journal until the bound is reached
    let mut acked = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let reason = loop {
        assert!(Instant::now() < deadline, "never went read-only");
        match s
            .add(1, acked, KEY, acked as i64 - 1, payload(1, acked, 4000))
            .await
        {
            Ok(()) => acked += 1,
            Err(BookieError::ReadOnly { reason }) => break reason,
            Err(e) => panic!("unexpected {e}"),
        }
        if acked.is_multiple_of(16) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    eprintln!("outage: {acked} adds of 4000 B acknowledged, then read-only: {reason}");
    assert!(reason.contains("not uploaded"), "{reason}");
    assert!(acked * 4000 >= bound, "acked only {acked}");
    assert!(s.read_only_reason().is_some());
    // reads keep working during the outage
    for e in 0..acked {
        assert_eq!(s.read(1, e).await.unwrap().0, payload(1, e, 4000));
    }
    // the store heals: uploads catch up and the bookie is writable again by itself
    faults.clear();
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.read_only_reason().is_some() {
        assert!(Instant::now() < deadline, "still read-only");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.add(1, acked, KEY, acked as i64 - 1, payload(1, acked, 4000))
        .await
        .unwrap();
    settle(&s).await;
    for e in 0..=acked {
        assert_eq!(s.read(1, e).await.unwrap().0, payload(1, e, 4000));
    }
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_object_is_detected_by_crc() {
    let (s3dir, srv) = server().await;
    let data = tempfile::tempdir().unwrap();
    // nothing stays local: every read of a sealed segment is a ranged GET
    let s = open(cfg(data.path(), &srv.endpoint, 0), None)
        .await
        .unwrap();
    add_all(&s, 0..1, 40, 1000).await;
    settle(&s).await;
    close(s).await;
    // flip one payload byte of every uploaded segment object, as a bad disk on the server would
    let segs: Vec<String> = objects(s3dir.path())
        .into_iter()
        .filter(|k| k.starts_with("segments/"))
        .collect();
    assert!(!segs.is_empty());
    for k in &segs {
        let p = s3dir.path().join("bkt/pre/bookies/bookie-1_3181").join(k);
        let mut b = std::fs::read(&p).unwrap();
        b[24 + 8 + 16 + 100] ^= 0x40; // in the first frame's payload
        std::fs::write(&p, b).unwrap();
    }
    let s = open(cfg(data.path(), &srv.endpoint, 0), None)
        .await
        .unwrap();
    let mut corrupt = 0;
    for e in 0..40 {
        match s.read(0, e).await {
            Ok((p, _)) => assert_eq!(p, payload(0, e, 1000), "entry {e} returned wrong bytes"),
            Err(BookieError::Corrupt { .. }) => corrupt += 1,
            Err(err) => panic!("entry {e}: {err}"),
        }
    }
    assert_eq!(corrupt, segs.len(), "one corrupt entry per object");
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_and_sweep_leave_only_referenced_objects() {
    let (s3dir, srv) = server().await;
    let data = tempfile::tempdir().unwrap();
    let s = open(cfg(data.path(), &srv.endpoint, 64 << 10), None)
        .await
        .unwrap();
    // one ledger per segment group
    for l in 0..3 {
        add_all(&s, l..l + 1, 100, 1000).await;
        settle(&s).await;
    }
    // a leftover of a crashed upload
    let orphan = s3dir
        .path()
        .join("bkt/pre/bookies/bookie-1_3181/segments/00000000000000099999-0000000001.seg");
    std::fs::write(&orphan, b"leftover").unwrap();
    s.delete(0).await.unwrap();
    s.delete(1).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        gc(&s).await;
        let segs = objects(s3dir.path())
            .into_iter()
            .filter(|k| k.starts_with("segments/"))
            .count();
        // only ledger 2's segments are left (100 KB of entries: 2 or 3 objects)
        if segs <= 3 && !orphan.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "objects left: {:?}",
            objects(s3dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check_ledgers(&s, 2..3, 100, 1000).await;
    close(s).await;
    let manifests = objects(s3dir.path())
        .into_iter()
        .filter(|k| k.starts_with("manifest-"))
        .count();
    assert!(manifests <= 3, "{manifests} manifests kept");
    // a restart on an empty disk serves ledger 2 and knows 0 and 1 are deleted
    std::fs::remove_dir_all(data.path()).unwrap();
    let s = open(cfg(data.path(), &srv.endpoint, 64 << 10), None)
        .await
        .unwrap();
    check_ledgers(&s, 2..3, 100, 1000).await;
    assert!(matches!(
        s.read(0, 0).await,
        Err(BookieError::NoLedger { .. })
    ));
    assert!(matches!(
        s.add(1, 500, KEY, -1, payload(1, 500, 10)).await,
        Err(BookieError::NoLedger { .. })
    ));
    close(s).await;
}

/// Entries `0..entries` (1000 bytes) of ledgers 0 and 1 still read back after GC, the uploader's
/// collection of dead objects and the sweep, and then after a restart on an empty disk (`c`'s
/// data directory is removed): every object holding them was kept.
async fn survives_gc_and_an_empty_disk(s: Arc<Storage>, c: StorageConfig, entries: u64) {
    gc(&s).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    check_ledgers(&s, 0..2, entries, 1000).await;
    close(s).await;
    std::fs::remove_dir_all(c.ledger_dir.parent().unwrap()).unwrap();
    let s = open(c, None).await.unwrap();
    check_ledgers(&s, 0..2, entries, 1000).await;
    close(s).await;
}

/// An eviction removes the index file and then the segment file; a kill in between leaves the
/// segment file alone. At restart that leftover must not stand for the uploaded segment: its
/// entries would read as missing, and the object, seemingly without live entries, be deleted
/// (found by `sigkill_during_uploads_loses_no_acked_entry`, once in about fifty runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_cut_short_leaves_the_object_in_charge() {
    let (s3dir, srv) = server().await;
    let data = tempfile::tempdir().unwrap();
    // a large local bound: nothing is evicted, every uploaded segment keeps its local copy
    let s = open(cfg(data.path(), &srv.endpoint, 1 << 30), None)
        .await
        .unwrap();
    add_all(&s, 0..2, 200, 1000).await;
    settle(&s).await;
    close(s).await;
    let ledger_dir = data.path().join("ledgers");
    let mut cut = 0;
    for key in objects(s3dir.path()) {
        let Some(id) = key
            .strip_prefix("segments/")
            .and_then(|k| k.get(..20))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let idx = ledger_dir.join(format!("seg-{id:020}.idx"));
        if idx.exists() {
            std::fs::remove_file(idx).unwrap();
            cut += 1;
        }
    }
    assert!(cut > 1, "uploaded segments with a local copy: {cut}");
    let s = open(cfg(data.path(), &srv.endpoint, 1 << 30), None)
        .await
        .unwrap();
    check_ledgers(&s, 0..2, 200, 1000).await;
    survives_gc_and_an_empty_disk(s, cfg(data.path(), &srv.endpoint, 1 << 30), 200).await;
}

/// A rebuild from the store writes the local manifest before its first checkpoint; a kill in
/// between leaves a manifest and no checkpoint. The next start must take the ledger states from
/// that manifest: taken as empty, every entry was dropped as an orphan and the uploader then
/// collected every object as dead (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_cut_before_its_checkpoint_keeps_every_entry() {
    let (_s3dir, srv) = server().await;
    let data = tempfile::tempdir().unwrap();
    let c = || cfg(data.path(), &srv.endpoint, 64 << 10);
    let s = open(c(), None).await.unwrap();
    add_all(&s, 0..2, 100, 1000).await;
    settle(&s).await;
    close(s).await;
    // the disk is lost; the rebuild gets as far as its local manifest
    std::fs::remove_dir_all(data.path()).unwrap();
    let s = open(c(), None).await.unwrap();
    close(s).await;
    std::fs::remove_file(data.path().join("ledgers/checkpoint")).unwrap();
    std::fs::remove_dir_all(data.path().join("journal")).unwrap();
    assert!(data.path().join("ledgers/manifest").exists());
    let s = open(c(), None).await.unwrap();
    check_ledgers(&s, 0..2, 100, 1000).await;
    survives_gc_and_an_empty_disk(s, c(), 100).await;
}

/// The child side of [`sigkill_during_uploads_loses_no_acked_entry`]: writes until killed,
/// printing every acknowledged entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer() {
    let (Ok(dir), Ok(endpoint)) = (
        std::env::var("STRATA_TEST_CHILD_DIR"),
        std::env::var("STRATA_TEST_CHILD_S3"),
    ) else {
        return;
    };
    // the parent keeps this (stderr) and shows it if entries are lost
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let s = open(cfg(Path::new(&dir), &endpoint, 128 << 10), None)
        .await
        .unwrap();
    println!("READY");
    let mut e = 0u64;
    loop {
        let futs: Vec<_> = (0..4u64)
            .map(|l| s.add(l, e, KEY, e as i64 - 1, payload(l, e, 900)))
            .collect();
        let mut ok = true;
        for r in futures::future::join_all(futs).await {
            match r {
                Ok(()) => {}
                // uploads behind (a slow machine): wait, then add the same entries again
                Err(BookieError::ReadOnly { .. }) => ok = false,
                Err(err) => panic!("add {e}: {err}"),
            }
        }
        if !ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        println!("ACK {e}");
        e += 1;
    }
}

/// The entries of `0..entries` in `ledgers` that do not read back byte for byte, as
/// `ledger/entry: error` lines.
async fn unreadable(
    s: &Storage,
    ledgers: std::ops::Range<u64>,
    entries: u64,
    len: usize,
) -> Vec<String> {
    let mut out = vec![];
    for l in ledgers {
        for e in 0..entries {
            match s.read(l, e).await {
                Ok((p, _)) if p == payload(l, e, len) => {}
                Ok(_) => out.push(format!("{l}/{e}: different bytes")),
                Err(err) => out.push(format!("{l}/{e}: {err}")),
            }
        }
    }
    out
}

/// Files under `dir` with their sizes, one per line.
fn listing(dir: &Path) -> String {
    let mut out = String::new();
    for e in walk(dir) {
        let len = std::fs::metadata(&e).map(|m| m.len()).unwrap_or(0);
        out.push_str(&format!("  {} {len}\n", e.display()));
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_uploads_loses_no_acked_entry() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,strata_bookie=debug")
        .with_test_writer()
        .try_init();
    let (s3dir, srv) = server().await;
    let data = tempfile::tempdir().unwrap();
    let mut acked = 0u64;
    let mut lasts = vec![];
    let logs: Vec<_> = (0..3)
        .map(|round| data.path().with_extension(format!("child{round}.log")))
        .collect();
    for round in 0..3u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
            .env("STRATA_TEST_CHILD_DIR", data.path())
            .env("STRATA_TEST_CHILD_S3", &srv.endpoint)
            .env("RUST_LOG", "warn,strata_bookie=debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&logs[round as usize]).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            let started = Instant::now();
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ACK ") {
                    last = n.trim().parse::<u64>().ok();
                }
                if started.elapsed() > Duration::from_millis(1500 + 500 * round) {
                    break;
                }
            }
            last
        });
        let last = reader.join().unwrap();
        // SIGKILL, in the middle of whatever upload is running
        child.kill().unwrap();
        child.wait().unwrap();
        let last = last.unwrap_or_else(|| {
            panic!(
                "child acknowledged nothing: {}",
                std::fs::read_to_string(&logs[round as usize]).unwrap_or_default()
            )
        });
        lasts.push(last);
        acked = acked.max(last + 1);
        assert!(
            objects(s3dir.path())
                .iter()
                .any(|k| k.starts_with("segments/")),
            "round {round}: nothing uploaded before the kill"
        );
    }
    eprintln!(
        "sigkill: {acked} entries x 4 ledgers acknowledged before the last kill; objects {:?}",
        objects(s3dir.path()).len()
    );
    let s = open(cfg(data.path(), &srv.endpoint, 128 << 10), None)
        .await
        .unwrap();
    // every acknowledged entry reads back, byte for byte
    let bad = unreadable(&s, 0..4, acked, 900).await;
    if !bad.is_empty() {
        let mut report = format!(
            "{} of {acked} x 4 acknowledged entries lost; last ACK of each round {lasts:?}; first: {:?}\nfiles:\n{}objects: {:?}\n",
            bad.len(),
            &bad[..bad.len().min(8)],
            listing(data.path()),
            objects(s3dir.path()),
        );
        for (round, log) in logs.iter().enumerate() {
            let text = std::fs::read(log).unwrap_or_default();
            let tail = String::from_utf8_lossy(&text[text.len().saturating_sub(20000)..]);
            report.push_str(&format!("--- child {round} log (tail) ---\n{tail}\n"));
        }
        // kept for a look: the bookie's directory and the store
        let kept = (data.keep(), s3dir.keep());
        panic!("{report}kept: {kept:?}");
    }
    for log in &logs {
        let _ = std::fs::remove_file(log);
    }
    settle(&s).await;
    // after the sweep only objects the manifest names remain
    gc(&s).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (uploaded, _, _) = s.object_stats();
    let segs = objects(s3dir.path())
        .into_iter()
        .filter(|k| k.starts_with("segments/"))
        .count();
    assert_eq!(
        segs,
        uploaded,
        "unreferenced objects left: {:?}",
        objects(s3dir.path())
    );
    close(s).await;
    // and the same from an empty disk: everything uploaded is served
    std::fs::remove_dir_all(data.path()).unwrap();
    let s = open(cfg(data.path(), &srv.endpoint, 128 << 10), None)
        .await
        .unwrap();
    check_ledgers(&s, 0..4, acked, 900).await;
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_then_cold_read() {
    let (_s3dir, srv) = server().await;
    let data = tempfile::tempdir().unwrap();
    let mk = |cache: u64| {
        let mut c = cfg(data.path(), &srv.endpoint, cache);
        c.segment_max_bytes = 1 << 20;
        c.flush_bytes = 1 << 20;
        c
    };
    let s = open(mk(4 << 20), None).await.unwrap();
    let end = Instant::now() + Duration::from_secs(2);
    let mut tasks = vec![];
    for l in 0..8u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut e = 0u64;
            while Instant::now() < end {
                if s.add(l, e, KEY, e as i64 - 1, payload(l, e, 16 << 10))
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                e += 1;
            }
            e
        }));
    }
    let mut counts = vec![];
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    settle(&s).await;
    close(s).await;
    let s = open(mk(0), None).await.unwrap();
    for (l, n) in counts.iter().enumerate() {
        for e in 0..*n {
            let r = s.read(l as u64, e).await;
            assert!(
                r.is_ok(),
                "ledger {l} entry {e} of {n}: {:?} stats {:?}",
                r.err(),
                s.object_stats()
            );
            assert_eq!(r.unwrap().0, payload(l as u64, e, 16 << 10));
        }
    }
    close(s).await;
}

/// Compaction config: GC only when the test asks (`gc_now`), nothing cached locally (every
/// compaction reads the object with a GET).
fn compact_cfg(dir: &Path, endpoint: &str) -> StorageConfig {
    let mut c = cfg(dir, endpoint, 0);
    c.gc_interval = Duration::from_secs(3600);
    c
}

async fn gc(s: &Arc<Storage>) {
    let st = s.clone();
    tokio::task::spawn_blocking(move || st.gc_now())
        .await
        .unwrap()
        .unwrap();
}

fn segment_objects(root: &Path) -> Vec<String> {
    objects(root)
        .into_iter()
        .filter(|k| k.starts_with("segments/"))
        .collect()
}

fn latest_manifest(root: &Path) -> u64 {
    objects(root)
        .iter()
        .filter_map(|k| k.strip_prefix("manifest-")?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Runs GC until the bucket holds exactly the segment objects the bookie references (plus at
/// most the last two manifests) and no uploaded segment is below the compaction threshold.
async fn converge(s: &Arc<Storage>, root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        gc(s).await;
        let st = s.clone();
        tokio::task::spawn_blocking(move || st.seal_now())
            .await
            .unwrap()
            .unwrap();
        let referenced = s.object_keys();
        let listed = segment_objects(root);
        let manifests = objects(root).len() - listed.len();
        let sparse = s
            .segment_stats()
            .iter()
            .filter(|(_, size, live)| (*live as f64) < 0.5 * (*size as f64 - 24.0))
            .count();
        let (_, _, pending) = s.object_stats();
        if referenced == listed && manifests <= 2 && sparse == 0 && pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bucket {:?}, referenced {referenced:?}, segments {:?}",
            objects(root),
            s.segment_stats()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// 4 ledgers interleaved in every segment, uploaded; 3 of them deleted (every object ~25% live);
/// a marker entry uploaded after the deletes (so the latest manifest records them). Returns the
/// segment objects before compaction.
async fn mostly_dead_objects(s: &Arc<Storage>, root: &Path) -> Vec<String> {
    add_all(s, 0..4, 40, 1000).await;
    settle(s).await;
    for l in 0..3 {
        s.delete(l).await.unwrap();
    }
    add_all(s, 4..5, 1, 1000).await;
    settle(s).await;
    // let the uploader drop objects that were wholly dead
    let mut last = (latest_manifest(root), Instant::now());
    while last.1.elapsed() < Duration::from_millis(600) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let m = latest_manifest(root);
        if m != last.0 {
            last = (m, Instant::now());
        }
    }
    segment_objects(root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_rewrites_mostly_dead_objects() {
    let (s3dir, srv) = server().await;
    let root = s3dir.path();
    let data = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let c = compact_cfg(data.path(), &srv.endpoint);
    let m = metrics.clone();
    let s = tokio::task::spawn_blocking(move || Storage::open(c, m))
        .await
        .unwrap()
        .unwrap();
    let before = mostly_dead_objects(&s, root).await;
    converge(&s, root).await;
    let after = segment_objects(root);
    let compacted = metrics.remote_compacted_segments.get();
    eprintln!(
        "compaction: {} objects before, {} after, {compacted} rewritten, {} live bytes moved; bucket {:?}",
        before.len(),
        after.len(),
        metrics.remote_compacted_bytes.get(),
        objects(root)
    );
    assert!(compacted >= 2, "{compacted} objects rewritten");
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert!(
        after.iter().any(|k| !before.contains(k)),
        "no new object: {after:?}"
    );
    check_ledgers(&s, 3..4, 40, 1000).await;
    check_ledgers(&s, 4..5, 1, 1000).await;
    close(s).await;
    // every entry is in the objects the bucket keeps
    std::fs::remove_dir_all(data.path()).unwrap();
    let s = open(compact_cfg(data.path(), &srv.endpoint), None)
        .await
        .unwrap();
    check_ledgers(&s, 3..4, 40, 1000).await;
    assert!(matches!(
        s.read(0, 0).await,
        Err(BookieError::NoLedger { .. })
    ));
    close(s).await;
}

/// The step of compaction of uploaded objects at which the store fails (nothing after it
/// happens) and the bookie is stopped.
#[derive(Clone, Copy, Debug)]
enum CrashPoint {
    /// Entries moved to a local segment; its upload fails.
    NewObject,
    /// New object put; the manifest naming it fails.
    Commit,
    /// New object committed; the manifest without the old objects fails.
    Unreference,
    /// Old objects unreferenced; deleting them fails.
    Delete,
}

/// Compacts with the store failing at `at`, stops the bookie there, restarts it (on an empty
/// disk if `lose_disk`): every entry reads back, and the bucket ends with only referenced
/// objects.
async fn crash_during_compaction(at: CrashPoint, lose_disk: bool) {
    let (s3dir, srv) = server().await;
    let root = s3dir.path();
    let data = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::new(3));
    let s = open(
        compact_cfg(data.path(), &srv.endpoint),
        Some(faults.clone()),
    )
    .await
    .unwrap();
    let before = mostly_dead_objects(&s, root).await;
    let n = latest_manifest(root);
    let manifest = |seq: u64| format!("manifest-{seq:020}");
    faults.add(match at {
        CrashPoint::NewObject => {
            FaultRule::always(Some(Op::Put), Fault::Unreachable).on_keys("segments/")
        }
        CrashPoint::Commit => {
            FaultRule::always(Some(Op::Put), Fault::Unreachable).on_keys(manifest(n + 1))
        }
        CrashPoint::Unreference => {
            FaultRule::always(Some(Op::Put), Fault::Unreachable).on_keys(manifest(n + 2))
        }
        CrashPoint::Delete => {
            FaultRule::always(Some(Op::Delete), Fault::Unreachable).on_keys("segments/")
        }
    });
    gc(&s).await;
    let st = s.clone();
    tokio::task::spawn_blocking(move || st.seal_now())
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while faults.injected() == 0 {
        assert!(Instant::now() < deadline, "{at:?} never reached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_crash = objects(root);
    close(s).await;
    if lose_disk {
        std::fs::remove_dir_all(data.path()).unwrap();
    }
    let s = open(compact_cfg(data.path(), &srv.endpoint), None)
        .await
        .unwrap();
    check_ledgers(&s, 3..4, 40, 1000).await;
    check_ledgers(&s, 4..5, 1, 1000).await;
    converge(&s, root).await;
    let after = segment_objects(root);
    eprintln!(
        "{at:?} (disk lost: {lose_disk}): before {} objects, at the crash {at_crash:?}, after {after:?}",
        before.len()
    );
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    check_ledgers(&s, 3..4, 40, 1000).await;
    close(s).await;
    std::fs::remove_dir_all(data.path()).unwrap();
    let s = open(compact_cfg(data.path(), &srv.endpoint), None)
        .await
        .unwrap();
    check_ledgers(&s, 3..4, 40, 1000).await;
    close(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_crash_before_new_object_keeps_disk() {
    crash_during_compaction(CrashPoint::NewObject, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_crash_before_new_object_loses_disk() {
    crash_during_compaction(CrashPoint::NewObject, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_crash_before_commit() {
    crash_during_compaction(CrashPoint::Commit, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_crash_before_unreference() {
    crash_during_compaction(CrashPoint::Unreference, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_crash_before_delete() {
    crash_during_compaction(CrashPoint::Delete, false).await;
}
