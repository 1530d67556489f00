//! The crate's error type. Callers decide retries from [`MetaError::is_retryable`], never from
//! message strings.

use std::time::Duration;

/// Result alias of this crate.
pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// Everything a metadata operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A compare-and-set precondition did not hold: the key's version is not the expected one.
    /// `actual` is `None` when the key does not exist. Resolve by re-reading and retrying (see
    /// [`crate::retry::update`]), never by overwriting.
    #[error("version conflict on {key}: expected {expected}, found {}", fmt_version(*.actual))]
    BadVersion {
        /// The key.
        key: String,
        /// What the caller expected.
        expected: crate::Expected,
        /// The version found (`None`: absent).
        actual: Option<u64>,
    },
    /// A typed read found no value where one is required.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend cannot be reached right now (all endpoints down, no leader, timeout). Safe to
    /// retry; note that a write that timed out may or may not have been applied.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// An operation did not finish within its deadline.
    #[error("metadata operation timed out after {0:?}")]
    Timeout(Duration),
    /// A watch asked for revisions the store no longer keeps (etcd compaction, or before the
    /// embedded store was opened). Re-read the state with a scan and watch from its revision.
    #[error("revision {requested} is compacted (oldest available: {oldest})")]
    Compacted {
        /// First revision the watch asked for.
        requested: u64,
        /// Oldest revision the store can replay from.
        oldest: u64,
    },
    /// The session's lease is gone (expired, revoked or not renewable in time). Ephemeral keys
    /// written through it may already be deleted; stop acting on anything it guarded.
    #[error("session {0} lost")]
    SessionLost(i64),
    /// The store was closed.
    #[error("metadata store closed")]
    Closed,
    /// The caller passed something invalid (empty key, key not starting with '/', ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A stored value could not be decoded (corrupt, or written by an unknown newer format).
    #[error("cannot decode {key}: {reason}")]
    Decode {
        /// The key whose value failed to decode.
        key: String,
        /// Why.
        reason: String,
    },
    /// A CAS retry loop gave up after too many conflicts.
    #[error("too much contention on {key}: gave up after {attempts} attempts")]
    Contention {
        /// The key.
        key: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The embedded store's disk layer failed.
    #[error("local store: {0}")]
    Local(String),
    /// etcd answered with an error that retrying will not fix.
    #[error("etcd: {0}")]
    Etcd(String),
}

fn fmt_version(v: Option<u64>) -> String {
    match v {
        Some(v) => format!("version {v}"),
        None => "no key".to_owned(),
    }
}

impl MetaError {
    /// Whether the same operation may succeed if tried again later (after a backoff). A
    /// [`MetaError::BadVersion`] is not retryable as such: re-read first.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MetaError::Unavailable(_) | MetaError::Timeout(_))
    }

    /// Whether this is a compare-and-set conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, MetaError::BadVersion { .. })
    }
}

impl From<redb::Error> for MetaError {
    fn from(e: redb::Error) -> Self {
        MetaError::Local(e.to_string())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for MetaError {
            fn from(e: $t) -> Self {
                MetaError::Local(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
