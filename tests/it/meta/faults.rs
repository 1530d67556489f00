//! etcd fault tests: SIGKILL with sessions and watches open, restart from the same data dir, and
//! a 3-node cluster losing the member the client talks to.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use strata_meta::{
    Bytes, EphemeralOptions, EventKind, Expected, MetaError, MetadataStore, WatchEvent,
};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

use super::{connect, put_absent_ephemeral};
use crate::harness::etcd::EtcdCluster;

const TTL: Duration = Duration::from_secs(3);

fn key(i: u64) -> String {
    format!("/f/w/{i:06}")
}

/// Writes keys `0..n` (each created once), retrying through outages. Publishes progress.
/// `strict`: any error surfaced to the caller fails the test (no interruption allowed).
fn spawn_writer(
    store: Arc<dyn MetadataStore>,
    n: u64,
    strict: bool,
) -> (tokio::task::JoinHandle<u64>, watch::Receiver<u64>) {
    let (tx, rx) = watch::channel(0);
    let h = tokio::spawn(async move {
        let mut errors = 0;
        for i in 0..n {
            let value = Bytes::from(format!("value-{i}"));
            loop {
                match store.put(&key(i), value.clone(), Expected::Absent).await {
                    Ok(_) => break,
                    Err(e) if e.is_retryable() && !strict => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) if e.is_conflict() && !strict => {
                        // An attempt that timed out was applied after all.
                        let cur = store.get(&key(i)).await.unwrap().unwrap();
                        assert_eq!(cur.value, value);
                        break;
                    }
                    Err(e) => panic!("write {i} failed: {e}"),
                }
            }
            tx.send_replace(i + 1);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        errors
    });
    (h, rx)
}

/// Collects `n` events from a watch on `/f/w/`.
fn spawn_watcher(
    mut w: strata_meta::WatchStream,
    n: usize,
) -> tokio::task::JoinHandle<Vec<WatchEvent>> {
    tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < n {
            match w.next().await {
                Some(Ok(ev)) => got.push(ev),
                Some(Err(e)) => panic!("watch failed: {e}"),
                None => panic!("watch ended"),
            }
        }
        got
    })
}

fn check_events(events: &[WatchEvent], n: u64) {
    assert_eq!(events.len() as u64, n);
    let mut seen = BTreeSet::new();
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev.kind, EventKind::Create, "event {i}: {ev:?}");
        assert_eq!(ev.key, key(i as u64), "events in order, none missed");
        assert_eq!(ev.value, Bytes::from(format!("value-{i}")));
        assert!(seen.insert(ev.revision), "duplicate revision");
    }
    assert!(events.windows(2).all(|w| w[0].revision < w[1].revision));
}

async fn wait_progress(rx: &mut watch::Receiver<u64>, at_least: u64) {
    timeout(Duration::from_secs(30), rx.wait_for(|v| *v >= at_least))
        .await
        .expect("writer progress")
        .expect("writer alive");
}

/// etcd SIGKILLed: the session-loss notification fires within the TTL; restarted from the same
/// data dir: the watch resumes with no missed or repeated event, and ephemeral keys behave as
/// documented (the lost session's keys go away, `reestablish_session` re-creates only the
/// marked ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_and_restarted() {
    timeout(Duration::from_secs(90), async {
        let mut etcd = EtcdCluster::start(1);
        let store: Arc<dyn MetadataStore> = Arc::new(connect(etcd.endpoints()).await);
        let session = store.create_session(TTL).await.unwrap();
        put_absent_ephemeral(
            &*store,
            &session,
            "/f/eph/keep",
            "k",
            EphemeralOptions::recreate(),
        )
        .await;
        put_absent_ephemeral(
            &*store,
            &session,
            "/f/eph/drop",
            "d",
            EphemeralOptions::default(),
        )
        .await;

        const N: u64 = 200;
        let w = store.watch("/f/w/", None).await.unwrap();
        let watcher = spawn_watcher(w, N as usize);
        let (writer, mut progress) = spawn_writer(store.clone(), N, false);
        wait_progress(&mut progress, 50).await;

        etcd.kill(0);
        let killed = Instant::now();
        timeout(Duration::from_secs(10), session.lost())
            .await
            .expect("session loss notified");
        let after = killed.elapsed();
        println!("session loss notified {after:?} after SIGKILL (ttl {TTL:?})");
        assert!(
            after < TTL,
            "loss must be notified within the TTL, took {after:?}"
        );
        assert!(matches!(
            store
                .put_ephemeral(
                    &session,
                    "/f/eph/x",
                    Bytes::from("x"),
                    Expected::Any,
                    EphemeralOptions::default()
                )
                .await,
            Err(MetaError::SessionLost(_))
        ));

        // Stay down longer than the TTL, then come back with the same data dir.
        tokio::time::sleep_until(killed + TTL + Duration::from_millis(500)).await;
        etcd.restart(0);

        let errors = timeout(Duration::from_secs(60), writer)
            .await
            .unwrap()
            .unwrap();
        println!("writer saw {errors} retryable errors during the outage");
        let events = timeout(Duration::from_secs(30), watcher)
            .await
            .unwrap()
            .unwrap();
        check_events(&events, N);

        // Documented: a lost session stays lost; re-establishing re-creates only marked keys.
        let r = store.reestablish_session(&session).await.unwrap();
        assert_eq!(r.recreated, ["/f/eph/keep"]);
        assert_eq!(r.dropped, ["/f/eph/drop"]);
        let keep = store.get("/f/eph/keep").await.unwrap().unwrap();
        assert_eq!(keep.stat.session, Some(r.session.id()));
        assert!(store.get("/f/eph/drop").await.unwrap().is_none());

        // The new session is kept alive normally.
        tokio::time::sleep(TTL * 2).await;
        assert!(!r.session.is_lost());
        assert!(store.get("/f/eph/keep").await.unwrap().is_some());
        store.close_session(&r.session).await.unwrap();
        assert!(store.get("/f/eph/keep").await.unwrap().is_none());
    })
    .await
    .expect("test timed out");
}

/// An unreachable etcd longer than the TTL ends the session on the server too: the ephemeral
/// keys of a session that is not re-established are gone once etcd is back and the TTL ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_session_keys_expire_after_restart() {
    timeout(Duration::from_secs(60), async {
        let mut etcd = EtcdCluster::start(1);
        let store: Arc<dyn MetadataStore> = Arc::new(connect(etcd.endpoints()).await);
        let session = store.create_session(TTL).await.unwrap();
        put_absent_ephemeral(
            &*store,
            &session,
            "/f/eph/a",
            "a",
            EphemeralOptions::recreate(),
        )
        .await;
        let rev = store.current_revision().await.unwrap();
        etcd.kill(0);
        timeout(Duration::from_secs(10), session.lost())
            .await
            .expect("session loss notified");
        etcd.restart(0);
        // etcd renews leases when it elects a leader, then expires the one nobody renews.
        let mut w = store.watch("/f/eph/", Some(rev + 1)).await.unwrap();
        let ev = timeout(TTL * 3, w.next())
            .await
            .expect("delete within ttl")
            .unwrap()
            .unwrap();
        assert_eq!((ev.kind, ev.key.as_str()), (EventKind::Delete, "/f/eph/a"));
        assert!(store.get("/f/eph/a").await.unwrap().is_none());
    })
    .await
    .expect("test timed out");
}

/// 3-node cluster: the member the client talks to is SIGKILLed (and restarted after more than
/// the TTL), then the Raft leader is SIGKILLed, while a session, an ephemeral key, a watch and a
/// writer are active: no call fails, no event is missed, the session survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_member_killed() {
    timeout(Duration::from_secs(120), async {
        let mut etcd = EtcdCluster::start(3);
        let client = connect(etcd.endpoints()).await;
        assert_eq!(client.preferred_endpoint(), etcd.endpoint(0));
        let store: Arc<dyn MetadataStore> = Arc::new(client.clone());
        let session = store.create_session(TTL).await.unwrap();
        put_absent_ephemeral(
            &*store,
            &session,
            "/f/eph/reg",
            "r",
            EphemeralOptions::recreate(),
        )
        .await;

        const N: u64 = 400;
        let w = store.watch("/f/w/", None).await.unwrap();
        let watcher = spawn_watcher(w, N as usize);
        let (writer, mut progress) = spawn_writer(store.clone(), N, true);
        wait_progress(&mut progress, 50).await;
        // 1. The member the client talks to dies.
        etcd.kill(0);
        wait_progress(&mut progress, 150).await;
        assert_ne!(client.preferred_endpoint(), etcd.endpoint(0));
        // Longer than the TTL with the member down.
        tokio::time::sleep(TTL + Duration::from_secs(1)).await;
        etcd.spawn(0);
        etcd.wait_healthy(0, Duration::from_secs(30));
        wait_progress(&mut progress, 220).await;
        // 2. The Raft leader dies (an election happens under load).
        let status = client.endpoint_status().await;
        let leader = status
            .iter()
            .position(|s| s.is_leader)
            .expect("a leader among the endpoints");
        println!("killing leader {}", status[leader].endpoint);
        etcd.kill(leader);
        wait_progress(&mut progress, 320).await;
        etcd.spawn(leader);
        etcd.wait_healthy(leader, Duration::from_secs(30));

        timeout(Duration::from_secs(60), writer)
            .await
            .unwrap()
            .unwrap();
        let events = timeout(Duration::from_secs(30), watcher)
            .await
            .unwrap()
            .unwrap();
        check_events(&events, N);
        assert!(!session.is_lost(), "session must survive one member down");
        let reg = store.get("/f/eph/reg").await.unwrap().unwrap();
        assert_eq!(reg.stat.session, Some(session.id()));
        store.close_session(&session).await.unwrap();
    })
    .await
    .expect("test timed out");
}

/// Dropping every handle of a session stops its keep-alive (its keys expire after the TTL);
/// closing the store revokes the leases of open sessions at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_session_expires_and_close_revokes() {
    timeout(Duration::from_secs(60), async {
        let etcd = EtcdCluster::start(1);
        let store: Arc<dyn MetadataStore> = Arc::new(connect(etcd.endpoints()).await);
        let s = store.create_session(TTL).await.unwrap();
        put_absent_ephemeral(&*store, &s, "/d/a", "a", EphemeralOptions::default()).await;
        let rev = store.current_revision().await.unwrap();
        drop(s);
        let mut w = store.watch("/d/", Some(rev + 1)).await.unwrap();
        let ev = timeout(TTL * 3, w.next())
            .await
            .expect("expiry within ttl")
            .unwrap()
            .unwrap();
        assert_eq!((ev.kind, ev.key.as_str()), (EventKind::Delete, "/d/a"));

        let s2 = store.create_session(TTL).await.unwrap();
        put_absent_ephemeral(&*store, &s2, "/d/b", "b", EphemeralOptions::default()).await;
        store.close().await;
        assert!(s2.is_lost());
        // /d/b's create (and maybe the revoke's delete), then `Closed`.
        loop {
            match w.next().await {
                Some(Ok(ev)) => assert_eq!(ev.key, "/d/b"),
                Some(Err(MetaError::Closed)) => break,
                other => panic!("expected Closed, got {other:?}"),
            }
        }
        let other = connect(etcd.endpoints()).await;
        assert!(
            other.get("/d/b").await.unwrap().is_none(),
            "close revoked the lease"
        );
        assert!(matches!(store.get("/d/b").await, Err(MetaError::Closed)));
    })
    .await
    .expect("test timed out");
}

/// A watch from a compacted revision fails with a clear error naming the oldest revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_compacted_revision_fails_clearly() {
    timeout(Duration::from_secs(30), async {
        let etcd = EtcdCluster::start(1);
        let client = connect(etcd.endpoints()).await;
        let first = client
            .put("/cmp/a", Bytes::from("1"), Expected::Absent)
            .await
            .unwrap();
        let last = client
            .put("/cmp/a", Bytes::from("2"), Expected::Any)
            .await
            .unwrap();
        client.compact(last.mod_revision).await.unwrap();
        let mut w = client
            .watch("/cmp/", Some(first.mod_revision))
            .await
            .unwrap();
        match timeout(Duration::from_secs(10), w.next()).await.unwrap() {
            Some(Err(MetaError::Compacted { requested, oldest })) => {
                assert_eq!(requested, first.mod_revision);
                assert_eq!(oldest, last.mod_revision);
            }
            other => panic!("expected Compacted, got {other:?}"),
        }
        assert!(w.next().await.is_none());
        // From the compaction point on, it works.
        let mut w = client
            .watch("/cmp/", Some(last.mod_revision))
            .await
            .unwrap();
        let ev = timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ev.value, Bytes::from("2"));
    })
    .await
    .expect("test timed out");
}

/// An idle watch keeps its resume point current through progress notifications: after etcd
/// compacted past the revision it started at and restarted (forcing a reconnect), it resumes
/// without a `Compacted` error and sees the next change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watch_survives_compaction_and_restart() {
    timeout(Duration::from_secs(60), async {
        let mut etcd = EtcdCluster::start(1);
        let client = connect(etcd.endpoints()).await;
        let mut w = client.watch("/idle/", None).await.unwrap();
        for i in 0..20 {
            client
                .put(&format!("/other/{i}"), Bytes::from("x"), Expected::Any)
                .await
                .unwrap();
        }
        // A few periodic progress notifications (the harness's etcd sends them every 300 ms).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let rev = client.current_revision().await.unwrap();
        client.compact(rev).await.unwrap();
        etcd.restart(0);
        client
            .put("/idle/x", Bytes::from("1"), Expected::Absent)
            .await
            .unwrap();
        let ev = timeout(Duration::from_secs(10), w.next())
            .await
            .expect("event after reconnect")
            .unwrap()
            .unwrap();
        assert_eq!((ev.kind, ev.key.as_str()), (EventKind::Create, "/idle/x"));
    })
    .await
    .expect("test timed out");
}

/// A session created while etcd is down (the grant is retried until etcd is back, for longer
/// than the TTL) is alive when it is handed out: its loss budget counts from the attempt that
/// succeeded, not from the start of the retries (else it was declared lost at once, and a broker
/// gave its bundles up right after an etcd outage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_created_across_an_outage_is_not_lost_at_once() {
    timeout(Duration::from_secs(60), async {
        let mut etcd = EtcdCluster::start(1);
        let mut o = super::options(etcd.endpoints());
        o.request_timeout = Duration::from_secs(30);
        let store: Arc<dyn MetadataStore> =
            Arc::new(strata_meta::EtcdStore::connect(o).await.unwrap());
        etcd.kill(0);
        let s2 = store.clone();
        let creating = tokio::spawn(async move { s2.create_session(TTL).await });
        tokio::time::sleep(TTL * 2).await;
        etcd.restart(0);
        let session = timeout(Duration::from_secs(25), creating)
            .await
            .expect("session created once etcd is back")
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!session.is_lost(), "a fresh session was declared lost");
        put_absent_ephemeral(
            &*store,
            &session,
            "/f/eph/after-outage",
            "x",
            EphemeralOptions::default(),
        )
        .await;
        // and it stays alive on its keep-alives
        tokio::time::sleep(TTL * 2).await;
        assert!(
            !session.is_lost(),
            "the session did not survive its keep-alives"
        );
    })
    .await
    .expect("test timed out");
}
