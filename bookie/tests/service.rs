//! The gRPC service and client against a real bookie node on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_bookie::client::{AddDone, AddRequest};
use strata_bookie::registration::NoopRegistrar;
use strata_bookie::{BookieClient, BookieNode, BookieOptions, ClientError, StorageConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: Bytes = Bytes::from_static(b"secret");

async fn start(dir: &Path) -> BookieNode {
    let mut storage = StorageConfig::new(dir);
    storage.min_free_bytes = 0;
    let opts = BookieOptions {
        storage,
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        advertised_address: None,
        registration_interval: Duration::from_secs(10),
    };
    BookieNode::start(opts, Arc::new(NoopRegistrar))
        .await
        .unwrap()
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

async fn connect(node: &BookieNode) -> BookieClient {
    let addr = node.grpc_addr.to_string();
    BookieClient::connect(&addr).await.unwrap()
}

fn p(l: u64, e: u64) -> Bytes {
    Bytes::from(format!("ledger {l} entry {e} ").repeat(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_adds_reads_and_lac() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let c = connect(&node).await;
    // many adds in flight on one stream
    let futs: Vec<_> = (0..2000u64)
        .map(|i| {
            let c = c.clone();
            let (l, e) = (i % 10, i / 10);
            async move { c.add(l, e, KEY, e as i64 - 1, p(l, e)).await }
        })
        .collect();
    for r in futures::future::join_all(futs).await {
        r.unwrap();
    }
    assert_eq!(c.read_entry(3, 7).await.unwrap().0, p(3, 7));
    let range = c.read_range(4, 10, 1000, 0).await.unwrap();
    assert_eq!(range.len(), 190);
    assert!(range.iter().all(|(e, b)| *b == p(4, *e)));
    let lac = c.read_lac(5, -1, Duration::ZERO).await.unwrap();
    assert_eq!((lac.lac, lac.last_entry, lac.fenced), (198, 199, false));
    // long-poll wakes on the next add
    let c2 = c.clone();
    let poll = tokio::spawn(async move { c2.read_lac(5, 198, Duration::from_secs(30)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.add(5, 200, KEY, 199, p(5, 200)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.lac, 199);
    assert!(matches!(
        c.read_entry(5, 999).await,
        Err(ClientError::NoEntry(_))
    ));
    assert!(matches!(
        c.read_entry(77, 0).await,
        Err(ClientError::NoLedger(_))
    ));
    assert!(matches!(
        c.add(5, 201, Bytes::from_static(b"bad"), 200, p(5, 201))
            .await,
        Err(ClientError::Unauthorized(_))
    ));
    c.delete_ledger(5).await.unwrap();
    assert!(matches!(
        c.read_entry(5, 0).await,
        Err(ClientError::NoLedger(_))
    ));

    let http = node.http_addr.unwrap();
    assert!(http_get(http, "/health").await.starts_with("HTTP/1.1 200"));
    assert!(http_get(http, "/ready").await.contains("ready"));
    let metrics = http_get(http, "/metrics").await;
    for name in [
        "bookie_add_entry_total",
        "bookie_add_entry_latency_seconds_bucket",
        "bookie_journal_sync_latency_seconds_count",
        "bookie_write_cache_hits_total",
        "bookie_ledger_dir_free_bytes",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    node.shutdown().await;
}

/// Acceptance 3: after a fence, adds of the old writer fail; reads and LAC keep working, also after
/// a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_ledger_refuses_the_old_writer() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let addr = node.grpc_addr.to_string();
    let writer = BookieClient::connect(&addr).await.unwrap();
    let recovery = BookieClient::connect(&addr).await.unwrap();
    for e in 0..10 {
        writer.add(1, e, KEY, e as i64 - 1, p(1, e)).await.unwrap();
    }
    let f = recovery.fence(1, KEY).await.unwrap();
    assert_eq!((f.lac, f.last_entry), (8, 9));
    let err = writer.add(1, 10, KEY, 9, p(1, 10)).await.unwrap_err();
    assert!(matches!(err, ClientError::Fenced(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(writer.read_entry(1, 9).await.unwrap().0, p(1, 9));
    assert_eq!(recovery.read_range(1, 0, 9, 0).await.unwrap().len(), 10);
    let lac = recovery.read_lac(1, -1, Duration::ZERO).await.unwrap();
    assert_eq!((lac.lac, lac.last_entry, lac.fenced), (8, 9, true));
    node.shutdown().await;

    let node = start(dir.path()).await;
    let writer = connect(&node).await;
    assert!(matches!(
        writer.add(1, 10, KEY, 9, p(1, 10)).await,
        Err(ClientError::Fenced(_))
    ));
    assert_eq!(writer.read_entry(1, 9).await.unwrap().0, p(1, 9));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reports_an_unreachable_bookie_as_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let c = connect(&node).await;
    c.add(1, 0, KEY, -1, p(1, 0)).await.unwrap();
    node.shutdown().await;
    let err = c.add(1, 1, KEY, 0, p(1, 1)).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_client_connects_when_the_bookie_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let c = BookieClient::connect_lazy(&addr).unwrap();
    let err = c.read_lac(1, -1, Duration::ZERO).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let mut storage = StorageConfig::new(dir.path());
    storage.min_free_bytes = 0;
    let node = BookieNode::start(
        BookieOptions {
            storage,
            grpc_addr: addr.parse().unwrap(),
            http_addr: None,
            advertised_address: None,
            registration_interval: Duration::from_secs(10),
        },
        Arc::new(NoopRegistrar),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match c.add(1, 0, KEY, -1, p(1, 0)).await {
            Ok(()) => break,
            Err(e) if e.is_retryable() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(c.read_entry(1, 0).await.unwrap().0, p(1, 0));
    node.shutdown().await;
}

/// Records what a bookie announces.
#[derive(Default)]
struct Recorder(parking_lot::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl strata_bookie::registration::Registrar for Recorder {
    async fn register(
        &self,
        info: &strata_bookie::registration::BookieInfo,
    ) -> Result<(), strata_bookie::registration::RegistrationError> {
        assert!(info.total_bytes >= info.free_bytes);
        self.0.lock().push(format!("register {}", info.id));
        Ok(())
    }

    async fn update(
        &self,
        info: &strata_bookie::registration::BookieInfo,
    ) -> Result<(), strata_bookie::registration::RegistrationError> {
        self.0.lock().push(format!("update {}", info.id));
        Ok(())
    }

    async fn deregister(&self) -> Result<(), strata_bookie::registration::RegistrationError> {
        self.0.lock().push("deregister".into());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_while_running_and_deregisters_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let mut storage = StorageConfig::new(dir.path());
    storage.min_free_bytes = 0;
    let node = BookieNode::start(
        BookieOptions {
            storage,
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: None,
            advertised_address: Some("bookie-1.example:3181".into()),
            registration_interval: Duration::from_millis(20),
        },
        rec.clone(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.shutdown().await;
    let calls = rec.0.lock().clone();
    assert_eq!(calls.first().unwrap(), "register bookie-1.example:3181");
    assert!(
        calls.iter().any(|c| c == "update bookie-1.example:3181"),
        "{calls:?}"
    );
    assert_eq!(calls.last().unwrap(), "deregister");
}

/// The bookie of the same process ([`BookieNode::local`]): an add through the callback is
/// answered as one over gRPC would be, and every add, of either kind, is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_adds_answer_through_the_callback_and_are_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let local = node.local();
    let add = |entry: u64, master_key: Bytes| AddRequest {
        ledger: 3,
        entry,
        master_key,
        lac: entry as i64 - 1,
        payload: p(3, entry),
        payload_crc: None,
        recovery: false,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (e, key) in [(0, KEY), (1, KEY), (2, Bytes::from_static(b"bad"))] {
        let tx = tx.clone();
        local.add_then(
            add(e, key),
            AddDone::call(move |r| tx.send((e, r)).unwrap()),
        );
    }
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(rx.recv().await.unwrap());
    }
    answers.sort_by_key(|(e, _)| *e);
    assert!(answers[0].1.is_ok() && answers[1].1.is_ok());
    assert!(matches!(answers[2].1, Err(ClientError::Unauthorized(_))));
    local.add(add(3, KEY)).await.unwrap();
    assert_eq!(local.read_entry(3, 1).await.unwrap().0, p(3, 1));
    assert_eq!(node.metrics.add_entries.get(), 3);
    assert_eq!(node.metrics.add_errors.get(), 1);
    node.shutdown().await;
}
