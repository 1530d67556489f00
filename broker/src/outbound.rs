//! The queue of frames to one client connection, with the bytes it holds.
//!
//! Dispatchers stop sending to a consumer whose connection has more than [`HIGH_WATER`] bytes
//! queued (the socket is not keeping up), like Pulsar's check of the channel's writability, so a
//! client that grants huge permits and then stops reading cannot make the broker buffer a
//! topic's backlog in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_proto::frame::Frame;
use tokio::sync::mpsc;

/// Queued bytes above which a connection counts as congested.
pub const HIGH_WATER: usize = 4 << 20;

/// Sending side (cheap to clone).
#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<(Frame, usize)>,
    queued: Arc<AtomicUsize>,
}

/// Receiving side, owned by the connection's writer task.
#[derive(Debug)]
pub struct OutboundRx {
    rx: mpsc::UnboundedReceiver<(Frame, usize)>,
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

    /// Queues a frame; gives it back if the connection is gone. Its size travels with it, so
    /// the (not free) protobuf size is computed once per frame here.
    pub fn send(&self, f: Frame) -> Result<(), Box<Frame>> {
        let n = f.encoded_len();
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.tx.send((f, n)).map_err(|e| {
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
    fn taken(&self, (f, n): (Frame, usize)) -> Frame {
        self.queued.fetch_sub(n, Ordering::Relaxed);
        f
    }

    /// The next frame (None when every sender is gone).
    pub async fn recv(&mut self) -> Option<Frame> {
        let f = self.rx.recv().await?;
        Some(self.taken(f))
    }

    /// A frame if one is queued.
    pub fn try_recv(&mut self) -> Option<Frame> {
        let f = self.rx.try_recv().ok()?;
        Some(self.taken(f))
    }
}
