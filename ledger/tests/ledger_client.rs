//! The ledger client against real in-process bookies (gRPC on loopback) and a real LocalStore:
//! pipelined adds complete in order, reads come back intact, recovery fences the old writer and
//! closes the ledger at its last entry; with E=3/Qw=2/Qa=2 entries are striped and readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::quorum;
use strata_bookie::BookieNode;
use strata_ledger::client::{BookieLedgerStorage, Quorum, StaticBookies};
use strata_ledger::storage::{CreateOptions, LedgerStorage, StorageError};
use strata_meta::model::{MetaClient, Paths};
use strata_proto::{BookieId, EntryId};

async fn setup(
    n: usize,
    q: Quorum,
) -> (
    tempfile::TempDir,
    Vec<BookieNode>,
    BookieLedgerStorage,
    BookieLedgerStorage,
) {
    let tmp = tempfile::tempdir().unwrap();
    let store = common::store(tmp.path()).await;
    let (nodes, ids) = common::bookies(tmp.path(), n).await;
    let mk = |owner: &str| {
        BookieLedgerStorage::new(
            MetaClient::new(store.clone(), Paths::default()),
            Arc::new(StaticBookies(ids.clone())),
            q,
            owner,
        )
    };
    let a = mk("a");
    let b = mk("b");
    META.with(|m| *m.borrow_mut() = Some(MetaClient::new(store.clone(), Paths::default())));
    (tmp, nodes, a, b)
}

thread_local! {
    /// The metadata client of the last `setup` on this thread (tests run one per thread).
    static META: std::cell::RefCell<Option<MetaClient>> = const { std::cell::RefCell::new(None) };
}

#[tokio::test]
async fn pipelined_adds_read_back_and_recovery_fences_the_writer() {
    let (_tmp, nodes, a, b) = setup(1, quorum(1, 1, 1)).await;
    let w = a.create(CreateOptions::default()).await.unwrap();
    let futs: Vec<_> = (0..200u32)
        .map(|i| w.add(Bytes::from(format!("e{i}"))))
        .collect();
    for (i, f) in futs.into_iter().enumerate() {
        assert_eq!(
            f.await.unwrap(),
            EntryId(i as u64),
            "adds complete in order with dense ids"
        );
    }
    let data = a
        .read(w.ledger_id(), EntryId(0), EntryId(199))
        .await
        .unwrap();
    assert_eq!(data.len(), 200);
    assert_eq!(data[150], Bytes::from("e150"));
    // Another owner recovers the ledger while the first writer still holds it.
    let last = b.recover(w.ledger_id()).await.unwrap();
    assert_eq!(last, Some(EntryId(199)));
    let err = w.add(Bytes::from_static(b"late")).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Fenced(_)),
        "old writer not fenced: {err:?}"
    );
    // Recovery is idempotent and reads still work.
    assert_eq!(b.recover(w.ledger_id()).await.unwrap(), Some(EntryId(199)));
    assert_eq!(
        b.read(w.ledger_id(), EntryId(199), EntryId(199))
            .await
            .unwrap()[0],
        Bytes::from("e199")
    );
    // A closed ledger reports its last entry; delete removes it.
    let w2 = a.create(CreateOptions::default()).await.unwrap();
    w2.add(Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(w2.close().await.unwrap(), Some(EntryId(0)));
    assert_eq!(b.recover(w2.ledger_id()).await.unwrap(), Some(EntryId(0)));
    a.delete(w2.ledger_id()).await.unwrap();
    assert!(
        a.read(w2.ledger_id(), EntryId(0), EntryId(0))
            .await
            .is_err()
    );
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn striped_ensemble_with_write_and_ack_quorums() {
    let (_tmp, nodes, a, b) = setup(3, quorum(3, 2, 2)).await;
    let w = a.create(CreateOptions::default()).await.unwrap();
    let futs: Vec<_> = (0..30u32)
        .map(|i| w.add(Bytes::from(format!("s{i}"))))
        .collect();
    for (i, f) in futs.into_iter().enumerate() {
        assert_eq!(f.await.unwrap(), EntryId(i as u64));
    }
    let data = b
        .read(w.ledger_id(), EntryId(0), EntryId(29))
        .await
        .unwrap();
    assert_eq!(
        data.iter()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect::<Vec<_>>(),
        (0..30).map(|i| format!("s{i}")).collect::<Vec<_>>()
    );
    assert_eq!(b.recover(w.ledger_id()).await.unwrap(), Some(EntryId(29)));
    assert!(w.add(Bytes::from_static(b"late")).await.is_err());
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn ensemble_change_replaces_a_dead_bookie_then_stalls_without_spares() {
    let (_tmp, mut nodes, a, b) = setup(3, quorum(2, 2, 2)).await;
    let w = a.create(CreateOptions::default()).await.unwrap();
    for i in 0..10u32 {
        w.add(Bytes::from(format!("x{i}"))).await.unwrap();
    }
    // The ensemble is bookies[(id + i) % 3]: stop its first member. The third bookie replaces
    // it and the adds go on (the new ensemble is in the ledger metadata before they complete).
    let victim = (w.ledger_id().0 % 3) as usize;
    let dead = nodes.remove(victim);
    dead.shutdown().await;
    for i in 10..20u32 {
        assert_eq!(
            w.add(Bytes::from(format!("x{i}"))).await.unwrap(),
            EntryId(u64::from(i))
        );
    }
    // Every entry is readable by another client (reads follow the ensemble segments).
    let all = b
        .read(w.ledger_id(), EntryId(0), EntryId(19))
        .await
        .unwrap();
    assert_eq!(all[15], Bytes::from("x15"));
    let meta = META.with(|m| m.borrow().clone()).unwrap();
    let (md, _) = meta.ledger(w.ledger_id()).await.unwrap().unwrap();
    assert_eq!(md.ensembles.len(), 2, "{md:?}");
    let dead_id = BookieId(format!("bookie-{victim}"));
    assert!(md.ensembles[0].bookies.contains(&dead_id));
    assert!(!md.ensembles[1].bookies.contains(&dead_id), "{md:?}");
    // With one bookie left and E=2 there is no replacement: the ledger stalls with a clear
    // error and never acknowledges below the ack quorum.
    nodes.remove(0).shutdown().await;
    let err = w.add(Bytes::from_static(b"stalled")).await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::NotEnoughBookies(_) | StorageError::Unavailable(_)
        ),
        "{err:?}"
    );
    assert_eq!(
        w.close().await.unwrap(),
        Some(EntryId(19)),
        "the ledger closes at its last acknowledged entry"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn ensembles_come_from_the_bookie_registry() {
    use strata_ledger::client::RegisteredBookies;
    use strata_meta::model::BookieInfo;
    let tmp = tempfile::tempdir().unwrap();
    let store = common::store(tmp.path()).await;
    let meta = MetaClient::new(store.clone(), Paths::default());
    let session = store.create_session(Duration::from_secs(30)).await.unwrap();
    let mut nodes = Vec::new();
    for i in 0..2 {
        let b = common::bookie(&tmp.path().join(format!("b{i}"))).await;
        meta.register_bookie(
            &session,
            &BookieInfo {
                bookie_id: BookieId(format!("reg-{i}")),
                address: b.grpc_addr.to_string(),
                free_space_bytes: 0,
                total_space_bytes: 0,
                rack: None,
                read_only: false,
                version: "test".into(),
            },
        )
        .await
        .unwrap();
        nodes.push(b);
    }
    let source = Arc::new(RegisteredBookies::new(meta.clone()));
    let storage = BookieLedgerStorage::new(meta, source, quorum(2, 2, 2), "t");
    let w = storage.create(CreateOptions::default()).await.unwrap();
    for i in 0..5u32 {
        w.add(Bytes::from(format!("r{i}"))).await.unwrap();
    }
    assert_eq!(
        storage
            .read(w.ledger_id(), EntryId(4), EntryId(4))
            .await
            .unwrap()[0],
        Bytes::from("r4")
    );
    let too_big = BookieLedgerStorage::new(
        MetaClient::new(store.clone(), Paths::default()),
        Arc::new(RegisteredBookies::new(MetaClient::new(
            store.clone(),
            Paths::default(),
        ))),
        quorum(3, 2, 2),
        "t",
    );
    assert!(matches!(
        too_big.create(CreateOptions::default()).await.err(),
        Some(StorageError::NotEnoughBookies(_))
    ));
    for n in nodes {
        n.shutdown().await;
    }
}
