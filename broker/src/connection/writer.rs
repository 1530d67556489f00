//! The writer task of a connection: owns the socket's write half and drains the connection's
//! [`Outbound`] queue, batching whatever is queued into one flush.

use std::net::SocketAddr;

use futures::SinkExt;
use strata_proto::frame::PulsarCodec;
use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedWrite;
use tracing::debug;

use crate::outbound::OutboundRx;

/// Starts the writer; it ends when every [`crate::outbound::Outbound`] is dropped or a write
/// fails.
pub(super) fn spawn<W>(wr: W, mut out_rx: OutboundRx, peer: SocketAddr) -> JoinHandle<()>
where
    W: AsyncWrite + Send + Unpin + 'static,
{
    tokio::spawn(async move {
        let mut w = FramedWrite::new(wr, PulsarCodec::with_max_frame_size(usize::MAX / 2));
        while let Some(f) = out_rx.recv().await {
            if let Err(e) = w.feed(f).await {
                debug!(%peer, error = %e, "write failed");
                return;
            }
            // Batch whatever is queued into one flush.
            while let Some(f) = out_rx.try_recv() {
                if let Err(e) = w.feed(f).await {
                    debug!(%peer, error = %e, "write failed");
                    return;
                }
            }
            if let Err(e) = w.flush().await {
                debug!(%peer, error = %e, "flush failed");
                return;
            }
        }
        let _ = w.close().await;
    })
}
