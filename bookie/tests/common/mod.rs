//! Helpers of the storage tests: configs, deterministic payloads, crash images.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_bookie::metrics::Metrics;
use strata_bookie::{BookieError, Storage, StorageConfig};

pub const KEY: Bytes = Bytes::from_static(b"master-key");

pub fn payload(ledger: u64, entry: u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    let mut x = ledger.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ entry;
    for _ in 0..len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.push((x >> 56) as u8);
    }
    Bytes::from(v)
}

pub fn cfg(dir: &Path) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    c.min_free_bytes = 0;
    c
}

/// A config whose flushes copy entries into segments (as with object storage or a journal on its
/// own filesystem) instead of indexing them in the journal files.
pub fn copy_cfg(dir: &Path) -> StorageConfig {
    let mut c = cfg(dir);
    c.journal_holds_entries = false;
    c
}

/// A config whose flusher never runs on its own: the journal is the only durable copy.
pub fn journal_only_cfg(dir: &Path) -> StorageConfig {
    let mut c = cfg(dir);
    c.flush_interval = Duration::from_secs(3600);
    c.gc_interval = Duration::from_secs(3600);
    c.write_cache_bytes = 1 << 30;
    c.flush_bytes = 1 << 30;
    c.checkpoint_interval = Duration::from_secs(3600);
    c
}

pub fn open(c: StorageConfig) -> Arc<Storage> {
    Storage::open(c, Arc::new(Metrics::new())).unwrap()
}

pub async fn add_all(s: &Storage, ledgers: u64, entries: u64, len: usize) {
    let mut futs = vec![];
    for l in 0..ledgers {
        for e in 0..entries {
            futs.push(s.add(l, e, KEY, e as i64 - 1, payload(l, e, len)));
        }
    }
    for r in futures::future::join_all(futs).await {
        r.unwrap();
    }
}

/// Ledgers `0..ledgers` read back entries `0..entries` of `len` bytes.
pub async fn check_all(s: &Storage, ledgers: u64, entries: u64, len: usize) {
    check_ledgers(s, 0..ledgers, entries, len).await
}

/// Each ledger of `ledgers` reads back entries `0..entries` of `len` bytes.
pub async fn check_ledgers(s: &Storage, ledgers: std::ops::Range<u64>, entries: u64, len: usize) {
    for l in ledgers {
        for e in 0..entries {
            let (p, _) = s
                .read(l, e)
                .await
                .unwrap_or_else(|err| panic!("read {l}/{e}: {err}"));
            assert_eq!(p, payload(l, e, len), "ledger {l} entry {e}");
        }
    }
}

/// Copies both directories as they are on disk right now: what a crash would leave (the journal
/// is synced before every acknowledgement). Files are copied in an order in which nothing copied
/// points past what is copied after it: the journal files first (a checkpoint copied later may
/// only make them unnecessary), then the checkpoint, then every index file (of segments and of
/// journal files holding entries: they cover at least what the checkpoint skips), then the
/// journal files again and the segments (they hold at least what the indexes point at). A file
/// the flusher recycled or removed meanwhile is skipped (its first copy stays).
pub fn crash_image(from: &Path, to: &Path) {
    let rank = |name: &str| match name {
        "checkpoint" => 1,
        n if n.ends_with(".idx") => 2,
        _ => 3,
    };
    // (pass, directory, rank of its files copied); each pass lists the directory when it
    // starts, so files created meanwhile (an index after the checkpoint moved) are found
    let passes = [
        ("journal", 3),
        ("ledgers", 1),
        ("journal", 2),
        ("ledgers", 2),
        ("journal", 3),
        ("ledgers", 3),
    ];
    for (sub, want) in passes {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(from.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| rank(n) == want)
            .collect();
        names.sort();
        for name in names {
            match std::fs::copy(from.join(sub).join(&name), to.join(sub).join(&name)) {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => panic!("copy {sub}/{name}: {err}"),
            }
        }
    }
}

/// Live journal files (not the ones kept for reuse), oldest first.
pub fn journals(dir: &Path) -> Vec<PathBuf> {
    files(&dir.join("journal"), ".log")
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("recycle"))
        .collect()
}

pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

pub async fn check_all_ledger(s: &Storage, l: u64, entries: u64, len: usize) {
    for e in 0..entries {
        assert_eq!(s.read(l, e).await.unwrap().0, payload(l, e, len), "{l}/{e}");
    }
}

/// Reads of `ledger` fail with `NoLedger` (it was deleted).
pub async fn assert_no_ledger(s: &Storage, ledger: u64, entry: u64) {
    let r = s.read(ledger, entry).await;
    assert!(
        matches!(r, Err(BookieError::NoLedger { .. })),
        "ledger {ledger} entry {entry}: {r:?}"
    );
}
