//! Journal files that hold the entries (`journal_holds_entries`, the default with both
//! directories on one filesystem): each entry is written to the device once, flushes index it in
//! its journal file, and those files live on as journal segments until GC reclaims or compacts
//! them. Crash images, restarts, deletes, compaction and a switch to copying flushes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use strata_bookie::BookieError;
use strata_bookie::storage::JOURNAL_SEG;

/// Bytes of segment files (data written a second time) in the ledger directory.
fn segment_bytes(dir: &std::path::Path) -> u64 {
    files(&dir.join("ledgers"), ".log")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Journal segments (files holding indexed entries) as `(seq, live bytes)`.
fn journal_segments(s: &strata_bookie::Storage) -> Vec<(u64, u64)> {
    s.segment_stats()
        .into_iter()
        .filter(|(id, _, _)| *id >= JOURNAL_SEG)
        .map(|(id, _, live)| (id - JOURNAL_SEG, live))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_written_once_and_read_back_from_journal_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(cfg(dir.path()));
    add_all(&s, 5, 40, 300).await;
    s.flush_now().unwrap();
    check_all(&s, 5, 40, 300).await;
    // nothing copied: no segment holds data, the journal file is a journal segment
    assert_eq!(segment_bytes(dir.path()), 0);
    let js = journal_segments(&s);
    assert_eq!(js.len(), 1, "{js:?}");
    assert!(js[0].1 >= 200 * 300);
    assert_eq!(files(&dir.path().join("journal"), ".idx").len(), 1);
    // more entries after the checkpoint, then a crash: the indexed ones come from the journal
    // segment, the later ones from replay (and are indexed where they are too)
    add_all(&s, 6, 50, 300).await;
    let img = tempfile::tempdir().unwrap();
    crash_image(dir.path(), img.path());
    let r = open(cfg(img.path()));
    check_all(&r, 6, 50, 300).await;
    assert_eq!(segment_bytes(img.path()), 0);
    drop(r);
    drop(s);
    // a clean restart: every journal file written stays, read where it was written
    let s = open(cfg(dir.path()));
    check_all(&s, 6, 50, 300).await;
    let range = s.read_many(3, 5, 100, usize::MAX).await.unwrap().0;
    assert_eq!(range.len(), 45);
    assert_eq!(range[0], (5, payload(3, 5, 300)));
    assert!(matches!(
        s.read(3, 50).await,
        Err(BookieError::NoEntry { .. })
    ));
    assert_eq!(s.lac_info(2).unwrap().lac, 48);
    assert_eq!(segment_bytes(dir.path()), 0);
}

/// Journal files whose entries were all deleted are reclaimed (recycled or freed); mostly dead
/// ones are compacted into a segment; neither before a checkpoint is past them. Deleted ledgers
/// stay deleted and live ones readable through restarts and crash images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_reclaims_and_compacts_journal_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.journal_max_file_bytes = 64 << 10;
    let s = open(c.clone());
    // ledger 1 alone in the first journal files; then ledgers 2 (small) and 3 (large) interleaved
    for e in 0..100 {
        s.add(1, e, KEY, e as i64 - 1, payload(1, e, 1000))
            .await
            .unwrap();
    }
    for e in 0..100 {
        s.add(2, e, KEY, e as i64 - 1, payload(2, e, 100))
            .await
            .unwrap();
        s.add(3, e, KEY, e as i64 - 1, payload(3, e, 2000))
            .await
            .unwrap();
    }
    s.flush_now().unwrap();
    let before = journal_segments(&s);
    assert!(before.len() >= 4, "{before:?}");
    s.delete(1).await.unwrap();
    s.delete(3).await.unwrap();
    // the checkpoint the deletes need before the files they emptied may go
    s.flush_now().unwrap();
    s.gc_now().unwrap();
    let after = journal_segments(&s);
    assert!(after.len() < before.len(), "{after:?} < {before:?}");
    for (seq, live) in &after {
        assert!(*live > 0, "journal file {seq} kept with no live entry");
    }
    // ledger 2's entries moved out of mostly dead journal files into a segment
    assert!(segment_bytes(dir.path()) > 0);
    check_all_ledger(&s, 2, 100, 100).await;
    assert_no_ledger(&s, 1, 0).await;
    // reclaimed files are reused: new entries land in them and read back
    for e in 0..100 {
        s.add(4, e, KEY, e as i64 - 1, payload(4, e, 1500))
            .await
            .unwrap();
    }
    s.flush_now().unwrap();
    check_all_ledger(&s, 4, 100, 1500).await;
    let img = tempfile::tempdir().unwrap();
    crash_image(dir.path(), img.path());
    let r = open(cfg(img.path()));
    check_all_ledger(&r, 2, 100, 100).await;
    check_all_ledger(&r, 4, 100, 1500).await;
    assert_no_ledger(&r, 3, 0).await;
    drop(r);
    drop(s);
    let s = open(c);
    check_all_ledger(&s, 2, 100, 100).await;
    check_all_ledger(&s, 4, 100, 1500).await;
    assert_no_ledger(&s, 1, 5).await;
}

/// A bookie restarted with copying flushes (e.g. its journal moved to its own disk) still reads
/// what its journal files hold, and copies what comes next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_segments_stay_readable_when_flushes_copy_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(cfg(dir.path()));
    add_all(&s, 3, 30, 500).await;
    s.flush_now().unwrap();
    drop(s);
    let s = open(copy_cfg(dir.path()));
    check_all(&s, 3, 30, 500).await;
    for e in 30..60 {
        s.add(0, e, KEY, e as i64 - 1, payload(0, e, 500))
            .await
            .unwrap();
    }
    s.flush_now().unwrap();
    assert!(segment_bytes(dir.path()) > 0);
    check_all_ledger(&s, 0, 60, 500).await;
    drop(s);
    let s = open(copy_cfg(dir.path()));
    check_all_ledger(&s, 0, 60, 500).await;
    check_all(&s, 3, 30, 500).await;
}

/// A bit flip in a journal segment reads as corruption, never as another entry's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flip_in_a_journal_segment_is_reported_as_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(cfg(dir.path()));
    for e in 0..10 {
        s.add(1, e, KEY, e as i64 - 1, payload(1, e, 1000))
            .await
            .unwrap();
    }
    s.flush_now().unwrap();
    // evict the cache: a restart reads from the file
    drop(s);
    let jf = journals(dir.path()).into_iter().next().unwrap();
    let mut bytes = std::fs::read(&jf).unwrap();
    let needle = payload(1, 3, 1000);
    let at = bytes
        .windows(needle.len())
        .position(|w| w == &needle[..])
        .unwrap();
    bytes[at + 100] ^= 0x01;
    std::fs::write(&jf, &bytes).unwrap();
    let s = open(cfg(dir.path()));
    match s.read(1, 3).await {
        Err(BookieError::Corrupt { .. }) => {}
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(s.read(1, 4).await.unwrap().0, payload(1, 4, 1000));
}
