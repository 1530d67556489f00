//! Starting and stopping a bookie: storage recovery, the gRPC server, the HTTP server and
//! registration, with an ordered, bounded shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::BookieId;
use strata_proto::bookie::bookie_server::BookieServer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::StorageConfig;
use crate::error::BookieError;
use crate::metrics::Metrics;
use crate::registration::{BookieInfo, Registrar};
use crate::service::{BookieService, MAX_MESSAGE_BYTES};
use crate::storage::Storage;

/// HTTP/2 flow-control window of one stream (the connection gets four times as much): enough for
/// a few hundred 64 KiB adds in flight on one add stream.
pub use strata_bookie_client::limits::WINDOW_BYTES;

/// How to run a bookie.
#[derive(Debug, Clone)]
pub struct BookieOptions {
    /// Storage layout and tuning.
    pub storage: StorageConfig,
    /// gRPC listen address (port 0: any free port).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address; `None` serves no HTTP.
    pub http_addr: Option<SocketAddr>,
    /// Address announced to the cluster (default: the bound gRPC address).
    pub advertised_address: Option<String>,
    /// How often free space is re-announced.
    pub registration_interval: Duration,
}

/// A running bookie.
pub struct BookieNode {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: Option<SocketAddr>,
    /// The storage engine.
    pub storage: Arc<Storage>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    info: BookieInfo,
    registrar: Arc<dyn Registrar>,
    grpc_cancel: CancellationToken,
    http_cancel: CancellationToken,
    grpc_tasks: TaskTracker,
    http_tasks: TaskTracker,
    /// The task that updates the registration and what stops it (before the bookie deregisters).
    updates: tokio::task::JoinHandle<()>,
    updates_stop: CancellationToken,
}

impl std::fmt::Debug for BookieNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookieNode")
            .field("grpc_addr", &self.grpc_addr)
            .finish()
    }
}

impl BookieNode {
    /// Recovers the storage, then serves gRPC and HTTP and registers.
    pub async fn start(
        opts: BookieOptions,
        registrar: Arc<dyn Registrar>,
    ) -> Result<Self, BookieError> {
        let metrics = Arc::new(Metrics::new());
        let cfg = opts.storage.clone();
        let m = metrics.clone();
        let storage = tokio::task::spawn_blocking(move || Storage::open(cfg, m))
            .await
            .map_err(|e| BookieError::Invalid(format!("storage recovery panicked: {e}")))??;

        let grpc_cancel = CancellationToken::new();
        let http_cancel = CancellationToken::new();
        let grpc_tasks = TaskTracker::new();
        let http_tasks = TaskTracker::new();

        let listener = tokio::net::TcpListener::bind(opts.grpc_addr)
            .await
            .map_err(|e| BookieError::io(format!("bind gRPC {}", opts.grpc_addr), e))?;
        let grpc_addr = listener
            .local_addr()
            .map_err(|e| BookieError::io("read gRPC address", e))?;
        let svc = BookieService::new(
            storage.clone(),
            grpc_tasks.clone(),
            grpc_cancel.child_token(),
        );
        let server = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_connection_window_size(WINDOW_BYTES * 4)
            .initial_stream_window_size(WINDOW_BYTES)
            .add_service(
                BookieServer::new(svc)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            );
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let stop = grpc_cancel.clone();
        grpc_tasks.spawn(async move {
            if let Err(e) = server
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "gRPC server failed");
            }
        });

        let http_addr = match opts.http_addr {
            None => None,
            Some(a) => {
                let l = tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|e| BookieError::io(format!("bind HTTP {a}"), e))?;
                let bound = l
                    .local_addr()
                    .map_err(|e| BookieError::io("read HTTP address", e))?;
                let app = crate::http::router(metrics.clone(), storage.clone());
                let stop = http_cancel.clone();
                http_tasks.spawn(async move {
                    if let Err(e) = axum::serve(l, app)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await
                    {
                        tracing::error!(error = %e, "HTTP server failed");
                    }
                });
                Some(bound)
            }
        };

        let info = BookieInfo {
            id: BookieId(
                opts.advertised_address
                    .clone()
                    .unwrap_or_else(|| grpc_addr.to_string()),
            ),
            http_address: http_addr.map(|a| a.to_string()),
            free_bytes: storage.free_bytes(),
            total_bytes: storage.total_bytes(),
            read_only: storage.read_only_reason().is_some(),
        };
        let instance = crate::disk::instance(&opts.storage.ledger_dir)?;
        let storage_url = opts.storage.remote.as_ref().map(|r| r.store.url.clone());
        let announce = {
            let (registrar, id) = (registrar.clone(), info.id.clone());
            move || {
                let (registrar, id, instance, url) = (
                    registrar.clone(),
                    id.clone(),
                    instance.clone(),
                    storage_url.clone(),
                );
                async move {
                    let r = registrar
                        .announce_disk(&id, &instance, url.as_deref())
                        .await;
                    if let Err(e) = &r {
                        tracing::warn!(error = %e, "recording the disk instance failed (retried)");
                    }
                    r.is_ok()
                }
            }
        };
        // before registering: auto-recovery sees the new instance once the bookie is live
        let mut announced = announce().await;
        if let Err(e) = registrar.register(&info).await {
            tracing::warn!(error = %e, "bookie registration failed");
        }
        let updates_stop = grpc_cancel.child_token();
        let updates = {
            let registrar = registrar.clone();
            let storage = storage.clone();
            let stop = updates_stop.clone();
            let mut info = info.clone();
            let every = opts.registration_interval;
            grpc_tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                    if !announced {
                        announced = announce().await;
                    }
                    info.free_bytes = storage.free_bytes();
                    info.read_only = storage.read_only_reason().is_some();
                    if let Err(e) = registrar.update(&info).await {
                        tracing::warn!(error = %e, "bookie registration update failed");
                    }
                }
            })
        };
        tracing::info!(grpc = %grpc_addr, http = ?http_addr, bookie = %info.id, "bookie serving");
        Ok(Self {
            grpc_addr,
            http_addr,
            storage,
            metrics,
            info,
            registrar,
            grpc_cancel,
            http_cancel,
            grpc_tasks,
            http_tasks,
            updates,
            updates_stop,
        })
    }

    /// The published identity.
    pub fn info(&self) -> &BookieInfo {
        &self.info
    }

    /// This bookie as a [`strata_bookie_client::LocalBookie`], for a ledger client in the same
    /// process (`strata standalone`): the same checks and metrics as its gRPC service.
    pub fn local(&self) -> std::sync::Arc<dyn strata_bookie_client::LocalBookie> {
        std::sync::Arc::new(crate::local::LocalHandle {
            storage: self.storage.clone(),
            cancel: self.grpc_cancel.child_token(),
        })
    }

    /// Stops in order: stop updating the registration, deregister, stop gRPC (bounded drain),
    /// sync and checkpoint the storage, stop HTTP.
    pub async fn shutdown(self) {
        // no update after the deregistration (one in flight finishes first, bounded)
        self.updates_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), self.updates)
            .await
            .is_err()
        {
            tracing::warn!("the registration update did not stop within 5s");
        }
        if let Err(e) = self.registrar.deregister().await {
            tracing::warn!(error = %e, "bookie deregistration failed");
        }
        self.grpc_cancel.cancel();
        self.grpc_tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.grpc_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("gRPC tasks did not stop within 5s");
        }
        let storage = self.storage.clone();
        let _ = tokio::task::spawn_blocking(move || storage.shutdown()).await;
        self.http_cancel.cancel();
        self.http_tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.http_tasks.wait()).await;
        tracing::info!("bookie stopped");
    }
}
