//! How a bookie announces itself to the cluster. The metadata store implements [`Registrar`] with an
//! ephemeral, lease-bound key (e.g. `/bookies/<id>` holding [`BookieInfo`] as JSON); until it is wired,
//! [`NoopRegistrar`] is used.

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
