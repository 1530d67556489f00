//! Replication against real in-process bookies (gRPC on loopback) and a real LocalStore:
//! recovery write-back and fencing, a hung (black-holed) bookie during recovery, ensemble changes
//! with and without a spare bookie, speculative reads, rack-aware placement, auto-recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::quorum;
use strata_bookie::{BookieClient, BookieNode, ClientError};
use strata_ledger::LedgerWriter;
use strata_ledger::client::{
    BookieLedgerStorage, Quorum, RegisteredBookies, StaticBookies, Timeouts,
};
use strata_ledger::storage::{CreateOptions, LedgerStorage, StorageError};
use strata_meta::model::{
    BookieInfo, EnsembleSegment, LedgerMetadata, LedgerState, MetaClient, Paths,
};
use strata_meta::{MetadataStore, Session};
use strata_proto::{BookieId, EntryId, LedgerId};
use tokio_util::sync::CancellationToken;

/// Bounds every test (they stop by themselves well before).
const TEST_LIMIT: Duration = Duration::from_secs(60);

struct Cluster {
    _tmp: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    meta: MetaClient,
    nodes: Vec<Option<BookieNode>>,
    ids: Vec<(BookieId, String)>,
    sessions: Vec<Option<Session>>,
}

fn fast() -> Timeouts {
    Timeouts {
        add: Duration::from_secs(2),
        request: Duration::from_millis(700),
        speculative: Duration::from_millis(50),
        ensemble_check: Duration::from_millis(200),
    }
}

impl Cluster {
    async fn start(n: usize) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let store = common::store(tmp.path()).await;
        let meta = MetaClient::new(store.clone(), Paths::default());
        let (nodes, ids) = common::bookies(tmp.path(), n).await;
        let nodes = nodes.into_iter().map(Some).collect();
        Self {
            _tmp: tmp,
            store,
            meta,
            nodes,
            ids,
            sessions: Vec::new(),
        }
    }

    /// Registers every bookie (one session each, racks from `racks`) in the metadata store.
    async fn register(&mut self, racks: &[Option<&str>]) {
        for (i, (id, addr)) in self.ids.iter().enumerate() {
            let s = self
                .store
                .create_session(Duration::from_secs(30))
                .await
                .unwrap();
            self.meta
                .register_bookie(
                    &s,
                    &BookieInfo {
                        bookie_id: id.clone(),
                        address: addr.clone(),
                        free_space_bytes: 0,
                        total_space_bytes: 0,
                        rack: racks.get(i).copied().flatten().map(str::to_owned),
                        read_only: false,
                        version: "test".into(),
                    },
                )
                .await
                .unwrap();
            self.sessions.push(Some(s));
        }
    }

    /// A ledger client over the static bookie list, with some addresses overridden.
    fn client(&self, q: Quorum, owner: &str, overrides: &[(usize, String)]) -> BookieLedgerStorage {
        let mut ids = self.ids.clone();
        for (i, a) in overrides {
            ids[*i].1 = a.clone();
        }
        BookieLedgerStorage::with_timeouts(
            MetaClient::new(self.store.clone(), Paths::default()),
            Arc::new(StaticBookies(ids)),
            q,
            owner,
            fast(),
        )
    }

    fn registered_client(&self, q: Quorum, owner: &str) -> BookieLedgerStorage {
        BookieLedgerStorage::with_timeouts(
            self.meta.clone(),
            Arc::new(RegisteredBookies::new(self.meta.clone())),
            q,
            owner,
            fast(),
        )
    }

    fn index(&self, b: &BookieId) -> usize {
        self.ids.iter().position(|(x, _)| x == b).unwrap()
    }

    fn raw(&self, b: &BookieId) -> BookieClient {
        BookieClient::connect_lazy(&self.ids[self.index(b)].1).unwrap()
    }

    /// Adds `payload(e)` as entry `e` of `ledger` straight to bookie `b` (LAC 4), as a writer would.
    async fn raw_add(&self, b: &BookieId, ledger: u64, e: u64, key: &Bytes) {
        let raw = self.raw(b);
        raw.add(ledger, e, key.clone(), 4, payload(e))
            .await
            .unwrap();
    }

    async fn md(&self, ledger: impl Into<u64>) -> LedgerMetadata {
        self.meta
            .ledger(LedgerId(ledger.into()))
            .await
            .unwrap()
            .unwrap()
            .0
    }

    /// Stops bookie `i` (and unregisters it when registered).
    async fn stop(&mut self, i: usize) {
        if let Some(s) = self.sessions.get_mut(i).and_then(Option::take) {
            self.store.close_session(&s).await.unwrap();
        }
        if let Some(n) = self.nodes[i].take() {
            n.shutdown().await;
        }
    }

    /// Starts bookie `i` again on a new port, on its old data or (`wipe`) on an empty disk.
    async fn restart(&mut self, i: usize, wipe: bool) {
        self.stop(i).await;
        let dir = if wipe {
            self._tmp.path().join(format!("b{i}-wiped"))
        } else {
            self._tmp.path().join(format!("b{i}"))
        };
        let b = common::bookie(&dir).await;
        self.ids[i].1 = b.grpc_addr.to_string();
        self.nodes[i] = Some(b);
    }

    async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}

/// A TCP listener that accepts connections and never answers: a hung bookie.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (addr, h)
}

fn key(md: &LedgerMetadata) -> Bytes {
    Bytes::from(md.custom_metadata["master_key"].clone().into_bytes())
}

fn write_set(ensemble: &[BookieId], e: u64, qw: usize) -> Vec<BookieId> {
    (0..qw)
        .map(|i| ensemble[(e as usize + i) % ensemble.len()].clone())
        .collect()
}

/// The bookies of `ensemble` (write set of `e`) that hold entry `e` with payload `want`.
async fn holders(c: &Cluster, ws: &[BookieId], ledger: u64, e: u64, want: &Bytes) -> usize {
    let mut n = 0;
    for b in ws {
        if let Ok((d, _)) = c.raw(b).read_entry(ledger, e).await
            && d == *want
        {
            n += 1;
        }
    }
    n
}

fn payload(e: u64) -> Bytes {
    Bytes::from(format!("entry-{e}"))
}

/// Adds `payload(e)` for each `e` of `entries` through `w`, checking the ids it answers.
async fn add_all(w: &Arc<dyn LedgerWriter>, entries: std::ops::Range<u64>) {
    for e in entries {
        assert_eq!(w.add(payload(e)).await.unwrap(), EntryId(e));
    }
}

/// Checks that `reader` reads entries `0..n` of `ledger` back as `payload(0..n)`.
async fn assert_reads_all(reader: &BookieLedgerStorage, ledger: u64, n: u64) {
    let all = reader.read(LedgerId(ledger), EntryId(0), EntryId(n - 1));
    assert_eq!(
        all.await.unwrap(),
        (0..n).map(payload).collect::<Vec<_>>(),
        "ledger {ledger}"
    );
}

/// The ensemble segment of `md` that entry `e` belongs to.
fn segment_of(md: &LedgerMetadata, e: u64) -> &EnsembleSegment {
    md.ensembles
        .iter()
        .rev()
        .find(|s| s.first_entry.0 <= e)
        .unwrap()
}

/// Checks that each entry of `entries` is held by all `qw` bookies of its write set (per `md`).
async fn assert_fully_replicated(
    c: &Cluster,
    md: &LedgerMetadata,
    ledger: u64,
    entries: std::ops::Range<u64>,
    qw: usize,
) {
    for e in entries {
        let ws = write_set(&segment_of(md, e).bookies, e, qw);
        assert_eq!(
            holders(c, &ws, ledger, e, &payload(e)).await,
            qw,
            "ledger {ledger} entry {e}: {md:?}"
        );
    }
}

/// Runs auto-recovery over the registered bookies until the returned token is cancelled.
fn spawn_auto_recovery(
    c: &Cluster,
    grace: Duration,
    interval: Duration,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    use strata_ledger::autorecovery::{self, AutoRecoveryOptions};
    let cancel = CancellationToken::new();
    let task = tokio::spawn(autorecovery::run(
        c.meta.clone(),
        Arc::new(RegisteredBookies::new(c.meta.clone())),
        AutoRecoveryOptions {
            grace,
            interval,
            ..Default::default()
        },
        cancel.clone(),
    ));
    (cancel, task)
}

#[tokio::test]
async fn recovery_writes_back_entries_that_reached_only_the_ack_quorum() {
    tokio::time::timeout(TEST_LIMIT, async {
        let c = Cluster::start(3).await;
        let q = quorum(3, 3, 2);
        let a = c.client(q, "a", &[]);
        let w = a.create(CreateOptions::default()).await.unwrap();
        let ledger = w.ledger_id().0;
        // Entries 0..5 through the writer (on all three bookies).
        add_all(&w, 0..5u64).await;
        let md = c.md(ledger).await;
        let ens = md.ensembles[0].bookies.clone();
        let k = key(&md);
        // The writer then sends entries 5..15 but dies after each reached only Qa = 2 of its
        // Qw = 3 bookies (a different one missing each time); its LAC was 4.
        for e in 5..15u64 {
            let ws = write_set(&ens, e, 3);
            for b in &ws[..2] {
                c.raw_add(b, ledger, e, &k).await;
            }
        }
        // Entry 15 reached one bookie only and 16 two: never acknowledged (15 lacks Qa), so
        // recovery may keep them or not. It keeps them when the one replica of 15 answers before
        // two NO_ENTRY answers make it absent (Qw - Qa + 1 = 2), which the order of the answers
        // decides; either way every entry up to 14 is recovered. 17 reached none: absent, so 18
        // (on two bookies, after the gap) cannot have been acknowledged.
        c.raw_add(&write_set(&ens, 15, 3)[0], ledger, 15, &k).await;
        for e in [16u64, 18] {
            for b in &write_set(&ens, e, 3)[..2] {
                c.raw_add(b, ledger, e, &k).await;
            }
        }
        let b = c.client(q, "b", &[]);
        let last = b.recover(LedgerId(ledger)).await.unwrap().map(|e| e.0);
        assert!(matches!(last, Some(14 | 16)), "{last:?}");
        let last = last.unwrap_or_default();
        let md = c.md(ledger).await;
        assert_eq!(md.state, LedgerState::Closed);
        assert_eq!(md.last_entry_id.map(|e| e.0), Some(last));
        // Every entry up to the last is on its full write set (Qw = 3) now.
        for e in 0..=last {
            assert_eq!(
                holders(&c, &write_set(&ens, e, 3), ledger, e, &payload(e)).await,
                3,
                "entry {e}"
            );
        }
        let all = b
            .read(LedgerId(ledger), EntryId(0), EntryId(last))
            .await
            .unwrap();
        assert_eq!(all, (0..=last).map(payload).collect::<Vec<_>>());
        // The old writer is fenced, on the bookies too.
        let err = w.add(payload(99)).await.unwrap_err();
        assert!(matches!(err, StorageError::Fenced(_)), "{err:?}");
        let raw = c
            .raw(&ens[0])
            .add(ledger, 19, k.clone(), 4, payload(19))
            .await;
        assert!(matches!(raw, Err(ClientError::Fenced(_))), "{raw:?}");
        assert!(matches!(w.close().await, Err(StorageError::Fenced(_))));
        // Idempotent.
        assert_eq!(
            b.recover(LedgerId(ledger)).await.unwrap(),
            Some(EntryId(last))
        );
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_bookie_that_lost_its_data_is_not_proof_of_absence() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut c = Cluster::start(3).await;
        let q = quorum(3, 3, 2);
        let a = c.client(q, "a", &[]);
        let w = a.create(CreateOptions::default()).await.unwrap();
        let ledger = w.ledger_id().0;
        add_all(&w, 0..6u64).await;
        let md = c.md(ledger).await;
        let ens = md.ensembles[0].bookies.clone();
        // Entry 6 reached bookies A and B (an ack quorum: it may have been acknowledged); C
        // never got it. Then A is down and B lost its disk (restarted empty).
        let (ia, ib) = (c.index(&ens[0]), c.index(&ens[1]));
        for i in [ia, ib] {
            c.raw(&c.ids[i].0.clone()).add(ledger, 6, key(&md), 5, payload(6)).await.unwrap();
        }
        c.stop(ia).await;
        c.restart(ib, true).await;
        // B's and C's NO_ENTRY would make two "absent" answers (Qw - Qa + 1 = 2) and truncate
        // the ledger at 5, losing entry 6; B knows nothing of a ledger it held acknowledged
        // entries of, so its answer does not count and recovery refuses to decide.
        let b = c.client(q, "b", &[]);
        let r = b.recover(LedgerId(ledger)).await;
        assert!(
            matches!(&r, Err(StorageError::Unavailable(m)) if m.contains("cannot tell whether entry 6")),
            "{r:?}"
        );
        assert_ne!(c.md(ledger).await.state, LedgerState::Closed);
        // With A back, entry 6 is found and kept.
        c.restart(ia, false).await;
        let b = c.client(q, "b2", &[]);
        assert_eq!(b.recover(LedgerId(ledger)).await.unwrap(), Some(EntryId(6)));
        assert_eq!(b.read(LedgerId(ledger), EntryId(6), EntryId(6)).await.unwrap(), vec![payload(6)]);
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_hung_bookie_does_not_stall_recovery() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut c = Cluster::start(4).await;
        let q = quorum(3, 2, 2);
        let a = c.client(q, "a", &[]);
        let w = a.create(CreateOptions::default()).await.unwrap();
        let ledger = w.ledger_id().0;
        add_all(&w, 0..10u64).await;
        let md = c.md(ledger).await;
        let ens = md.ensembles[0].bookies.clone();
        // Entry 9 (LAC 8 went with it) is beyond the LAC: its write set is ens[0], ens[1].
        // ens[0] hangs for the recovering client: fence, reads and the write-back of entry 9 to
        // it time out; recovery replaces it by the spare bookie for the recovered entries.
        let hung = c.index(&ens[0]);
        let (hole, hole_task) = black_hole().await;
        let b = c.client(q, "b", &[(hung, hole)]);
        assert_eq!(b.recover(LedgerId(ledger)).await.unwrap(), Some(EntryId(9)));
        let md = c.md(ledger).await;
        assert_eq!(md.state, LedgerState::Closed);
        let last = md.ensembles.last().unwrap();
        assert!(!last.bookies.contains(&ens[0]), "{md:?}");
        assert_eq!(last.first_entry.0, 9, "{md:?}");
        // Every entry is readable (reads go around the hung bookie), entry 9 on Qw bookies.
        assert_reads_all(&b, ledger, 10).await;
        assert_eq!(
            holders(&c, &write_set(&last.bookies, 9, 2), ledger, 9, &payload(9)).await,
            2
        );
        // A stopped (not hung) bookie: refused connections, recovery of another ledger goes on.
        let w2 = a.create(CreateOptions::default()).await.unwrap();
        add_all(&w2, 0..5u64).await;
        let ens2 = c.md(w2.ledger_id().0).await.ensembles[0].bookies.clone();
        let victim = c.index(&ens2[2]);
        c.stop(victim).await;
        let b2 = c.client(q, "b2", &[]);
        assert_eq!(b2.recover(w2.ledger_id()).await.unwrap(), Some(EntryId(4)));
        hole_task.abort();
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn ensemble_change_keeps_every_acknowledged_entry() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut c = Cluster::start(4).await;
        let q = quorum(3, 2, 2);
        let a = c.client(q, "a", &[]);
        let w = a.create(CreateOptions::default()).await.unwrap();
        let ledger = w.ledger_id().0;
        let ens = c.md(ledger).await.ensembles[0].bookies.clone();
        // Pipelined adds; a bookie of the ensemble dies in the middle of the stream.
        let mut futs: Vec<_> = (0..100u64).map(|e| w.add(payload(e))).collect();
        for (e, f) in futs.drain(..50).enumerate() {
            assert_eq!(f.await.unwrap(), EntryId(e as u64));
        }
        let victim = c.index(&ens[1]);
        c.stop(victim).await;
        futs.extend((100..200u64).map(|e| w.add(payload(e))));
        for (e, f) in futs.into_iter().enumerate() {
            assert_eq!(
                f.await.unwrap(),
                EntryId(e as u64 + 50),
                "every add is acknowledged"
            );
        }
        let md = c.md(ledger).await;
        assert_eq!(md.ensembles.len(), 2, "{md:?}");
        assert!(md.ensembles[0].bookies.contains(&ens[1]));
        assert!(!md.ensembles[1].bookies.contains(&ens[1]), "{md:?}");
        // Every acknowledged entry is readable by another client, and held by an ack quorum
        // of its write set per the committed metadata.
        let b = c.client(q, "b", &[]);
        assert_reads_all(&b, ledger, 200).await;
        assert_fully_replicated(&c, &md, ledger, md.ensembles[1].first_entry.0..200, 2).await;
        assert_eq!(w.close().await.unwrap(), Some(EntryId(199)));
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn without_a_spare_bookie_the_writer_fails_with_not_enough_bookies() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut c = Cluster::start(3).await;
        let q = quorum(3, 2, 2);
        let a = c.client(q, "a", &[]);
        let w = a.create(CreateOptions::default()).await.unwrap();
        let ledger = w.ledger_id().0;
        add_all(&w, 0..10u64).await;
        c.stop(0).await;
        let mut errors = Vec::new();
        let mut acked = 0u64;
        for e in 10..20u64 {
            match w.add(payload(e)).await {
                Ok(id) => {
                    assert_eq!(id, EntryId(e));
                    acked = e;
                }
                Err(err) => errors.push(err),
            }
        }
        // Entries whose write set avoids the dead bookie may still complete before the writer
        // notices; then it fails with a clear error.
        let err = errors.first().expect("the writer never failed");
        assert!(matches!(err, StorageError::NotEnoughBookies(_)), "{err:?}");
        assert!(err.to_string().contains("not enough bookies"), "{err}");
        let last = w.close().await.unwrap().map(|e| e.0);
        assert!(last >= Some(9) && last <= Some(acked.max(9)), "{last:?}");
        // No new ledger on the dead bookie either: a clear error at once.
        let err = a
            .create(CreateOptions::default())
            .await
            .err()
            .expect("created a ledger on a dead bookie");
        assert!(matches!(err, StorageError::NotEnoughBookies(_)), "{err:?}");
        // Nothing acknowledged below Qa: every acknowledged entry has 2 copies among the live.
        let md = c.md(ledger).await;
        for e in 0..=last.unwrap() {
            let ws = write_set(&md.ensembles[0].bookies, e, 2);
            let live: Vec<BookieId> = ws.into_iter().filter(|b| c.index(b) != 0).collect();
            let n = holders(&c, &live, ledger, e, &payload(e)).await;
            assert!(n >= live.len().min(2) && n >= 1, "entry {e}: {n} copies");
        }
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn reads_go_around_slow_and_empty_replicas() {
    tokio::time::timeout(TEST_LIMIT, async {
        let c = Cluster::start(3).await;
        let q = quorum(3, 3, 3);
        let a = c.client(q, "a", &[]);
        let w = a.create(CreateOptions::default()).await.unwrap();
        let ledger = w.ledger_id().0;
        add_all(&w, 0..20u64).await;
        assert_eq!(w.close().await.unwrap(), Some(EntryId(19)));
        let ens = c.md(ledger).await.ensembles[0].bookies.clone();
        // The first replica of entry 0 hangs for this reader; the second lost the ledger
        // (answers NO_LEDGER/NO_ENTRY): the third serves the read.
        let (hole, hole_task) = black_hole().await;
        c.raw(&ens[1]).delete_ledger(ledger).await.unwrap();
        let b = c.client(q, "b", &[(c.index(&ens[0]), hole)]);
        assert_reads_all(&b, ledger, 20).await;
        assert_eq!(
            b.read(LedgerId(ledger), EntryId(7), EntryId(7))
                .await
                .unwrap(),
            vec![payload(7)]
        );
        // Every replica failing is an error.
        c.raw(&ens[2]).delete_ledger(ledger).await.unwrap();
        assert!(
            b.read(LedgerId(ledger), EntryId(0), EntryId(0))
                .await
                .is_err()
        );
        hole_task.abort();
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn ensembles_and_replacements_spread_over_racks() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut c = Cluster::start(4).await;
        c.register(&[Some("r1"), Some("r1"), Some("r2"), Some("r2")])
            .await;
        let ids: Vec<BookieId> = c.ids.iter().map(|(b, _)| b.clone()).collect();
        let rack = |b: &BookieId| {
            if ids.iter().position(|x| x == b).unwrap() < 2 {
                "r1"
            } else {
                "r2"
            }
        };
        let q = quorum(2, 2, 2);
        let s = c.registered_client(q, "a");
        let mut writers = Vec::new();
        for _ in 0..6 {
            let w = s.create(CreateOptions::default()).await.unwrap();
            let ens = c.md(w.ledger_id().0).await.ensembles[0].bookies.clone();
            let racks: BTreeSet<&str> = ens.iter().map(rack).collect();
            assert_eq!(racks.len(), 2, "ensemble {ens:?} on one rack");
            w.add(payload(0)).await.unwrap();
            writers.push(w);
        }
        // Stop a bookie: its replacement comes from its own rack, the only one the rest of the
        // ensemble does not use.
        let w = &writers[0];
        let ens = c.md(w.ledger_id().0).await.ensembles[0].bookies.clone();
        let victim = c.index(&ens[0]);
        c.stop(victim).await;
        add_all(w, 1..5u64).await;
        let md = c.md(w.ledger_id().0).await;
        let new = md.ensembles.last().unwrap();
        let racks: BTreeSet<&str> = new.bookies.iter().map(rack).collect();
        assert_eq!(racks.len(), 2, "{md:?}");
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn auto_recovery_re_replicates_the_entries_of_a_dead_bookie() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut c = Cluster::start(4).await;
        c.register(&[]).await;
        let q = quorum(3, 2, 2);
        let s = c.registered_client(q, "a");
        // Closed ledgers (one empty), an open one written to after the bookie died, and an
        // idle open one (its writer notices the bookie left the registry).
        let mut ledgers = Vec::new();
        for n in [30u64, 25, 0, 40, 15] {
            let w = s.create(CreateOptions::default()).await.unwrap();
            add_all(&w, 0..n).await;
            ledgers.push((w, n));
        }
        for (w, _) in &ledgers[..3] {
            w.close().await.unwrap();
        }
        let idle = c.md(ledgers[4].0.ledger_id()).await.ensembles[0]
            .bookies
            .clone();
        let dead = c.md(ledgers[0].0.ledger_id()).await.ensembles[0]
            .bookies
            .iter()
            .find(|b| idle.contains(b))
            .unwrap()
            .clone();
        let di = c.index(&dead);
        c.stop(di).await;
        let open = &ledgers[3].0;
        add_all(open, 40..60u64).await;
        ledgers[3].1 = 60;
        let names_dead =
            |md: &LedgerMetadata| md.ensembles.iter().any(|s| s.bookies.contains(&dead));
        let mut before = 0;
        for (w, _) in &ledgers {
            before += usize::from(names_dead(&c.md(w.ledger_id().0).await));
        }
        assert!(before >= 1);
        let (cancel, task) =
            spawn_auto_recovery(&c, Duration::from_millis(500), Duration::from_millis(100));
        // Wait until no ledger metadata names the dead bookie.
        loop {
            let mut any = false;
            for (w, _) in &ledgers {
                any |= names_dead(&c.md(w.ledger_id().0).await);
            }
            if !any {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cancel.cancel();
        task.await.unwrap();
        // The idle ledger got a new segment from its next entry and goes on.
        let idle_md = c.md(ledgers[4].0.ledger_id()).await;
        assert_eq!(idle_md.state, LedgerState::Open);
        assert_eq!(
            idle_md.ensembles.last().unwrap().first_entry.0,
            15,
            "{idle_md:?}"
        );
        assert_eq!(ledgers[4].0.add(payload(15)).await.unwrap(), EntryId(15));
        ledgers[4].1 = 16;
        // Every entry readable with the dead bookie gone, each on Qw live bookies of its
        // segment's write set.
        let reader = c.registered_client(q, "reader");
        for (w, n) in &ledgers {
            let l = w.ledger_id();
            if *n == 0 {
                continue;
            }
            assert_reads_all(&reader, l.0, *n).await;
            let md = c.md(l).await;
            for e in 0..*n {
                assert!(!write_set(&segment_of(&md, e).bookies, e, 2).contains(&dead));
            }
            assert_fully_replicated(&c, &md, l.0, 0..*n, 2).await;
        }
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_hung_bookie_in_the_write_path_is_replaced_after_the_add_timeout() {
    tokio::time::timeout(TEST_LIMIT, async {
        let c = Cluster::start(4).await;
        let q = quorum(3, 2, 2);
        // For this writer bookie-1 hangs (accepts connections, never answers).
        let (hole, hole_task) = black_hole().await;
        let a = c.client(q, "a", &[(1, hole)]);
        let hung = BookieId("bookie-1".into());
        let mut w = a.create(CreateOptions::default()).await.unwrap();
        while !c.md(w.ledger_id().0).await.ensembles[0]
            .bookies
            .contains(&hung)
        {
            w = a.create(CreateOptions::default()).await.unwrap();
        }
        let ledger = w.ledger_id().0;
        let futs: Vec<_> = (0..20u64).map(|e| w.add(payload(e))).collect();
        for (e, f) in futs.into_iter().enumerate() {
            assert_eq!(f.await.unwrap(), EntryId(e as u64));
        }
        let md = c.md(ledger).await;
        // Replaced from the first entry it held up (at most entry 0 came before).
        let last = md.ensembles.last().unwrap();
        assert!(!last.bookies.contains(&hung), "{md:?}");
        assert!(last.first_entry.0 <= 1, "{md:?}");
        let b = c.client(q, "b", &[]);
        assert_reads_all(&b, ledger, 20).await;
        hole_task.abort();
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn writer_ensemble_changes_and_auto_recovery_interleave() {
    tokio::time::timeout(TEST_LIMIT, async {
        let mut c = Cluster::start(5).await;
        c.register(&[]).await;
        let q = quorum(3, 2, 2);
        let s = c.registered_client(q, "a");
        let w = s.create(CreateOptions::default()).await.unwrap();
        let ledger = w.ledger_id().0;
        // A producer adding all along.
        let stop = tokio_util::sync::CancellationToken::new();
        let producer = {
            let (w, stop) = (w.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = 0u64;
                while !stop.is_cancelled() {
                    assert_eq!(w.add(payload(acked)).await.unwrap(), EntryId(acked));
                    acked += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                acked
            })
        };
        let (cancel, task) =
            spawn_auto_recovery(&c, Duration::from_millis(300), Duration::from_millis(50));
        let names =
            |md: &LedgerMetadata, b: &BookieId| md.ensembles.iter().any(|s| s.bookies.contains(b));
        // Kill a bookie of the current ensemble twice: the writer moves its current segment,
        // auto-recovery repairs the earlier ones while the writer commits its own changes.
        let mut dead = Vec::new();
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let md = c.md(ledger).await;
            let x = md.ensembles.last().unwrap().bookies[0].clone();
            let xi = c.index(&x);
            c.stop(xi).await;
            dead.push(x);
            loop {
                let md = c.md(ledger).await;
                if !md
                    .ensembles
                    .last()
                    .unwrap()
                    .bookies
                    .contains(dead.last().unwrap())
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
        let acked = producer.await.unwrap();
        let last = w.close().await.unwrap();
        assert_eq!(last, Some(EntryId(acked - 1)));
        loop {
            let md = c.md(ledger).await;
            if !dead.iter().any(|d| names(&md, d)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cancel.cancel();
        task.await.unwrap();
        let md = c.md(ledger).await;
        assert!(md.ensembles.len() >= 3, "{md:?}");
        let reader = c.registered_client(q, "reader");
        assert_reads_all(&reader, ledger, acked).await;
        assert_fully_replicated(&c, &md, ledger, 0..acked, 2).await;
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}
