//! The queue of frames to one client connection, with the bytes it holds.
//!
//! Dispatchers stop sending to a consumer whose connection has more than [`HIGH_WATER`] bytes
//! queued (the socket is not keeping up), like Pulsar's check of the channel's writability, so a
//! client that grants huge permits and then stops reading cannot make the broker buffer a
//! topic's backlog in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use strata_proto::frame::Frame;
use strata_proto::outgoing::Outgoing;
use strata_proto::pulsar::{CommandMessage, CommandSendReceipt};
use tokio::sync::mpsc;

/// Queued bytes above which a connection counts as congested.
pub const HIGH_WATER: usize = 4 << 20;

/// Sending side (cheap to clone).
#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<(Outgoing, usize)>,
    queued: Arc<AtomicUsize>,
}

/// Receiving side, owned by the connection's writer task.
#[derive(Debug)]
pub struct OutboundRx {
    rx: mpsc::UnboundedReceiver<(Outgoing, usize)>,
    queued: Arc<AtomicUsize>,
}

impl Outbound {
    /// A new queue.
    pub fn channel() -> (Outbound, OutboundRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Outbound {
                tx,
                queued: queued.clone(),
            },
            OutboundRx { rx, queued },
        )
    }

    /// Queues a frame; gives it back if the connection is gone.
    pub fn send(&self, f: Frame) -> Result<(), Box<Frame>> {
        self.queue(Outgoing::Frame(f))
            .map_err(|o| Box::new(o.into_frame()))
    }

    /// Queues a SEND_RECEIPT (encoded without building a `BaseCommand`); false if the
    /// connection is gone.
    pub fn send_receipt(&self, r: CommandSendReceipt) -> bool {
        self.queue(Outgoing::Receipt(r)).is_ok()
    }

    /// Queues a MESSAGE carrying `entry` as stored (encoded without building a `BaseCommand`);
    /// false if the connection is gone.
    pub fn send_message(&self, m: CommandMessage, entry: Bytes) -> bool {
        self.queue(Outgoing::Message(m, entry)).is_ok()
    }

    /// Queues `o`; its size travels with it, so the protobuf size is computed once per frame
    /// here.
    fn queue(&self, o: Outgoing) -> Result<(), Box<Outgoing>> {
        let n = o.encoded_len();
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.tx.send((o, n)).map_err(|e| {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            Box::new(e.0.0)
        })
    }

    /// Whether the connection is not keeping up.
    pub fn is_congested(&self) -> bool {
        self.queued.load(Ordering::Relaxed) > HIGH_WATER
    }

    /// Bytes queued.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

impl OutboundRx {
    fn taken(&self, (o, n): (Outgoing, usize)) -> Outgoing {
        self.queued.fetch_sub(n, Ordering::Relaxed);
        o
    }

    /// The next frame to write (None when every sender is gone).
    pub async fn recv_outgoing(&mut self) -> Option<Outgoing> {
        let o = self.rx.recv().await?;
        Some(self.taken(o))
    }

    /// A frame to write if one is queued.
    pub fn try_recv_outgoing(&mut self) -> Option<Outgoing> {
        let o = self.rx.try_recv().ok()?;
        Some(self.taken(o))
    }

    /// The next frame as a [`Frame`] (None when every sender is gone).
    pub async fn recv(&mut self) -> Option<Frame> {
        self.recv_outgoing().await.map(Outgoing::into_frame)
    }

    /// A frame if one is queued, as a [`Frame`].
    pub fn try_recv(&mut self) -> Option<Frame> {
        self.try_recv_outgoing().map(Outgoing::into_frame)
    }
}
