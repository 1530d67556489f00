//! The [`MetadataStore`] trait and the value types it speaks.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{MetaError, Result};
use crate::session::{EphemeralOptions, Reestablished, Session};
use crate::session_id::SessionId;

/// The precondition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// No precondition (last writer wins: only for values nobody races on).
    Any,
    /// The key must not exist ("create").
    Absent,
    /// The key must exist with exactly this version (compare-and-set).
    Version(u64),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Any => f.write_str("any"),
            Expected::Absent => f.write_str("no key"),
            Expected::Version(v) => write!(f, "version {v}"),
        }
    }
}

impl Expected {
    /// Whether a key with `actual` version (`None`: absent) satisfies this precondition.
    pub fn matches(&self, actual: Option<u64>) -> bool {
        match (self, actual) {
            (Expected::Any, _) => true,
            (Expected::Absent, None) => true,
            (Expected::Version(v), Some(a)) => *v == a,
            _ => false,
        }
    }
}

/// Version information of a stored key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// Per-key version: 1 when created, +1 on every write; back to 1 after delete + create.
    pub version: u64,
    /// Store revision of the write that created the key (monotonic across the whole store: usable
    /// as a fencing token / epoch for whoever created the key).
    pub create_revision: u64,
    /// Store revision of the last write to the key.
    pub mod_revision: u64,
    /// The session the key is bound to, if ephemeral.
    pub session: Option<SessionId>,
}

/// A value with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Bytes,
    /// Its version information.
    pub stat: Stat,
}

/// One key of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key.
    pub key: String,
    /// Value and version.
    pub value: Versioned,
}

/// A consistent snapshot of every key under a prefix.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Store revision the snapshot was taken at: watch from `revision + 1` to see every later
    /// change and nothing twice.
    pub revision: u64,
    /// Entries in key order.
    pub entries: Vec<KeyValue>,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created (its version is 1).
    Create,
    /// An existing key got a new value.
    Modify,
    /// The key was deleted (explicitly, or because its session ended).
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventKind,
    /// Full key.
    pub key: String,
    /// New value (empty for deletes).
    pub value: Bytes,
    /// Version after the change (0 for deletes).
    pub version: u64,
    /// Store revision of the change. Events arrive in revision order.
    pub revision: u64,
}

/// The events of a watch, in revision order, each exactly once, across reconnects.
///
/// Ends with `Some(Err(..))` followed by `None` when the watch cannot continue (e.g.
/// [`MetaError::Compacted`], [`MetaError::Closed`]). Dropping it stops the watch.
pub struct WatchStream {
    rx: mpsc::Receiver<Result<WatchEvent>>,
    next_revision: u64,
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream")
            .field("next_revision", &self.next_revision)
            .finish()
    }
}

impl WatchStream {
    pub(crate) fn new(rx: mpsc::Receiver<Result<WatchEvent>>, start: u64) -> Self {
        Self {
            rx,
            next_revision: start,
        }
    }

    /// The next event.
    ///
    /// # Cancel safety
    /// Cancel safe: an event is either returned or stays queued for the next call.
    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        let item = self.rx.recv().await;
        self.track(&item);
        item
    }

    /// The first revision not yet returned: after a [`MetaError::Compacted`] or a process
    /// restart, a new watch from here resumes where this one stopped.
    pub fn next_revision(&self) -> u64 {
        self.next_revision
    }

    fn track(&mut self, item: &Option<Result<WatchEvent>>) {
        if let Some(Ok(ev)) = item {
            self.next_revision = self.next_revision.max(ev.revision + 1);
        }
    }
}

impl futures::Stream for WatchStream {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(item) = &polled {
            self.track(item);
        }
        polled
    }
}

/// Capacity of a watch's event queue: a slow consumer applies back-pressure to the watch task,
/// which resumes from its revision, so nothing is dropped.
pub(crate) const WATCH_QUEUE: usize = 1024;

/// One store for everything brokers and bookies persist or coordinate through.
///
/// Keys are `/`-separated UTF-8 paths starting with `/`; values are opaque bytes (the typed layer
/// in [`crate::model`] puts versioned JSON in them). Every write bumps the store-wide revision;
/// every key has a version (see [`Stat`]). Implementations: [`crate::EtcdStore`],
/// [`crate::LocalStore`]; both pass [`crate::conformance`].
///
/// # Cancel safety
/// Reads (`get`, `scan`, `children`, `current_revision`) are cancel safe. Writes are not: a
/// cancelled write may or may not have been applied; re-read to find out. The same holds for a
/// write that failed with a retryable error.
#[async_trait]
pub trait MetadataStore: Send + Sync + fmt::Debug + 'static {
    /// Short backend name for logs and metrics (`"etcd"`, `"local"`).
    fn backend(&self) -> &'static str;

    /// The value and version of `key`, if it exists.
    async fn get(&self, key: &str) -> Result<Option<Versioned>>;

    /// Writes `value` if `expected` holds; returns the new version. A failed precondition is
    /// [`MetaError::BadVersion`]. Writing a key that is bound to a session keeps it bound (use
    /// [`MetadataStore::put_ephemeral`] to bind).
    async fn put(&self, key: &str, value: Bytes, expected: Expected) -> Result<Stat>;

    /// Deletes `key` if `expected` holds. Returns whether a key was deleted (`Expected::Any` on a
    /// missing key is `Ok(false)`; `Expected::Version` on a missing key is a conflict).
    async fn delete(&self, key: &str, expected: Expected) -> Result<bool>;

    /// Every key starting with `prefix` (a plain string prefix), as one consistent snapshot.
    async fn scan(&self, prefix: &str) -> Result<Scan>;

    /// The keys starting with `prefix`, without values, and the snapshot's revision.
    async fn scan_keys(&self, prefix: &str) -> Result<(Vec<String>, u64)> {
        let scan = self.scan(prefix).await?;
        Ok((
            scan.entries.into_iter().map(|kv| kv.key).collect(),
            scan.revision,
        ))
    }

    /// Names of the direct children of `parent` (`/a` has child `b` if any key starts with
    /// `/a/b/` or equals `/a/b`), sorted, without duplicates. Costs a key scan of the whole
    /// subtree: use it on flat directories (topics of a namespace, bookies), not on the root.
    async fn children(&self, parent: &str) -> Result<Vec<String>> {
        let prefix = format!("{}/", parent.trim_end_matches('/'));
        let (keys, _) = self.scan_keys(&prefix).await?;
        let mut out: Vec<String> = Vec::new();
        for k in keys {
            let Some(rest) = k.strip_prefix(&prefix) else {
                continue;
            };
            let name = rest.split('/').next().unwrap_or(rest);
            if !name.is_empty() && out.last().map(String::as_str) != Some(name) {
                out.push(name.to_owned());
            }
        }
        out.dedup();
        Ok(out)
    }

    /// Deletes every key starting with `prefix`; returns how many. Not atomic with respect to
    /// concurrent creates under the prefix.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;

    /// The store's current revision.
    async fn current_revision(&self) -> Result<u64>;

    /// Watches every key starting with `prefix`. `from_revision`: first revision to report
    /// (inclusive; `None`: changes after now). The stream reconnects by itself and resumes after
    /// the last delivered revision, so no event is missed or repeated; if the store no longer
    /// has that history it yields [`MetaError::Compacted`].
    async fn watch(&self, prefix: &str, from_revision: Option<u64>) -> Result<WatchStream>;

    /// Starts a session: a lease kept alive in the background. Its ephemeral keys vanish when it
    /// ends (closed, expired, or the process died). [`Session::lost`] fires as soon as the lease
    /// cannot be proven alive, before the server-side TTL runs out.
    async fn create_session(&self, ttl: Duration) -> Result<Session>;

    /// Writes a key bound to `session` (if `expected` holds): it is deleted when the session
    /// ends. `opts` says whether [`MetadataStore::reestablish_session`] re-creates it.
    async fn put_ephemeral(
        &self,
        session: &Session,
        key: &str,
        value: Bytes,
        expected: Expected,
        opts: EphemeralOptions,
    ) -> Result<Stat>;

    /// Deletes an ephemeral key and forgets it in `session` (so it is not re-created).
    async fn delete_ephemeral(
        &self,
        session: &Session,
        key: &str,
        expected: Expected,
    ) -> Result<bool> {
        session.forget(key);
        self.delete(key, expected).await
    }

    /// Replaces a (usually lost) session by a new one with the same TTL: ends the old lease (its
    /// keys are deleted), then re-creates the keys written with `recreate_on_reestablish`
    /// under the new session, unless another session created them in the meantime. Keys that
    /// survived under the old lease are moved without a delete in between.
    async fn reestablish_session(&self, old: &Session) -> Result<Reestablished>;

    /// Ends a session: its ephemeral keys are deleted and [`Session::lost`] fires.
    async fn close_session(&self, session: &Session) -> Result<()>;

    /// Shuts the store down: open sessions are ended (their ephemeral keys deleted, best effort
    /// and bounded in time), watches end with [`MetaError::Closed`], background tasks are
    /// awaited. Later calls fail with [`MetaError::Closed`].
    async fn close(&self);
}

pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.len() < 2 || !key.starts_with('/') {
        return Err(MetaError::InvalidArgument(format!(
            "key {key:?} must start with '/' and not be empty"
        )));
    }
    Ok(())
}
