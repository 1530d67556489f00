//! The id of a session, shared by the store trait and the session handle.

/// The id of a session (the etcd lease id; a process-local counter in [`crate::LocalStore`]).
pub type SessionId = i64;
