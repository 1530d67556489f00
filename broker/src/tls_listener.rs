//! The TLS listeners (Pulsar's `brokerServicePortTls` and `webServicePortTls`).
//!
//! Handshakes run in their own tasks, bounded by [`HANDSHAKE_TIMEOUT`], so a slow or silent peer
//! never holds up the accept loop. A verified client certificate (mTLS) gives the connection a
//! role: its subject CN ([`strata_auth::tls::client_role`]), used when the client authenticates
//! with the `tls` method (binary protocol) or sends no token (HTTP).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// Longest time a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS connection after its handshake.
pub struct Accepted {
    /// The encrypted stream.
    pub stream: TlsStream<TcpStream>,
    /// The peer.
    pub peer: SocketAddr,
    /// Role of the verified client certificate, if any.
    pub role: Option<String>,
}

/// Accepts TCP connections on `listener` and hands over those whose handshake succeeded.
/// Stops when `cancel` fires; handshake tasks are tracked by `tasks`.
pub fn spawn_acceptor(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    cancel: CancellationToken,
    tasks: &TaskTracker,
) -> mpsc::Receiver<Accepted> {
    let (tx, rx) = mpsc::channel(64);
    let t = tasks.clone();
    tasks.spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "TLS accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx, cancel) = (acceptor.clone(), tx.clone(), cancel.clone());
            t.spawn(async move {
                let hs = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                let stream = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = hs => match r {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    },
                };
                let role = strata_auth::tls::client_role(&stream);
                let _ = tx.send(Accepted { stream, peer, role }).await;
            });
        }
    });
    rx
}

/// Connection info of an HTTPS request: the peer and its certificate role.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The peer.
    pub addr: SocketAddr,
    /// Role of the verified client certificate, if any.
    pub role: Option<String>,
}

/// An axum listener over [`spawn_acceptor`]'s handshaken connections.
pub struct HttpsListener {
    rx: mpsc::Receiver<Accepted>,
    local: SocketAddr,
}

impl HttpsListener {
    /// Wraps the receiver of an acceptor bound to `local`.
    pub fn new(rx: mpsc::Receiver<Accepted>, local: SocketAddr) -> Self {
        Self { rx, local }
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(a) => (
                a.stream,
                TlsPeer {
                    addr: a.peer,
                    role: a.role,
                },
            ),
            // The acceptor stopped (shutdown): never yield another connection.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            addr: self.local,
            role: None,
        })
    }
}

impl Connected<IncomingStream<'_, HttpsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, HttpsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Shared by the binary TLS listener: serves each handshaken connection.
pub fn spawn_pulsar_tls(
    mut rx: mpsc::Receiver<Accepted>,
    service: Arc<crate::service::BrokerService>,
    accept_cancel: CancellationToken,
    conn_cancel: CancellationToken,
    tasks: &TaskTracker,
    conns: TaskTracker,
) {
    tasks.spawn(async move {
        loop {
            let a = tokio::select! {
                _ = accept_cancel.cancelled() => break,
                a = rx.recv() => match a {
                    Some(a) => a,
                    None => break,
                },
            };
            conns.spawn(crate::connection::serve_stream(
                a.stream,
                a.peer,
                a.role,
                service.clone(),
                conn_cancel.child_token(),
            ));
        }
    });
}
