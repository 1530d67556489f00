//! The state an [`super::EtcdStore`] shares with its background tasks: one client per endpoint,
//! the preferred endpoint, open sessions.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::{AtomicUsize, Ordering};

use etcd_client::Client;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::options::EtcdOptions;
use crate::session::SessionInner;

/// One member of the cluster and its client.
pub(super) struct Endpoint {
    pub(super) url: String,
    pub(super) client: Client,
}

/// Shared by the store handle, its watch tasks and keep-alive tasks.
pub(super) struct Inner {
    pub(super) endpoints: Vec<Endpoint>,
    pub(super) preferred: AtomicUsize,
    pub(super) opts: EtcdOptions,
    pub(super) store_id: u64,
    /// Sessions created by this store (to revoke their leases on close).
    pub(super) sessions: parking_lot::Mutex<HashMap<i64, Weak<SessionInner>>>,
    pub(super) cancel: CancellationToken,
    pub(super) tracker: TaskTracker,
}

impl Inner {
    /// The index of the endpoint requests go to now.
    pub(super) fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.endpoints.len()
    }

    /// Moves the preferred endpoint past `failed` (unless another caller already did).
    pub(super) fn rotate(&self, failed: usize) {
        let n = self.endpoints.len();
        if n > 1
            && self
                .preferred
                .compare_exchange(
                    failed,
                    (failed + 1) % n,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            crate::metrics::global().endpoint_failovers.inc();
        }
    }
}
