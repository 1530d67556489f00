//! Two (or three) brokers over one embedded metadata store and one in-memory ledger storage:
//! lookup decisions, takeover with fencing, session re-establish, balancing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_meta::model::{MetaClient, Paths};
use strata_meta::{LocalStore, MetadataStore};

use super::*;
use crate::config::BrokerConfig;
use crate::storage::MemStorage;

struct Node {
    svc: Arc<BrokerService>,
    own: Arc<ClusterOwnership>,
}

async fn node(
    store: &Arc<dyn MetadataStore>,
    storage: &MemStorage,
    port: u16,
    opts: ClusterOptions,
) -> Node {
    let meta = MetaClient::new(store.clone(), Paths::default());
    let session = ClusterOwnership::open_session(store, &opts).await.unwrap();
    let cfg = BrokerConfig {
        broker_port: port,
        http_port: port + 1000,
        ..Default::default()
    };
    let (svc, own) = BrokerService::builder(cfg, Arc::new(storage.clone()), meta.clone())
        .build_with(|svc| ClusterOwnership::new(store.clone(), meta, opts, session, svc));
    svc.create_namespace("public", "default").await.unwrap();
    own.start(&svc).await.unwrap();
    Node { svc, own }
}

/// Nothing listens on the test brokers' ports: owner probing is off unless a test wants it.
fn quiet() -> ClusterOptions {
    ClusterOptions {
        balance_interval: Duration::from_secs(3600),
        probe_owners: false,
        ..Default::default()
    }
}

async fn store() -> (tempfile::TempDir, Arc<dyn MetadataStore>) {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path().join("m.redb")).await.unwrap();
    (dir, Arc::new(s))
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A topic of `public/default` in a bundle other than those of `avoid`.
async fn topic_in_new_bundle(n: &Node, avoid: &[NsBundle]) -> (TopicName, NsBundle) {
    for i in 0..1000 {
        let t = TopicName::parse(&format!("persistent://public/default/t{i}")).unwrap();
        let b = n.own.bundle_for(&t).await.unwrap();
        if !avoid.contains(&b) {
            return (t, b);
        }
    }
    unreachable!()
}

#[tokio::test]
async fn lookups_go_through_the_leader_to_the_least_loaded_broker() {
    let (_d, store) = store().await;
    let storage = MemStorage::default();
    let a = node(&store, &storage, 6651, quiet()).await;
    eventually("a leads", async || a.own.is_leader()).await;
    let b = node(&store, &storage, 6652, quiet()).await;
    let a_url = a.svc.broker_url();
    let b_url = b.svc.broker_url();

    let (t1, b1) = topic_in_new_bundle(&a, &[]).await;
    // A non-leader sends an unowned bundle's lookup to the leader (non-authoritative).
    assert_eq!(
        b.svc.lookup(&t1, false).await.unwrap(),
        Owner::Leader {
            broker_url: a_url.clone(),
            http_url: a.svc.http_url(),
            broker_url_tls: None,
        }
    );
    // The leader picks the least loaded broker: a tie, the smallest id (A itself).
    assert_eq!(a.svc.lookup(&t1, false).await.unwrap(), Owner::Local);
    assert_eq!(a.own.owned_bundles(), vec![b1.clone()]);
    // Owned: everybody answers with the owner (authoritative).
    let remote_a = Owner::Remote {
        broker_url: a_url.clone(),
        http_url: a.svc.http_url(),
        broker_url_tls: None,
    };
    assert_eq!(b.svc.lookup(&t1, false).await.unwrap(), remote_a);
    assert_eq!(b.svc.lookup(&t1, true).await.unwrap(), remote_a);

    // Next unowned bundle: B has fewer bundles, the leader redirects there...
    let (t2, b2) = topic_in_new_bundle(&a, std::slice::from_ref(&b1)).await;
    let to_b = Owner::Remote {
        broker_url: b_url.clone(),
        http_url: b.svc.http_url(),
        broker_url_tls: None,
    };
    assert_eq!(a.svc.lookup(&t2, false).await.unwrap(), to_b);
    // ... and B acquires it on the authoritative lookup.
    assert_eq!(b.svc.lookup(&t2, true).await.unwrap(), Owner::Local);
    assert_eq!(b.own.owned_bundles(), vec![b2.clone()]);
    assert_eq!(a.svc.lookup(&t2, false).await.unwrap(), to_b);

    // Producers/consumers are refused by a broker that does not own the topic.
    match b.svc.topic(&t1, true).await {
        Err(BrokerError::OwnedElsewhere { broker_url, .. }) => assert_eq!(broker_url, a_url),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("B loaded a topic A owns"),
    }
    let topic = a.svc.topic(&t1, true).await.unwrap();
    topic
        .ledger()
        .append(Bytes::from_static(b"x"))
        .await
        .unwrap();

    // Unloading the bundle on its owner frees it: B takes it on the next producer.
    assert_eq!(
        b.svc
            .unload_bundle("public", "default", &b1.range.to_string())
            .await
            .unwrap(),
        remote_a
    );
    assert_eq!(
        a.svc
            .unload_bundle("public", "default", &b1.range.to_string())
            .await
            .unwrap(),
        Owner::Local
    );
    assert!(a.own.owned_bundles().is_empty());
    assert!(a.svc.loaded_topics().await.is_empty());
    let moved = b.svc.topic(&t1, true).await.unwrap();
    let p = moved
        .ledger()
        .append(Bytes::from_static(b"y"))
        .await
        .unwrap();
    assert!(p.entry >= 0);
    assert_eq!(
        moved
            .ledger()
            .entries_after(crate::position::Position::EARLIEST),
        2
    );

    // Graceful shutdown of the leader: B becomes leader and gets A's work.
    a.own.shutdown().await;
    eventually("b leads", async || b.own.is_leader()).await;
    assert_eq!(b.svc.lookup(&t2, false).await.unwrap(), Owner::Local);
    b.own.shutdown().await;
    assert!(
        store
            .scan("/strata/bundle-owners/")
            .await
            .unwrap()
            .entries
            .is_empty()
    );
}

#[tokio::test]
async fn a_fenced_owner_unloads_the_topic_and_releases_the_bundle() {
    let (_d, store) = store().await;
    let storage = MemStorage::default();
    let a = node(&store, &storage, 6651, quiet()).await;
    let b = node(&store, &storage, 6652, quiet()).await;
    let (t, bundle) = topic_in_new_bundle(&a, &[]).await;
    let ta = a.svc.topic(&t, true).await.unwrap();
    ta.subscribe("sub", true, crate::subscription::InitialPosition::Earliest)
        .await
        .unwrap();
    let mut last_a = crate::position::Position::EARLIEST;
    for i in 0..5u8 {
        last_a = ta.ledger().append(Bytes::from(vec![i])).await.unwrap();
    }
    // A's lease "expires" on the server while A does not know yet (split brain): its owner key
    // disappears and B takes the bundle; opening the topic on B fences A's ledger.
    let key = a.own.owner_key(&bundle);
    assert!(
        store
            .delete(&key, strata_meta::Expected::Any)
            .await
            .unwrap()
    );
    let tb = b.svc.topic(&t, true).await.unwrap();
    assert_eq!(b.own.owned_bundles(), vec![bundle.clone()]);
    let cursor_key =
        crate::cursor_store::cursor_key(b.svc.metadata(), &t.persistence_name(), "sub");
    let cursor_before = store.get(&cursor_key).await.unwrap().unwrap().stat;
    // A's next add is fenced: it fails, and A unloads the topic and gives the bundle up
    // promptly (no cursor flush of a topic it no longer owns).
    assert!(
        ta.ledger()
            .append(Bytes::from_static(b"late"))
            .await
            .is_err()
    );
    tokio::time::timeout(Duration::from_secs(3), async {
        while !a.own.owned_bundles().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a releases the bundle within 3 s");
    assert_eq!(
        store.get(&cursor_key).await.unwrap().unwrap().stat,
        cursor_before,
        "the old owner must not write the cursor after the takeover"
    );
    eventually("a unloads the topic", async || {
        a.svc.loaded_topics().await.is_empty()
    })
    .await;
    // B still owns it (A must not delete B's key), and A now redirects to B.
    assert_eq!(b.own.owned_bundles(), vec![bundle.clone()]);
    let (o, _) = b.own.read_owner(&bundle).await.unwrap().unwrap();
    assert_eq!(o.broker_id, b.own.me().unwrap().broker_id);
    assert!(matches!(
        a.svc.lookup(&t, true).await.unwrap(),
        Owner::Remote { .. }
    ));
    // Nothing A acknowledged is lost, nothing after the fence is visible, ids move forward.
    assert_eq!(tb.ledger().last_confirmed(), last_a);
    let next = tb.ledger().append(Bytes::from_static(b"b")).await.unwrap();
    assert!(next > last_a);
    let mut p = crate::position::Position::EARLIEST;
    let mut seen = Vec::new();
    while let Some(n) = tb.ledger().next_position(p) {
        seen.push(tb.ledger().read_one(n).await.unwrap().unwrap());
        p = n;
    }
    assert_eq!(
        seen,
        vec![
            Bytes::from_static(&[0]),
            Bytes::from_static(&[1]),
            Bytes::from_static(&[2]),
            Bytes::from_static(&[3]),
            Bytes::from_static(&[4]),
            Bytes::from_static(b"b"),
        ]
    );
}

#[tokio::test]
async fn session_loss_keeps_serving_and_reclaims_or_drops_bundles() {
    let (_d, store) = store().await;
    let storage = MemStorage::default();
    let a = node(&store, &storage, 6651, quiet()).await;
    let b = node(&store, &storage, 6652, quiet()).await;
    let (t1, b1) = topic_in_new_bundle(&a, &[]).await;
    let (t2, b2) = topic_in_new_bundle(&a, std::slice::from_ref(&b1)).await;
    let topic1 = a.svc.topic(&t1, true).await.unwrap();
    a.svc.topic(&t2, true).await.unwrap();
    assert_eq!(a.own.owned_bundles().len(), 2);

    // The session is lost (the store ended it): A re-establishes it and re-creates its owner
    // keys; the open topic kept working throughout.
    let old = a.own.session();
    store.close_session(&old).await.unwrap();
    eventually("a has a new session holding both bundles", async || {
        let s = a.own.session();
        if s.id() == old.id() || !a.svc.is_ready() {
            return false;
        }
        let mut n = 0;
        for bb in [&b1, &b2] {
            if let Ok(Some((_, st))) = a.own.read_owner(bb).await
                && st.session == Some(s.id())
            {
                n += 1;
            }
        }
        n == 2
    })
    .await;
    topic1
        .ledger()
        .append(Bytes::from_static(b"z"))
        .await
        .unwrap();
    assert!(
        MetaClient::new(store.clone(), Paths::default())
            .brokers()
            .await
            .unwrap()
            .iter()
            .any(|x| x.broker_id == a.own.me().unwrap().broker_id),
        "registration re-created"
    );

    // While A's session is away, B took one bundle: when A comes back it drops that one.
    let key = a.own.owner_key(&b2);
    store
        .delete(&key, strata_meta::Expected::Any)
        .await
        .unwrap();
    assert_eq!(b.svc.lookup(&t2, true).await.unwrap(), Owner::Local);
    a.own.reclaim_bundles().await;
    assert_eq!(a.own.owned_bundles(), vec![b1.clone()]);
    assert_eq!(a.svc.loaded_topics().await.len(), 1);
    assert!(matches!(
        a.svc.lookup(&t2, false).await.unwrap(),
        Owner::Remote { .. }
    ));
}

#[tokio::test]
async fn the_leader_moves_a_bundle_to_an_idle_broker() {
    let (_d, store) = store().await;
    let storage = MemStorage::default();
    let fast = ClusterOptions {
        balance_interval: Duration::from_millis(100),
        probe_owners: false,
        ..Default::default()
    };
    let a = node(&store, &storage, 6651, fast.clone()).await;
    eventually("a leads", async || a.own.is_leader()).await;
    let mut avoid = Vec::new();
    for _ in 0..3 {
        let (t, bb) = topic_in_new_bundle(&a, &avoid).await;
        a.svc.topic(&t, true).await.unwrap();
        avoid.push(bb);
    }
    assert_eq!(a.own.owned_bundles().len(), 3);
    let b = node(&store, &storage, 6652, fast).await;
    eventually("a gives one bundle up", async || {
        a.own.owned_bundles().len() == 2
    })
    .await;
    // ... and only one, though nobody picked it up yet (the move counts on B meanwhile).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(a.own.owned_bundles().len(), 2);
    // Its topics were closed with B as the assigned broker; B gets the bundle when asked.
    let gone = avoid
        .iter()
        .find(|x| !a.own.owned_bundles().contains(x))
        .unwrap()
        .clone();
    let (t, _) = {
        let mut found = None;
        for i in 0..1000 {
            let t = TopicName::parse(&format!("persistent://public/default/t{i}")).unwrap();
            if a.own.bundle_for(&t).await.unwrap() == gone {
                found = Some((t, ()));
                break;
            }
        }
        found.unwrap()
    };
    assert_eq!(*b.svc.topic(&t, true).await.unwrap().name(), t);
    assert_eq!(b.own.owned_bundles(), vec![gone]);
    a.own.shutdown().await;
    b.own.shutdown().await;
}

#[tokio::test]
async fn a_bundle_whose_owner_refuses_connections_is_taken_over_at_once() {
    let (_d, store) = store().await;
    let storage = MemStorage::default();
    // A "died": nothing listens on its port, but its lease (and owner key) is still there.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = node(&store, &storage, free, quiet()).await;
    let probing = ClusterOptions {
        probe_owners: true,
        ..quiet()
    };
    let b = node(&store, &storage, free.wrapping_add(1), probing).await;
    let (t, bundle) = topic_in_new_bundle(&a, &[]).await;
    a.svc.topic(&t, true).await.unwrap();
    assert_eq!(b.svc.lookup(&t, true).await.unwrap(), Owner::Local);
    assert_eq!(b.own.owned_bundles(), vec![bundle]);
    b.svc.topic(&t, true).await.unwrap();
    // A, still running here, gets fenced on its next add and gives the bundle up.
    let ta = a.svc.loaded_topics().await;
    if let Some(ta) = ta.first() {
        assert!(ta.ledger().append(Bytes::from_static(b"x")).await.is_err());
    }
    eventually("a gives up", async || a.own.owned_bundles().is_empty()).await;
}
