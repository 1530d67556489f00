//! Errors of the object-storage layer.

/// Result of this crate.
pub type Result<T, E = ObjStoreError> = std::result::Result<T, E>;

/// What went wrong talking to the object store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObjStoreError {
    /// The URL or its options cannot be used.
    #[error("invalid object store configuration: {0}")]
    Config(String),
    /// No such object.
    #[error("object {0} not found")]
    NotFound(String),
    /// A create-only write found an object there already.
    #[error("object {0} already exists")]
    AlreadyExists(String),
    /// The store returned fewer (or more) bytes than the range asked for.
    #[error("object {key}: expected {expected} bytes, got {got}")]
    Truncated {
        /// Object key.
        key: String,
        /// Bytes asked for.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// One attempt took longer than the attempt timeout.
    #[error("object store {op} on {key} timed out")]
    Timeout {
        /// Operation.
        op: &'static str,
        /// Object key.
        key: String,
    },
    /// A fault injected by a test.
    #[error("injected fault on {op} {key}: {what}")]
    Injected {
        /// Operation.
        op: &'static str,
        /// Object key.
        key: String,
        /// Which fault (e.g. `HTTP 503`).
        what: String,
    },
    /// Access refused (credentials, permissions): retrying does not help.
    #[error("object store refused access: {0}")]
    Denied(String),
    /// Anything else the backend reported (network, 5xx after its own retries, ...).
    #[error("object store: {0}")]
    Backend(String),
}

impl ObjStoreError {
    /// Whether the same call may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Truncated { .. }
                | Self::Timeout { .. }
                | Self::Injected { .. }
                | Self::Backend(_)
        )
    }

    /// Maps a backend error for the object `key`.
    pub(crate) fn from_backend(key: &str, e: object_store::Error) -> Self {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } => Self::NotFound(key.to_string()),
            E::AlreadyExists { .. } | E::Precondition { .. } => {
                Self::AlreadyExists(key.to_string())
            }
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => Self::Denied(e.to_string()),
            E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::UnknownConfigurationKey { .. } => Self::Config(e.to_string()),
            other => Self::Backend(other.to_string()),
        }
    }
}
