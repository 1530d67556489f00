//! Tiered storage benchmark (issue 11, acceptance 4). In one run: writes the same backlog twice
//! through managed ledgers to a real in-process bookie, offloads one copy's closed ledgers to the
//! in-process S3-compatible server (s3s with SigV4 over s3s-fs, see `strata_objstore::test_server`)
//! behind `object_store`'s `ThrottledStore` at 20 ms per request, deletes that copy's bookie
//! ledgers, and measures with the managed ledger's read path (what a subscription's catch-up
//! read does), in `BENCH_PASSES` (3) passes alternating between the copies, medians reported:
//!
//! - time to the first batch for a reader starting at an offloaded ledger (cold caches);
//! - catch-up throughput (after the first batch) from the object store vs the bookie copy;
//! - two concurrent readers of the same offloaded ledgers vs one (cold caches both);
//! - the store's own ceiling: raw ranged GETs of the data objects, block by block, as many at
//!   once as the tier keeps in flight for one reader (1 + read-ahead), without the tier.
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

const ON_BOOKIE: &str = "bench/ns/persistent/on-bookie";
const OFFLOADED: &str = "bench/ns/persistent/offloaded";
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
    let open = |name: &'static str| {
        let (storage, meta, cfg) = (storage.clone(), meta.clone(), cfg.clone());
        async move {
            ManagedLedger::open(name, storage, meta, EntryCache::new(1), cfg)
                .await
                .unwrap()
        }
    };

    // 1. The same backlog twice: one copy stays on the bookie, the other is offloaded, so the
    //    passes below can alternate between the two under the same machine load.
    let n = mib * 1024 * 1024 / ENTRY;
    for name in [ON_BOOKIE, OFFLOADED] {
        let t = Instant::now();
        write_backlog(&open(name).await, n).await;
        println!(
            "backlog {name}: {n} entries of {ENTRY} B ({mib} MiB) written in {:?}",
            t.elapsed()
        );
    }

    // 2. Offload one copy to the throttled in-process S3, then drop its bookie copies.
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
    let ml_o = open(OFFLOADED).await;
    let off = Offloader::new(store(), offload_config());
    ml_o.set_tier(off.tier().clone());
    let t = Instant::now();
    let count = off.offload_ledgers(&ml_o, |_| true).await.unwrap();
    println!("offloaded {count} ledgers in {:?}", t.elapsed());
    off.delete_offloaded_from_bookies(&ml_o, 0).await;
    assert!(
        ml_o.ledgers()
            .iter()
            .filter(|l| l.closed)
            .all(|l| l.offload.as_ref().is_some_and(|o| o.bookies_deleted))
    );
    ml_o.close().await;

    // 3. Passes, each on fresh instances (nothing cached: a new managed ledger, a new tier):
    //    one reader from the bookie; one reader from the object store; two concurrent readers
    //    from the object store. Each reader's time to its first batch is reported apart from its
    //    catch-up throughput (bytes after the first batch / time after it).
    let passes: usize = std::env::var("BENCH_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (mut ttfm, mut bookie_mbs, mut s3_mbs, mut pair) = (vec![], vec![], vec![], vec![]);
    for p in 1..=passes {
        let ml_b = open(ON_BOOKIE).await;
        let b = read_from(&ml_b, first_closed(&ml_b)).await;
        ml_b.close().await;
        let tiered = || async {
            let ml = open(OFFLOADED).await;
            ml.set_tier(Offloader::new(store(), offload_config()).tier().clone());
            ml
        };
        let ml_s = tiered().await;
        let s = read_from(&ml_s, first_closed(&ml_s)).await;
        assert_eq!(s.bytes, b.bytes, "object store and bookie reads differ");
        ml_s.close().await;
        let ml_2 = tiered().await;
        let first = first_closed(&ml_2);
        // Each reader on its own task, as each subscription's dispatcher is in the broker.
        let reader = |ml: ManagedLedger| tokio::spawn(async move { read_from(&ml, first).await });
        let (r1, r2) = tokio::join!(reader(ml_2.clone()), reader(ml_2.clone()));
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        ml_2.close().await;
        println!(
            "pass {p}: bookie {:.1} MB/s (first batch {:.1} ms) | object store {:.1} MB/s (first batch {:.1} ms, cold total {:.1} MB/s) | two readers {:.1} + {:.1} MB/s (first batch {:.1} / {:.1} ms)",
            b.mbps(),
            b.first_ms(),
            s.mbps(),
            s.first_ms(),
            s.cold_mbps(),
            r1.mbps(),
            r2.mbps(),
            r1.first_ms(),
            r2.first_ms()
        );
        ttfm.push(s.first_ms());
        bookie_mbs.push(b.mbps());
        s3_mbs.push(s.mbps());
        pair.push((r1.mbps().min(r2.mbps())) / s.mbps());
    }

    // 4. The store's ceiling at the tier's concurrency.
    let cfg_o = offload_config();
    let conc = cfg_o.read_ahead_blocks + 1;
    let (raw_b, raw_t) = raw_gets(&store(), cfg_o.block_bytes as u64, conc).await;
    let raw_mbs = mbps(raw_b, raw_t);
    println!("raw ranged GETs ({conc} in flight): {raw_mbs:.1} MB/s ({raw_b} B in {raw_t:?})");

    let (ttfm, bookie_mbs, s3_mbs) = (median(ttfm), median(bookie_mbs), median(s3_mbs));
    println!("medians of {passes} passes:");
    println!("RESULT ttfm_ms={ttfm:.1} (goal <= 100)");
    println!(
        "RESULT catchup_ratio={:.2} (object store / bookie, goal >= 0.8)",
        s3_mbs / bookie_mbs
    );
    println!(
        "RESULT concurrent_ratio={:.2} (slower of two readers / one reader in the same pass, goal >= 0.8)",
        median(pair)
    );
    println!(
        "RESULT store_ceiling: raw_get_mbs={raw_mbs:.1} bookie_mbs={bookie_mbs:.1} tier_mbs={s3_mbs:.1} tier/raw={:.2}",
        s3_mbs / raw_mbs
    );
    bookie.shutdown().await;
}

/// Writes `n` entries (the first 8 bytes carry the index) and closes the log, so every full
/// ledger is closed.
async fn write_backlog(ml: &ManagedLedger, n: usize) {
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
    ml.close().await;
}

fn first_closed(ml: &ManagedLedger) -> Position {
    let l = ml.ledgers().into_iter().find(|l| l.closed).unwrap();
    Position::new(l.ledger_id.0, 0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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

/// One reader's pass: its first batch, and the rest.
struct Pass {
    first: Duration,
    bytes: u64,
    first_bytes: u64,
    total: Duration,
}

impl Pass {
    fn first_ms(&self) -> f64 {
        self.first.as_secs_f64() * 1000.0
    }
    /// Catch-up throughput: after the first batch.
    fn mbps(&self) -> f64 {
        mbps(self.bytes - self.first_bytes, self.total - self.first)
    }
    /// Including the first batch.
    fn cold_mbps(&self) -> f64 {
        mbps(self.bytes, self.total)
    }
}

/// Reads forward from `from` to the end of the closed ledgers, as a subscription's catch-up
/// does (batches of 100 entries), checking every entry's order.
async fn read_from(ml: &ManagedLedger, from: Position) -> Pass {
    let t = Instant::now();
    let mut pass = Pass {
        first: Duration::ZERO,
        bytes: 0,
        first_bytes: 0,
        total: Duration::ZERO,
    };
    let mut next = Some(from);
    let mut expect = 0u64;
    while let Some(p) = next {
        let got = ml.read(p, 100).await.unwrap();
        for (pos, d) in &got {
            let id = u64::from_le_bytes(d[..8].try_into().unwrap());
            assert_eq!(id, expect, "entry at {pos:?} out of order");
            expect += 1;
            pass.bytes += d.len() as u64;
        }
        if pass.first.is_zero() {
            pass.first = t.elapsed();
            pass.first_bytes = pass.bytes;
        }
        next = got.last().and_then(|(p, _)| ml.next_position(*p));
    }
    pass.total = t.elapsed();
    pass
}

fn mbps(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}
