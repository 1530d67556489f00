//! The writer task of a connection: owns the socket's write half and drains the connection's
//! [`Outbound`](crate::outbound::Outbound) queue, encoding whatever is queued into one buffer
//! and one write.

use std::net::SocketAddr;

use strata_proto::frame_writer::FrameWriter;
use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::outbound::OutboundRx;

/// Starts the writer; it ends when every [`crate::outbound::Outbound`] is dropped or a write
/// fails. (Up to [`FrameWriter`]'s write threshold plus one frame is encoded and out of the
/// outbound queue's count, so held outside its congestion check.)
pub(super) fn spawn<W>(wr: W, mut out_rx: OutboundRx, peer: SocketAddr) -> JoinHandle<()>
where
    W: AsyncWrite + Send + Unpin + 'static,
{
    tokio::spawn(async move {
        let mut wr = FrameWriter::new(wr);
        while let Some(first) = out_rx.recv_outgoing().await {
            // The task that queued this frame woke this one, which tokio runs right after it:
            // let the other ready tasks (dispatchers of other topics, the rest of a group commit's
            // receipts) queue theirs first, so that they share one write.
            tokio::task::yield_now().await;
            let mut next = Some(first);
            while let Some(o) = next {
                // no limit: the broker only queues frames it built within its own limits
                if let Err(e) = wr.encode(&o, usize::MAX / 2) {
                    debug!(%peer, error = %e, "frame not encoded");
                    return;
                }
                if wr.is_full() && !write(&mut wr, peer).await {
                    return;
                }
                // batch whatever is queued into one write
                next = out_rx.try_recv_outgoing();
            }
            if !write(&mut wr, peer).await {
                return;
            }
        }
        let _ = wr.shutdown().await;
    })
}

/// Writes what is buffered; false if the connection failed.
async fn write<W: AsyncWrite + Unpin>(wr: &mut FrameWriter<W>, peer: SocketAddr) -> bool {
    match wr.write().await {
        Ok(()) => true,
        Err(e) => {
            debug!(%peer, error = %e, "write failed");
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use bytes::Bytes;
    use futures::StreamExt;
    use strata_proto::commands;
    use strata_proto::frame::{Frame, Payload, PulsarCodec};
    use strata_proto::outgoing::Outgoing;
    use strata_proto::pulsar::base_command::Type;
    use strata_proto::pulsar::{CommandMessage, CommandSendReceipt, MessageMetadata};
    use tokio_util::codec::FramedRead;

    use crate::outbound::Outbound;

    /// Frames of every kind, small and larger than one write, arrive whole and in queue order.
    #[tokio::test]
    async fn queued_frames_arrive_whole_and_in_order() {
        let (ours, theirs) = tokio::io::duplex(64 << 10);
        let (out, rx) = Outbound::channel();
        let writer = super::spawn(ours, rx, "127.0.0.1:1".parse().unwrap());
        let big = Payload::new(MessageMetadata::default(), &vec![7u8; 3 << 20]).raw;
        let small = Payload::new(MessageMetadata::default(), b"small").raw;
        for i in 0..300u64 {
            let entry = if i % 100 == 50 {
                big.clone()
            } else {
                small.clone()
            };
            assert!(out.send_message(
                CommandMessage {
                    consumer_id: i,
                    ..Default::default()
                },
                entry
            ));
            let receipt = Outgoing::Receipt(CommandSendReceipt {
                producer_id: i,
                ..Default::default()
            });
            let ping = Frame::simple(commands::ping());
            if i % 3 == 0 {
                // several frames as one message of the queue, as collected receipts go
                assert!(out.send_all(vec![receipt, Outgoing::Frame(ping)]));
            } else {
                assert!(out.send_outgoing(receipt));
                out.send(ping).unwrap();
            }
        }
        drop(out);
        let mut rd = FramedRead::new(theirs, PulsarCodec::with_max_frame_size(8 << 20));
        for i in 0..300u64 {
            let m = rd.next().await.unwrap().unwrap().unwrap();
            let msg = m.command.message.as_ref().expect("a MESSAGE");
            assert_eq!(msg.consumer_id, i);
            let want: &Bytes = if i % 100 == 50 { &big } else { &small };
            assert_eq!(&m.payload.unwrap().raw, want);
            let r = rd.next().await.unwrap().unwrap().unwrap();
            assert_eq!(
                r.command
                    .send_receipt
                    .as_ref()
                    .expect("a receipt")
                    .producer_id,
                i
            );
            let p = rd.next().await.unwrap().unwrap().unwrap();
            assert_eq!(p.command.r#type, Type::Ping as i32);
        }
        assert!(
            rd.next().await.is_none(),
            "the writer closes after the last sender"
        );
        writer.await.unwrap();
    }
}
