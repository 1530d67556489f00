//! The layers against the in-process S3 server (real HTTP, signatures, conditional puts).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::throttle::{ThrottleConfig, ThrottledStore};

use crate::test_server::S3TestServer;
use crate::*;

async fn server() -> (tempfile::TempDir, S3TestServer, Store) {
    let dir = tempfile::tempdir().unwrap();
    let srv = S3TestServer::start(dir.path(), "bkt").await.unwrap();
    let mut cfg = srv.config("bkt", "pre/fix");
    cfg.retry = RetryPolicy::quick();
    let store = open(&cfg).unwrap();
    (dir, srv, store)
}

#[tokio::test]
async fn create_only_ranged_reads_list_delete() {
    let (_d, _s, st) = server().await;
    let data = Bytes::from((0..=255u8).cycle().take(10_000).collect::<Vec<_>>());
    st.put_create("a/1.data", data.clone()).await.unwrap();
    assert!(matches!(
        st.put_create("a/1.data", Bytes::from_static(b"x")).await,
        Err(ObjStoreError::AlreadyExists(_))
    ));
    assert_eq!(st.get("a/1.data").await.unwrap(), data);
    assert_eq!(
        st.get_range("a/1.data", 100..300).await.unwrap(),
        data.slice(100..300)
    );
    st.put_create("a/2.data", Bytes::from_static(b"two"))
        .await
        .unwrap();
    st.put_create("b/3.data", Bytes::from_static(b"three"))
        .await
        .unwrap();
    let mut keys: Vec<String> = st
        .list("a")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    assert_eq!(keys, ["a/1.data", "a/2.data"]);
    assert_eq!(st.list("").await.unwrap().len(), 3);
    assert_eq!(st.head("b/3.data").await.unwrap().size, 5);
    st.delete("a/1.data").await.unwrap();
    st.delete("a/1.data").await.unwrap();
    assert!(matches!(
        st.get("a/1.data").await,
        Err(ObjStoreError::NotFound(_))
    ));
    assert!(metrics::requests("put") >= 3);
}

#[tokio::test]
async fn faults_are_retried_until_the_bound() {
    let (_d, _s, st) = server().await;
    let faults = Arc::new(Faults::new(7));
    let st = st.with_faults(faults.clone());
    // Two 503s then success: the call succeeds.
    faults.add(FaultRule::always(Some(Op::Put), Fault::Status(503)).times(2));
    st.put_create("k", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(faults.injected(), 2);
    // Truncated bodies are detected and retried, never returned.
    faults.add(FaultRule::always(Some(Op::GetRange), Fault::Truncate).times(3));
    assert_eq!(
        st.get_range("k", 1..4).await.unwrap(),
        Bytes::from_static(b"ell")
    );
    // Always unreachable: fails with a retryable error after the bounded retries.
    faults.add(FaultRule::always(None, Fault::Unreachable));
    let e = st.get("k").await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    faults.clear();
    // A put that fails after landing (the answer lost) is not a conflict on retry.
    assert_eq!(st.get("k").await.unwrap(), Bytes::from_static(b"hello"));
}

#[tokio::test]
async fn slow_attempts_time_out_and_are_retried() {
    let (_d, _s, st) = server().await;
    let faults = Arc::new(Faults::new(1));
    let st = st
        .with_retry(RetryPolicy {
            attempt_timeout: Duration::from_millis(100),
            ..RetryPolicy::quick()
        })
        .with_faults(faults.clone());
    st.put_create("slow", Bytes::from_static(b"s"))
        .await
        .unwrap();
    faults.add(FaultRule::always(Some(Op::Get), Fault::Latency(Duration::from_secs(2))).times(1));
    let t = std::time::Instant::now();
    assert_eq!(st.get("slow").await.unwrap(), Bytes::from_static(b"s"));
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn seeded_faults_replay() {
    let draw = |seed| {
        let f = Faults::new(seed);
        f.add(FaultRule::always(None, Fault::Status(500)).sometimes(0.5));
        (0..64)
            .map(|_| f.draw(Op::Get, "k").len())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(3), draw(3));
    assert_ne!(draw(3), draw(4));
}

#[tokio::test]
async fn throttled_store_models_latency() {
    let (raw, _) = open_raw(&ObjStoreConfig::new("memory://")).unwrap();
    let cfg = ThrottleConfig {
        wait_get_per_call: Duration::from_millis(20),
        ..Default::default()
    };
    let st = Store::from_raw(Arc::new(ThrottledStore::new(raw, cfg)), "p");
    st.put_create("x", Bytes::from_static(b"abc"))
        .await
        .unwrap();
    let t = std::time::Instant::now();
    st.get_range("x", 0..2).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(20));
}

/// Bodies larger than the server's read size come back whole and exact, ranged or not.
#[tokio::test]
async fn large_bodies_whole_and_ranged() {
    let (_d, _s, st) = server().await;
    let n = crate::test_fs::CHUNK * 5 / 2;
    let data = Bytes::from((0..n).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    st.put_create("big", data.clone()).await.unwrap();
    assert_eq!(st.get("big").await.unwrap(), data);
    let (a, b) = (
        crate::test_fs::CHUNK as u64 - 10,
        2 * crate::test_fs::CHUNK as u64 + 10,
    );
    assert_eq!(
        st.get_range("big", a..b).await.unwrap(),
        data.slice(a as usize..b as usize)
    );
    assert_eq!(st.get_range("big", 5..6).await.unwrap(), data.slice(5..6));
}

#[tokio::test]
async fn file_urls() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(&ObjStoreConfig::new(format!(
        "file://{}/objs",
        dir.path().display()
    )))
    .unwrap();
    st.put_create("t/1", Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert_eq!(st.list("t").await.unwrap()[0].key, "t/1");
    assert!(dir.path().join("objs/t/1").is_file());
}

/// The server's own fault rules, as another process sees them: statuses and dropped
/// connections are retried, a cut ranged body is detected (never short data), a cut upload
/// stores nothing; `keys` lists what the bucket holds.
#[tokio::test]
async fn server_side_faults_reach_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::new(3));
    let srv = S3TestServer::start_with_faults(dir.path(), "bkt", faults.clone())
        .await
        .unwrap();
    let mut cfg = srv.config("bkt", "p");
    cfg.retry = RetryPolicy::quick();
    let st = open(&cfg).unwrap();
    let data = Bytes::from(vec![7u8; 5000]);
    // Every upload cut: the call fails after its retries, nothing is stored.
    faults.add(FaultRule::always(Some(Op::Put), Fault::Truncate));
    assert!(st.put_create("k", data.clone()).await.is_err());
    assert_eq!(srv.keys("bkt"), Vec::<String>::new());
    // Two 503s then a dropped connection: retried through.
    faults.clear();
    faults.add(FaultRule::always(Some(Op::Put), Fault::Status(503)).times(2));
    faults.add(FaultRule::always(Some(Op::Put), Fault::Unreachable).times(1));
    st.put_create("k", data.clone()).await.unwrap();
    assert_eq!(srv.keys("bkt"), ["p/k"]);
    // Cut ranged bodies: retried, never short.
    faults.add(FaultRule::always(Some(Op::GetRange), Fault::Truncate).times(2));
    assert_eq!(
        st.get_range("k", 100..4100).await.unwrap(),
        data.slice(100..4100)
    );
    // Always cut: an error.
    faults.add(FaultRule::always(Some(Op::GetRange), Fault::Truncate));
    assert!(st.get_range("k", 0..4000).await.is_err());
    assert!(faults.injected() >= 5 + 4);
}
