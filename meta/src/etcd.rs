//! [`EtcdStore`]: the metadata store over etcd (v3 API, works with etcd 3.4 and 3.5).
//!
//! - One `etcd_client::Client` per endpoint; every request goes to the preferred endpoint and
//!   moves to the next one when it fails with a transport error, `Unavailable` (no leader, leader
//!   changed, member down) or a per-attempt timeout — etcd-client itself does not skip a dead
//!   endpoint. The whole call is bounded by [`EtcdOptions::request_timeout`].
//! - Compare-and-set is an etcd transaction on the key's version. A CAS whose first attempt timed
//!   out and whose retry finds exactly the value it wrote at the version it would have produced is
//!   reported as a success (the first attempt was applied).
//! - Watches run in a background task that reconnects (to any endpoint) from the revision after
//!   the last event it delivered, so consumers see no gap and no duplicate.
//! - Sessions are leases. The keep-alive task declares the session lost as soon as no keep-alive
//!   has succeeded for `ttl - margin` (measured from when the last successful request was
//!   *sent*, so the server-side lease is certainly still valid at that point).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions,
    Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::error::{MetaError, Result};
use crate::session::{EphemeralOptions, Reestablished, Session, SessionInner};
use crate::store::{
    EventKind, Expected, KeyValue, MetadataStore, Scan, Stat, Versioned, WATCH_QUEUE, WatchEvent,
    WatchStream, check_key,
};

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// Keys per page of a scan (etcd responses are limited in size).
const SCAN_PAGE: i64 = 512;

/// Connection settings of an [`EtcdStore`].
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs, e.g. `http://127.0.0.1:2379`. Several: members of one cluster.
    pub endpoints: Vec<String>,
    /// Upper bound of one store call, failover and retries included.
    pub request_timeout: Duration,
    /// Upper bound of one attempt on one endpoint.
    pub attempt_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

impl EtcdOptions {
    /// Defaults for these endpoints: 10 s per call, 3 s per attempt, 1 s to connect.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            request_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// What one etcd endpoint reported (see [`EtcdStore::endpoint_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Client URL.
    pub endpoint: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Whether it is the Raft leader.
    pub is_leader: bool,
    /// etcd server version.
    pub version: String,
    /// Database size in bytes.
    pub db_size: u64,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// The metadata store over an etcd cluster. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

struct Endpoint {
    url: String,
    client: Client,
}

struct Inner {
    endpoints: Vec<Endpoint>,
    preferred: AtomicUsize,
    opts: EtcdOptions,
    store_id: u64,
    /// Sessions created by this store (to revoke their leases on close).
    sessions: parking_lot::Mutex<HashMap<i64, Weak<SessionInner>>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.inner.opts.endpoints)
            .finish()
    }
}

/// Whether retrying the same request (possibly on another member) may succeed.
fn etcd_retryable(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::Cancelled
                | Code::Aborted
                | Code::ResourceExhausted
        ),
        etcd_client::Error::TransportError(_)
        | etcd_client::Error::IoError(_)
        | etcd_client::Error::EndpointError(_)
        | etcd_client::Error::WatchError(_)
        | etcd_client::Error::LeaseKeepAliveError(_) => true,
        _ => false,
    }
}

fn lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            s.code() == tonic::Code::NotFound && s.message().contains("lease not found")
        }
        etcd_client::Error::LeaseKeepAliveError(m) => m.contains("lease not found"),
        _ => false,
    }
}

fn map_err(e: etcd_client::Error) -> MetaError {
    if etcd_retryable(&e) {
        MetaError::Unavailable(e.to_string())
    } else if let etcd_client::Error::GRpcStatus(s) = &e
        && s.code() == tonic::Code::OutOfRange
        && s.message().contains("compacted")
    {
        MetaError::Compacted {
            requested: 0,
            oldest: 0,
        }
    } else {
        MetaError::Etcd(e.to_string())
    }
}

fn stat_of(kv: &etcd_client::KeyValue) -> Stat {
    Stat {
        version: kv.version().max(0) as u64,
        create_revision: kv.create_revision().max(0) as u64,
        mod_revision: kv.mod_revision().max(0) as u64,
        session: (kv.lease() != 0).then_some(kv.lease()),
    }
}

fn versioned_of(kv: &etcd_client::KeyValue) -> Versioned {
    Versioned {
        value: Bytes::copy_from_slice(kv.value()),
        stat: stat_of(kv),
    }
}

fn key_of(kv: &etcd_client::KeyValue) -> Result<String> {
    kv.key_str()
        .map(str::to_owned)
        .map_err(|_| MetaError::Decode {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            reason: "key is not UTF-8".into(),
        })
}

/// The end of the key range holding every key that starts with `prefix` (etcd's convention).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn compare_for(key: &str, expected: Expected) -> Vec<Compare> {
    match expected {
        Expected::Any => vec![],
        Expected::Absent => vec![Compare::version(key, CompareOp::Equal, 0)],
        Expected::Version(v) => vec![Compare::version(
            key,
            CompareOp::Equal,
            i64::try_from(v).unwrap_or(i64::MAX),
        )],
    }
}

/// The key-value of the `Get` at `index` of a transaction's responses.
fn txn_get(resp: &TxnResponse, index: usize) -> Option<etcd_client::KeyValue> {
    match resp.op_responses().into_iter().nth(index) {
        Some(TxnOpResponse::Get(g)) => g.kvs().first().cloned(),
        _ => None,
    }
}

impl EtcdStore {
    /// Connects to the cluster and checks that some endpoint answers.
    pub async fn connect(opts: EtcdOptions) -> Result<Self> {
        if opts.endpoints.is_empty() {
            return Err(MetaError::InvalidArgument("no etcd endpoints".into()));
        }
        let mut endpoints = Vec::new();
        for url in &opts.endpoints {
            let copts = ConnectOptions::new()
                .with_connect_timeout(opts.connect_timeout)
                .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
                .with_keep_alive_while_idle(true)
                .with_require_leader(true);
            let client = Client::connect([url.as_str()], Some(copts))
                .await
                .map_err(map_err)?;
            endpoints.push(Endpoint {
                url: url.clone(),
                client,
            });
        }
        let store = Self {
            inner: Arc::new(Inner {
                endpoints,
                preferred: AtomicUsize::new(0),
                opts,
                store_id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                sessions: parking_lot::Mutex::new(HashMap::new()),
                cancel: CancellationToken::new(),
                tracker: TaskTracker::new(),
            }),
        };
        store.current_revision().await?;
        Ok(store)
    }

    /// Compacts etcd's history up to `revision` (watches from older revisions then fail with
    /// [`MetaError::Compacted`]). Operators usually let etcd auto-compact instead.
    pub async fn compact(&self, revision: u64) -> Result<()> {
        let rev = i64::try_from(revision)
            .map_err(|_| MetaError::InvalidArgument(format!("revision {revision}")))?;
        self.call("compact", |mut c| async move { c.compact(rev, None).await })
            .await
            .map(|_| ())
    }

    /// Asks every endpoint for its status (no failover: one answer per endpoint), e.g. for an
    /// admin command or to find the leader.
    pub async fn endpoint_status(&self) -> Vec<EndpointStatus> {
        let mut out = Vec::with_capacity(self.inner.endpoints.len());
        for ep in &self.inner.endpoints {
            let mut c = ep.client.clone();
            let status =
                match tokio::time::timeout(self.inner.opts.attempt_timeout, c.status()).await {
                    Ok(Ok(s)) => Ok((
                        s.version().to_owned(),
                        s.header().map(|h| h.member_id()) == Some(s.leader()) && s.leader() != 0,
                        s.db_size().max(0) as u64,
                    )),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".to_owned()),
                };
            out.push(match status {
                Ok((version, is_leader, db_size)) => EndpointStatus {
                    endpoint: ep.url.clone(),
                    reachable: true,
                    is_leader,
                    version,
                    db_size,
                    error: None,
                },
                Err(e) => EndpointStatus {
                    endpoint: ep.url.clone(),
                    reachable: false,
                    is_leader: false,
                    version: String::new(),
                    db_size: 0,
                    error: Some(e),
                },
            });
        }
        out
    }

    /// The endpoint requests currently go to.
    pub fn preferred_endpoint(&self) -> &str {
        let i = self.inner.preferred.load(Ordering::Relaxed) % self.inner.endpoints.len();
        &self.inner.endpoints[i].url
    }

    /// Calls `f` on the preferred endpoint's client, failing over to the next endpoint on
    /// retryable errors until the request timeout. Returns the result and the number of attempts.
    async fn call<T, F, Fut>(&self, what: &'static str, mut f: F) -> Result<(T, u32)>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let inner = &self.inner;
        let n = inner.endpoints.len();
        let deadline = Instant::now() + inner.opts.request_timeout;
        let mut attempts = 0u32;
        let mut backoff = Duration::from_millis(20);
        loop {
            if inner.cancel.is_cancelled() {
                return Err(MetaError::Closed);
            }
            let idx = inner.preferred.load(Ordering::Relaxed) % n;
            let client = inner.endpoints[idx].client.clone();
            attempts += 1;
            let now = Instant::now();
            if now >= deadline {
                return Err(MetaError::Timeout(inner.opts.request_timeout));
            }
            let attempt_deadline = deadline.min(now + inner.opts.attempt_timeout);
            let err = match tokio::time::timeout_at(attempt_deadline, f(client)).await {
                Ok(Ok(v)) => return Ok((v, attempts)),
                Ok(Err(e)) if etcd_retryable(&e) => e.to_string(),
                Ok(Err(e)) => return Err(map_err(e)),
                Err(_) => "attempt timed out".to_owned(),
            };
            debug!(op = what, endpoint = %inner.endpoints[idx].url, error = %err, "etcd request failed, trying next endpoint");
            self.rotate(idx);
            if attempts as usize % n == 0 {
                // Every endpoint failed once: back off before the next round.
                let wake = (Instant::now() + backoff).min(deadline);
                tokio::time::sleep_until(wake).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                if Instant::now() >= deadline {
                    return Err(MetaError::Unavailable(format!("{what}: {err}")));
                }
            }
        }
    }

    fn rotate(&self, failed: usize) {
        rotate(&self.inner, failed);
    }

    async fn put_inner(
        &self,
        key: &str,
        value: Bytes,
        expected: Expected,
        lease: Option<i64>,
    ) -> Result<Stat> {
        check_key(key)?;
        crate::metrics::put_bytes("etcd", value.len());
        let mut cmp = compare_for(key, expected);
        let plain = match lease {
            Some(l) => PutOptions::new().with_lease(l),
            None => PutOptions::new(),
        };
        // Without a lease given, an existing key keeps its lease (`ignore_lease` needs the key to
        // exist, so branch on existence when the precondition does not already imply it).
        let txn = match (lease, expected) {
            (Some(_), _) | (None, Expected::Absent) => Txn::new()
                .when(cmp)
                .and_then(vec![
                    TxnOp::put(key, value.to_vec(), Some(plain)),
                    TxnOp::get(key, None),
                ])
                .or_else(vec![TxnOp::get(key, None)]),
            (None, Expected::Version(_)) => Txn::new()
                .when(cmp)
                .and_then(vec![
                    TxnOp::put(
                        key,
                        value.to_vec(),
                        Some(PutOptions::new().with_ignore_lease()),
                    ),
                    TxnOp::get(key, None),
                ])
                .or_else(vec![TxnOp::get(key, None)]),
            (None, Expected::Any) => {
                cmp.push(Compare::version(key, CompareOp::Greater, 0));
                Txn::new()
                    .when(cmp)
                    .and_then(vec![
                        TxnOp::put(
                            key,
                            value.to_vec(),
                            Some(PutOptions::new().with_ignore_lease()),
                        ),
                        TxnOp::get(key, None),
                    ])
                    .or_else(vec![
                        TxnOp::put(key, value.to_vec(), Some(plain)),
                        TxnOp::get(key, None),
                    ])
            }
        };
        let (resp, attempts) = self
            .call("put", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if resp.succeeded() || expected == Expected::Any {
            let kv =
                txn_get(&resp, 1).ok_or_else(|| MetaError::Etcd("put: no read-back".into()))?;
            return Ok(stat_of(&kv));
        }
        let current = txn_get(&resp, 0);
        if attempts > 1
            && let Some(kv) = &current
        {
            // An earlier attempt may have been applied: same bytes at the version it would give.
            let wanted = match expected {
                Expected::Absent => 1,
                Expected::Version(v) => v + 1,
                Expected::Any => 0,
            };
            let same_lease = lease.is_none_or(|l| kv.lease() == l);
            if kv.value() == &value[..] && kv.version() as u64 == wanted && same_lease {
                return Ok(stat_of(kv));
            }
        }
        Err(MetaError::BadVersion {
            key: key.to_owned(),
            expected,
            actual: current.map(|kv| kv.version().max(0) as u64),
        })
    }

    async fn revoke(&self, id: i64) -> Result<()> {
        let r = self
            .call("lease_revoke", |mut c| async move {
                match c.lease_revoke(id).await {
                    Ok(_) => Ok(()),
                    Err(e) if lease_not_found(&e) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await;
        r.map(|_| ())
    }

    /// Moves (or re-creates) `key` from lease `old` to `new`. Returns false if another session
    /// holds it.
    async fn rebind(&self, key: &str, fallback: &Bytes, old: i64, new: i64) -> Result<bool> {
        for _ in 0..8 {
            let current = self.get(key).await?;
            let txn = match &current {
                Some(v) if v.stat.session == Some(old) => Txn::new()
                    .when(vec![Compare::mod_revision(
                        key,
                        CompareOp::Equal,
                        v.stat.mod_revision as i64,
                    )])
                    .and_then(vec![TxnOp::put(
                        key,
                        v.value.to_vec(),
                        Some(PutOptions::new().with_lease(new)),
                    )]),
                None => Txn::new()
                    .when(vec![Compare::version(key, CompareOp::Equal, 0)])
                    .and_then(vec![TxnOp::put(
                        key,
                        fallback.to_vec(),
                        Some(PutOptions::new().with_lease(new)),
                    )]),
                Some(_) => return Ok(false),
            };
            let (resp, _) = self
                .call("rebind", |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            if resp.succeeded() {
                return Ok(true);
            }
        }
        Err(MetaError::Contention {
            key: key.to_owned(),
            attempts: 8,
        })
    }
}

fn rotate(inner: &Inner, failed: usize) {
    let n = inner.endpoints.len();
    if n > 1
        && inner
            .preferred
            .compare_exchange(
                failed,
                (failed + 1) % n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    {
        crate::metrics::global().endpoint_failovers.inc();
    }
}

fn session_margin(ttl: Duration) -> Duration {
    (ttl / 4).max(Duration::from_millis(500)).min(ttl / 2)
}

/// Keeps the lease of `session` alive until it is closed or lost; declares it lost when no
/// keep-alive succeeded for `ttl - margin`.
async fn keep_alive_loop(inner: Arc<Inner>, session: Weak<SessionInner>, mut last_ok: Instant) {
    let Some((ttl, token, id)) = session.upgrade().map(|s| (s.ttl, s.lost.clone(), s.id)) else {
        return;
    };
    let budget = ttl - session_margin(ttl);
    let interval = (ttl / 6).max(Duration::from_millis(100));
    let n = inner.endpoints.len();
    // One endpoint gets at most this long to answer before the next one is tried.
    let attempt = inner.opts.attempt_timeout.min(budget / 2);
    let lost = |why: &str| {
        warn!(session = id, reason = why, "metadata session lost");
        crate::metrics::session_lost("etcd");
        token.cancel();
    };
    loop {
        if token.is_cancelled() {
            return;
        }
        if session.strong_count() == 0 {
            // Every handle was dropped: stop renewing, the lease expires after its TTL.
            debug!(session = id, "session dropped, keep-alive stops");
            return;
        }
        let lost_at = last_ok + budget;
        if Instant::now() >= lost_at {
            lost("no keep-alive acknowledged in time");
            return;
        }
        let idx = inner.preferred.load(Ordering::Relaxed) % n;
        let mut client = inner.endpoints[idx].client.clone();
        let sent = Instant::now();
        let opened = tokio::select! {
            r = tokio::time::timeout_at(lost_at.min(sent + attempt), client.lease_keep_alive(id)) => r,
            () = token.cancelled() => return,
        };
        let (mut keeper, mut stream) = match opened {
            Err(_) if Instant::now() >= lost_at => {
                lost("no keep-alive acknowledged in time");
                return;
            }
            Err(_) => {
                debug!(session = id, endpoint = %inner.endpoints[idx].url, "keep-alive stream open timed out");
                rotate(&inner, idx);
                continue;
            }
            Ok(Err(e)) if lease_not_found(&e) => {
                lost("lease not found");
                return;
            }
            Ok(Err(e)) => {
                debug!(session = id, endpoint = %inner.endpoints[idx].url, error = %e, "keep-alive stream failed");
                rotate(&inner, idx);
                let wake = (Instant::now() + Duration::from_millis(50)).min(lost_at);
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    () = token.cancelled() => return,
                }
                continue;
            }
            Ok(Ok(ks)) => ks,
        };
        last_ok = sent;
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = token.cancelled() => return,
            }
            if session.strong_count() == 0 {
                debug!(session = id, "session dropped, keep-alive stops");
                return;
            }
            let lost_at = last_ok + budget;
            let sent = Instant::now();
            if keeper.keep_alive().await.is_err() {
                rotate(&inner, idx);
                break;
            }
            let resp = tokio::select! {
                r = tokio::time::timeout_at(lost_at.min(sent + attempt), stream.message()) => r,
                () = token.cancelled() => return,
            };
            match resp {
                Err(_) if Instant::now() >= lost_at => {
                    lost("no keep-alive acknowledged in time");
                    return;
                }
                Err(_) => {
                    // This endpoint is slow or unreachable: reopen on the next one.
                    rotate(&inner, idx);
                    break;
                }
                Ok(Ok(Some(r))) if r.ttl() > 0 => last_ok = sent,
                Ok(Ok(Some(_))) => {
                    lost("lease expired");
                    return;
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    rotate(&inner, idx);
                    break;
                }
            }
        }
    }
}

/// Runs one watch: connects to some endpoint, forwards events, reconnects from the next
/// revision on any failure.
async fn watch_loop(
    inner: Arc<Inner>,
    prefix: String,
    start: u64,
    tx: mpsc::Sender<Result<WatchEvent>>,
) {
    let n = inner.endpoints.len();
    let mut next = start;
    let mut backoff = Duration::from_millis(20);
    loop {
        let idx = inner.preferred.load(Ordering::Relaxed) % n;
        let mut client = inner.endpoints[idx].client.clone();
        let opts = WatchOptions::new()
            .with_prefix()
            .with_progress_notify()
            .with_start_revision(i64::try_from(next).unwrap_or(i64::MAX));
        let opened = tokio::select! {
            r = tokio::time::timeout(inner.opts.attempt_timeout, client.watch(prefix.as_str(), Some(opts))) => r,
            () = inner.cancel.cancelled() => {
                let _ = tx.send(Err(MetaError::Closed)).await;
                return;
            }
            () = tx.closed() => return,
        };
        match opened {
            Ok(Ok(mut stream)) => loop {
                let msg = tokio::select! {
                    m = stream.message() => m,
                    () = inner.cancel.cancelled() => {
                        let _ = tx.send(Err(MetaError::Closed)).await;
                        return;
                    }
                    () = tx.closed() => return,
                };
                match msg {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            if resp.compact_revision() > 0 {
                                let _ = tx
                                    .send(Err(MetaError::Compacted {
                                        requested: next,
                                        oldest: resp.compact_revision() as u64,
                                    }))
                                    .await;
                                return;
                            }
                            debug!(
                                reason = resp.cancel_reason(),
                                "watch cancelled by etcd, reconnecting"
                            );
                            break;
                        }
                        backoff = Duration::from_millis(20);
                        for ev in resp.events() {
                            let Some(kv) = ev.kv() else { continue };
                            let revision = kv.mod_revision().max(0) as u64;
                            if revision < next {
                                continue;
                            }
                            let key = match key_of(kv) {
                                Ok(k) => k,
                                Err(e) => {
                                    warn!(error = %e, "skipping watch event");
                                    continue;
                                }
                            };
                            let event = match ev.event_type() {
                                EventType::Put => WatchEvent {
                                    kind: if kv.version() == 1 {
                                        EventKind::Create
                                    } else {
                                        EventKind::Modify
                                    },
                                    key,
                                    value: Bytes::copy_from_slice(kv.value()),
                                    version: kv.version().max(0) as u64,
                                    revision,
                                },
                                EventType::Delete => WatchEvent {
                                    kind: EventKind::Delete,
                                    key,
                                    value: Bytes::new(),
                                    version: 0,
                                    revision,
                                },
                            };
                            // Events of one revision (a transaction) are all delivered before
                            // `next` moves past it.
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                            next = next.max(revision);
                        }
                        if let Some(last) = resp.events().last().and_then(|e| e.kv()) {
                            next = next.max(last.mod_revision().max(0) as u64 + 1);
                        } else if !resp.created()
                            && resp.watch_id() != -1
                            && let Some(h) = resp.header()
                        {
                            // A periodic progress notification for this watcher: etcd sends
                            // them only to watchers that are in sync, so every event up to this
                            // revision has been delivered and a reconnect may resume after it.
                            // (Client-requested progress, watch id -1, is not used: etcd before
                            // 3.4.24 / 3.5.8 may answer it ahead of pending events.)
                            next = next.max(h.revision().max(0) as u64 + 1);
                        }
                    }
                    Ok(None) | Err(_) => {
                        debug!(endpoint = %inner.endpoints[idx].url, "watch stream ended, reconnecting");
                        rotate(&inner, idx);
                        break;
                    }
                }
            },
            Ok(Err(e)) => {
                debug!(endpoint = %inner.endpoints[idx].url, error = %e, "watch failed to open");
                rotate(&inner, idx);
            }
            Err(_) => rotate(&inner, idx),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = inner.cancel.cancelled() => {
                let _ = tx.send(Err(MetaError::Closed)).await;
                return;
            }
            () = tx.closed() => return,
        }
        crate::metrics::global().watch_reconnects.inc();
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

#[async_trait]
impl MetadataStore for EtcdStore {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "etcd", key = %key))]
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        crate::metrics::timed("etcd", "get", async {
            check_key(key)?;
            let (resp, _) = self
                .call("get", |mut c| async move { c.get(key, None).await })
                .await?;
            Ok(resp.kvs().first().map(versioned_of))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "etcd", key = %key))]
    async fn put(&self, key: &str, value: Bytes, expected: Expected) -> Result<Stat> {
        crate::metrics::timed("etcd", "put", async {
            self.put_inner(key, value, expected, None).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "etcd", key = %key))]
    async fn delete(&self, key: &str, expected: Expected) -> Result<bool> {
        crate::metrics::timed("etcd", "del", async {
            check_key(key)?;
            let txn = Txn::new()
                .when(compare_for(key, expected))
                .and_then(vec![TxnOp::delete(key, None)])
                .or_else(vec![TxnOp::get(key, None)]);
            let (resp, attempts) = self
                .call("delete", |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            if resp.succeeded() {
                return Ok(match resp.op_responses().first() {
                    Some(TxnOpResponse::Delete(d)) => d.deleted() > 0,
                    _ => false,
                });
            }
            let actual = txn_get(&resp, 0).map(|kv| kv.version().max(0) as u64);
            if attempts > 1 && actual.is_none() && matches!(expected, Expected::Version(_)) {
                // An earlier attempt deleted it.
                return Ok(true);
            }
            Err(MetaError::BadVersion {
                key: key.to_owned(),
                expected,
                actual,
            })
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "etcd", prefix = %prefix))]
    async fn scan(&self, prefix: &str) -> Result<Scan> {
        crate::metrics::timed("etcd", "scan", async {
            if prefix.is_empty() {
                return Err(MetaError::InvalidArgument("empty prefix".into()));
            }
            let end = prefix_end(prefix.as_bytes());
            let mut start = prefix.as_bytes().to_vec();
            let mut revision = 0i64;
            let mut entries = Vec::new();
            loop {
                let mut opts = GetOptions::new()
                    .with_range(end.clone())
                    .with_limit(SCAN_PAGE);
                if revision > 0 {
                    opts = opts.with_revision(revision);
                }
                let (resp, _) = self
                    .call("scan", |mut c| {
                        let (start, opts) = (start.clone(), opts.clone());
                        async move { c.get(start, Some(opts)).await }
                    })
                    .await?;
                if revision == 0 {
                    revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                }
                for kv in resp.kvs() {
                    entries.push(KeyValue {
                        key: key_of(kv)?,
                        value: versioned_of(kv),
                    });
                }
                match resp.kvs().last() {
                    Some(last) if resp.more() => {
                        start = last.key().to_vec();
                        start.push(0);
                    }
                    _ => break,
                }
            }
            Ok(Scan {
                revision: revision.max(0) as u64,
                entries,
            })
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "etcd", prefix = %prefix))]
    async fn scan_keys(&self, prefix: &str) -> Result<(Vec<String>, u64)> {
        crate::metrics::timed("etcd", "scan", async {
            if prefix.is_empty() {
                return Err(MetaError::InvalidArgument("empty prefix".into()));
            }
            let end = prefix_end(prefix.as_bytes());
            let mut start = prefix.as_bytes().to_vec();
            let mut revision = 0i64;
            let mut keys = Vec::new();
            loop {
                let mut opts = GetOptions::new()
                    .with_range(end.clone())
                    .with_limit(SCAN_PAGE * 8)
                    .with_keys_only();
                if revision > 0 {
                    opts = opts.with_revision(revision);
                }
                let (resp, _) = self
                    .call("scan_keys", |mut c| {
                        let (start, opts) = (start.clone(), opts.clone());
                        async move { c.get(start, Some(opts)).await }
                    })
                    .await?;
                if revision == 0 {
                    revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                }
                for kv in resp.kvs() {
                    keys.push(key_of(kv)?);
                }
                match resp.kvs().last() {
                    Some(last) if resp.more() => {
                        start = last.key().to_vec();
                        start.push(0);
                    }
                    _ => break,
                }
            }
            Ok((keys, revision.max(0) as u64))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "etcd", prefix = %prefix))]
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        crate::metrics::timed("etcd", "del_prefix", async {
            if prefix.is_empty() {
                return Err(MetaError::InvalidArgument("empty prefix".into()));
            }
            let (resp, _) = self
                .call("delete_prefix", |mut c| async move {
                    c.delete(prefix, Some(DeleteOptions::new().with_prefix()))
                        .await
                })
                .await?;
            Ok(resp.deleted().max(0) as u64)
        })
        .await
    }

    async fn current_revision(&self) -> Result<u64> {
        let (resp, _) = self
            .call("revision", |mut c| async move {
                c.get("/", Some(GetOptions::new().with_keys_only().with_limit(1)))
                    .await
            })
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0).max(0) as u64)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "etcd", prefix = %prefix))]
    async fn watch(&self, prefix: &str, from_revision: Option<u64>) -> Result<WatchStream> {
        crate::metrics::timed("etcd", "watch", async {
            if prefix.is_empty() {
                return Err(MetaError::InvalidArgument("empty prefix".into()));
            }
            if self.inner.cancel.is_cancelled() {
                return Err(MetaError::Closed);
            }
            let start = match from_revision {
                Some(r) => r.max(1),
                None => self.current_revision().await? + 1,
            };
            let (tx, rx) = mpsc::channel(WATCH_QUEUE);
            self.inner
                .tracker
                .spawn(watch_loop(self.inner.clone(), prefix.to_owned(), start, tx));
            Ok(WatchStream::new(rx, start))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "etcd"))]
    async fn create_session(&self, ttl: Duration) -> Result<Session> {
        crate::metrics::timed("etcd", "create_session", async {
            if self.inner.cancel.is_cancelled() {
                return Err(MetaError::Closed);
            }
            let secs = ttl.as_secs_f64().ceil().max(1.0) as i64;
            // The lease's TTL runs from its grant, which is after the start of the attempt that
            // succeeded — not after the start of the whole (retried) call: while etcd is down
            // the call may retry for longer than the TTL, and counting from its start would
            // declare the new session lost the moment it is created.
            let attempt_started = parking_lot::Mutex::new(Instant::now());
            let (resp, _) = self
                .call("lease_grant", |mut c| {
                    *attempt_started.lock() = Instant::now();
                    async move { c.lease_grant(secs, None).await }
                })
                .await?;
            let sent = *attempt_started.lock();
            // etcd may grant a longer TTL than asked (its minimum); the shorter one is the safe
            // basis for loss detection.
            let granted = Duration::from_secs(resp.ttl().max(1) as u64);
            let ttl = ttl.min(granted).max(Duration::from_secs(1));
            let session = Session::new(resp.id(), ttl, self.inner.store_id, &self.inner.cancel);
            info!(session = resp.id(), ttl = ?ttl, "metadata session created");
            self.inner
                .sessions
                .lock()
                .insert(session.id(), Arc::downgrade(&session.inner));
            self.inner.tracker.spawn(keep_alive_loop(
                self.inner.clone(),
                Arc::downgrade(&session.inner),
                sent,
            ));
            Ok(session)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "etcd", key = %key))]
    async fn put_ephemeral(
        &self,
        session: &Session,
        key: &str,
        value: Bytes,
        expected: Expected,
        opts: EphemeralOptions,
    ) -> Result<Stat> {
        crate::metrics::timed("etcd", "put", async {
            session.check_usable(self.inner.store_id)?;
            match self
                .put_inner(key, value.clone(), expected, Some(session.id()))
                .await
            {
                Ok(stat) => {
                    session.record(key, value, opts.recreate_on_reestablish);
                    Ok(stat)
                }
                Err(MetaError::Etcd(m)) if m.contains("lease not found") => {
                    session.mark_lost();
                    Err(MetaError::SessionLost(session.id()))
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn reestablish_session(&self, old: &Session) -> Result<Reestablished> {
        if old.inner.store_id != self.inner.store_id {
            return Err(MetaError::InvalidArgument(
                "session belongs to another store".into(),
            ));
        }
        // Stop the old keep-alive first: the old lease must not be renewed anymore.
        old.mark_lost();
        self.inner.sessions.lock().remove(&old.id());
        let new = self.create_session(old.ttl()).await?;
        let mut recreated = Vec::new();
        let mut taken = Vec::new();
        let mut dropped = Vec::new();
        for (key, rec) in old.records() {
            if !rec.recreate {
                dropped.push(key);
                continue;
            }
            if self.rebind(&key, &rec.value, old.id(), new.id()).await? {
                new.record(&key, rec.value, true);
                recreated.push(key);
            } else {
                taken.push(key);
            }
        }
        self.revoke(old.id()).await?;
        Ok(Reestablished {
            session: new,
            recreated,
            taken,
            dropped,
        })
    }

    async fn close_session(&self, session: &Session) -> Result<()> {
        if session.inner.store_id != self.inner.store_id {
            return Err(MetaError::InvalidArgument(
                "session belongs to another store".into(),
            ));
        }
        session.mark_lost();
        self.inner.sessions.lock().remove(&session.id());
        self.revoke(session.id()).await
    }

    async fn close(&self) {
        let live: Vec<Session> = {
            let mut map = self.inner.sessions.lock();
            let live = map
                .values()
                .filter_map(Weak::upgrade)
                .map(|inner| Session { inner })
                .filter(|s| !s.is_lost())
                .collect();
            map.clear();
            live
        };
        for s in live {
            // Best effort, bounded: the lease expires by itself otherwise.
            s.mark_lost();
            let r = tokio::time::timeout(Duration::from_secs(2), self.revoke(s.id())).await;
            if !matches!(r, Ok(Ok(()))) {
                warn!(session = s.id(), "could not revoke session lease on close");
            }
        }
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_matches_etcd() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn margin_is_sane() {
        assert_eq!(
            session_margin(Duration::from_secs(3)),
            Duration::from_millis(750)
        );
        assert_eq!(
            session_margin(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(
            session_margin(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
    }
}
