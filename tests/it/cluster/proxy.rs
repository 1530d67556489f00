//! A loopback TCP proxy the test can cut: put one in front of etcd per broker to cut that broker
//! off from the metadata store only (split brain) while it still reaches bookies and clients.
//!
//! The proxy runs on its own thread with its own Tokio runtime, so a test that blocks its runtime
//! (waiting on a child process) never delays the proxied traffic. `cut()` drops every proxied
//! connection at once and refuses new ones (accepted and closed immediately); `restore()` lets
//! connections through again.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct State {
    cut: AtomicBool,
    /// Cancelled on `cut` (closes every live connection), replaced on `restore`.
    conns: Mutex<CancellationToken>,
    accepted: AtomicU64,
    refused: AtomicU64,
}

/// A cuttable TCP proxy on `127.0.0.1:<port>` forwarding to one upstream address.
pub struct CutProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    upstream: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CutProxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub fn start(upstream: SocketAddr) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let state = Arc::new(State {
            cut: AtomicBool::new(false),
            conns: Mutex::new(CancellationToken::new()),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let shutdown = CancellationToken::new();
        let (st, sd) = (state.clone(), shutdown.clone());
        let thread = std::thread::Builder::new()
            .name(format!("cut-proxy-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).unwrap();
                    let tasks = tokio_util::task::TaskTracker::new();
                    loop {
                        let (client, _) = tokio::select! {
                            _ = sd.cancelled() => break,
                            r = listener.accept() => match r {
                                Ok(x) => x,
                                Err(_) => continue,
                            },
                        };
                        if st.cut.load(Ordering::SeqCst) {
                            st.refused.fetch_add(1, Ordering::Relaxed);
                            drop(client);
                            continue;
                        }
                        st.accepted.fetch_add(1, Ordering::Relaxed);
                        let token = st.conns.lock().unwrap().clone();
                        let sd = sd.clone();
                        tasks.spawn(async move {
                            let Ok(mut up) = TcpStream::connect(upstream).await else {
                                return; // upstream down: the client sees the connection close
                            };
                            let mut client = client;
                            let _ = client.set_nodelay(true);
                            let _ = up.set_nodelay(true);
                            tokio::select! {
                                _ = token.cancelled() => {}
                                _ = sd.cancelled() => {}
                                _ = tokio::io::copy_bidirectional(&mut client, &mut up) => {}
                            }
                            // dropping both streams closes them
                        });
                    }
                    tasks.close();
                    st.conns.lock().unwrap().cancel();
                    tasks.wait().await;
                });
            })
            .unwrap();
        Self {
            addr,
            upstream,
            state,
            shutdown,
            thread: Some(thread),
        }
    }

    /// Drops every proxied connection and refuses new ones until [`CutProxy::restore`].
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        let mut t = self.state.conns.lock().unwrap();
        t.cancel();
        *t = CancellationToken::new();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        self.state.cut.load(Ordering::SeqCst)
    }

    /// (connections accepted, connections refused while cut).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.state.accepted.load(Ordering::Relaxed),
            self.state.refused.load(Ordering::Relaxed),
        )
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    /// An echo server on a thread; returns its address.
    fn echo() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn roundtrip(s: &mut std::net::TcpStream) -> bool {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if s.write_all(b"ping").is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).is_ok() && &buf == b"ping"
    }

    #[test]
    fn cut_drops_live_connections_and_refuses_new_ones_until_restored() {
        let proxy = CutProxy::start(echo());
        let mut a = std::net::TcpStream::connect(proxy.addr).unwrap();
        assert!(roundtrip(&mut a));
        proxy.cut();
        assert!(!roundtrip(&mut a), "live connection dropped by the cut");
        let mut b = std::net::TcpStream::connect(proxy.addr).unwrap();
        assert!(!roundtrip(&mut b), "new connection refused while cut");
        proxy.restore();
        let mut c = std::net::TcpStream::connect(proxy.addr).unwrap();
        assert!(roundtrip(&mut c), "works again after restore");
        assert!(proxy.counts().1 >= 1);
    }
}
