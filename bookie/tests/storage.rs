//! Storage engine tests on real files: recovery, crash images, torn tails, bit flips, fencing,
//! deletion and garbage collection, read-only mode, LAC long-poll.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

mod common;

use bytes::Bytes;
use common::*;
use strata_bookie::{BookieError, StorageConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_survive_a_clean_restart_and_come_from_segments() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(copy_cfg(dir.path()));
    add_all(&s, 5, 40, 300).await;
    check_all(&s, 5, 40, 300).await;
    s.flush_now().unwrap();
    check_all(&s, 5, 40, 300).await;
    drop(s);
    let s = open(copy_cfg(dir.path()));
    check_all(&s, 5, 40, 300).await;
    let range = s.read_many(3, 5, 100, usize::MAX).await.unwrap().0;
    assert_eq!(range.len(), 35);
    assert_eq!(range[0], (5, payload(3, 5, 300)));
    assert!(matches!(
        s.read(3, 40).await,
        Err(BookieError::NoEntry { .. })
    ));
    assert!(matches!(
        s.read(99, 0).await,
        Err(BookieError::NoLedger { .. })
    ));
    assert_eq!(s.lac_info(2).unwrap().lac, 38);
    assert_eq!(s.lac_info(2).unwrap().last_entry, 39);
    // the journal was truncated by checkpoints: only the fresh file is left
    assert_eq!(journals(dir.path()).len(), 1);
}

/// An add whose caller supplies the payload's CRC32C (a broker that verified the client's
/// checksum) is written with it, not checksummed again: its entries replay from the journal and
/// read back from segments like those the bookie checksummed itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_with_a_supplied_crc_replay_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(journal_only_cfg(dir.path()));
    for e in 0..40u64 {
        let p = payload(4, e, 700);
        let crc = (e % 2 == 0).then(|| strata_common::crc::crc32c(&p));
        let req = strata_bookie::client::AddRequest {
            ledger: 4,
            entry: e,
            master_key: KEY,
            lac: e as i64 - 1,
            payload: p,
            payload_crc: crc,
            recovery: false,
        };
        s.add_with(req).await.unwrap();
    }
    let img = tempfile::tempdir().unwrap();
    crash_image(dir.path(), img.path());
    let r = open(cfg(img.path()));
    check_all_ledger(&r, 4, 40, 700).await;
    r.flush_now().unwrap();
    drop(r);
    let r = open(cfg(img.path()));
    check_all_ledger(&r, 4, 40, 700).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_image_replays_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(journal_only_cfg(dir.path()));
    add_all(&s, 3, 50, 500).await;
    s.fence(1, KEY).await.unwrap();
    s.delete(2).await.unwrap();
    let img = tempfile::tempdir().unwrap();
    crash_image(dir.path(), img.path());
    let r = open(cfg(img.path()));
    check_all(&r, 1, 50, 500).await;
    assert!(r.lac_info(1).unwrap().fenced);
    assert!(matches!(
        r.read(2, 0).await,
        Err(BookieError::NoLedger { .. })
    ));
    assert!(matches!(
        r.add(1, 50, KEY, 49, payload(1, 50, 10)).await,
        Err(BookieError::Fenced { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_journal_tail_ends_replay_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(journal_only_cfg(dir.path()));
    // one add at a time: one record per commit, so every cut point is a record boundary or inside one
    for e in 0..20 {
        s.add(7, e, KEY, e as i64 - 1, payload(7, e, 1000))
            .await
            .unwrap();
    }
    let img = tempfile::tempdir().unwrap();
    crash_image(dir.path(), img.path());
    let j = journals(img.path()).pop().unwrap();
    // where the records end (direct writes pad the file with zeros to a whole block)
    let data = Bytes::from(std::fs::read(&j).unwrap());
    let end = strata_bookie::format::journal::scan_file(&data, None, 0)
        .unwrap()
        .end;
    // cut in the middle of the last record
    let f = std::fs::OpenOptions::new().write(true).open(&j).unwrap();
    f.set_len(end - 500).unwrap();
    drop(f);
    let r = open(cfg(img.path()));
    check_all(&r, 0, 0, 0).await;
    for e in 0..19 {
        assert_eq!(r.read(7, e).await.unwrap().0, payload(7, e, 1000));
    }
    assert!(matches!(
        r.read(7, 19).await,
        Err(BookieError::NoEntry { .. })
    ));
    // and the recovered bookie keeps working
    r.add(7, 19, KEY, 18, payload(7, 19, 1000)).await.unwrap();
    drop(r);
    let r = open(cfg(img.path()));
    assert_eq!(r.read(7, 19).await.unwrap().0, payload(7, 19, 1000));
}

/// With `journal_direct_io`, every commit rewrites the last partial block and pads the file
/// with zeros: a crash image still replays every acknowledged entry (added one commit at a
/// time and many at once, sizes across block boundaries), and the bookie goes on writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_io_journal_replays_every_acknowledged_entry() {
    journal_replays_every_acknowledged_entry(true).await;
}

/// The same with buffered journal writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_journal_replays_every_acknowledged_entry() {
    journal_replays_every_acknowledged_entry(false).await;
}

async fn journal_replays_every_acknowledged_entry(direct: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = journal_only_cfg(dir.path());
    c.journal_direct_io = direct;
    let s = open(c.clone());
    for e in 0..10 {
        s.add(
            3,
            e,
            KEY,
            e as i64 - 1,
            payload(3, e, 700 + 997 * e as usize),
        )
        .await
        .unwrap();
    }
    add_all(&s, 3, 20, 1500).await;
    let img = tempfile::tempdir().unwrap();
    crash_image(dir.path(), img.path());
    let mut c = journal_only_cfg(img.path());
    c.journal_direct_io = direct;
    let r = open(c.clone());
    check_all(&r, 3, 20, 1500).await;
    for e in 0..10 {
        assert_eq!(
            r.read(3, e).await.unwrap().0,
            payload(3, e, 700 + 997 * e as usize)
        );
    }
    r.add(3, 10, KEY, 9, payload(3, 10, 5000)).await.unwrap();
    drop(r);
    let r = open(c);
    assert_eq!(r.read(3, 10).await.unwrap().0, payload(3, 10, 5000));
}

/// Many adds at once, of several sizes, through group commits capped at a few records and
/// journal files of a few commits: the journal thread takes part of the staged records (the rest
/// moves to the next commit's buffer) and rolls over with records staged for the file before;
/// every entry reads back from a crash image and after a restart, with and without direct writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_across_capped_batches_and_journal_rolls_read_back() {
    let sizes = [100usize, 3000, 9000, 17_000];
    for direct in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let config = |d: &std::path::Path| {
            let mut c = journal_only_cfg(d);
            c.journal_direct_io = direct;
            c.journal_max_batch_bytes = 20 << 10;
            c.journal_max_file_bytes = 200 << 10;
            c
        };
        let s = open(config(dir.path()));
        let mut adds = vec![];
        for (l, len) in sizes.iter().enumerate() {
            for e in 0..60 {
                adds.push(s.add(l as u64, e, KEY, e as i64 - 1, payload(l as u64, e, *len)));
            }
        }
        for r in futures::future::join_all(adds).await {
            r.unwrap();
        }
        assert!(journals(dir.path()).len() > 5);
        let img = tempfile::tempdir().unwrap();
        crash_image(dir.path(), img.path());
        let r = open(config(img.path()));
        for (l, len) in sizes.iter().enumerate() {
            check_all_ledger(&r, l as u64, 60, *len).await;
        }
        drop(r);
        drop(s);
        let s = open(config(dir.path()));
        for (l, len) in sizes.iter().enumerate() {
            check_all_ledger(&s, l as u64, 60, *len).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flip_in_journal_stops_replay_at_the_flipped_record() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(journal_only_cfg(dir.path()));
    for e in 0..10 {
        s.add(1, e, KEY, e as i64 - 1, payload(1, e, 1000))
            .await
            .unwrap();
    }
    let img = tempfile::tempdir().unwrap();
    crash_image(dir.path(), img.path());
    let j = journals(img.path()).pop().unwrap();
    let mut bytes = std::fs::read(&j).unwrap();
    // header 24 bytes, each record 8 + 37 + 10 (key) + 1000 bytes: flip a payload byte of entry 6
    let rec = 8 + 1 + 8 + 8 + 8 + 2 + KEY.len() + 1000;
    bytes[24 + 6 * rec + 500] ^= 0x10;
    std::fs::write(&j, &bytes).unwrap();
    let r = open(cfg(img.path()));
    for e in 0..6 {
        assert_eq!(r.read(1, e).await.unwrap().0, payload(1, e, 1000));
    }
    for e in 6..10 {
        assert!(
            r.read(1, e).await.is_err(),
            "entry {e} after the flipped record must not be served"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flip_and_torn_tail_in_segment_are_reported_as_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(copy_cfg(dir.path()));
    for e in 0..10 {
        s.add(1, e, KEY, e as i64 - 1, payload(1, e, 1000))
            .await
            .unwrap();
    }
    s.flush_now().unwrap();
    let seg = files(&dir.path().join("ledgers"), ".log")
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 24)
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let rec = 8 + 16 + 1000;
    bytes[24 + 3 * rec + 100] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    match s.read(1, 3).await {
        Err(BookieError::Corrupt { .. }) => {}
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(s.read(1, 4).await.unwrap().0, payload(1, 4, 1000));
    // torn tail: the last record is cut
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len((24 + 10 * rec - 10) as u64).unwrap();
    drop(f);
    assert!(matches!(
        s.read(1, 9).await,
        Err(BookieError::Corrupt { .. })
    ));
    assert_eq!(s.read(1, 8).await.unwrap().0, payload(1, 8, 1000));
    drop(s);
    // after a restart the index entry past the end is dropped: missing, never garbage
    let s = open(cfg(dir.path()));
    assert!(s.read(1, 9).await.is_err());
    assert!(matches!(
        s.read(1, 3).await,
        Err(BookieError::Corrupt { .. })
    ));
    assert_eq!(s.read(1, 8).await.unwrap().0, payload(1, 8, 1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_is_durable_and_keeps_reads_working() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(journal_only_cfg(dir.path()));
    for e in 0..5 {
        s.add(9, e, KEY, e as i64 - 1, payload(9, e, 10))
            .await
            .unwrap();
    }
    assert!(matches!(
        s.fence(9, Bytes::from_static(b"wrong")).await,
        Err(BookieError::Unauthorized { .. })
    ));
    let info = s.fence(9, KEY).await.unwrap();
    assert_eq!((info.lac, info.last_entry, info.fenced), (3, 4, true));
    assert!(matches!(
        s.add(9, 5, KEY, 4, payload(9, 5, 10)).await,
        Err(BookieError::Fenced { .. })
    ));
    assert_eq!(s.read(9, 4).await.unwrap().0, payload(9, 4, 10));
    // fence of an unknown ledger creates it fenced (recovery of a ledger this bookie never saw)
    s.fence(10, KEY).await.unwrap();
    assert!(matches!(
        s.add(10, 0, KEY, -1, payload(10, 0, 1)).await,
        Err(BookieError::Fenced { .. })
    ));
    let img = tempfile::tempdir().unwrap();
    crash_image(dir.path(), img.path());
    drop(s);
    for d in [dir.path(), img.path()] {
        let r = open(cfg(d));
        assert!(matches!(
            r.add(9, 5, KEY, 4, payload(9, 5, 10)).await,
            Err(BookieError::Fenced { .. })
        ));
        assert!(matches!(
            r.add(10, 0, KEY, -1, payload(10, 0, 1)).await,
            Err(BookieError::Fenced { .. })
        ));
        assert_eq!(r.read(9, 4).await.unwrap().0, payload(9, 4, 10));
        assert!(r.lac_info(9).unwrap().fenced);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_ledgers_are_reclaimed_and_sparse_segments_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = copy_cfg(dir.path());
    c.segment_max_bytes = 64 << 10;
    let s = open(c.clone());
    // ledger 1: all in early segments, deleted later; ledger 2: interleaved, mostly deleted via ledger 3
    for e in 0..100 {
        s.add(1, e, KEY, e as i64 - 1, payload(1, e, 1000))
            .await
            .unwrap();
    }
    s.flush_now().unwrap();
    for e in 0..100 {
        s.add(2, e, KEY, e as i64 - 1, payload(2, e, 100))
            .await
            .unwrap();
        s.add(3, e, KEY, e as i64 - 1, payload(3, e, 2000))
            .await
            .unwrap();
    }
    s.flush_now().unwrap();
    let segs_before = files(&dir.path().join("ledgers"), ".log").len();
    s.delete(1).await.unwrap();
    s.delete(3).await.unwrap();
    // until GC reclaimed its entries a deleted ledger stays deleted
    assert!(matches!(
        s.add(1, 100, KEY, 99, payload(1, 0, 1)).await,
        Err(BookieError::NoLedger { .. })
    ));
    let (current_before, _, _) = *s.segment_stats().last().unwrap();
    s.gc_now().unwrap();
    let segs_after = files(&dir.path().join("ledgers"), ".log").len();
    assert!(segs_after < segs_before, "{segs_after} < {segs_before}");
    // no segment sealed before the pass is left mostly dead: sparse ones were compacted, empty
    // ones removed (the one that was current, holding dead entries of ledger 3, takes the moved
    // entries and may be sealed by them: the next pass compacts it)
    for (id, size, live) in s.segment_stats() {
        if id < current_before {
            assert!(
                live as f64 >= c.compaction_threshold * (size - 24) as f64,
                "segment {id}: {live} of {size} live"
            );
        }
    }
    s.gc_now().unwrap();
    let stats = s.segment_stats();
    let (current, _, _) = *stats.last().unwrap();
    for (id, size, live) in stats {
        if id != current {
            assert!(
                live as f64 >= c.compaction_threshold * (size - 24) as f64,
                "after a second pass, segment {id}: {live} of {size} live"
            );
        }
    }
    check_all_ledger(&s, 2, 100, 100).await;
    assert!(matches!(
        s.read(1, 0).await,
        Err(BookieError::NoLedger { .. })
    ));
    // a crash right after compaction: the moved entries are found through the new index files
    let img = tempfile::tempdir().unwrap();
    crash_image(dir.path(), img.path());
    let r = open(cfg(img.path()));
    check_all_ledger(&r, 2, 100, 100).await;
    assert!(matches!(
        r.read(3, 0).await,
        Err(BookieError::NoLedger { .. })
    ));
    drop(r);
    drop(s);
    let s = open(c);
    check_all_ledger(&s, 2, 100, 100).await;
    assert!(matches!(
        s.read(3, 5).await,
        Err(BookieError::NoLedger { .. })
    ));
}

/// A writer still writing to a deleted ledger (a zombie) does not recreate it: not after GC
/// reclaimed its segments, not after a restart. Only deletes older than the last
/// `deleted_ledgers_remembered` are forgotten, once no segment holds their entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_ledgers_stay_deleted_after_gc_and_restart_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.segment_max_bytes = 64 << 10;
    c.deleted_ledgers_remembered = 3;
    let s = open(c.clone());
    for l in 1..=5 {
        for e in 0..50 {
            s.add(l, e, KEY, e as i64 - 1, payload(l, e, 1000))
                .await
                .unwrap();
        }
    }
    s.flush_now().unwrap();
    // more segments after them, so that theirs are sealed
    for e in 0..100 {
        s.add(9, e, KEY, e as i64 - 1, payload(9, e, 2000))
            .await
            .unwrap();
    }
    s.flush_now().unwrap();
    for l in 1..=5 {
        s.delete(l).await.unwrap();
    }
    let refused = |r: Result<(), BookieError>| matches!(r, Err(BookieError::NoLedger { .. }));
    // all refused: 1 and 2 are beyond the bound, but their segments still exist
    for l in 1..=5 {
        assert!(
            refused(s.add(l, 50, KEY, 49, payload(l, 50, 10)).await),
            "{l}"
        );
    }
    s.gc_now().unwrap();
    for l in 3..=5 {
        assert!(
            refused(s.add(l, 50, KEY, 49, payload(l, 50, 10)).await),
            "{l}"
        );
    }
    drop(s);
    let s = open(c.clone());
    for l in 1..=5 {
        assert!(
            refused(s.add(l, 50, KEY, 49, payload(l, 50, 10)).await),
            "{l}"
        );
    }
    check_all_ledger(&s, 9, 100, 2000).await;
    // once GC found no segment holding them, the deletes beyond the bound are forgotten: an add
    // creates such a ledger anew (an orphan only metadata-driven GC could remove)
    s.gc_now().unwrap();
    s.add(1, 0, KEY, -1, payload(1, 0, 10)).await.unwrap();
    assert_eq!(s.read(1, 0).await.unwrap().0, payload(1, 0, 10));
    for l in 3..=5 {
        assert!(
            refused(s.add(l, 50, KEY, 49, payload(l, 50, 10)).await),
            "{l}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_when_disk_is_nearly_full() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(cfg(dir.path()));
    s.add(1, 0, KEY, -1, payload(1, 0, 10)).await.unwrap();
    drop(s);
    let mut c = cfg(dir.path());
    c.min_free_bytes = u64::MAX;
    let s = open(c);
    assert!(s.read_only_reason().is_some());
    assert!(matches!(
        s.add(1, 1, KEY, 0, payload(1, 1, 10)).await,
        Err(BookieError::ReadOnly { .. })
    ));
    assert_eq!(s.read(1, 0).await.unwrap().0, payload(1, 0, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lac_long_poll_wakes_on_new_lac() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(cfg(dir.path()));
    s.add(4, 0, KEY, -1, payload(4, 0, 10)).await.unwrap();
    let s2 = s.clone();
    let poll = tokio::spawn(async move { s2.read_lac(4, -1, Duration::from_secs(30)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!poll.is_finished());
    s.add(4, 1, KEY, 0, payload(4, 1, 10)).await.unwrap();
    let info = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(info.lac, 0);
    // no wait when already past
    assert_eq!(
        s.read_lac(4, -1, Duration::from_secs(30))
            .await
            .unwrap()
            .lac,
        0
    );
    // times out with the current value
    assert_eq!(
        s.read_lac(4, 0, Duration::from_millis(20))
            .await
            .unwrap()
            .lac,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_master_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(cfg(dir.path()));
    s.add(1, 0, KEY, -1, payload(1, 0, 10)).await.unwrap();
    assert!(matches!(
        s.add(1, 1, Bytes::from_static(b"other"), 0, payload(1, 1, 10))
            .await,
        Err(BookieError::Unauthorized { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycled_journal_files_never_replay_stale_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.journal_max_file_bytes = 32 << 10;
    c.journal_recycle_files = 2;
    c.flush_bytes = 8 << 10;
    c.checkpoint_interval = Duration::ZERO;
    let s = open(c.clone());
    for e in 0..300 {
        s.add(5, e, KEY, e as i64 - 1, payload(5, e, 1000))
            .await
            .unwrap();
        if e % 50 == 49 {
            // a crash image at arbitrary points, with recycled files in use
            let img = tempfile::tempdir().unwrap();
            crash_image(dir.path(), img.path());
            let r = open(cfg(img.path()));
            check_all_ledger(&r, 5, e + 1, 1000).await;
            assert!(matches!(
                r.read(5, e + 1).await,
                Err(BookieError::NoEntry { .. })
            ));
        }
    }
    let recycled = files(&dir.path().join("journal"), ".log")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("recycle"))
        .count();
    assert!(recycled <= 2);
    drop(s);
    let s = open(c);
    check_all_ledger(&s, 5, 300, 1000).await;
    // old journal files beyond the reuse pool are freed (at the latest by recovery)
    let trash = files(&dir.path().join("journal"), ".log")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("trash"))
        .count();
    assert_eq!(trash, 0);
}

/// Unmounts a test filesystem when dropped.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts a 32 MiB tmpfs at `mnt`; `None` where that is not allowed (not root).
fn mount_tmpfs(mnt: &std::path::Path) -> Option<Unmount> {
    std::fs::create_dir(mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
        .arg(mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    mounted.then(|| Unmount(mnt.to_path_buf()))
}

/// Fills a bookie on a 32 MiB tmpfs (free-space threshold `min_free_bytes`) until adds are
/// refused as read-only; checks that every acknowledged entry reads back, before and after a
/// restart, and that the restarted bookie still refuses adds. Skipped without a tmpfs.
async fn fill_small_disk_until_read_only(min_free_bytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let Some(_unmount) = mount_tmpfs(&mnt) else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
    let mut c = StorageConfig::new(&mnt);
    c.min_free_bytes = min_free_bytes;
    c.flush_interval = Duration::from_millis(20);
    c.journal_max_file_bytes = 2 << 20;
    c.segment_max_bytes = 2 << 20;
    c.flush_bytes = 256 << 10;
    c.checkpoint_interval = Duration::ZERO;
    let s = open(c.clone());
    let mut acked = 0;
    let refused = loop {
        match s
            .add(1, acked, KEY, acked as i64 - 1, payload(1, acked, 16 << 10))
            .await
        {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 100_000, "never went read-only");
    };
    assert!(
        matches!(refused, BookieError::ReadOnly { .. }),
        "{refused:?}"
    );
    assert!(s.read_only_reason().is_some());
    assert!(acked > 10);
    check_all_ledger(&s, 1, acked, 16 << 10).await;
    drop(s);
    let s = open(c);
    check_all_ledger(&s, 1, acked, 16 << 10).await;
    assert!(matches!(
        s.add(1, acked, KEY, acked as i64 - 1, payload(1, acked, 16 << 10))
            .await,
        Err(BookieError::ReadOnly { .. })
    ));
}

/// A real, small filesystem filling up: adds are refused with a read-only error, reads keep working,
/// and a restart on the nearly full disk loses nothing. Needs root (mounts a tmpfs); skipped without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearly_full_disk_turns_the_bookie_read_only() {
    fill_small_disk_until_read_only(12 << 20).await;
}

/// The same with no free-space threshold: the disk really fills, the journal write fails with
/// ENOSPC, the bookie goes read-only without losing acknowledged entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completely_full_disk_turns_the_bookie_read_only() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    fill_small_disk_until_read_only(0).await;
}

/// Adds are acknowledged (by the applier) before the applier moved them into the state: an
/// acknowledged entry (also the first of a brand-new ledger) must read back at once, and its ledger
/// must be known to LAC reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_adds_are_readable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(cfg(dir.path()));
    let mut tasks = tokio::task::JoinSet::new();
    for l in 0..64u64 {
        let s = s.clone();
        tasks.spawn(async move {
            for e in 0..20u64 {
                s.add(l, e, KEY, e as i64 - 1, payload(l, e, 100))
                    .await
                    .unwrap();
                assert_eq!(s.read(l, e).await.unwrap().0, payload(l, e, 100));
                s.lac_info(l).unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    // a fence's reply sees every entry acknowledged before it
    let info = s.fence(7, KEY).await.unwrap();
    assert!(info.fenced);
    assert_eq!(info.last_entry, 19);
}
