//! [`LocalStore`]: the embedded metadata store of `strata standalone`, persisted with redb.
//!
//! Same semantics as etcd: a store-wide revision bumped by every write transaction, per-key
//! versions, watches that replay from a revision, sessions with ephemeral keys. Differences, all
//! documented on the type: one process only (redb locks the file), sessions are never lost
//! unless closed (there is no network between the process and its store), ephemeral keys are
//! deleted when the store is opened again after the process exited, and watch history is kept in
//! memory (the last [`HISTORY_EVENTS`] events since the store was opened).

mod record;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::writer::{Applied, Core, History, Pending, WriteOp};
use crate::error::{MetaError, Result};
use crate::session::{EphemeralOptions, Reestablished, Session};
use crate::session_id::SessionId;
use crate::store::{
    EventKind, Expected, KeyValue, MetadataStore, Scan, Stat, Versioned, WATCH_QUEUE, WatchEvent,
    WatchStream, check_key,
};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_FORMAT: &str = "format";
const META_REVISION: &str = "revision";
const FORMAT: u64 = 1;

/// Events kept in memory for watches that resume from an older revision.
pub const HISTORY_EVENTS: usize = 16 * 1024;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1 << 32);

/// The embedded metadata store (one redb file). Cheap to clone.
///
/// - Writes are durable when they return (redb commits with fsync). One writer thread commits
///   every write queued at the same time in one transaction (group commit, see `writer.rs`).
/// - Ephemeral keys are written to disk like other keys, tagged with their session, and deleted
///   when the store is opened: after a crash (or any exit) they are gone, as with etcd after the
///   TTL.
/// - Sessions end only through [`MetadataStore::close_session`] or [`LocalStore::close`].
/// - Watches replay from memory: a watch from a revision older than the last open, or older than
///   the last [`HISTORY_EVENTS`] events, fails with [`MetaError::Compacted`].
#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Core>,
    /// The queue of the writer thread (group commit, see [`writer`]); `None` once closed.
    queue: Mutex<Option<std::sync::mpsc::Sender<Box<dyn WriteOp>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
    store_id: u64,
    next_session: AtomicI64,
    sessions: Mutex<HashMap<SessionId, Session>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Inner {
    /// Stops the writer thread (after it has answered what was queued) and waits for it.
    fn stop_writer(&self) {
        drop(self.queue.lock().take());
        if let Some(handle) = self.writer.lock().take()
            && handle.join().is_err()
        {
            tracing::error!("metadata writer thread panicked");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_writer();
    }
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

type KvTable<'a> = redb::Table<'a, &'static str, &'static [u8]>;

impl LocalStore {
    /// Opens (or creates) the store in the file `path`, deleting the ephemeral keys a previous
    /// process left behind.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|e| MetaError::Local(format!("open task failed: {e}")))?
    }

    /// A store kept in memory only (nothing on disk; for tests and throwaway brokers). It
    /// behaves as a file store in every other way.
    pub fn in_memory() -> Result<Self> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| MetaError::Local(format!("create in-memory store: {e}")))?;
        Self::init(db, PathBuf::from(":memory:"))
    }

    fn open_blocking(path: PathBuf) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| MetaError::Local(format!("create {}: {e}", dir.display())))?;
        }
        let db = Database::create(&path)?;
        Self::init(db, path)
    }

    fn init(db: Database, path: PathBuf) -> Result<Self> {
        let txn = db.begin_write()?;
        let revision;
        {
            let mut meta = txn.open_table(META)?;
            let format = meta.get(META_FORMAT)?.map(|g| g.value());
            match format {
                None => {
                    meta.insert(META_FORMAT, FORMAT)?;
                }
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(MetaError::Local(format!(
                        "{}: unsupported format {other} (this build reads {FORMAT})",
                        path.display()
                    )));
                }
            }
            let mut rev = meta.get(META_REVISION)?.map(|g| g.value()).unwrap_or(0);
            // Delete ephemeral keys left by the previous process.
            let mut kv = txn.open_table(KV)?;
            let mut stale = Vec::new();
            for item in kv.iter()? {
                let (k, v) = item?;
                match record::decode(v.value()) {
                    Some(rec) if rec.stat.session.is_some() => stale.push(k.value().to_owned()),
                    Some(_) => {}
                    None => {
                        return Err(MetaError::Decode {
                            key: k.value().to_owned(),
                            reason: "corrupt record in local store".into(),
                        });
                    }
                }
            }
            if !stale.is_empty() {
                rev += 1;
                for k in &stale {
                    kv.remove(k.as_str())?;
                }
                tracing::info!(
                    count = stale.len(),
                    "deleted ephemeral keys of the previous process"
                );
            }
            meta.insert(META_REVISION, rev)?;
            revision = rev;
        }
        txn.commit()?;
        let (revision_tx, _) = watch::channel(revision);
        let core = Arc::new(Core {
            db,
            write_lock: Mutex::new(()),
            history: Mutex::new(History {
                oldest: revision + 1,
                events: VecDeque::new(),
            }),
            revision: revision_tx,
            commits: AtomicU64::new(0),
        });
        let (queue, rx) = std::sync::mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("strata-meta-writer".into())
            .spawn({
                let core = core.clone();
                move || writer::run(core, rx)
            })
            .map_err(|e| MetaError::Local(format!("start writer thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                core,
                queue: Mutex::new(Some(queue)),
                writer: Mutex::new(Some(writer)),
                path,
                store_id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                next_session: AtomicI64::new(1),
                sessions: Mutex::new(HashMap::new()),
                cancel: CancellationToken::new(),
                tracker: TaskTracker::new(),
            }),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Write transactions committed since the store was opened (several writes share one
    /// commit when they are queued together).
    pub fn commits(&self) -> u64 {
        self.inner.core.commits.load(Ordering::Relaxed)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.inner.cancel.is_cancelled() {
            return Err(MetaError::Closed);
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| MetaError::Local(format!("blocking task failed: {e}")))?
    }

    /// Runs one write: `f` gets the table and the revision this write will have, and returns
    /// its result and events; no events means nothing changed (no revision consumed). The
    /// writer thread commits it together with the other writes queued at the same time; it is
    /// durable when this returns.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut KvTable<'_>, u64) -> Applied<T> + Send + 'static,
    ) -> Result<T> {
        if self.inner.cancel.is_cancelled() {
            return Err(MetaError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        let op: Box<dyn WriteOp> = Box::new(Pending::new(f, tx));
        match &*self.inner.queue.lock() {
            Some(queue) => queue.send(op).map_err(|_| MetaError::Closed)?,
            None => return Err(MetaError::Closed),
        }
        rx.await.map_err(|_| MetaError::Closed)?
    }

    async fn put_inner(
        &self,
        key: &str,
        value: Bytes,
        expected: Expected,
        bind: Option<Session>,
    ) -> Result<Stat> {
        check_key(key)?;
        crate::metrics::put_bytes("local", value.len());
        let key = key.to_owned();
        self.write(move |kv, rev| {
            if let Some(s) = &bind
                && s.is_lost()
            {
                return Err(MetaError::SessionLost(s.id()));
            }
            let current = read_record(kv, &key)?;
            let actual = current.as_ref().map(|c| c.stat.version);
            if !expected.matches(actual) {
                return Err(MetaError::BadVersion {
                    key,
                    expected,
                    actual,
                });
            }
            let stat = match &current {
                Some(c) => Stat {
                    version: c.stat.version + 1,
                    create_revision: c.stat.create_revision,
                    mod_revision: rev,
                    session: bind.as_ref().map(|s| s.id()).or(c.stat.session),
                },
                None => Stat {
                    version: 1,
                    create_revision: rev,
                    mod_revision: rev,
                    session: bind.as_ref().map(|s| s.id()),
                },
            };
            kv.insert(key.as_str(), record::encode(&stat, &value).as_slice())?;
            let ev = WatchEvent {
                kind: if current.is_some() {
                    EventKind::Modify
                } else {
                    EventKind::Create
                },
                key,
                value,
                version: stat.version,
                revision: rev,
            };
            Ok((stat, vec![ev]))
        })
        .await
    }

    /// Deletes every key bound to `session` in one transaction.
    /// Moves `key` from session `old` to session `new` (re-creating it with `fallback` if it is
    /// gone); `false` when another session holds it now.
    async fn rebind(
        &self,
        key: String,
        fallback: Bytes,
        old: SessionId,
        new: SessionId,
    ) -> Result<bool> {
        self.write(move |kv, rev| {
            let current = read_record(kv, &key)?;
            let (stat, kind, value) = match current {
                Some(c) if c.stat.session == Some(old) => (
                    Stat {
                        version: c.stat.version + 1,
                        create_revision: c.stat.create_revision,
                        mod_revision: rev,
                        session: Some(new),
                    },
                    EventKind::Modify,
                    c.value,
                ),
                None => (
                    Stat {
                        version: 1,
                        create_revision: rev,
                        mod_revision: rev,
                        session: Some(new),
                    },
                    EventKind::Create,
                    fallback,
                ),
                Some(_) => return Ok((false, vec![])),
            };
            kv.insert(key.as_str(), record::encode(&stat, &value).as_slice())?;
            let ev = WatchEvent {
                kind,
                key,
                value,
                version: stat.version,
                revision: rev,
            };
            Ok((true, vec![ev]))
        })
        .await
    }

    async fn delete_session_keys(&self, id: SessionId) -> Result<u64> {
        self.write(move |kv, rev| {
            let mut doomed = Vec::new();
            for item in kv.iter()? {
                let (k, v) = item?;
                if record::decode(v.value()).is_some_and(|r| r.stat.session == Some(id)) {
                    doomed.push(k.value().to_owned());
                }
            }
            let mut events = Vec::with_capacity(doomed.len());
            for k in doomed {
                kv.remove(k.as_str())?;
                events.push(delete_event(k, rev));
            }
            Ok((events.len() as u64, events))
        })
        .await
    }
}

fn delete_event(key: String, revision: u64) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Delete,
        key,
        value: Bytes::new(),
        version: 0,
        revision,
    }
}

fn read_record(
    kv: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Versioned>> {
    match kv.get(key)? {
        None => Ok(None),
        Some(g) => record::decode(g.value())
            .map(Some)
            .ok_or_else(|| MetaError::Decode {
                key: key.to_owned(),
                reason: "corrupt record in local store".into(),
            }),
    }
}

fn prefix_end(prefix: &str) -> Option<String> {
    // The smallest string greater than every string starting with `prefix`.
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        if let Some(n) = char::from_u32(c as u32 + 1) {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn scan_table(
    kv: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<KeyValue>> {
    let mut out = Vec::new();
    let range = match prefix_end(prefix) {
        Some(end) => kv.range::<&str>(prefix..end.as_str())?,
        None => kv.range::<&str>(prefix..)?,
    };
    for item in range {
        let (k, v) = item?;
        let key = k.value();
        if !key.starts_with(prefix) {
            continue;
        }
        let value = record::decode(v.value()).ok_or_else(|| MetaError::Decode {
            key: key.to_owned(),
            reason: "corrupt record in local store".into(),
        })?;
        out.push(KeyValue {
            key: key.to_owned(),
            value,
        });
    }
    Ok(out)
}

#[async_trait]
impl MetadataStore for LocalStore {
    fn backend(&self) -> &'static str {
        "local"
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "local", key = %key))]
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        crate::metrics::timed("local", "get", async {
            check_key(key)?;
            if self.inner.cancel.is_cancelled() {
                return Err(MetaError::Closed);
            }
            // A point read is a few B-tree pages, nearly always in redb's cache: done on the
            // caller's thread. A hop to the blocking pool (two thread wake-ups) cost more than
            // the read, and loading 10,000 topics makes ~100,000 of them.
            let txn = self.inner.core.db.begin_read()?;
            let kv = txn.open_table(KV)?;
            read_record(&kv, key)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "local", key = %key))]
    async fn put(&self, key: &str, value: Bytes, expected: Expected) -> Result<Stat> {
        crate::metrics::timed("local", "put", async {
            self.put_inner(key, value, expected, None).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "local", key = %key))]
    async fn delete(&self, key: &str, expected: Expected) -> Result<bool> {
        crate::metrics::timed("local", "del", async {
            check_key(key)?;
            let key = key.to_owned();
            self.write(move |kv, rev| {
                let current = read_record(kv, &key)?;
                let actual = current.as_ref().map(|c| c.stat.version);
                if !expected.matches(actual) {
                    return Err(MetaError::BadVersion {
                        key,
                        expected,
                        actual,
                    });
                }
                if current.is_none() {
                    return Ok((false, vec![]));
                }
                kv.remove(key.as_str())?;
                Ok((true, vec![delete_event(key, rev)]))
            })
            .await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "local", prefix = %prefix))]
    async fn scan(&self, prefix: &str) -> Result<Scan> {
        crate::metrics::timed("local", "scan", async {
            let prefix = prefix.to_owned();
            self.blocking(move |inner| {
                // Read the revision under the write lock's shadow: a read transaction sees every
                // commit before it, and the revision only moves after a commit.
                let (txn, revision) = {
                    let _g = inner.core.write_lock.lock();
                    (inner.core.db.begin_read()?, *inner.core.revision.borrow())
                };
                let kv = txn.open_table(KV)?;
                Ok(Scan {
                    revision,
                    entries: scan_table(&kv, &prefix)?,
                })
            })
            .await
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "local", prefix = %prefix))]
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        crate::metrics::timed("local", "del_prefix", async {
            let prefix = prefix.to_owned();
            self.write(move |kv, rev| {
                let keys: Vec<String> = scan_table(kv, &prefix)?
                    .into_iter()
                    .map(|e| e.key)
                    .collect();
                let mut events = Vec::with_capacity(keys.len());
                for k in keys {
                    kv.remove(k.as_str())?;
                    events.push(delete_event(k, rev));
                }
                Ok((events.len() as u64, events))
            })
            .await
        })
        .await
    }

    async fn current_revision(&self) -> Result<u64> {
        Ok(*self.inner.core.revision.borrow())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "local", prefix = %prefix))]
    async fn watch(&self, prefix: &str, from_revision: Option<u64>) -> Result<WatchStream> {
        crate::metrics::timed("local", "watch", async {
            if self.inner.cancel.is_cancelled() {
                return Err(MetaError::Closed);
            }
            let mut rev_rx = self.inner.core.revision.subscribe();
            let start = from_revision
                .unwrap_or(*rev_rx.borrow_and_update() + 1)
                .max(1);
            let (tx, rx) = mpsc::channel(WATCH_QUEUE);
            let inner = self.inner.clone();
            let prefix = prefix.to_owned();
            self.inner.tracker.spawn(async move {
                let mut next = start;
                loop {
                    // Copy a batch out of the history, then send it without holding the lock.
                    let batch: Result<(Vec<WatchEvent>, u64)> = {
                        let h = inner.core.history.lock();
                        if next < h.oldest {
                            Err(MetaError::Compacted {
                                requested: next,
                                oldest: h.oldest,
                            })
                        } else {
                            let from = h.events.partition_point(|e| e.revision < next);
                            let mut out = Vec::new();
                            let mut covered = next.saturating_sub(1);
                            for e in h.events.range(from..) {
                                if out.len() >= 256 && e.revision != covered {
                                    break;
                                }
                                covered = e.revision;
                                if e.key.starts_with(&prefix) {
                                    out.push(e.clone());
                                }
                            }
                            Ok((out, covered))
                        }
                    };
                    let (events, covered) = match batch {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    for ev in events {
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    if covered >= next {
                        next = covered + 1;
                        continue;
                    }
                    // Caught up: wait for the next commit.
                    tokio::select! {
                        changed = rev_rx.changed() => {
                            if changed.is_err() {
                                let _ = tx.send(Err(MetaError::Closed)).await;
                                return;
                            }
                        }
                        () = inner.cancel.cancelled() => {
                            let _ = tx.send(Err(MetaError::Closed)).await;
                            return;
                        }
                        () = tx.closed() => return,
                    }
                }
            });
            Ok(WatchStream::new(rx, start))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "local"))]
    async fn create_session(&self, ttl: Duration) -> Result<Session> {
        crate::metrics::timed("local", "create_session", async {
            if self.inner.cancel.is_cancelled() {
                return Err(MetaError::Closed);
            }
            let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
            let session = Session::new(id, ttl, self.inner.store_id, &self.inner.cancel);
            self.inner.sessions.lock().insert(id, session.clone());
            Ok(session)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = "local", key = %key))]
    async fn put_ephemeral(
        &self,
        session: &Session,
        key: &str,
        value: Bytes,
        expected: Expected,
        opts: EphemeralOptions,
    ) -> Result<Stat> {
        crate::metrics::timed("local", "put", async {
            session.check_usable(self.inner.store_id)?;
            let stat = self
                .put_inner(key, value.clone(), expected, Some(session.clone()))
                .await?;
            session.record(key, value, opts.recreate_on_reestablish);
            Ok(stat)
        })
        .await
    }

    async fn reestablish_session(&self, old: &Session) -> Result<Reestablished> {
        old.check_store(self.inner.store_id)?;
        let new = self.create_session(old.ttl()).await?;
        let (old_id, new_id) = (old.id(), new.id());
        let out = old
            .carry_over(new, |key, value| self.rebind(key, value, old_id, new_id))
            .await?;
        self.close_session(old).await?;
        Ok(out)
    }

    async fn close_session(&self, session: &Session) -> Result<()> {
        session.check_store(self.inner.store_id)?;
        session.mark_lost();
        self.inner.sessions.lock().remove(&session.id());
        self.delete_session_keys(session.id()).await?;
        Ok(())
    }

    async fn close(&self) {
        let sessions: Vec<Session> = self.inner.sessions.lock().values().cloned().collect();
        for s in sessions {
            if let Err(e) = self.close_session(&s).await {
                tracing::warn!(session = s.id(), error = %e, "close session failed");
            }
        }
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        let inner = self.inner.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || inner.stop_writer()).await {
            tracing::warn!(error = %e, "stopping the metadata writer failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `key` as an ephemeral of a new session that is then dropped without close.
    async fn put_leftover_ephemeral(store: &LocalStore, key: &str, value: &'static [u8]) {
        let s = store.create_session(Duration::from_secs(3)).await.unwrap();
        let (v, opts) = (Bytes::from_static(value), EphemeralOptions::default());
        store
            .put_ephemeral(&s, key, v, Expected::Absent, opts)
            .await
            .unwrap();
    }

    fn golden_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/local-format-1.redb")
    }

    /// Writes the golden file (run once per format version with STRATA_META_WRITE_GOLDEN=1).
    #[tokio::test]
    async fn write_golden_file() {
        if std::env::var_os("STRATA_META_WRITE_GOLDEN").is_none() {
            return;
        }
        let path = golden_path();
        let _ = std::fs::remove_file(&path);
        let store = LocalStore::open(&path).await.unwrap();
        store
            .put("/golden/a", Bytes::from_static(b"alpha"), Expected::Absent)
            .await
            .unwrap();
        store
            .put(
                "/golden/a",
                Bytes::from_static(b"alpha2"),
                Expected::Version(1),
            )
            .await
            .unwrap();
        store
            .put("/golden/b", Bytes::from_static(b"beta"), Expected::Absent)
            .await
            .unwrap();
        put_leftover_ephemeral(&store, "/golden/eph", b"e").await;
        // Dropped without close: the ephemeral key stays in the file, like after a crash.
    }

    /// A store written by format 1 (committed file) opens and reads back, its leftover ephemeral
    /// key is deleted, and it accepts new writes.
    #[tokio::test]
    async fn reads_golden_format_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy.redb");
        std::fs::copy(golden_path(), &path).unwrap();
        let store = LocalStore::open(&path).await.unwrap();
        let a = store.get("/golden/a").await.unwrap().unwrap();
        assert_eq!(&a.value[..], b"alpha2");
        assert_eq!(a.stat.version, 2);
        assert_eq!((a.stat.create_revision, a.stat.mod_revision), (1, 2));
        assert_eq!(
            &store.get("/golden/b").await.unwrap().unwrap().value[..],
            b"beta"
        );
        assert!(store.get("/golden/eph").await.unwrap().is_none());
        // 4 writes, plus the deletion of the ephemeral key on open.
        assert_eq!(store.current_revision().await.unwrap(), 5);
        let st = store
            .put("/golden/c", Bytes::from_static(b"c"), Expected::Absent)
            .await
            .unwrap();
        assert_eq!(st.mod_revision, 6);
        store.close().await;
    }

    #[test]
    fn prefix_end_works() {
        assert_eq!(prefix_end("/a/").as_deref(), Some("/a0"));
        assert_eq!(prefix_end("").as_deref(), None);
    }

    #[tokio::test]
    async fn ephemeral_keys_are_wiped_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let store = LocalStore::open(&path).await.unwrap();
            put_leftover_ephemeral(&store, "/e", b"x").await;
            store
                .put("/p", Bytes::from_static(b"y"), Expected::Absent)
                .await
                .unwrap();
            // Dropped without close: like a crash.
        }
        let store = LocalStore::open(&path).await.unwrap();
        assert!(store.get("/e").await.unwrap().is_none());
        assert_eq!(&store.get("/p").await.unwrap().unwrap().value[..], b"y");
        // The deletion bumped the revision; old history cannot be replayed.
        let rev = store.current_revision().await.unwrap();
        assert_eq!(rev, 3);
        let mut w = store.watch("/", Some(1)).await.unwrap();
        assert!(matches!(
            w.next().await,
            Some(Err(MetaError::Compacted { .. }))
        ));
        store.close().await;
    }
}

crate::conformance_tests!(local_conformance, async || {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("meta.redb"))
        .await
        .unwrap();
    (
        std::sync::Arc::new(store) as std::sync::Arc<dyn crate::MetadataStore>,
        dir,
    )
});

crate::conformance_tests!(in_memory_conformance, async || {
    let store = LocalStore::in_memory().unwrap();
    (
        std::sync::Arc::new(store) as std::sync::Arc<dyn crate::MetadataStore>,
        (),
    )
});

/// Random operation sequences against a reference model: same results, same versions, and a
/// watch sees exactly the model's changes.
#[cfg(test)]
mod model_check {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u8, Option<u64>, bool),
        Delete(u8, Option<u64>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                0u8..4,
                any::<u8>(),
                prop::option::of(0u64..4),
                any::<bool>()
            )
                .prop_map(|(k, v, e, absent)| Op::Put(k, v, e, absent)),
            (0u8..4, prop::option::of(0u64..4)).prop_map(|(k, e)| Op::Delete(k, e)),
        ]
    }

    fn expected(e: Option<u64>, absent: bool) -> Expected {
        match (e, absent) {
            (Some(v), _) => Expected::Version(v),
            (None, true) => Expected::Absent,
            (None, false) => Expected::Any,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
        #[test]
        fn behaves_like_the_model(ops in prop::collection::vec(op(), 1..40)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let store = LocalStore::open(dir.path().join("m.redb")).await.unwrap();
                let mut w = store.watch("/", None).await.unwrap();
                let mut model: BTreeMap<String, (u8, u64)> = BTreeMap::new();
                let mut log: Vec<(EventKind, String, u64)> = Vec::new();
                for op in ops {
                    match op {
                        Op::Put(k, v, e, absent) => {
                            let key = format!("/k{k}");
                            let exp = expected(e, absent);
                            let cur = model.get(&key).map(|x| x.1);
                            let r = store.put(&key, Bytes::from(vec![v]), exp).await;
                            if exp.matches(cur) {
                                let version = cur.unwrap_or(0) + 1;
                                assert_eq!(r.unwrap().version, version);
                                model.insert(key.clone(), (v, version));
                                let kind = if version == 1 { EventKind::Create } else { EventKind::Modify };
                                log.push((kind, key, version));
                            } else {
                                assert!(r.unwrap_err().is_conflict());
                            }
                        }
                        Op::Delete(k, e) => {
                            let key = format!("/k{k}");
                            let exp = expected(e, false);
                            let cur = model.get(&key).map(|x| x.1);
                            let r = store.delete(&key, exp).await;
                            if exp.matches(cur) {
                                assert_eq!(r.unwrap(), cur.is_some());
                                if model.remove(&key).is_some() {
                                    log.push((EventKind::Delete, key, 0));
                                }
                            } else {
                                assert!(r.unwrap_err().is_conflict());
                            }
                        }
                    }
                }
                let scan = store.scan("/").await.unwrap();
                let got: BTreeMap<String, (u8, u64)> = scan
                    .entries
                    .into_iter()
                    .map(|kv| (kv.key, (kv.value.value[0], kv.value.stat.version)))
                    .collect();
                assert_eq!(got, model);
                let mut seen = Vec::new();
                let mut last_rev = 0;
                for _ in 0..log.len() {
                    let ev = w.next().await.unwrap().unwrap();
                    assert!(ev.revision > last_rev);
                    last_rev = ev.revision;
                    seen.push((ev.kind, ev.key, ev.version));
                }
                assert_eq!(seen, log);
                assert_eq!(store.current_revision().await.unwrap(), log.len() as u64);
                store.close().await;
            });
        }
    }
}
