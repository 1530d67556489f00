//! `bookie_bench -- --objstore [--dir DIR --secs N]`: the object-storage mode. The same storage
//! engine in this process, once on local disk only and once with sealed segments uploaded to an
//! S3 server (s3s-fs; see `server.rs` for where it runs, `pin.rs` on which CPUs) behind a 20 ms-per-request throttle;
//! closed-loop add throughput at 1 KiB and 64 KiB in both modes (same run, same disk; rounds of
//! phases in the order local, object storage, object storage, local; each mode's rate is the mean
//! of its phases), their ratios (target ≥ 0.9) overall and per round, and cold sequential read (in an extra phase after the rounds)
//! throughput from the object store (every local copy evicted).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_bookie::config::RemoteConfig;
use strata_bookie::metrics::Metrics;
use strata_bookie::{Storage, StorageConfig};
use strata_objstore::object_store::throttle::{ThrottleConfig, ThrottledStore};
use strata_objstore::{RetryPolicy, Store};

#[path = "pin.rs"]
pub mod pin;
#[path = "server.rs"]
pub mod server;

const KEY: Bytes = Bytes::from_static(b"bench");
const THROTTLE: Duration = Duration::from_millis(20);

/// `id`: the bookie id (each phase its own: a fresh directory with a known id would be an
/// empty-disk restart of that bookie).
fn config(dir: &Path, srv: Option<&server::S3>, cache: u64, id: &str) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    c.min_free_bytes = 0;
    c.segment_max_bytes = 16 << 20;
    if let Some(srv) = srv {
        let mut sc = srv.config("p");
        sc.retry = RetryPolicy::default();
        sc.unsigned_payload = true; // as `strata bookie` sets it
        let mut r = RemoteConfig::new(sc, id);
        r.segment_cache_bytes = cache;
        r.segment_max_age = Duration::from_secs(2);
        r.thread_nice = thread_nice();
        c.remote = Some(r);
    }
    c
}

fn throttled(srv: &server::S3) -> Store {
    let mut sc = srv.config("p");
    sc.unsigned_payload = true;
    let (raw, prefix) = strata_objstore::open_raw(&sc).unwrap();
    let t = ThrottleConfig {
        wait_put_per_call: THROTTLE,
        wait_get_per_call: THROTTLE,
        wait_list_per_call: THROTTLE,
        wait_delete_per_call: THROTTLE,
        ..Default::default()
    };
    Store::from_raw(Arc::new(ThrottledStore::new(raw, t)), &prefix)
        .with_retry(RetryPolicy::default())
}

async fn open(c: StorageConfig, store: Option<Store>, m: Arc<Metrics>) -> Arc<Storage> {
    tokio::task::spawn_blocking(move || Storage::open_with_store(c, m, store))
        .await
        .unwrap()
        .unwrap()
}

/// Closed loop: `writers` tasks, each adding to its own ledger; returns adds/s.
async fn adds(s: &Arc<Storage>, size: usize, writers: u64, secs: f64) -> f64 {
    let payload = Bytes::from(vec![7u8; size]);
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = vec![];
    for l in 0..writers {
        let (s, p, done) = (s.clone(), payload.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut e = 0u64;
            while Instant::now() < end {
                if s.add(l, e, KEY, e as i64 - 1, p.clone()).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                e += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn wait_uploaded(s: &Arc<Storage>) {
    let st = s.clone();
    tokio::task::spawn_blocking(move || st.seal_now())
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while s.object_stats().2 > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn close(s: Arc<Storage>) {
    tokio::task::spawn_blocking(move || s.shutdown())
        .await
        .unwrap();
}

/// Reads every ledger `0..writers` sequentially in 1 MiB batches; returns (bytes, seconds).
async fn read_all(s: &Arc<Storage>, writers: u64) -> (u64, f64) {
    let start = Instant::now();
    let mut bytes = 0u64;
    for l in 0..writers {
        let Ok(info) = s.lac_info(l) else { continue };
        let mut e = 0u64;
        while (e as i64) <= info.last_entry {
            let (v, _) = s
                .read_many(l, e, info.last_entry as u64, 1 << 20)
                .await
                .unwrap();
            e += v.len() as u64;
            bytes += v.iter().map(|(_, p)| p.len() as u64).sum::<u64>();
        }
    }
    (bytes, start.elapsed().as_secs_f64())
}

/// Runs the mode; prints the figures and ratios.
pub fn run(dir: &Path, secs: f64) {
    let rounds: usize = std::env::var("BENCH_OBJSTORE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1);
    // before any thread exists: every thread of this process inherits the pinning
    let place = if server::inproc() {
        None
    } else {
        pin::Placement::from_env()
    };
    let placement = match &place {
        Some(p) => {
            pin::pin_self(&p.bench).expect("pin the bench process");
            format!(
                "the bench process (bookie + load generator) pinned to CPU {} in every phase, local ones included \
                 (BENCH_OBJSTORE_PIN=split|none|A:B)",
                pin::show(&p.bench)
            )
        }
        None => "no CPU pinning: the bench process and the S3 server share every CPU (BENCH_OBJSTORE_PIN)".into(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (s3root, where_) = s3_root(dir);
    let (s3, how) = server::S3::start(s3root.path(), place.as_ref().map(|p| &p.server[..]));
    rt.block_on(async {
        println!(
            "object-storage mode: in-process S3 (s3s-fs) behind a {} ms/request throttle, {secs} s per phase, \
             {rounds} rounds (BENCH_OBJSTORE_ROUNDS) of local, object storage, object storage, local per size; \
             the S3 server {how}, its files on {where_}; {placement}; {} CPUs online; \
             the bookie's object-store threads (uploads, GETs) at nice {} (BENCH_OBJSTORE_THREAD_NICE); \
             each phase starts after the previous one's uploads finished, with the bucket emptied",
            THROTTLE.as_millis(),
            pin::cpu_times().len(),
            thread_nice()
        );
        let mut ratios = vec![];
        for (size, writers) in [(1usize << 10, 256u64), (64 << 10, 32)] {
            let mut per_round = vec![];
            let mut sums = [0f64; 2];
            for _ in 0..rounds {
                // A B B A: each mode twice, so that a change of the machine's load (shared, 2
                // cores) during the round weighs on both modes alike
                let mut rates = [0f64; 2];
                for remote in [false, true, true, false] {
                    let r = phase_run(dir, &s3, size, writers, secs, remote, false).await;
                    if remote {
                        clear_bucket(s3root.path());
                    }
                    rates[usize::from(remote)] += r / 2.0;
                }
                per_round.push(rates[1] / rates[0]);
                sums[0] += rates[0];
                sums[1] += rates[1];
            }
            let ratio = sums[1] / sums[0];
            let mut sorted = per_round.clone();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len();
            let median = (sorted[(n - 1) / 2] + sorted[n / 2]) / 2.0;
            let rounds_txt: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
            println!(
                "{} KiB adds: local {:.0}/s ({:.1} MiB/s), object storage {:.0}/s ({:.1} MiB/s) over {rounds} rounds: \
                 ratio {ratio:.2} (per round {}; median {median:.2}; target >= 0.9)",
                size >> 10,
                sums[0] / rounds as f64,
                sums[0] / rounds as f64 * size as f64 / 1048576.0,
                sums[1] / rounds as f64,
                sums[1] / rounds as f64 * size as f64 / 1048576.0,
                rounds_txt.join(", "),
            );
            ratios.push(ratio);
        }
        // the cold read in an extra phase after the rounds: inside a round its ~30 s without
        // adds would give the next phase an idle disk the others do not get
        println!("extra 64 KiB object-storage phase for the cold read (not in the ratios):");
        phase_run(dir, &s3, 64 << 10, 32, secs, true, true).await;
        clear_bucket(s3root.path());
        println!("RESULT objstore add ratio 1KiB={:.2} 64KiB={:.2}", ratios[0], ratios[1]);
    });
    drop(s3);
}

/// One phase on a fresh directory; returns adds/s. Object storage: reports how much was uploaded
/// during the phase and waits for the rest (then `cold`: reads everything back from the store).
async fn phase_run(
    dir: &Path,
    s3: &server::S3,
    size: usize,
    writers: u64,
    secs: f64,
    remote: bool,
    cold: bool,
) -> f64 {
    let d = tempfile::tempdir_in(dir).unwrap();
    let id = format!("bench-{}", d.path().display()).replace('/', "_");
    let m = Arc::new(Metrics::new());
    let (cfg, store) = if remote {
        (
            config(d.path(), Some(s3), cache_bound(), &id),
            Some(throttled(s3)),
        )
    } else {
        (config(d.path(), None, 0, &id), None)
    };
    let s = open(cfg, store, m.clone()).await;
    let (cpu0, s3cpu0, cpus0) = (super::cpu_secs(), s3.cpu_secs(), pin::cpu_times());
    let t0 = Instant::now();
    let rate = adds(&s, size, writers, secs).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = format!(
        "bench process {:.2} cores{}; busy: {}",
        (super::cpu_secs() - cpu0) / wall,
        match (s3cpu0, s3.cpu_secs()) {
            (Some(a), Some(b)) => format!(", S3 server process {:.2} cores", (b - a) / wall),
            _ => String::new(),
        },
        pin::busy_between(&cpus0, &pin::cpu_times())
    );
    if !remote {
        println!("  {} KiB local: {rate:.0} adds/s ({cpu})", size >> 10);
        close(s).await;
        return rate;
    }
    let uploaded = m.remote_uploaded_bytes.get() as f64 / 1048576.0;
    let added = rate * secs * size as f64 / 1048576.0;
    let pending = s.object_stats().2 as f64 / 1048576.0;
    let t0 = Instant::now();
    wait_uploaded(&s).await;
    println!(
        "  {} KiB object storage: {rate:.0} adds/s ({cpu}); uploaded during the phase {uploaded:.0} of {added:.0} MiB \
         added (sealed, not uploaded at its end: {pending:.0} MiB); the rest uploaded in {:.1} s",
        size >> 10,
        t0.elapsed().as_secs_f64()
    );
    close(s).await;
    if cold {
        // cold: every local copy evicted at recovery (bound 0), block cache empty
        let cfg = config(d.path(), Some(s3), 0, &id);
        let s = open(cfg, Some(throttled(s3)), Arc::new(Metrics::new())).await;
        let (segments, local, _) = s.object_stats();
        let (bytes, t) = read_all(&s, writers).await;
        println!(
            "cold sequential read from the object store: {:.1} MiB/s ({} MiB in {t:.1} s; {segments} segments, {local} local segment bytes)",
            bytes as f64 / t / 1048576.0,
            bytes >> 20
        );
        close(s).await;
    }
    rate
}

/// Niceness of the bookie's object-store threads (`BENCH_OBJSTORE_THREAD_NICE`, default the
/// bookie's own default; 0 leaves them at the bench's priority).
fn thread_nice() -> i32 {
    std::env::var("BENCH_OBJSTORE_THREAD_NICE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| RemoteConfig::new(Default::default(), "x").thread_nice)
}

/// Deletes every object (and s3s-fs's sidecar files) the finished phase left in the server's
/// directory: each phase starts with the same store and the same free memory (on tmpfs, kept objects
/// would take GiBs of RAM by the second round). The phase's bookie is closed; the next one has a
/// new id.
fn clear_bucket(root: &Path) {
    let _ = std::fs::remove_dir_all(root.join("bench").join("p"));
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(".bucket-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Local cache bound of the upload phases (`BENCH_OBJSTORE_CACHE_MIB`, default 4096 as
/// `--segment-cache-bytes`; a small bound turns a slow store into backpressure on adds).
fn cache_bound() -> u64 {
    std::env::var("BENCH_OBJSTORE_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(4096)
        << 20
}

/// Where the in-process S3 server keeps its objects: tmpfs (`/dev/shm`) unless
/// `BENCH_OBJSTORE_S3_ROOT=disk`. A real object store is not the bookie's disk: with the server's
/// files on the bench disk every byte is written twice there and the local-disk baseline is not
/// matched by a comparable setup.
fn s3_root(dir: &Path) -> (tempfile::TempDir, String) {
    let shm = Path::new("/dev/shm");
    let on_disk = std::env::var("BENCH_OBJSTORE_S3_ROOT").is_ok_and(|v| v == "disk");
    if !on_disk
        && shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return (
            d,
            "tmpfs (/dev/shm; BENCH_OBJSTORE_S3_ROOT=disk puts them on the bench disk)".into(),
        );
    }
    (
        tempfile::tempdir_in(dir).unwrap(),
        format!("the bench disk ({})", dir.display()),
    )
}
