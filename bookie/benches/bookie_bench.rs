//! End-to-end bookie benchmark against the raw disk, measured in the same run on the same filesystem.
//!
//! `cargo bench -p strata-bookie --bench bookie_bench [-- --dir DIR --secs N]`
//!
//! Baselines: (a) sequential write bandwidth with one fdatasync per 1 MiB; (b) 1 KiB append +
//! fdatasync per append (rate and p99 sync latency). Then a bookie (in this process, gRPC over
//! loopback) under many concurrent writers: 64 KiB and 1 KiB add throughput, and p99 add latency at
//! half the 1 KiB peak rate. Prints the ratios against the targets (64 KiB ≥ 0.7×(a),
//! 1 KiB ≥ 25×(b), p99 at half load ≤ 3× disk p99 fdatasync).
//!
//! Diagnostics: `BENCH_NO_FLUSH=1` keeps everything in the write cache (journal only, to see what
//! the segment flushes cost); `BENCH_DEBUG=1` prints the journal sync histogram at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use strata_bookie::registration::NoopRegistrar;
use strata_bookie::{BookieClient, BookieNode, BookieOptions, StorageConfig};

/// Concurrent 1 KiB writers (each with one add in flight).
const INFLIGHT_1K: usize = 2048;

const KEY: Bytes = Bytes::from_static(b"bench");

struct Args {
    dir: PathBuf,
    secs: f64,
}

fn args() -> Args {
    let mut a = Args {
        dir: std::env::temp_dir(),
        secs: 3.0,
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        match v[i].as_str() {
            "--dir" if i + 1 < v.len() => {
                a.dir = PathBuf::from(&v[i + 1]);
                i += 1;
            }
            "--secs" if i + 1 < v.len() => {
                a.secs = v[i + 1].parse().unwrap_or(3.0);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    a
}

/// (a): MiB/s writing 1 MiB blocks with one fdatasync each.
fn disk_seq_bandwidth(dir: &Path, dur: Duration) -> f64 {
    let p = dir.join("seq.bin");
    let mut f = std::fs::File::create(&p).unwrap();
    let block = vec![0x5Au8; 1 << 20];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur && n < 2048 {
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&p);
    n as f64 / secs
}

/// (b): appends/s of 1 KiB + fdatasync each, and the fdatasync latency histogram (µs).
fn disk_sync_rate(dir: &Path, dur: Duration) -> (f64, Histogram<u64>) {
    let p = dir.join("sync.bin");
    let mut f = std::fs::File::create(&p).unwrap();
    let block = vec![0xA5u8; 1024];
    let mut h = Histogram::<u64>::new(3).unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        f.write_all(&block).unwrap();
        let t = Instant::now();
        f.sync_data().unwrap();
        h.record(t.elapsed().as_micros() as u64).unwrap();
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&p);
    (n as f64 / secs, h)
}

/// p99 (µs) of `n` appends of `size` bytes, each followed by one fdatasync (same sizes as the
/// journal's group commits).
fn disk_sync_p99(dir: &Path, size: usize, n: usize) -> u64 {
    let p = dir.join("sync-sized.bin");
    let mut f = std::fs::File::create(&p).unwrap();
    let block = vec![0x5Au8; size.max(1)];
    let mut h = Histogram::<u64>::new(3).unwrap();
    for _ in 0..n {
        let t = Instant::now();
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
        h.record(t.elapsed().as_micros() as u64).unwrap();
    }
    drop(f);
    let _ = std::fs::remove_file(&p);
    h.value_at_quantile(0.99)
}

/// Value of a counter (`NAME_total`) in the metrics text.
fn counter(text: &str, name: &str) -> f64 {
    let prefix = format!("{name}_total ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Closed loop: `inflight` writers, each with one add outstanding, for `dur`. Returns adds/s.
async fn closed_loop(
    clients: &[BookieClient],
    size: usize,
    inflight: usize,
    dur: Duration,
    base: u64,
) -> f64 {
    let payload = Bytes::from(vec![0xABu8; size]);
    let count = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + dur;
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..inflight {
        let c = clients[i % clients.len()].clone();
        let payload = payload.clone();
        let count = count.clone();
        set.spawn(async move {
            let l = base + i as u64;
            let mut e = 0u64;
            while Instant::now() < stop {
                c.add(l, e, KEY, e as i64 - 1, payload.clone())
                    .await
                    .unwrap();
                e += 1;
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while set.join_next().await.is_some() {}
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Open loop at `rate` adds/s of `size` bytes for `dur`; returns the latency histogram (µs).
async fn open_loop(
    clients: &[BookieClient],
    size: usize,
    rate: f64,
    dur: Duration,
    base: u64,
) -> Histogram<u64> {
    let payload = Bytes::from(vec![0xCDu8; size]);
    let hist = Arc::new(parking_lot::Mutex::new(Histogram::<u64>::new(3).unwrap()));
    // (issue time, latency) for the BENCH_DEBUG timeline
    let timeline = Arc::new(parking_lot::Mutex::new(Vec::<(f64, u64)>::new()));
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut issued = 0u64;
    let mut set = tokio::task::JoinSet::new();
    while start.elapsed() < dur {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while issued < due {
            let c = clients[(issued % clients.len() as u64) as usize].clone();
            let payload = payload.clone();
            let hist = hist.clone();
            let timeline = timeline.clone();
            let (l, e) = (base + issued % 512, issued / 512);
            set.spawn(async move {
                let t = Instant::now();
                c.add(l, e, KEY, e as i64 - 1, payload).await.unwrap();
                let us = t.elapsed().as_micros() as u64;
                let _ = hist.lock().record(us);
                timeline.lock().push(((t - start).as_secs_f64(), us));
            });
            issued += 1;
        }
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
    if std::env::var_os("BENCH_DEBUG").is_some() {
        // worst latency per 100 ms of issue time: shows whether the tail is one stall or spread
        let mut worst = std::collections::BTreeMap::<u64, u64>::new();
        for (t, us) in timeline.lock().iter() {
            let w = worst.entry((t * 10.0) as u64).or_default();
            *w = (*w).max(*us);
        }
        let line: Vec<String> = worst.values().map(|us| format!("{}", us / 1000)).collect();
        println!("  worst add latency (ms) per 100 ms: {}", line.join(" "));
    }
    Arc::try_unwrap(hist).map_or_else(|h| h.lock().clone(), parking_lot::Mutex::into_inner)
}

/// Cumulative bucket counts `(le, count)` of a histogram in the metrics text.
fn buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// Upper bound of the bucket holding quantile `q` of the difference `after - before`.
fn delta_quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> f64 {
    let total = after.last().map_or(0, |x| x.1) - before.last().map_or(0, |x| x.1);
    let want = (total as f64 * q).ceil() as u64;
    for (i, (le, c)) in after.iter().enumerate() {
        if c - before.get(i).map_or(0, |b| b.1) >= want {
            return *le;
        }
    }
    f64::INFINITY
}

/// CPU seconds this process used so far (user + system).
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn main() {
    let a = args();
    let root = tempfile::Builder::new()
        .prefix("strata-bookie-bench")
        .tempdir_in(&a.dir)
        .unwrap();
    let dur = Duration::from_secs_f64(a.secs);
    println!(
        "bookie bench in {} ({} s per phase)",
        root.path().display(),
        a.secs
    );

    // baselines before and after the bookie phases (the mean is used): other load on a shared
    // disk drifts, and this keeps it from favouring either side
    let baseline = |when: &str| {
        let seq = disk_seq_bandwidth(root.path(), dur);
        let (rate, hist) = disk_sync_rate(root.path(), dur);
        println!(
            "[{when}] (a) disk sequential write, fdatasync per 1 MiB: {seq:>8.1} MiB/s; (b) 1 KiB append + fdatasync: {rate:>6.0} ops/s (sync p50 {} us, p99 {} us)",
            hist.value_at_quantile(0.5),
            hist.value_at_quantile(0.99)
        );
        (seq, rate, hist.value_at_quantile(0.99))
    };
    let before = baseline("before");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let root_path = root.path().to_path_buf();
    let (big_mib_s, small, p99, batch_bytes) = rt.block_on(async move {
        let mut storage = StorageConfig::new(root_path.join("bookie"));
        storage.min_free_bytes = 0;
        if let Some(n) = std::env::var("BENCH_RECYCLE").ok().and_then(|v| v.parse().ok()) {
            storage.journal_recycle_files = n;
        }
        if std::env::var_os("BENCH_NO_FLUSH").is_some() {
            storage.write_cache_bytes = 8 << 30;
            storage.flush_bytes = 8 << 30;
            storage.flush_interval = Duration::from_secs(3600);
        }
        let opts = BookieOptions {
            storage,
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: None,
            advertised_address: None,
            registration_interval: Duration::from_secs(60),
        };
        let node = BookieNode::start(opts, Arc::new(NoopRegistrar)).await.unwrap();
        let addr = node.grpc_addr.to_string();
        let mut clients = vec![];
        for _ in 0..4 {
            clients.push(BookieClient::connect(&addr).await.unwrap());
        }
        let warm = Duration::from_millis(500);
        // each phase starts with an empty write cache: no phase pays for the previous one's
        // flush debt
        let drain = || {
            let st = node.storage.clone();
            async move {
                tokio::task::spawn_blocking(move || st.flush_now()).await.unwrap().unwrap();
            }
        };

        closed_loop(&clients, 64 << 10, 64, warm, 1_000).await;
        drain().await;
        let cpu0 = cpu_secs();
        // twice as long: the write cache (256 MiB) absorbs the first part of a burst, the rest is
        // the sustained rate with segment flushes sharing the disk
        let big = closed_loop(&clients, 64 << 10, 64, dur * 2, 2_000).await;
        let cpu_big = (cpu_secs() - cpu0) / (2.0 * a.secs);
        drain().await;
        let big_mib_s = big * 64.0 / 1024.0;
        println!("bookie 64 KiB adds, 64 in flight:               {big_mib_s:>10.1} MiB/s ({big:.0} adds/s, {cpu_big:.2} cores busy)");

        closed_loop(&clients, 1024, INFLIGHT_1K, warm, 10_000).await;
        drain().await;
        let cpu0 = cpu_secs();
        let small = closed_loop(&clients, 1024, INFLIGHT_1K, dur, 20_000).await;
        let cpu_small = (cpu_secs() - cpu0) / a.secs;
        drain().await;
        println!("bookie 1 KiB adds, {INFLIGHT_1K} in flight:              {small:>10.0} adds/s ({cpu_small:.2} cores busy)");

        if std::env::var_os("BENCH_DEBUG").is_some() {
            let t = node.metrics.encode();
            for l in t.lines().filter(|l| l.starts_with("bookie_write_cache_size_bytes") || l.starts_with("bookie_flush_latency_seconds_sum") || l.starts_with("bookie_flush_latency_seconds_count")) {
                println!("  {l}");
            }
        }
        let name = "bookie_journal_sync_latency_seconds";
        let b0 = buckets(&node.metrics.encode(), name);
        let a0 = buckets(&node.metrics.encode(), "bookie_journal_apply_latency_seconds");
        let s0 = buckets(&node.metrics.encode(), "bookie_add_entry_latency_seconds");
        let w0 = counter(&node.metrics.encode(), "bookie_journal_written_bytes");
        let half = open_loop(&clients, 1024, small / 2.0, dur, 30_000).await;
        let b1 = buckets(&node.metrics.encode(), name);
        let a1 = buckets(&node.metrics.encode(), "bookie_journal_apply_latency_seconds");
        let s1 = buckets(&node.metrics.encode(), "bookie_add_entry_latency_seconds");
        let w1 = counter(&node.metrics.encode(), "bookie_journal_written_bytes");
        let syncs = b1.last().map_or(0, |x| x.1) - b0.last().map_or(0, |x| x.1);
        let batch_bytes = ((w1 - w0) / syncs.max(1) as f64) as usize;
        println!(
            "  server-side add latency (storage submit -> durable ack) during that phase: p50 <= {} ms, p99 <= {} ms",
            delta_quantile(&s0, &s1, 0.5) * 1e3,
            delta_quantile(&s0, &s1, 0.99) * 1e3
        );
        println!(
            "  journal sync -> applied to the state (off the ack path) during that phase: p99 <= {} ms, max <= {} ms",
            delta_quantile(&a0, &a1, 0.99) * 1e3,
            delta_quantile(&a0, &a1, 1.0) * 1e3
        );
        println!(
            "  journal write+fdatasync during that phase: p50 <= {} ms, p99 <= {} ms, max <= {} ms",
            delta_quantile(&b0, &b1, 0.5) * 1e3,
            delta_quantile(&b0, &b1, 0.99) * 1e3,
            delta_quantile(&b0, &b1, 1.0) * 1e3
        );
        let p99 = half.value_at_quantile(0.99);
        println!(
            "bookie 1 KiB adds at half peak ({:.0}/s):       p50 {} us, p99 {} us ({} adds)",
            small / 2.0,
            half.value_at_quantile(0.5),
            p99,
            half.len()
        );

        if std::env::var_os("BENCH_DEBUG").is_some() {
            for l in node.metrics.encode().lines() {
                if l.contains("journal_sync_latency") || l.contains("batch_records_sum") || l.contains("batch_records_count") {
                    println!("{l}");
                }
            }
        }
        drop(clients);
        node.shutdown().await;
        (big_mib_s, small, p99, batch_bytes)
    });
    // the disk's own fdatasync p99 for writes of the size the journal wrote per commit in the
    // half-load phase (same run, same disk, same sizes)
    let sized_p99 = disk_sync_p99(root.path(), batch_bytes, 2000);
    println!(
        "disk write+fdatasync of the half-load phase's mean journal commit ({batch_bytes} bytes): p99 {sized_p99} us"
    );
    let after = baseline("after");
    let seq_mib_s = (before.0 + after.0) / 2.0;
    let sync_rate = (before.1 + after.1) / 2.0;
    let disk_p99 = (before.2 + after.2) / 2;
    println!();
    println!(
        "baseline means: (a) {seq_mib_s:.1} MiB/s, (b) {sync_rate:.0} ops/s, fdatasync p99 {disk_p99} us"
    );
    let r1 = big_mib_s / seq_mib_s;
    let r2 = small / sync_rate;
    let r3 = p99 as f64 / sized_p99.max(1) as f64;
    let r3_1k = p99 as f64 / disk_p99.max(1) as f64;
    let verdict = |ok: bool| if ok { "ok" } else { "BELOW TARGET" };
    println!(
        "ratio 64 KiB throughput / (a):          {r1:>7.2}  (target >= 0.70) {}",
        verdict(r1 >= 0.7)
    );
    println!(
        "ratio 1 KiB adds/s / (b):               {r2:>7.2}  (target >= 25)   {}",
        verdict(r2 >= 25.0)
    );
    println!(
        "ratio p99 at half load / disk p99 sync: {r3:>7.2}  (target <= 3.00) {}  [same-size syncs; vs 1 KiB syncs: {r3_1k:.2}]",
        verdict(r3 <= 3.0)
    );
}
