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

mod convert;
mod inner;
mod keepalive;
mod options;
mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use strata_common::backoff::BackoffPolicy;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use self::convert::{
    compare_for, etcd_retryable, key_of, lease_not_found, map_err, prefix_end, stat_of, txn_get,
    versioned_of,
};
use self::inner::{Endpoint, Inner};
use self::keepalive::keep_alive_loop;
pub use self::options::{EndpointStatus, EtcdOptions};
use self::watch::watch_loop;
use crate::error::{MetaError, Result};
use crate::session::{EphemeralOptions, Reestablished, Session};
use crate::store::{
    Expected, KeyValue, MetadataStore, Scan, Stat, Versioned, WATCH_QUEUE, WatchStream, check_key,
};

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// Keys per page of a scan (etcd responses are limited in size).
const SCAN_PAGE: i64 = 512;

/// Between rounds of a request that failed on every endpoint.
const ROUND_BACKOFF: BackoffPolicy =
    BackoffPolicy::exponential(Duration::from_millis(20), Duration::from_millis(500));

/// The metadata store over an etcd cluster. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.inner.opts.endpoints)
            .finish()
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
        let i = self.inner.preferred();
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
        let mut backoff = ROUND_BACKOFF.start();
        loop {
            if inner.cancel.is_cancelled() {
                return Err(MetaError::Closed);
            }
            let idx = inner.preferred();
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
            self.inner.rotate(idx);
            if (attempts as usize).is_multiple_of(n) {
                // Every endpoint failed once: back off before the next round.
                let delay = backoff.next_delay().unwrap_or(ROUND_BACKOFF.max());
                tokio::time::sleep_until((Instant::now() + delay).min(deadline)).await;
                if Instant::now() >= deadline {
                    return Err(MetaError::Unavailable(format!("{what}: {err}")));
                }
            }
        }
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
        let put_then_get = |opts: PutOptions| {
            vec![
                TxnOp::put(key, value.to_vec(), Some(opts)),
                TxnOp::get(key, None),
            ]
        };
        let keep_lease = || PutOptions::new().with_ignore_lease();
        let txn = match (lease, expected) {
            (Some(_), _) | (None, Expected::Absent) => Txn::new()
                .when(cmp)
                .and_then(put_then_get(plain))
                .or_else(vec![TxnOp::get(key, None)]),
            (None, Expected::Version(_)) => Txn::new()
                .when(cmp)
                .and_then(put_then_get(keep_lease()))
                .or_else(vec![TxnOp::get(key, None)]),
            (None, Expected::Any) => {
                cmp.push(Compare::version(key, CompareOp::Greater, 0));
                Txn::new()
                    .when(cmp)
                    .and_then(put_then_get(keep_lease()))
                    .or_else(put_then_get(plain))
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

    /// Reads every key under `prefix` page by page at one revision (the first page's), handing
    /// each to `f`; returns that revision. `keys_only` pages are larger.
    async fn scan_pages(
        &self,
        what: &'static str,
        prefix: &str,
        keys_only: bool,
        mut f: impl FnMut(&etcd_client::KeyValue) -> Result<()>,
    ) -> Result<u64> {
        if prefix.is_empty() {
            return Err(MetaError::InvalidArgument("empty prefix".into()));
        }
        let end = prefix_end(prefix.as_bytes());
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = 0i64;
        loop {
            let mut opts = GetOptions::new().with_range(end.clone());
            opts = if keys_only {
                opts.with_limit(SCAN_PAGE * 8).with_keys_only()
            } else {
                opts.with_limit(SCAN_PAGE)
            };
            if revision > 0 {
                opts = opts.with_revision(revision);
            }
            let (resp, _) = self
                .call(what, |mut c| {
                    let (start, opts) = (start.clone(), opts.clone());
                    async move { c.get(start, Some(opts)).await }
                })
                .await?;
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            }
            for kv in resp.kvs() {
                f(kv)?;
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(revision.max(0) as u64)
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
            let mut entries = Vec::new();
            let revision = self
                .scan_pages("scan", prefix, false, |kv| {
                    entries.push(KeyValue {
                        key: key_of(kv)?,
                        value: versioned_of(kv),
                    });
                    Ok(())
                })
                .await?;
            Ok(Scan { revision, entries })
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "etcd", prefix = %prefix))]
    async fn scan_keys(&self, prefix: &str) -> Result<(Vec<String>, u64)> {
        crate::metrics::timed("etcd", "scan", async {
            let mut keys = Vec::new();
            let revision = self
                .scan_pages("scan_keys", prefix, true, |kv| {
                    keys.push(key_of(kv)?);
                    Ok(())
                })
                .await?;
            Ok((keys, revision))
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
        old.check_store(self.inner.store_id)?;
        // Stop the old keep-alive first: the old lease must not be renewed anymore.
        old.mark_lost();
        self.inner.sessions.lock().remove(&old.id());
        let new = self.create_session(old.ttl()).await?;
        let (old_id, new_id) = (old.id(), new.id());
        let out = old
            .carry_over(new, |key, value| async move {
                self.rebind(&key, &value, old_id, new_id).await
            })
            .await?;
        self.revoke(old_id).await?;
        Ok(out)
    }

    async fn close_session(&self, session: &Session) -> Result<()> {
        session.check_store(self.inner.store_id)?;
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
