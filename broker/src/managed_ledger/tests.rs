//! Unit tests of the managed ledger over `MemStorage`.

mod basic {
    use super::super::*;
    use crate::storage::MemStorage;
    use bytes::Bytes;
    use std::time::Duration;

    async fn open(st: &MemStorage, meta: &MetaClient, cfg: ManagedLedgerConfig) -> ManagedLedger {
        ManagedLedger::open(
            "t/ns/persistent/a",
            Arc::new(st.clone()),
            meta.clone(),
            EntryCache::new(1 << 20),
            cfg,
        )
        .await
        .unwrap()
    }

    /// The watchers of the last confirmed position are woken after the append is answered (as
    /// Pulsar answers an add before it notifies its cursors), so a dispatcher never queues a
    /// MESSAGE ahead of the SEND_RECEIPT on a connection that carries both.
    #[tokio::test]
    async fn lac_watchers_are_woken_after_the_append_is_answered() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let ml = open(&st, &meta, ManagedLedgerConfig::default()).await;
        let mut watch = ml.watch_lac();
        for data in [&b"a"[..], b"b"] {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let seen = watch.clone();
            let reply = Reply::new(move |r| {
                let _ = tx.send((r.is_ok(), seen.has_changed().unwrap_or(true)));
            });
            ml.append_then(Bytes::from_static(data), None, reply);
            let (ok, woken_first) = rx.await.unwrap();
            assert!(ok);
            assert!(!woken_first, "the watchers were woken before the answer");
            tokio::time::timeout(Duration::from_secs(5), watch.changed())
                .await
                .unwrap()
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_new_owner_never_writes_below_the_last_ledger_id() {
        // The old owner's ledger ids come from a higher batch than the new owner's allocator.
        let old = MemStorage::default();
        for _ in 0..5 {
            old.create(CreateOptions::default()).await.unwrap();
        }
        let meta = crate::metadata::in_memory().unwrap();
        let ml = open(&old, &meta, ManagedLedgerConfig::default()).await;
        let p_old = ml.append(Bytes::from_static(b"a")).await.unwrap();
        assert_eq!(p_old.ledger, 6);
        ml.close().await;
        let new = MemStorage::default();
        let ml = open(&new, &meta, ManagedLedgerConfig::default()).await;
        let p_new = ml.append(Bytes::from_static(b"b")).await.unwrap();
        assert!(p_new > p_old, "{p_new:?} after {p_old:?}");
        assert_eq!(p_new.ledger, 7);
        // the skipped ids were deleted
        assert_eq!(new.ledger_count(), 1);
    }

    #[tokio::test]
    async fn open_creates_the_first_ledger_and_an_idle_log_terminates_cleanly() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let ml = open(&st, &meta, ManagedLedgerConfig::default()).await;
        // the ledger exists and is listed before any append; nothing is confirmed yet
        let ls = ml.ledgers();
        assert_eq!(ls.len(), 1);
        assert!(!ls[0].closed);
        assert_eq!(st.ledger_count(), 1);
        assert_eq!(ml.last_confirmed(), Position::EARLIEST);
        let p = ml.append(Bytes::from_static(b"a")).await.unwrap();
        assert_eq!(p.ledger, ls[0].ledger_id.0);
        ml.close().await;
        // an idle log: terminating it drops its empty ledger and records the end
        let ml = open(&st, &meta, ManagedLedgerConfig::default()).await;
        assert_eq!(ml.ledgers().len(), 2);
        assert_eq!(ml.last_confirmed(), p);
        assert_eq!(ml.terminate().await.unwrap(), p);
        assert_eq!(ml.ledgers().len(), 1);
        ml.close().await;
        let ml = open(&st, &meta, ManagedLedgerConfig::default()).await;
        assert!(ml.is_terminated());
        assert_eq!(ml.ledgers().len(), 1);
        assert_eq!(st.ledger_count(), 1);
    }

    /// The topic's write latency histogram counts every confirmed add: on the direct path and
    /// through the writer task after a failed add.
    #[tokio::test]
    async fn confirmed_adds_are_counted_in_the_write_latency_histogram() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let ml = open(&st, &meta, ManagedLedgerConfig::default()).await;
        let series = crate::stats::TopicMetrics::default();
        ml.observe_writes(series.clone());
        for i in 0..3u8 {
            ml.append(Bytes::from(vec![i])).await.unwrap();
        }
        assert_eq!(series.write_latency.snapshot().count(), 3);
        st.fail_adds
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let late = tokio::spawn(ml.append(Bytes::from_static(b"late")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        st.fail_adds
            .store(false, std::sync::atomic::Ordering::Relaxed);
        late.await.unwrap().unwrap();
        // the failed attempt is not counted, the rewrite that succeeded is
        assert_eq!(series.write_latency.snapshot().count(), 4);
    }

    #[tokio::test]
    async fn append_read_rollover_and_reopen() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let cfg = ManagedLedgerConfig {
            max_entries_per_ledger: 3,
            ..Default::default()
        };
        let ml = open(&st, &meta, cfg.clone()).await;
        let mut pos = vec![];
        for i in 0..7u8 {
            pos.push(ml.append(Bytes::from(vec![i])).await.unwrap());
        }
        assert_eq!(ml.ledgers().len(), 3);
        assert_eq!(ml.last_confirmed(), pos[6]);
        // walk the log with next_position
        let mut p = ml.first_position();
        let mut seen = vec![];
        while let Some(n) = ml.next_position(p) {
            seen.push(n);
            p = n;
        }
        assert_eq!(seen, pos);
        assert_eq!(ml.entries_after(pos[1]), 5);
        let r = ml.read(pos[3], 10).await.unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].1, Bytes::from(vec![3u8]));
        // crash without close: a new instance recovers the open ledger
        drop(ml);
        let ml2 = open(&st, &meta, cfg).await;
        assert_eq!(ml2.last_confirmed(), pos[6]);
        let p8 = ml2.append(Bytes::from_static(b"x")).await.unwrap();
        assert!(p8 > pos[6]);
        // find by predicate (binary search)
        let f = ml2
            .find_first(|d| d.first().copied().unwrap_or(0) >= 4)
            .await
            .unwrap();
        assert_eq!(f, Some(pos[4]));
        ml2.close().await;
    }

    #[tokio::test]
    async fn namespace_retention_size_and_time_limits() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let cfg = ManagedLedgerConfig {
            max_entries_per_ledger: 2,
            ..Default::default()
        };
        let ml = open(&st, &meta, cfg).await;
        let mut pos = vec![];
        for i in 0..8u8 {
            pos.push(ml.append(Bytes::from(vec![i; 10])).await.unwrap());
        }
        assert_eq!(ml.ledgers().len(), 4);
        // Unlimited retention keeps everything consumed.
        assert_eq!(ml.trim_retained(Some(pos[7]), None, None).await.unwrap(), 0);
        // Nothing consumed: nothing trimmed, whatever the limits.
        assert_eq!(
            ml.trim_retained(Some(Position::EARLIEST), Some(0), Some(0))
                .await
                .unwrap(),
            0
        );
        // Three consumed closed ledgers of 20 bytes; keep at most 40 bytes: the oldest goes.
        assert_eq!(
            ml.trim_retained(Some(pos[7]), None, Some(40))
                .await
                .unwrap(),
            1
        );
        assert_eq!(ml.ledgers().len(), 3);
        // Only what the slowest cursor consumed can go: with a time limit of 0, the ledger of
        // pos[2..=3]; then, consumed up to pos[7], every closed ledger but the current one.
        assert_eq!(
            ml.trim_retained(Some(pos[3]), Some(0), None).await.unwrap(),
            1
        );
        assert_eq!(
            ml.trim_retained(Some(pos[7]), Some(0), None).await.unwrap(),
            1
        );
        assert_eq!(ml.ledgers().len(), 1);
        assert_eq!(ml.read(pos[7], 1).await.unwrap().len(), 1);
        ml.close().await;
    }

    #[tokio::test]
    async fn tail_reads_hit_cache_and_trim_deletes() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let cfg = ManagedLedgerConfig {
            max_entries_per_ledger: 2,
            retention_time: Duration::ZERO,
            ..Default::default()
        };
        let ml = open(&st, &meta, cfg).await;
        let _subscription = ml.watch_lac();
        let mut pos = vec![];
        for i in 0..6u8 {
            pos.push(ml.append(Bytes::from(vec![i])).await.unwrap());
        }
        let before = st.reads();
        let r = ml.read(pos[4], 2).await.unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(st.reads(), before, "tail read went to storage");
        assert_eq!(ml.trim(Some(pos[3])).await.unwrap(), 2);
        assert_eq!(ml.ledgers().len(), 1);
        assert_eq!(ml.first_position(), Position::new(pos[4].ledger, -1));
        // The writer keeps rolling over after a trim (one CAS owner of the ledger list).
        for i in 6..12u8 {
            ml.append(Bytes::from(vec![i])).await.unwrap();
        }
        assert_eq!(ml.ledgers().len(), 4);
    }

    #[tokio::test]
    async fn failed_adds_are_written_again_in_order_on_a_new_ledger() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let ml = open(&st, &meta, ManagedLedgerConfig::default()).await;
        let a = ml.append(Bytes::from_static(b"a")).await.unwrap();
        st.fail_adds
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // b fails, c and d come after it: none may overtake b
        let b = tokio::spawn(ml.append(Bytes::from_static(b"b")));
        let c = tokio::spawn(ml.append(Bytes::from_static(b"c")));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let d = tokio::spawn(ml.append(Bytes::from_static(b"d")));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!b.is_finished() && !c.is_finished() && !d.is_finished());
        st.fail_adds
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let (b, c, d) = (
            b.await.unwrap().unwrap(),
            c.await.unwrap().unwrap(),
            d.await.unwrap().unwrap(),
        );
        assert!(b.ledger > a.ledger);
        assert!(a < b && b < c && c < d, "{a:?} {b:?} {c:?} {d:?}");
        let all: Vec<Bytes> = ml
            .read(ml.next_position(a).unwrap(), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        assert_eq!(all, [&b"b"[..], b"c", b"d"]);
    }

    /// Appends go straight to the open ledger while it is healthy and through the writer task
    /// around rollovers and failures: either way the log holds them in call order, and every
    /// append is answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_keep_call_order_across_rollovers_and_failures() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let cfg = ManagedLedgerConfig {
            max_entries_per_ledger: 7,
            ..Default::default()
        };
        let ml = open(&st, &meta, cfg).await;
        let first = ml.append(Bytes::from_static(b"first")).await.unwrap();
        let mut pending: Vec<tokio::task::JoinHandle<Result<Position>>> = Vec::new();
        let mut failing = false;
        for i in 0..400u32 {
            if i % 97 == 50 {
                failing = true;
                st.fail_adds
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            pending.push(tokio::spawn(ml.append(Bytes::from(i.to_string()))));
            if i % 97 == 60 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                failing = false;
                st.fail_adds
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
            // now and then let the writer task catch up, so the direct path opens again
            if i % 5 == 4 && !failing {
                while pending.last().is_some_and(|h| !h.is_finished()) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        let mut positions = Vec::new();
        for p in pending {
            positions.push(p.await.unwrap().unwrap());
        }
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        let mut at = first;
        for i in 0..400u32 {
            at = ml.next_position(at).unwrap();
            assert_eq!(at, positions[i as usize]);
            let data = ml.read_one(at).await.unwrap().unwrap();
            assert_eq!(data, Bytes::from(i.to_string()));
        }
        // the direct path stops at the rollover limit: the first ledger holds exactly 7
        let ledgers = ml.ledgers();
        assert!(ledgers.len() > 40, "{ledgers:?}");
        assert_eq!(ledgers[0].entries, 7, "{ledgers:?}");
    }

    #[tokio::test]
    async fn failed_adds_fail_after_the_retry_timeout() {
        let st = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let cfg = ManagedLedgerConfig {
            add_retry_timeout: Duration::from_millis(400),
            ..Default::default()
        };
        let ml = open(&st, &meta, cfg).await;
        ml.append(Bytes::from_static(b"a")).await.unwrap();
        st.fail_adds
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(ml.append(Bytes::from_static(b"b")).await.is_err());
        st.fail_adds
            .store(false, std::sync::atomic::Ordering::Relaxed);
        ml.append(Bytes::from_static(b"c")).await.unwrap();
    }
}

mod cache_tests {
    use super::super::*;
    use crate::storage::MemStorage;
    use bytes::Bytes;

    /// A managed ledger on in-memory storage with an entry cache of `bytes`.
    async fn open_cached(name: &str, bytes: u64) -> (MemStorage, EntryCache, ManagedLedger) {
        let st = MemStorage::default();
        let cache = EntryCache::new(bytes);
        let ml = ManagedLedger::open(
            &format!("t/ns/persistent/{name}"),
            Arc::new(st.clone()),
            crate::metadata::in_memory().unwrap(),
            cache.clone(),
            ManagedLedgerConfig::default(),
        )
        .await
        .unwrap();
        (st, cache, ml)
    }

    /// A catch-up read goes to storage and leaves the cache (the tail) alone.
    #[tokio::test]
    async fn catch_up_reads_do_not_touch_the_tail_cache() {
        let (st, cache, ml) = open_cached("c", 2_000).await;
        let _subscription = ml.watch_lac();
        let mut ps = vec![];
        for i in 0..100u8 {
            ps.push(ml.append(Bytes::from(vec![i; 100])).await.unwrap());
        }
        // Old entries were evicted by the bound; the newest are cached.
        let tail = *ps.last().unwrap();
        assert!(cache.get(&tail).is_some());
        let before = cache.weighted_size();
        let reads = st.reads();
        let got = ml.read(ps[0], 50).await.unwrap();
        assert!(!got.is_empty() && got[0].1[0] == 0);
        assert!(st.reads() > reads, "catch-up read did not go to storage");
        assert!(
            cache.get(&ps[0]).is_none(),
            "catch-up read inserted into the cache"
        );
        assert!(cache.get(&tail).is_some(), "catch-up read evicted the tail");
        assert!(cache.weighted_size() <= before.max(2_000));
    }

    /// As Pulsar: entries of a topic nobody subscribes to are not cached (no copy, no insert);
    /// once a subscription watches the log, new entries are.
    #[tokio::test]
    async fn entries_are_cached_only_while_a_subscription_watches() {
        let (_, cache, ml) = open_cached("w", 1 << 20).await;
        let alone = ml.append(Bytes::from_static(b"a")).await.unwrap();
        assert!(cache.get(&alone).is_none());
        let sub = ml.watch_lac();
        let watched = ml.append(Bytes::from_static(b"b")).await.unwrap();
        assert!(cache.get(&watched).is_some());
        drop(sub);
        let after = ml.append(Bytes::from_static(b"c")).await.unwrap();
        assert!(cache.get(&after).is_none());
        assert_eq!(ml.read(alone, 3).await.unwrap().len(), 3);
    }
}
