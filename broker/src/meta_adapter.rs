//! [`BrokerMetadata`] over `strata_meta`'s [`MetadataStore`] (redb in standalone, etcd in a cluster).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use strata_meta::{Expected, MetadataStore};

use crate::metadata::{BrokerMetadata, Expect, MetaError, Versioned};

/// The broker's metadata slice over a `strata_meta` store.
#[derive(Clone)]
pub struct MetaStoreAdapter {
    store: Arc<dyn MetadataStore>,
}

impl MetaStoreAdapter {
    /// Wraps a store.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }
}

fn map_err(key: &str, e: strata_meta::MetaError) -> MetaError {
    if e.is_conflict() {
        MetaError::BadVersion(key.to_owned())
    } else if e.is_retryable() {
        MetaError::Unavailable(e.to_string())
    } else {
        MetaError::Other(e.to_string())
    }
}

#[async_trait]
impl BrokerMetadata for MetaStoreAdapter {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, MetaError> {
        let v = self.store.get(key).await.map_err(|e| map_err(key, e))?;
        Ok(v.map(|v| Versioned {
            value: v.value,
            version: v.stat.version,
        }))
    }

    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> Result<u64, MetaError> {
        let exp = match expect {
            Expect::Any => Expected::Any,
            Expect::Absent => Expected::Absent,
            Expect::Version(v) => Expected::Version(v),
        };
        let st = self
            .store
            .put(key, value, exp)
            .await
            .map_err(|e| map_err(key, e))?;
        Ok(st.version)
    }

    async fn delete(&self, key: &str) -> Result<(), MetaError> {
        self.store
            .delete(key, Expected::Any)
            .await
            .map_err(|e| map_err(key, e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Bytes)>, MetaError> {
        let scan = self
            .store
            .scan(prefix)
            .await
            .map_err(|e| map_err(prefix, e))?;
        let mut out: Vec<(String, Bytes)> = scan
            .entries
            .into_iter()
            .map(|kv| (kv.key, kv.value.value))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
