//! Starting and stopping a broker: the Pulsar listener, the HTTP listener and background tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::service::BrokerService;

/// A running broker.
pub struct BrokerServer {
    /// The shared service.
    pub service: Arc<BrokerService>,
    /// Bound Pulsar protocol address.
    pub broker_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    /// Bound Pulsar protocol TLS address (when TLS is configured).
    pub broker_tls_addr: Option<SocketAddr>,
    /// Bound HTTPS address (when TLS is configured).
    pub http_tls_addr: Option<SocketAddr>,
    accept_cancel: CancellationToken,
    conn_cancel: CancellationToken,
    http_cancel: CancellationToken,
    tasks: TaskTracker,
    conns: TaskTracker,
    http: TaskTracker,
}

impl BrokerServer {
    /// Binds the listeners (plain, and TLS when configured) and starts serving.
    pub async fn start(service: Arc<BrokerService>) -> std::io::Result<Self> {
        let cfg = &service.config;
        let listener = TcpListener::bind((cfg.bind_address.as_str(), cfg.broker_port)).await?;
        let http_listener = TcpListener::bind((cfg.bind_address.as_str(), cfg.http_port)).await?;
        let broker_addr = listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        *service.ports.lock() = (broker_addr.port(), http_addr.port());
        let security = service.security();
        let acceptor = match security.server_tls() {
            Some(t) if cfg.broker_port_tls.is_some() || cfg.http_port_tls.is_some() => Some(
                t.acceptor()
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            Some(_) => {
                warn!(
                    "TLS certificates configured but no TLS port (broker_port_tls/http_port_tls)"
                );
                None
            }
            None => {
                if cfg.broker_port_tls.is_some() || cfg.http_port_tls.is_some() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "a TLS port needs tls_cert_file and tls_key_file",
                    ));
                }
                None
            }
        };
        let bind_tls = |port: Option<u16>| {
            let addr = cfg.bind_address.clone();
            async move {
                match port {
                    Some(p) => TcpListener::bind((addr.as_str(), p)).await.map(Some),
                    None => Ok(None),
                }
            }
        };
        let (tls_listener, https_listener) = match &acceptor {
            Some(_) => (
                bind_tls(cfg.broker_port_tls).await?,
                bind_tls(cfg.http_port_tls).await?,
            ),
            None => (None, None),
        };
        let broker_tls_addr = tls_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let http_tls_addr = https_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        *service.tls_ports.lock() = (
            broker_tls_addr.map(|a| a.port()),
            http_tls_addr.map(|a| a.port()),
        );
        let accept_cancel = CancellationToken::new();
        let conn_cancel = CancellationToken::new();
        let http_cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let conns = TaskTracker::new();
        let http = TaskTracker::new();

        let (svc, ac, cc, ct) = (
            service.clone(),
            accept_cancel.clone(),
            conn_cancel.clone(),
            conns.clone(),
        );
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = ac.cancelled() => break,
                    r = listener.accept() => match r {
                        Ok((stream, peer)) => {
                            ct.spawn(crate::connection::serve(stream, peer, svc.clone(), cc.child_token()));
                        }
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        });

        let (svc, ac) = (service.clone(), accept_cancel.clone());
        tasks.spawn(async move {
            let mut tick =
                tokio::time::interval(svc.config.trim_interval.max(Duration::from_millis(100)));
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = ac.cancelled() => break,
                    _ = tick.tick() => svc.trim_all().await,
                }
            }
        });

        let (svc, ac) = (service.clone(), accept_cancel.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(
                svc.config
                    .policy_refresh_interval
                    .max(Duration::from_millis(100)),
            );
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = ac.cancelled() => break,
                    _ = tick.tick() => crate::policy::enforce_all(&svc).await,
                }
            }
        });

        if let (Some(acceptor), Some(l)) = (&acceptor, tls_listener) {
            let rx = crate::tls_listener::spawn_acceptor(
                l,
                acceptor.clone(),
                accept_cancel.clone(),
                &tasks,
            );
            crate::tls_listener::spawn_pulsar_tls(
                rx,
                service.clone(),
                accept_cancel.clone(),
                conn_cancel.clone(),
                &tasks,
                conns.clone(),
            );
        }
        if let (Some(acceptor), Some(l), Some(local)) = (&acceptor, https_listener, http_tls_addr) {
            let rx = crate::tls_listener::spawn_acceptor(
                l,
                acceptor.clone(),
                http_cancel.clone(),
                &http,
            );
            let router = crate::http::router(service.clone());
            let hc = http_cancel.clone();
            http.spawn(async move {
                let app =
                    router.into_make_service_with_connect_info::<crate::tls_listener::TlsPeer>();
                let r = axum::serve(crate::tls_listener::HttpsListener::new(rx, local), app)
                    .with_graceful_shutdown(async move { hc.cancelled().await })
                    .await;
                if let Err(e) = r {
                    warn!(error = %e, "https server failed");
                }
            });
        }

        let router = crate::http::router(service.clone());
        let hc = http_cancel.clone();
        http.spawn(async move {
            let r = axum::serve(http_listener, router)
                .with_graceful_shutdown(async move { hc.cancelled().await })
                .await;
            if let Err(e) = r {
                warn!(error = %e, "http server failed");
            }
        });
        info!(pulsar = %broker_addr, http = %http_addr, pulsar_tls = ?broker_tls_addr, https = ?http_tls_addr, "broker listening");
        Ok(BrokerServer {
            service,
            broker_addr,
            http_addr,
            broker_tls_addr,
            http_tls_addr,
            accept_cancel,
            conn_cancel,
            http_cancel,
            tasks,
            conns,
            http,
        })
    }

    /// Stops in order: stop accepting, close connections, flush cursors and close ledgers, stop
    /// HTTP. Each step is bounded in time.
    pub async fn shutdown(self) {
        self.accept_cancel.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        self.conn_cancel.cancel();
        self.conns.close();
        if tokio::time::timeout(Duration::from_secs(10), self.conns.wait())
            .await
            .is_err()
        {
            warn!("connections did not close within 10s");
        }
        if tokio::time::timeout(Duration::from_secs(20), self.service.close_all())
            .await
            .is_err()
        {
            warn!("closing topics did not finish within 20s");
        }
        self.http_cancel.cancel();
        self.http.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.http.wait()).await;
        info!("broker stopped");
    }
}
