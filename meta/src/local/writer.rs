//! Group commit for [`super::LocalStore`]: writes are queued to one writer thread, which applies
//! everything queued (up to [`MAX_BATCH`] ops) in one redb write transaction and commits once.
//!
//! Each op keeps its own revision (the ops of a batch that change something get current+1,
//! current+2, ... in queue order; ops that change nothing consume none), its own result and its
//! own events. An op whose closure fails with a logical error (`BadVersion`, `SessionLost`,
//! `Decode`, ...) changed nothing, because every write closure checks its preconditions before
//! it mutates; it fails alone. A storage error (`MetaError::Local`, from redb) in any op, or a
//! failed commit, aborts the transaction and fails every op of the batch.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};

use parking_lot::Mutex;
use redb::Database;
use tokio::sync::{oneshot, watch};

use super::{HISTORY_EVENTS, KV, KvTable, META, META_REVISION};
use crate::error::{MetaError, Result};
use crate::store::WatchEvent;

/// Most ops applied in one write transaction. Large: a commit rewrites every B-tree page its
/// ops touch, so the cursors a broker writes on one tick (10,000 subscriptions: 10,000 puts)
/// cost a page each in small transactions but share their pages in large ones.
pub(super) const MAX_BATCH: usize = 16_384;

/// The state the writer thread shares with the store handles.
pub(super) struct Core {
    pub(super) db: Database,
    /// Held around every write transaction *and* the publication of its events, so that
    /// events enter the history in revision order (and a scan reads a consistent revision).
    pub(super) write_lock: Mutex<()>,
    pub(super) history: Mutex<History>,
    pub(super) revision: watch::Sender<u64>,
    /// Write transactions committed since the store was opened.
    pub(super) commits: AtomicU64,
}

pub(super) struct History {
    /// Every event with revision >= `oldest` is in `events`.
    pub(super) oldest: u64,
    pub(super) events: VecDeque<WatchEvent>,
}

/// The result a write closure hands back: its output and the events of its change (none: it
/// changed nothing).
pub(super) type Applied<T> = Result<(T, Vec<WatchEvent>)>;

/// A queued write, type-erased.
pub(super) trait WriteOp: Send {
    /// Runs the op at revision `rev`; returns its events. `Err` only for storage errors, which
    /// abort the batch; a logical error is kept for [`WriteOp::answer`].
    fn apply(&mut self, kv: &mut KvTable<'_>, rev: u64) -> Result<Vec<WatchEvent>>;
    /// Answers the caller, with `Err` if the batch failed.
    fn answer(self: Box<Self>, batch: std::result::Result<(), String>);
}

pub(super) struct Pending<T, F> {
    f: Option<F>,
    out: Option<Result<T>>,
    tx: oneshot::Sender<Result<T>>,
}

impl<T, F> Pending<T, F> {
    pub(super) fn new(f: F, tx: oneshot::Sender<Result<T>>) -> Self {
        Self {
            f: Some(f),
            out: None,
            tx,
        }
    }
}

impl<T, F> WriteOp for Pending<T, F>
where
    T: Send,
    F: FnOnce(&mut KvTable<'_>, u64) -> Applied<T> + Send,
{
    fn apply(&mut self, kv: &mut KvTable<'_>, rev: u64) -> Result<Vec<WatchEvent>> {
        let Some(f) = self.f.take() else {
            return Ok(Vec::new());
        };
        match f(kv, rev) {
            Ok((out, events)) => {
                self.out = Some(Ok(out));
                Ok(events)
            }
            Err(e @ MetaError::Local(_)) => Err(e),
            Err(e) => {
                self.out = Some(Err(e));
                Ok(Vec::new())
            }
        }
    }

    fn answer(self: Box<Self>, batch: std::result::Result<(), String>) {
        let result = match (batch, self.out) {
            (Ok(()), Some(out)) => out,
            (Ok(()), None) => Err(MetaError::Local("write was not applied".into())),
            (Err(msg), _) => Err(MetaError::Local(msg)),
        };
        let _ = self.tx.send(result);
    }
}

/// The writer thread: until every sender is gone, takes what is queued and commits it.
pub(super) fn run(core: Arc<Core>, rx: Receiver<Box<dyn WriteOp>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let outcome = {
            let _guard = core.write_lock.lock();
            let current = *core.revision.borrow();
            match commit_batch(&core, &mut batch, current) {
                Ok((events, last)) => {
                    if last > current {
                        publish(&mut core.history.lock(), events);
                        core.revision.send_replace(last);
                    }
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(ops = batch.len(), error = %e, "metadata write batch failed");
                    Err(e.to_string())
                }
            }
        };
        for op in batch {
            op.answer(outcome.clone());
        }
    }
}

/// Applies `batch` in one transaction; returns its events and the last revision (`current`
/// when nothing changed: then the transaction is aborted).
fn commit_batch(
    core: &Core,
    batch: &mut [Box<dyn WriteOp>],
    current: u64,
) -> Result<(Vec<WatchEvent>, u64)> {
    let txn = core.db.begin_write()?;
    let mut events = Vec::new();
    let mut rev = current;
    {
        let mut kv = txn.open_table(KV)?;
        for op in batch.iter_mut() {
            let evs = op.apply(&mut kv, rev + 1)?;
            if !evs.is_empty() {
                rev += 1;
                events.extend(evs);
            }
        }
    }
    if rev == current {
        txn.abort()?;
        return Ok((events, rev));
    }
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_REVISION, rev)?;
    }
    txn.commit()?;
    core.commits.fetch_add(1, Ordering::Relaxed);
    Ok((events, rev))
}

fn publish(h: &mut History, events: Vec<WatchEvent>) {
    h.events.extend(events);
    while h.events.len() > HISTORY_EVENTS {
        if let Some(ev) = h.events.pop_front() {
            h.oldest = ev.revision + 1;
        }
    }
    // Events of one revision are dropped together or not at all.
    while h.events.front().is_some_and(|e| e.revision < h.oldest) {
        h.events.pop_front();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use bytes::Bytes;

    use super::super::LocalStore;
    use crate::store::{EventKind, Expected, MetadataStore};

    const KEYS: u64 = 1000;

    /// Many concurrent writers: each gets its own result and revision, revisions are dense and
    /// in order, the watch sees every change in revision order, and commits are shared.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().join("g.redb")).await.unwrap();
        let mut w = store.watch("/", None).await.unwrap();
        // Phase 1: concurrent creates, all succeed.
        let mut tasks = Vec::new();
        for i in 0..KEYS {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("/k/{i}");
                s.put(&key, Bytes::from(vec![1]), Expected::Absent).await
            }));
        }
        let mut revs: HashMap<(String, u64), u64> = HashMap::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let st = t.await.unwrap().unwrap();
            assert_eq!(st.version, 1);
            assert_eq!(st.create_revision, st.mod_revision);
            revs.insert((format!("/k/{i}"), 1), st.mod_revision);
        }
        // Phase 2: per key, a CAS that succeeds and one that fails, interleaved.
        let mut tasks = Vec::new();
        for i in 0..KEYS {
            for expected in [1, 5] {
                let s = store.clone();
                tasks.push(tokio::spawn(async move {
                    let key = format!("/k/{i}");
                    let r = s
                        .put(&key, Bytes::from(vec![2]), Expected::Version(expected))
                        .await;
                    (key, expected, r)
                }));
            }
        }
        for t in tasks {
            let (key, expected, r) = t.await.unwrap();
            if expected == 1 {
                let st = r.unwrap();
                assert_eq!(st.version, 2);
                revs.insert((key, 2), st.mod_revision);
            } else {
                assert!(r.unwrap_err().is_conflict());
            }
        }
        // Dense: every revision 1..=2*KEYS returned exactly once.
        let mut all: Vec<u64> = revs.values().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (1..=2 * KEYS).collect::<Vec<_>>());
        assert_eq!(store.current_revision().await.unwrap(), 2 * KEYS);
        // The watch sees each change at the revision its writer was told, in order.
        for rev in 1..=2 * KEYS {
            let ev = w.next().await.unwrap().unwrap();
            assert_eq!(ev.revision, rev);
            assert_eq!(revs[&(ev.key.clone(), ev.version)], rev);
            let kind = if ev.version == 1 {
                EventKind::Create
            } else {
                EventKind::Modify
            };
            assert_eq!(ev.kind, kind);
        }
        let ops = 3 * KEYS;
        let commits = store.commits();
        assert!(commits < ops / 4, "{commits} commits for {ops} ops");
        // Failed ops changed nothing.
        for i in 0..KEYS {
            let v = store.get(&format!("/k/{i}")).await.unwrap().unwrap();
            assert_eq!((v.stat.version, &v.value[..]), (2, &[2u8][..]));
        }
        store.close().await;
        assert!(matches!(
            store.put("/x", Bytes::new(), Expected::Any).await,
            Err(crate::MetaError::Closed)
        ));
    }
}
