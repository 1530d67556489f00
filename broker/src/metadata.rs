//! The slice of the metadata store the broker needs: versioned get, compare-and-set put, delete,
//! prefix list. `strata standalone` implements it over `strata_meta`'s store (see
//! `meta_adapter.rs`); [`MemMetadata`] is for unit tests only.
//!
//! Keys used by the broker (all under `/strata/broker/`, apart from the shared ledger metadata the
//! ledger client writes through `strata_meta::model`):
//! - `managed-ledgers/{tenant}/{ns}/{domain}/{topic}`: the topic's ledger list ([`crate::managed_ledger`]).
//! - `cursors/{tenant}/{ns}/{domain}/{topic}/{subscription}`: a durable cursor ([`crate::cursor`]).
//! - `partitioned-topics/{tenant}/{ns}/{domain}/{topic}`: partition count.
//! - `schemas/{tenant}/{ns}/{topic}`: schema versions.
//! - tenants and namespaces are not under this root: they use `strata_meta`'s shared layout
//!   (`/strata/tenants/{tenant}`, `/strata/namespaces/{tenant}/{ns}`), written by `strata init-cluster` too.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

/// Errors of the metadata store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    #[error("version conflict on {0}")]
    BadVersion(String),
    #[error("metadata unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt metadata value at {0}: {1}")]
    Corrupt(String, String),
    #[error("metadata: {0}")]
    Other(String),
}

impl MetaError {
    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MetaError::Unavailable(_) | MetaError::BadVersion(_))
    }
}

/// A value with its version (bumped by every put).
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Bytes,
    /// Opaque version for compare-and-set.
    pub version: u64,
}

/// Expected state for a compare-and-set put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Overwrite whatever is there.
    Any,
    /// The key must not exist.
    Absent,
    /// The key must have this version.
    Version(u64),
}

/// Metadata operations used by the broker.
#[async_trait]
pub trait BrokerMetadata: Send + Sync + 'static {
    /// Reads a key.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, MetaError>;
    /// Writes a key if `expect` holds; returns the new version.
    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> Result<u64, MetaError>;
    /// Deletes a key (no error when absent).
    async fn delete(&self, key: &str) -> Result<(), MetaError>;
    /// Every key (full key) and value under `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Bytes)>, MetaError>;
}

/// Key prefix of everything the broker stores.
pub const ROOT: &str = "/strata/broker";

/// In-memory metadata for unit tests.
#[derive(Default, Clone)]
pub struct MemMetadata {
    map: Arc<Mutex<BTreeMap<String, (Bytes, u64)>>>,
    /// Number of puts (tests check cursor writes are batched).
    pub puts: Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait]
impl BrokerMetadata for MemMetadata {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, MetaError> {
        Ok(self.map.lock().get(key).map(|(v, ver)| Versioned {
            value: v.clone(),
            version: *ver,
        }))
    }
    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> Result<u64, MetaError> {
        self.puts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut m = self.map.lock();
        let cur = m.get(key).map(|(_, v)| *v);
        let ok = match expect {
            Expect::Any => true,
            Expect::Absent => cur.is_none(),
            Expect::Version(v) => cur == Some(v),
        };
        if !ok {
            return Err(MetaError::BadVersion(key.to_owned()));
        }
        let ver = cur.unwrap_or(0) + 1;
        m.insert(key.to_owned(), (value, ver));
        Ok(ver)
    }
    async fn delete(&self, key: &str) -> Result<(), MetaError> {
        self.map.lock().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Bytes)>, MetaError> {
        Ok(self
            .map
            .lock()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect())
    }
}
