//! The writer task of a connection: owns the socket's write half and drains the connection's
//! [`Outbound`](crate::outbound::Outbound) queue, encoding whatever is queued into one buffer
//! and one write.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::outbound::OutboundRx;

/// Bytes encoded before they are written even if more frames are queued (as tokio-util's
/// `FramedWrite`, which this task used before).
const WRITE_AT: usize = 128 << 10;
/// A buffer grown above this by a large frame is released after its write.
const SHRINK_ABOVE: usize = 1 << 20;

/// Starts the writer; it ends when every [`crate::outbound::Outbound`] is dropped or a write
/// fails.
pub(super) fn spawn<W>(mut wr: W, mut out_rx: OutboundRx, peer: SocketAddr) -> JoinHandle<()>
where
    W: AsyncWrite + Send + Unpin + 'static,
{
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(8 << 10);
        while let Some(first) = out_rx.recv_outgoing().await {
            // The task that queued this frame woke this one, which tokio runs right after it:
            // let the other ready tasks (dispatchers of other topics, the rest of a group commit's
            // receipts) queue theirs first, so that they share one write.
            tokio::task::yield_now().await;
            let mut next = Some(first);
            while let Some(o) = next {
                // no limit: the broker only queues frames it built within its own limits
                if let Err(e) = o.encode(usize::MAX / 2, &mut buf) {
                    debug!(%peer, error = %e, "frame not encoded");
                    return;
                }
                if buf.len() >= WRITE_AT && !write(&mut wr, &mut buf, peer).await {
                    return;
                }
                // batch whatever is queued into one write
                next = out_rx.try_recv_outgoing();
            }
            if !write(&mut wr, &mut buf, peer).await {
                return;
            }
        }
        let _ = wr.shutdown().await;
    })
}

/// Writes and empties `buf`; false if the connection failed.
async fn write<W: AsyncWrite + Unpin>(wr: &mut W, buf: &mut BytesMut, peer: SocketAddr) -> bool {
    if let Err(e) = wr.write_all_buf(buf).await {
        debug!(%peer, error = %e, "write failed");
        return false;
    }
    if let Err(e) = wr.flush().await {
        debug!(%peer, error = %e, "flush failed");
        return false;
    }
    if buf.capacity() > SHRINK_ABOVE {
        // a large frame went out: give its room back
        *buf = BytesMut::with_capacity(8 << 10);
    } else {
        buf.clear();
    }
    true
}
