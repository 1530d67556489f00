//! The conformance suite every [`MetadataStore`] must pass. Each case gets a fresh, empty store.
//! [`crate::conformance_tests!`] expands to one `#[tokio::test]` per case, so the same suite runs
//! against [`crate::LocalStore`] (unit tests of this crate) and a real etcd (`tests/it/meta`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::election;
use crate::error::MetaError;
use crate::model::{LedgerIdAllocator, MetaClient, Paths, TenantInfo};
use crate::retry::{Change, RetryPolicy, update};
use crate::session::{EphemeralOptions, Session};
use crate::store::{EventKind, Expected, MetadataStore, Stat, WatchStream};

/// A store under test.
pub type Store = Arc<dyn MetadataStore>;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Creates `key` (absent before) as an ephemeral of `session`; `recreate`: re-created on
/// re-establish.
async fn put_new_ephemeral(
    s: &Store,
    session: &Session,
    key: &str,
    value: &str,
    recreate: bool,
) -> Stat {
    let opts = EphemeralOptions {
        recreate_on_reestablish: recreate,
    };
    s.put_ephemeral(session, key, b(value), Expected::Absent, opts)
        .await
        .unwrap()
}

/// The value of the current holder of `/el/leader` (there must be one).
async fn leader_value(s: &Store) -> Bytes {
    let holder = election::holder(s.as_ref(), "/el/leader").await.unwrap();
    holder.unwrap().value
}

const TTL: Duration = Duration::from_secs(3);

async fn next_event(w: &mut WatchStream) -> crate::WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("watch event within 10s")
        .expect("watch stream open")
        .expect("watch event ok")
}

/// Every case, by name (for the macro).
#[macro_export]
macro_rules! conformance_tests {
    ($modname:ident, $factory:expr) => {
        #[cfg(test)]
        mod $modname {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_tests!(@cases $factory;
                get_put_versions,
                delete_semantics,
                invalid_keys_rejected,
                scan_and_children,
                delete_prefix_works,
                watch_create_modify_delete,
                watch_replays_from_revision,
                scan_then_watch_has_no_gap,
                watch_resumes_from_next_revision,
                ephemeral_keys_end_with_session,
                put_keeps_ephemeral_binding,
                lost_session_rejects_ephemeral_puts,
                reestablish_recreates_only_marked_keys,
                cas_race_has_no_lost_update,
                election_is_exclusive,
                ledger_id_allocator_is_unique,
                typed_update_roundtrip
            );
        }
    };
    (@cases $factory:expr; $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (store, _guard) = ($factory)().await;
            tokio::time::timeout(
                std::time::Duration::from_secs(60),
                $crate::conformance::$case(store),
            )
            .await
            .expect("conformance case timed out");
        }
    )*};
}

pub async fn get_put_versions(s: Store) {
    assert!(s.get("/a").await.unwrap().is_none());
    let v1 = s.put("/a", b("1"), Expected::Absent).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.create_revision, v1.mod_revision);
    assert_eq!(v1.session, None);
    let got = s.get("/a").await.unwrap().unwrap();
    assert_eq!(got.value, b("1"));
    assert_eq!(got.stat, v1);

    let v2 = s.put("/a", b("2"), Expected::Version(1)).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.create_revision, v1.create_revision);
    assert!(v2.mod_revision > v1.mod_revision);

    match s.put("/a", b("x"), Expected::Version(1)).await {
        Err(MetaError::BadVersion { actual, .. }) => assert_eq!(actual, Some(2)),
        other => panic!("expected conflict, got {other:?}"),
    }
    match s.put("/a", b("x"), Expected::Absent).await {
        Err(MetaError::BadVersion { actual, .. }) => assert_eq!(actual, Some(2)),
        other => panic!("expected conflict, got {other:?}"),
    }
    match s.put("/missing", b("x"), Expected::Version(1)).await {
        Err(e @ MetaError::BadVersion { actual: None, .. }) => {
            assert!(e.is_conflict() && !e.is_retryable())
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    let v3 = s.put("/a", b("3"), Expected::Any).await.unwrap();
    assert_eq!(v3.version, 3);
    let vn = s.put("/new", b("n"), Expected::Any).await.unwrap();
    assert_eq!(vn.version, 1);
    assert_eq!(s.get("/a").await.unwrap().unwrap().value, b("3"));
    assert!(s.current_revision().await.unwrap() >= vn.mod_revision);
}

pub async fn delete_semantics(s: Store) {
    assert!(!s.delete("/d", Expected::Any).await.unwrap());
    assert!(
        s.delete("/d", Expected::Version(1))
            .await
            .unwrap_err()
            .is_conflict()
    );
    let v1 = s.put("/d", b("x"), Expected::Absent).await.unwrap();
    assert!(
        s.delete("/d", Expected::Version(5))
            .await
            .unwrap_err()
            .is_conflict()
    );
    assert!(
        s.delete("/d", Expected::Absent)
            .await
            .unwrap_err()
            .is_conflict()
    );
    assert!(s.delete("/d", Expected::Version(1)).await.unwrap());
    assert!(s.get("/d").await.unwrap().is_none());
    let again = s.put("/d", b("y"), Expected::Absent).await.unwrap();
    assert_eq!(again.version, 1);
    assert!(again.create_revision > v1.create_revision);
    assert!(s.delete("/d", Expected::Any).await.unwrap());
}

pub async fn invalid_keys_rejected(s: Store) {
    for k in ["", "a", "/"] {
        assert!(
            matches!(
                s.put(k, b("x"), Expected::Any).await,
                Err(MetaError::InvalidArgument(_))
            ),
            "key {k:?}"
        );
        assert!(matches!(s.get(k).await, Err(MetaError::InvalidArgument(_))));
    }
}

pub async fn scan_and_children(s: Store) {
    for k in ["/p/b/y/z", "/p/a", "/p/a/x", "/pz", "/p/c"] {
        s.put(k, b(k), Expected::Absent).await.unwrap();
    }
    let scan = s.scan("/p/").await.unwrap();
    let keys: Vec<&str> = scan.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["/p/a", "/p/a/x", "/p/b/y/z", "/p/c"]);
    assert_eq!(scan.entries[1].value.value, b("/p/a/x"));
    assert_eq!(scan.revision, s.current_revision().await.unwrap());
    assert_eq!(s.children("/p").await.unwrap(), ["a", "b", "c"]);
    assert_eq!(s.children("/p/").await.unwrap(), ["a", "b", "c"]);
    assert_eq!(s.children("/p/b").await.unwrap(), ["y"]);
    assert!(s.children("/nothing").await.unwrap().is_empty());
    let (keys, rev) = s.scan_keys("/p/a").await.unwrap();
    assert_eq!(keys, ["/p/a", "/p/a/x"]);
    assert_eq!(rev, scan.revision);
    // More keys than one page of a backend scan.
    for i in 0..700 {
        s.put(&format!("/many/{i:04}"), b("v"), Expected::Absent)
            .await
            .unwrap();
    }
    let scan = s.scan("/many/").await.unwrap();
    assert_eq!(scan.entries.len(), 700);
    assert!(scan.entries.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(s.children("/many").await.unwrap().len(), 700);
}

pub async fn delete_prefix_works(s: Store) {
    for k in ["/x/1", "/x/2/3", "/xy"] {
        s.put(k, b("v"), Expected::Absent).await.unwrap();
    }
    assert_eq!(s.delete_prefix("/x/").await.unwrap(), 2);
    assert!(s.scan("/x/").await.unwrap().entries.is_empty());
    assert!(s.get("/xy").await.unwrap().is_some());
}

pub async fn watch_create_modify_delete(s: Store) {
    let mut w = s.watch("/w/", None).await.unwrap();
    let c = s.put("/w/k", b("1"), Expected::Absent).await.unwrap();
    s.put("/other", b("1"), Expected::Absent).await.unwrap();
    let m = s.put("/w/k", b("2"), Expected::Version(1)).await.unwrap();
    s.delete("/w/k", Expected::Any).await.unwrap();

    let e1 = next_event(&mut w).await;
    assert_eq!(
        (e1.kind, e1.key.as_str(), e1.value.clone(), e1.version),
        (EventKind::Create, "/w/k", b("1"), 1)
    );
    assert_eq!(e1.revision, c.mod_revision);
    let e2 = next_event(&mut w).await;
    assert_eq!(
        (e2.kind, e2.value.clone(), e2.version),
        (EventKind::Modify, b("2"), 2)
    );
    assert_eq!(e2.revision, m.mod_revision);
    let e3 = next_event(&mut w).await;
    assert_eq!(e3.kind, EventKind::Delete);
    assert_eq!(e3.key, "/w/k");
    assert!(e3.revision > e2.revision);
    assert_eq!(w.next_revision(), e3.revision + 1);
}

pub async fn watch_replays_from_revision(s: Store) {
    let first = s.put("/r/a", b("1"), Expected::Absent).await.unwrap();
    s.put("/r/b", b("2"), Expected::Absent).await.unwrap();
    s.put("/r/a", b("3"), Expected::Any).await.unwrap();
    let mut w = s.watch("/r/", Some(first.mod_revision)).await.unwrap();
    let got: Vec<(String, Bytes)> = [
        next_event(&mut w).await,
        next_event(&mut w).await,
        next_event(&mut w).await,
    ]
    .into_iter()
    .map(|e| (e.key, e.value))
    .collect();
    assert_eq!(
        got,
        [
            ("/r/a".to_owned(), b("1")),
            ("/r/b".to_owned(), b("2")),
            ("/r/a".to_owned(), b("3"))
        ]
    );
}

pub async fn scan_then_watch_has_no_gap(s: Store) {
    s.put("/g/1", b("1"), Expected::Absent).await.unwrap();
    let scan = s.scan("/g/").await.unwrap();
    s.put("/g/2", b("2"), Expected::Absent).await.unwrap();
    let mut w = s.watch("/g/", Some(scan.revision + 1)).await.unwrap();
    s.put("/g/3", b("3"), Expected::Absent).await.unwrap();
    assert_eq!(next_event(&mut w).await.key, "/g/2");
    assert_eq!(next_event(&mut w).await.key, "/g/3");
}

pub async fn watch_resumes_from_next_revision(s: Store) {
    let start = s.current_revision().await.unwrap() + 1;
    let mut w = s.watch("/res/", Some(start)).await.unwrap();
    for i in 0..4 {
        s.put(&format!("/res/{i}"), b("v"), Expected::Absent)
            .await
            .unwrap();
    }
    assert_eq!(next_event(&mut w).await.key, "/res/0");
    assert_eq!(next_event(&mut w).await.key, "/res/1");
    let resume = w.next_revision();
    drop(w);
    s.put("/res/4", b("v"), Expected::Absent).await.unwrap();
    let mut w = s.watch("/res/", Some(resume)).await.unwrap();
    for i in 2..5 {
        assert_eq!(next_event(&mut w).await.key, format!("/res/{i}"));
    }
}

pub async fn ephemeral_keys_end_with_session(s: Store) {
    let session = s.create_session(TTL).await.unwrap();
    assert!(!session.is_lost());
    let mut w = s.watch("/eph/", None).await.unwrap();
    let st = put_new_ephemeral(&s, &session, "/eph/a", "1", false).await;
    assert_eq!(st.session, Some(session.id()));
    assert_eq!(
        s.get("/eph/a").await.unwrap().unwrap().stat.session,
        Some(session.id())
    );
    assert_eq!(session.ephemeral_keys(), ["/eph/a"]);
    assert_eq!(next_event(&mut w).await.kind, EventKind::Create);
    let token = session.lost_token();
    s.close_session(&session).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), session.lost())
        .await
        .unwrap();
    assert!(token.is_cancelled());
    let del = next_event(&mut w).await;
    assert_eq!((del.kind, del.key.as_str()), (EventKind::Delete, "/eph/a"));
    assert!(s.get("/eph/a").await.unwrap().is_none());
}

pub async fn put_keeps_ephemeral_binding(s: Store) {
    let session = s.create_session(TTL).await.unwrap();
    put_new_ephemeral(&s, &session, "/kb/a", "1", false).await;
    let st = s.put("/kb/a", b("2"), Expected::Version(1)).await.unwrap();
    assert_eq!(st.session, Some(session.id()));
    let st = s.put("/kb/a", b("3"), Expected::Any).await.unwrap();
    assert_eq!(st.session, Some(session.id()));
    s.put("/kb/p", b("p"), Expected::Any).await.unwrap();
    s.close_session(&session).await.unwrap();
    assert!(s.get("/kb/a").await.unwrap().is_none());
    assert!(s.get("/kb/p").await.unwrap().is_some());
}

pub async fn lost_session_rejects_ephemeral_puts(s: Store) {
    let session = s.create_session(TTL).await.unwrap();
    s.close_session(&session).await.unwrap();
    let e = s
        .put_ephemeral(
            &session,
            "/l/a",
            b("1"),
            Expected::Any,
            EphemeralOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, MetaError::SessionLost(_)), "{e:?}");
    assert!(s.get("/l/a").await.unwrap().is_none());
}

pub async fn reestablish_recreates_only_marked_keys(s: Store) {
    let old = s.create_session(TTL).await.unwrap();
    let other = s.create_session(TTL).await.unwrap();
    put_new_ephemeral(&s, &old, "/re/keep", "k", true).await;
    put_new_ephemeral(&s, &old, "/re/drop", "d", false).await;
    put_new_ephemeral(&s, &old, "/re/gone", "g", true).await;
    put_new_ephemeral(&s, &old, "/re/taken", "t", true).await;
    // Someone else deleted one key and took another one over.
    s.delete("/re/gone", Expected::Any).await.unwrap();
    s.delete("/re/taken", Expected::Any).await.unwrap();
    put_new_ephemeral(&s, &other, "/re/taken", "o", false).await;

    let r = s.reestablish_session(&old).await.unwrap();
    assert!(old.is_lost());
    assert!(!r.session.is_lost());
    assert_ne!(r.session.id(), old.id());
    let mut recreated = r.recreated.clone();
    recreated.sort();
    assert_eq!(recreated, ["/re/gone", "/re/keep"]);
    assert_eq!(r.taken, ["/re/taken"]);
    assert_eq!(r.dropped, ["/re/drop"]);
    let keep = s.get("/re/keep").await.unwrap().unwrap();
    assert_eq!(
        (keep.value.clone(), keep.stat.session),
        (b("k"), Some(r.session.id()))
    );
    assert_eq!(
        s.get("/re/gone").await.unwrap().unwrap().stat.session,
        Some(r.session.id())
    );
    assert!(s.get("/re/drop").await.unwrap().is_none());
    let taken = s.get("/re/taken").await.unwrap().unwrap();
    assert_eq!(taken.stat.session, Some(other.id()));
    // The new session owns them now: closing it deletes them.
    s.close_session(&r.session).await.unwrap();
    assert!(s.get("/re/keep").await.unwrap().is_none());
    assert!(s.get("/re/taken").await.unwrap().is_some());
    s.close_session(&other).await.unwrap();
}

pub async fn cas_race_has_no_lost_update(s: Store) {
    const TASKS: u64 = 8;
    const EACH: u64 = 20;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..EACH {
                update(s.as_ref(), "/cas/counter", RetryPolicy::default(), |cur| {
                    let n: u64 = cur
                        .map(|v| std::str::from_utf8(&v.value).unwrap().parse().unwrap())
                        .unwrap_or(0);
                    Ok(Change::Put(b(&(n + 1).to_string())))
                })
                .await
                .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let v = s.get("/cas/counter").await.unwrap().unwrap();
    assert_eq!(
        std::str::from_utf8(&v.value).unwrap(),
        (TASKS * EACH).to_string()
    );
    assert_eq!(v.stat.version, TASKS * EACH);
}

pub async fn election_is_exclusive(s: Store) {
    let s1 = s.create_session(TTL).await.unwrap();
    let s2 = s.create_session(TTL).await.unwrap();
    let l1 = election::acquire(&s, &s1, "/el/leader", b("one"))
        .await
        .unwrap();
    assert!(
        election::try_acquire(&s, &s2, "/el/leader", b("two"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(leader_value(&s).await, b("one"));
    let waiter = {
        let (s, s2) = (s.clone(), s2.clone());
        tokio::spawn(async move { election::acquire(&s, &s2, "/el/leader", b("two")).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished());
    let t1 = l1.fencing_token();
    l1.resign().await.unwrap();
    let l2 = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(l2.fencing_token() > t1);
    assert_eq!(leader_value(&s).await, b("two"));
    // Losing the session gives it up.
    s.close_session(&s2).await.unwrap();
    assert!(l2.is_lost());
    let l3 = election::try_acquire(&s, &s1, "/el/leader", b("one"))
        .await
        .unwrap()
        .unwrap();
    assert!(l3.fencing_token() > l2.fencing_token());
    s.close_session(&s1).await.unwrap();
}

pub async fn ledger_id_allocator_is_unique(s: Store) {
    let mut handles = Vec::new();
    for t in 0..8u64 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            // Mixed batch sizes share one counter.
            let alloc = LedgerIdAllocator::new(s, "/alloc/ledger-id", 1 + t % 3 * 4);
            let mut ids = Vec::new();
            for _ in 0..25 {
                ids.push(alloc.next().await.unwrap().0);
            }
            ids
        }));
    }
    let mut all = BTreeSet::new();
    for h in handles {
        let ids = h.await.unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "per-allocator increasing"
        );
        for id in ids {
            assert!(id >= 1);
            assert!(all.insert(id), "duplicate id {id}");
        }
    }
    assert_eq!(all.len(), 200);
}

pub async fn typed_update_roundtrip(s: Store) {
    let m = MetaClient::new(s.clone(), Paths::new("/typed"));
    let key = m.paths().tenant("t1");
    assert!(m.get::<TenantInfo>(&key).await.unwrap().is_none());
    m.create(&key, &TenantInfo::default()).await.unwrap();
    assert!(
        m.create(&key, &TenantInfo::default())
            .await
            .unwrap_err()
            .is_conflict()
    );
    let mut handles = Vec::new();
    for i in 0..4 {
        let m = m.clone();
        let key = key.clone();
        handles.push(tokio::spawn(async move {
            m.update(&key, |cur: Option<TenantInfo>| {
                let mut t = cur.unwrap();
                t.admin_roles.insert(format!("role{i}"));
                Ok(Some(t))
            })
            .await
            .unwrap()
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let (t, stat) = m.get::<TenantInfo>(&key).await.unwrap().unwrap();
    assert_eq!(t.admin_roles.len(), 4);
    assert_eq!(stat.version, 5);
    let (listed, mut w) = m
        .list_and_watch::<TenantInfo>(&m.paths().tenants())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1.admin_roles.len(), 4);
    m.create(&m.paths().tenant("t2"), &TenantInfo::default())
        .await
        .unwrap();
    s.delete(&key, Expected::Any).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.kind, ev.key.as_str(), ev.value),
        (
            EventKind::Create,
            "/typed/tenants/t2",
            Some(TenantInfo::default())
        )
    );
    let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((ev.kind, ev.value), (EventKind::Delete, None));
}
