//! Acceptance (issue 12, point 2): `strata standalone` with its bookie on object storage and a
//! local segment cache bound far below the data written. The official Python client writes 40 MiB
//! (16 KiB messages, paced at 8 MiB/s) with a 4 MiB `--bookie-segment-cache-bytes`; a directory
//! walk every 100 ms measures the bookie's local disk (journal and ledgers directories, allocated
//! blocks); the standalone is SIGKILLed and started again; every message reads back byte for
//! byte, in order. Bounds checked: the ledgers directory at its peak ≤ write cache, cache bound
//! and 2 segments together; once uploads settled ≤ cache bound, current segment and 1 MiB of
//! index files and slack; the journal ≤ (recycled files + 2) journal files.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::harness::python::{python, python_command, run_for};
use crate::harness::standalone::Standalone;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 16 << 10;
const WRITTEN: u64 = 40 * MIB;
const CACHE: u64 = 4 * MIB;
/// Segment size with object storage: a quarter of the cache bound, at least 1 MiB.
const SEGMENT: u64 = MIB;
/// The bookie's defaults (`StorageConfig::new`): write cache, journal file, recycled files.
const WRITE_CACHE: u64 = 256 * MIB;
const JOURNAL_FILE: u64 = 64 * MIB;
const JOURNAL_RECYCLED: u64 = 4;

/// Allocated bytes of every file under `dir`.
fn du(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Samples `du` of the journal and ledgers directories every 100 ms; keeps the peaks.
struct Sampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<[AtomicU64; 2]>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(bookie: PathBuf) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let (s, p) = (stop.clone(), peaks.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p[0].fetch_max(du(&bookie.join("journal")), Ordering::Relaxed);
                p[1].fetch_max(du(&bookie.join("ledgers")), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Sampler {
            stop,
            peaks,
            thread: Some(thread),
        }
    }

    /// (journal, ledgers) peaks.
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.peaks[0].load(Ordering::Relaxed),
            self.peaks[1].load(Ordering::Relaxed),
        )
    }
}

fn script(py: &Path, args: &[String], sa: &Standalone) -> String {
    let out = run_for(
        python_command(py, "objstore_standalone.py").args(args),
        Duration::from_secs(240),
    );
    let text = out.text();
    assert!(
        out.success(),
        "objstore_standalone.py {args:?} failed:\n{text}\n--- standalone log ---\n{}",
        sa.log_tail()
    );
    text
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

#[test]
fn small_segment_cache_reads_everything_back_after_restart_within_the_disk_bound() {
    let Some(py) = python() else {
        return;
    };
    let objs = tempfile::tempdir().unwrap();
    let url = format!("file://{}", objs.path().display());
    let mut sa = Standalone::start_with(
        &[
            "--bookie-storage-url",
            &url,
            "--bookie-segment-cache-bytes",
            &CACHE.to_string(),
        ],
        &[],
    );
    let bookie = sa.data_dir.join("bookie");
    let topic = "persistent://public/default/objstore-standalone".to_owned();
    let n = (WRITTEN / SIZE).to_string();
    let sampler = Sampler::start(bookie.clone());
    let produced = script(
        &py,
        &[
            "produce".into(),
            sa.url(),
            topic.clone(),
            n.clone(),
            SIZE.to_string(),
            "8".into(),
        ],
        &sa,
    );
    // uploads and eviction catch up (segments seal when full; 1 MiB here)
    let mut settled = (0, 0);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        settled = (du(&bookie.join("journal")), du(&bookie.join("ledgers")));
        if settled.1 <= CACHE + SEGMENT + MIB {
            break;
        }
    }
    let (peak_journal, peak_ledgers) = sampler.finish();
    let uploaded = du(objs.path());
    sa.restart_after_kill();
    let after_restart = du(&bookie.join("ledgers"));
    let read = script(
        &py,
        &["check".into(), sa.url(), topic, n, SIZE.to_string()],
        &sa,
    );
    let (_, metrics) = crate::harness::http::http(sa.http_port, "GET", "/metrics", "");
    let misses = metrics
        .lines()
        .find(|l| l.starts_with("bookie_objstore_cache_misses"))
        .unwrap_or("bookie_objstore_cache_misses: not exported")
        .to_owned();
    eprintln!(
        "RESULT: standalone, bookie on object storage, cache bound {:.0} MiB, {:.0} MiB written \
         ({}) — {}; local disk (du every 100 ms): ledgers dir peak {:.1} MiB, settled {:.1} \
         MiB, after the restart {:.1} MiB; journal dir peak {:.1} MiB, settled {:.1} MiB; object \
         store {:.1} MiB; reads from the store: {misses}",
        mib(CACHE),
        mib(WRITTEN),
        produced.trim(),
        read.trim(),
        mib(peak_ledgers),
        mib(settled.1),
        mib(after_restart),
        mib(peak_journal),
        mib(settled.0),
        mib(uploaded),
    );
    // all but the current segment (sealed when full or 5 min old) is uploaded
    assert!(
        uploaded + 2 * SEGMENT >= WRITTEN,
        "object store holds {:.1} MiB of {:.0} MiB written",
        mib(uploaded),
        mib(WRITTEN)
    );
    assert!(
        peak_ledgers <= WRITE_CACHE + CACHE + 2 * SEGMENT,
        "ledgers dir peak {:.1} MiB above write cache + cache bound + 2 segments",
        mib(peak_ledgers)
    );
    assert!(
        settled.1 <= CACHE + SEGMENT + MIB,
        "ledgers dir {:.1} MiB once uploads settled, bound {:.0} MiB + current segment",
        mib(settled.1),
        mib(CACHE)
    );
    assert!(
        peak_journal <= (JOURNAL_RECYCLED + 2) * JOURNAL_FILE,
        "journal dir peak {:.1} MiB",
        mib(peak_journal)
    );
}
