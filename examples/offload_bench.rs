//! Tiered storage benchmark (issue 11, acceptance 4). In one run: writes a backlog through a
//! managed ledger to a real in-process bookie, offloads its closed ledgers to the in-process
//! S3-compatible server (s3s + s3s-fs) behind `object_store`'s `ThrottledStore` at 20 ms per
//! request, deletes the bookie copies, and measures with the managed ledger's read path (what a
//! subscription's catch-up read does):
//!
//! - time to the first entry for a reader starting at an offloaded ledger (cold caches);
//! - catch-up throughput from the object store vs the same ledgers on the bookie;
//! - two concurrent readers of the same offloaded ledgers vs one;
//! - the store's own ceiling: raw ranged GETs of the data objects, block by block, as many at
//!   once as the tier keeps in flight for one reader (1 + read-ahead), without the tier — what
//!   the object-store catch-up can reach at best with this server and throttle.
//!
//! Run: `scripts/offload-bench` (or `cargo run --release --example offload_bench -- MIB`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use strata_bookie::registration::NoopRegistrar;
use strata_bookie::{BookieNode, BookieOptions, StorageConfig};
use strata_broker::cache::EntryCache;
use strata_broker::ledger_client::{BookieLedgerStorage, Quorum, StaticBookies};
use strata_broker::managed_ledger::{ManagedLedger, ManagedLedgerConfig};
use strata_broker::offload::{OffloadConfig, Offloader};
use strata_broker::position::Position;
use strata_broker::storage::LedgerStorage;
use strata_meta::LocalStore;
use strata_meta::model::{MetaClient, Paths};
use strata_objstore::test_server::S3TestServer;
use strata_objstore::{Store, open_raw};
use strata_proto::BookieId;

const NAME: &str = "bench/ns/persistent/backlog";
const ENTRY: usize = 1024;

#[tokio::main]
async fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(32);
    let dir = tempfile::tempdir().unwrap();
    let bookie = BookieNode::start(
        BookieOptions {
            storage: StorageConfig::new(dir.path().join("bookie")),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: None,
            advertised_address: None,
            registration_interval: Duration::from_secs(60),
        },
        Arc::new(NoopRegistrar),
    )
    .await
    .unwrap();
    let meta = MetaClient::new(Arc::new(LocalStore::in_memory().unwrap()), Paths::default());
    let storage: Arc<dyn LedgerStorage> = Arc::new(BookieLedgerStorage::new(
        meta.clone(),
        Arc::new(StaticBookies(vec![(
            BookieId("bench-bookie".into()),
            bookie.grpc_addr.to_string(),
        )])),
        Quorum {
            ensemble: 1,
            write: 1,
            ack: 1,
        },
        "bench",
    ));
    let cfg = ManagedLedgerConfig {
        max_size_per_ledger: 8 << 20,
        ..Default::default()
    };
    let open = |cache: u64| {
        let (storage, meta, cfg) = (storage.clone(), meta.clone(), cfg.clone());
        async move {
            ManagedLedger::open(NAME, storage, meta, EntryCache::new(cache), cfg)
                .await
                .unwrap()
        }
    };

    // 1. The backlog.
    let ml = open(1 << 20).await;
    let n = mib * 1024 * 1024 / ENTRY;
    let t = Instant::now();
    let mut inflight = FuturesOrdered::new();
    for i in 0..n {
        let mut e = vec![(i % 251) as u8; ENTRY];
        e[..8].copy_from_slice(&(i as u64).to_le_bytes());
        inflight.push_back(ml.append(Bytes::from(e)));
        if inflight.len() >= 1000 {
            inflight.next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = inflight.next().await {
        r.unwrap();
    }
    // One more entry so the last full ledger is closed and a new one holds the tail.
    ml.close().await;
    println!(
        "backlog: {n} entries of {ENTRY} B ({mib} MiB) written in {:?}",
        t.elapsed()
    );

    // 2. Catch-up from the bookie (fresh instance: nothing in the tail cache).
    let ml_b = open(1).await;
    let closed: Vec<u64> = ml_b
        .ledgers()
        .iter()
        .filter(|l| l.closed)
        .map(|l| l.ledger_id.0)
        .collect();
    let first = Position::new(closed[0], 0);
    let (bytes, took) = read_from(&ml_b, first).await;
    let bookie_mbs = mbps(bytes, took);
    println!(
        "bookie catch-up: {:.1} MB/s ({bytes} B in {took:?})",
        bookie_mbs
    );

    // 3. Offload to the throttled in-process S3, then drop the bookie copies.
    // The server's files on tmpfs when there is one (an object store is not the local disk's
    // benchmark); BENCH_S3_ROOT=DIR to choose.
    let s3_parent = std::env::var("BENCH_S3_ROOT").unwrap_or_else(|_| {
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() { "/dev/shm" } else { "/tmp" }.into()
    });
    let s3dir = tempfile::tempdir_in(&s3_parent).unwrap();
    let srv = S3TestServer::start(s3dir.path(), "bench").await.unwrap();
    let latency = Duration::from_millis(
        std::env::var("BENCH_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    );
    // BENCH_BACKEND=memory: object_store's InMemory behind the same throttle instead of the
    // in-process S3 server (separates the tier's behaviour from the test server's speed).
    let memory = std::env::var("BENCH_BACKEND").is_ok_and(|b| b == "memory");
    let mem: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let store = || {
        let raw = if memory {
            mem.clone()
        } else {
            open_raw(&srv.config("bench", "")).unwrap().0
        };
        let throttle = ThrottleConfig {
            wait_get_per_call: latency,
            wait_put_per_call: latency,
            wait_list_per_call: latency,
            wait_delete_per_call: latency,
            ..Default::default()
        };
        Store::from_raw(Arc::new(ThrottledStore::new(raw, throttle)), "tier")
    };
    if memory {
        println!("object store: object_store InMemory behind ThrottledStore {latency:?}/request");
    } else {
        println!(
            "object store: in-process S3 server (s3s, SigV4 auth, HTTP/1.1 at {}; s3s-fs files under {}, \
             bodies read 1 MiB at a time; own 2-thread runtime) behind ThrottledStore {latency:?}/request",
            srv.endpoint, s3_parent
        );
    }
    let off = Offloader::new(store(), offload_config());
    ml_b.set_tier(off.tier().clone());
    let t = Instant::now();
    let count = off.offload_ledgers(&ml_b, |_| true).await.unwrap();
    println!("offloaded {count} ledgers in {:?}", t.elapsed());
    off.delete_offloaded_from_bookies(&ml_b, 0).await;
    ml_b.close().await;

    // 4. Cold reader at an offloaded ledger: time to the first entry, then the catch-up.
    let ml_s = open(1).await;
    ml_s.set_tier(Offloader::new(store(), offload_config()).tier().clone());
    let t = Instant::now();
    let got = ml_s.read(first, 100).await.unwrap();
    let ttfm = t.elapsed();
    assert!(!got.is_empty());
    let (bytes_s, took_s) = read_from(&ml_s, first).await;
    assert_eq!(bytes_s, bytes, "object store and bookie reads differ");
    let s3_mbs = mbps(bytes_s, took_s);
    println!(
        "time to first message from the object store: {:.1} ms",
        ttfm.as_secs_f64() * 1000.0
    );
    println!("object-store catch-up: {s3_mbs:.1} MB/s");

    // 5. Two concurrent readers of the same offloaded ledgers (cold caches).
    let ml_2 = open(1).await;
    ml_2.set_tier(Offloader::new(store(), offload_config()).tier().clone());
    // Each reader on its own task, as each subscription's dispatcher is in the broker (one
    // task would put both readers' CPU work on one worker thread).
    let reader = |ml: ManagedLedger| tokio::spawn(async move { read_from(&ml, first).await });
    let (a, b) = tokio::join!(reader(ml_2.clone()), reader(ml_2.clone()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let (ra, rb) = (mbps(a.0, a.1), mbps(b.0, b.1));
    println!("two concurrent readers: {ra:.1} MB/s and {rb:.1} MB/s");

    // 6. The store's ceiling at the tier's concurrency.
    let cfg_o = offload_config();
    let conc = cfg_o.read_ahead_blocks + 1;
    let (raw_b, raw_t) = raw_gets(&store(), cfg_o.block_bytes as u64, conc).await;
    let raw_mbs = mbps(raw_b, raw_t);
    println!("raw ranged GETs ({conc} in flight): {raw_mbs:.1} MB/s ({raw_b} B in {raw_t:?})");

    println!(
        "RESULT ttfm_ms={:.1} (goal <= 100)",
        ttfm.as_secs_f64() * 1000.0
    );
    println!(
        "RESULT catchup_ratio={:.2} (object store / bookie, goal >= 0.8)",
        s3_mbs / bookie_mbs
    );
    println!(
        "RESULT concurrent_ratio={:.2},{:.2} (each of two readers / one reader, goal >= 0.8)",
        ra / s3_mbs,
        rb / s3_mbs
    );
    println!(
        "RESULT store_ceiling: raw_get_mbs={raw_mbs:.1} bookie_mbs={bookie_mbs:.1} tier_mbs={s3_mbs:.1} tier/raw={:.2}",
        s3_mbs / raw_mbs
    );
    bookie.shutdown().await;
}

/// Ranged GETs of every data object in `block`-sized ranges, `conc` at a time, without the
/// tier (no index, no decoding, no cache); returns bytes and time.
async fn raw_gets(store: &Store, block: u64, conc: usize) -> (u64, Duration) {
    let ranges: Vec<(String, std::ops::Range<u64>)> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.key.contains("data-"))
        .flat_map(|o| {
            (0..o.size)
                .step_by(block as usize)
                .map(move |s| (o.key.clone(), s..(s + block).min(o.size)))
        })
        .collect();
    let t = Instant::now();
    let bytes = futures::stream::iter(ranges)
        .map(|(k, r)| async move { store.get_range(&k, r).await.unwrap().len() as u64 })
        .buffer_unordered(conc)
        .fold(0u64, |a, b| async move { a + b })
        .await;
    (bytes, t.elapsed())
}

/// The offload settings: defaults, or `BENCH_BLOCK_KIB` / `BENCH_PART_KIB` / `BENCH_READ_AHEAD`
/// / `BENCH_MAX_PREFETCHES` to explore.
fn offload_config() -> OffloadConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let d = OffloadConfig::default();
    OffloadConfig {
        block_bytes: env("BENCH_BLOCK_KIB")
            .map(|k| k << 10)
            .unwrap_or(d.block_bytes),
        read_ahead_blocks: env("BENCH_READ_AHEAD").unwrap_or(d.read_ahead_blocks),
        max_prefetches: env("BENCH_MAX_PREFETCHES").unwrap_or(d.max_prefetches),
        part_bytes: env("BENCH_PART_KIB")
            .map(|k| k << 10)
            .unwrap_or(d.part_bytes),
        ..d
    }
}

/// Reads forward from `from` to the end of the closed ledgers, as a subscription's catch-up
/// does (read-ahead of 100 entries); returns bytes and time.
async fn read_from(ml: &ManagedLedger, from: Position) -> (u64, Duration) {
    let t = Instant::now();
    let mut bytes = 0u64;
    let mut next = Some(from);
    let mut expect = 0u64;
    while let Some(p) = next {
        let got = ml.read(p, 100).await.unwrap();
        for (pos, d) in &got {
            let id = u64::from_le_bytes(d[..8].try_into().unwrap());
            assert_eq!(id, expect, "entry at {pos:?} out of order");
            expect += 1;
            bytes += d.len() as u64;
        }
        next = got.last().and_then(|(p, _)| ml.next_position(*p));
    }
    (bytes, t.elapsed())
}

fn mbps(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}
