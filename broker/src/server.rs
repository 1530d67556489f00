//! Starting and stopping a broker: the Pulsar listener, the HTTP listener and background tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::MissedTickBehavior;
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
        let tls = TlsListeners::bind(&service).await?;
        let (broker_tls_addr, http_tls_addr) = tls.addrs()?;
        *service.tls_ports.lock() = (
            broker_tls_addr.map(|a| a.port()),
            http_tls_addr.map(|a| a.port()),
        );
        let server = BrokerServer {
            service,
            broker_addr,
            http_addr,
            broker_tls_addr,
            http_tls_addr,
            accept_cancel: CancellationToken::new(),
            conn_cancel: CancellationToken::new(),
            http_cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            conns: TaskTracker::new(),
            http: TaskTracker::new(),
        };
        server.spawn_pulsar(listener);
        server.spawn_background();
        server.spawn_tls(tls);
        server.spawn_http(http_listener);
        info!(pulsar = %broker_addr, http = %http_addr, pulsar_tls = ?broker_tls_addr, https = ?http_tls_addr, "broker listening");
        Ok(server)
    }

    /// Accepts Pulsar protocol connections.
    fn spawn_pulsar(&self, listener: TcpListener) {
        let (svc, ac, cc, ct) = (
            self.service.clone(),
            self.accept_cancel.clone(),
            self.conn_cancel.clone(),
            self.conns.clone(),
        );
        self.tasks.spawn(async move {
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
    }

    /// The periodic tasks: retention trimming, namespace policy enforcement and the rate
    /// sampler of topic stats.
    fn spawn_background(&self) {
        let cfg = &self.service.config;
        let sampler = self.service.metrics.sampler().clone();
        self.every(
            crate::stats::sampler::TICK,
            MissedTickBehavior::Delay,
            move || {
                sampler.sample(std::time::Instant::now());
                std::future::ready(())
            },
        );
        let svc = self.service.clone();
        self.every(cfg.trim_interval, MissedTickBehavior::Burst, move || {
            let svc = svc.clone();
            async move {
                svc.trim_all().await;
                svc.unload_idle_np_topics(crate::service::np_registry::NP_IDLE_UNLOAD);
            }
        });
        let svc = self.service.clone();
        self.every(
            cfg.policy_refresh_interval,
            MissedTickBehavior::Delay,
            move || {
                let svc = svc.clone();
                async move { crate::policy::enforce_all(&svc).await }
            },
        );
        if let Some(o) = self.service.offloader() {
            let svc = self.service.clone();
            self.every(
                o.config().check_interval,
                MissedTickBehavior::Delay,
                move || {
                    let svc = svc.clone();
                    async move { crate::offload::policy::enforce_all(&svc).await }
                },
            );
            let svc = self.service.clone();
            self.every(
                o.config().janitor_interval,
                MissedTickBehavior::Delay,
                move || {
                    let svc = svc.clone();
                    async move { crate::offload::policy::sweep(&svc).await }
                },
            );
        }
    }

    /// Runs `f` every `interval` (at least 100 ms) until the broker stops accepting.
    fn every<F, Fut>(&self, interval: Duration, missed: MissedTickBehavior, f: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let ac = self.accept_cancel.clone();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(missed);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = ac.cancelled() => break,
                    _ = tick.tick() => f().await,
                }
            }
        });
    }

    /// Serves the TLS listeners, when bound.
    fn spawn_tls(&self, tls: TlsListeners) {
        let Some(acceptor) = tls.acceptor else { return };
        if let Some(l) = tls.pulsar {
            let rx = crate::tls_listener::spawn_acceptor(
                l,
                acceptor.clone(),
                self.accept_cancel.clone(),
                &self.tasks,
            );
            crate::tls_listener::spawn_pulsar_tls(
                rx,
                self.service.clone(),
                self.accept_cancel.clone(),
                self.conn_cancel.clone(),
                &self.tasks,
                self.conns.clone(),
            );
        }
        if let (Some(l), Some(local)) = (tls.https, self.http_tls_addr) {
            let rx = crate::tls_listener::spawn_acceptor(
                l,
                acceptor,
                self.http_cancel.clone(),
                &self.http,
            );
            let router = crate::http::router(self.service.clone());
            let hc = self.http_cancel.clone();
            self.http.spawn(async move {
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
    }

    /// Serves the plain HTTP listener (lookup, admin, metrics).
    fn spawn_http(&self, http_listener: TcpListener) {
        let router = crate::http::router(self.service.clone());
        let hc = self.http_cancel.clone();
        self.http.spawn(async move {
            let r = axum::serve(http_listener, router)
                .with_graceful_shutdown(async move { hc.cancelled().await })
                .await;
            if let Err(e) = r {
                warn!(error = %e, "http server failed");
            }
        });
    }

    /// Stops in order: stop accepting, stop the offloader (uploads cancelled, prefetches
    /// ended), close connections, flush cursors and close ledgers, stop HTTP. Each step is
    /// bounded in time.
    pub async fn shutdown(self) {
        self.accept_cancel.cancel();
        if let Some(o) = self.service.offloader()
            && tokio::time::timeout(Duration::from_secs(10), o.shutdown())
                .await
                .is_err()
        {
            warn!("the offloader did not stop within 10s");
        }
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

/// The TLS acceptor and the TLS listeners, when configured.
struct TlsListeners {
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    pulsar: Option<TcpListener>,
    https: Option<TcpListener>,
}

impl TlsListeners {
    /// Binds the TLS ports the configuration names; certificates without a TLS port are a
    /// warning, a TLS port without certificates an error.
    async fn bind(service: &BrokerService) -> std::io::Result<Self> {
        let cfg = &service.config;
        let wants_tls = cfg.broker_port_tls.is_some() || cfg.http_port_tls.is_some();
        let acceptor = match service.security().server_tls() {
            Some(t) if wants_tls => Some(
                t.acceptor()
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            Some(_) => {
                warn!(
                    "TLS certificates configured but no TLS port (broker_port_tls/http_port_tls)"
                );
                None
            }
            None if wants_tls => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a TLS port needs tls_cert_file and tls_key_file",
                ));
            }
            None => None,
        };
        let bind = |port: Option<u16>| {
            let addr = cfg.bind_address.clone();
            async move {
                match port {
                    Some(p) => TcpListener::bind((addr.as_str(), p)).await.map(Some),
                    _ => Ok(None),
                }
            }
        };
        let (pulsar, https) = if acceptor.is_some() {
            (
                bind(cfg.broker_port_tls).await?,
                bind(cfg.http_port_tls).await?,
            )
        } else {
            (None, None)
        };
        Ok(TlsListeners {
            acceptor,
            pulsar,
            https,
        })
    }

    fn addrs(&self) -> std::io::Result<(Option<SocketAddr>, Option<SocketAddr>)> {
        Ok((
            self.pulsar.as_ref().map(|l| l.local_addr()).transpose()?,
            self.https.as_ref().map(|l| l.local_addr()).transpose()?,
        ))
    }
}
