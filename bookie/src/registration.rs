//! How a bookie announces itself to the cluster: [`MetaRegistrar`] writes an ephemeral,
//! lease-bound key (`/bookies/<id>`, `strata_meta::model::BookieInfo`) in the metadata store and
//! refreshes it periodically; [`NoopRegistrar`] announces nothing (no `--metadata`).

use serde::{Deserialize, Serialize};
use strata_proto::BookieId;

/// What a bookie publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookieInfo {
    /// Identity: the advertised gRPC `host:port`.
    pub id: BookieId,
    /// HTTP `host:port` (health, metrics), if served.
    pub http_address: Option<String>,
    /// Free bytes on the emptier of its data filesystems.
    pub free_bytes: u64,
    /// Size of the smaller of its data filesystems.
    pub total_bytes: u64,
    /// Whether it refuses adds.
    pub read_only: bool,
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
#[error("registration failed: {0}")]
pub struct RegistrationError(pub String);

/// Announces a bookie while it runs. Implementations keep the entry alive (lease keep-alive) between
/// calls and drop it when the process dies.
#[async_trait::async_trait]
pub trait Registrar: Send + Sync + 'static {
    /// Creates the ephemeral entry.
    async fn register(&self, info: &BookieInfo) -> Result<(), RegistrationError>;
    /// Updates the entry (free space, read-only flag); called periodically.
    async fn update(&self, info: &BookieInfo) -> Result<(), RegistrationError>;
    /// Removes the entry (graceful shutdown).
    async fn deregister(&self) -> Result<(), RegistrationError>;
    /// Records the bookie's disk instance and object storage URL (see [`crate::disk`]); the
    /// default records nothing.
    async fn announce_disk(
        &self,
        id: &BookieId,
        instance: &str,
        storage_url: Option<&str>,
    ) -> Result<(), RegistrationError> {
        let _ = (id, instance, storage_url);
        Ok(())
    }
}

/// A registrar that announces nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopRegistrar;

#[async_trait::async_trait]
impl Registrar for NoopRegistrar {
    async fn register(&self, info: &BookieInfo) -> Result<(), RegistrationError> {
        tracing::debug!(bookie = %info.id, "no metadata store configured; not registering");
        Ok(())
    }

    async fn update(&self, _info: &BookieInfo) -> Result<(), RegistrationError> {
        Ok(())
    }

    async fn deregister(&self) -> Result<(), RegistrationError> {
        Ok(())
    }
}

/// Registers the bookie in the metadata store (`strata_meta`): an ephemeral key under
/// `/bookies/<id>` bound to a session (lease) of `ttl`, so it vanishes when the process dies
/// (after the TTL) and is deleted on a graceful shutdown. Each `update` rewrites it with fresh
/// free space and read-only state; a lost session is re-established (which re-creates the key).
pub struct MetaRegistrar {
    meta: strata_meta::model::MetaClient,
    ttl: std::time::Duration,
    rack: Option<String>,
    session: tokio::sync::Mutex<Option<strata_meta::Session>>,
    /// Set by `deregister` (under the session lock): later updates write nothing.
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for MetaRegistrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaRegistrar")
            .field("ttl", &self.ttl)
            .field("rack", &self.rack)
            .finish()
    }
}

impl MetaRegistrar {
    /// A registrar over `store` (default key layout) with a session of `ttl`.
    pub fn new(
        store: std::sync::Arc<dyn strata_meta::MetadataStore>,
        ttl: std::time::Duration,
        rack: Option<String>,
    ) -> Self {
        Self {
            meta: strata_meta::model::MetaClient::new(store, strata_meta::model::Paths::default()),
            ttl,
            rack,
            session: tokio::sync::Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The typed metadata client (e.g. to list registered bookies).
    pub fn meta(&self) -> &strata_meta::model::MetaClient {
        &self.meta
    }

    fn model(&self, info: &BookieInfo) -> strata_meta::model::BookieInfo {
        strata_meta::model::BookieInfo {
            bookie_id: info.id.clone(),
            address: info.id.0.clone(),
            free_space_bytes: info.free_bytes,
            total_space_bytes: info.total_bytes,
            rack: self.rack.clone(),
            read_only: info.read_only,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    async fn write(&self, info: &BookieInfo) -> Result<(), RegistrationError> {
        let err = |e: strata_meta::MetaError| RegistrationError(e.to_string());
        let mut guard = self.session.lock().await;
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(()); // deregistered: a late update must not register again
        }
        let store = self.meta.store().clone();
        let session = match guard.take() {
            None => store.create_session(self.ttl).await.map_err(err)?,
            Some(s) if s.is_lost() => {
                tracing::warn!("metadata session lost; re-establishing the bookie registration");
                match store.reestablish_session(&s).await {
                    Ok(r) => r.session,
                    Err(e) => {
                        // keep the old one: the next update retries
                        *guard = Some(s);
                        return Err(err(e));
                    }
                }
            }
            Some(s) => s,
        };
        let res = self.meta.register_bookie(&session, &self.model(info)).await;
        *guard = Some(session);
        res.map(|_| ()).map_err(err)
    }
}

#[async_trait::async_trait]
impl Registrar for MetaRegistrar {
    async fn register(&self, info: &BookieInfo) -> Result<(), RegistrationError> {
        self.write(info).await?;
        tracing::info!(bookie = %info.id, "registered in the metadata store");
        Ok(())
    }

    async fn update(&self, info: &BookieInfo) -> Result<(), RegistrationError> {
        self.write(info).await
    }

    async fn announce_disk(
        &self,
        id: &BookieId,
        instance: &str,
        storage_url: Option<&str>,
    ) -> Result<(), RegistrationError> {
        use crate::disk::{DiskRecord, next_record, record_key};
        let key = record_key(self.meta.paths(), &id.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let written = self
            .meta
            .update::<DiskRecord, _>(&key, |cur| {
                Ok(next_record(cur.as_ref(), instance, storage_url, now))
            })
            .await
            .map_err(|e| RegistrationError(e.to_string()))?;
        if let Some((r, _)) = written
            && r.replaced_at_ms.is_some()
            && !r.checked
        {
            tracing::warn!(bookie = %id, instance, "this bookie id came back with a new disk; auto-recovery will copy back what it lost");
        }
        Ok(())
    }

    async fn deregister(&self) -> Result<(), RegistrationError> {
        let session = {
            let mut g = self.session.lock().await;
            self.closed
                .store(true, std::sync::atomic::Ordering::Release);
            g.take()
        };
        if let Some(s) = session {
            // ending the session deletes the key at once (no TTL wait)
            self.meta
                .store()
                .close_session(&s)
                .await
                .map_err(|e| RegistrationError(e.to_string()))?;
        }
        Ok(())
    }
}
