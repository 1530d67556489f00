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
use strata_proto::pulsar::CommandMessage;
use tokio::sync::mpsc;

/// Queued bytes above which a connection counts as congested.
pub const HIGH_WATER: usize = 4 << 20;

/// The connection of a queue is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection closed")]
pub struct Closed;

/// What the queue holds: a frame, or several queued at once (one channel message for many
/// receipts); each with its encoded size.
#[derive(Debug)]
enum Queued {
    One(Outgoing),
    Many(Vec<Outgoing>),
}

/// Sending side (cheap to clone).
#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<(Queued, usize)>,
    queued: Arc<AtomicUsize>,
}

/// Receiving side, owned by the connection's writer task.
#[derive(Debug)]
pub struct OutboundRx {
    rx: mpsc::UnboundedReceiver<(Queued, usize)>,
    queued: Arc<AtomicUsize>,
    /// The rest of the last [`Queued::Many`] taken.
    many: std::vec::IntoIter<Outgoing>,
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
            OutboundRx {
                rx,
                queued,
                many: Vec::new().into_iter(),
            },
        )
    }

    /// Queues a frame.
    pub fn send(&self, f: Frame) -> Result<(), Closed> {
        self.queue(Outgoing::Frame(f))
    }

    /// Queues a frame in any of its forms; false if the connection is gone.
    pub fn send_outgoing(&self, o: Outgoing) -> bool {
        self.queue(o).is_ok()
    }

    /// Queues a MESSAGE carrying `entry` as stored (encoded without building a `BaseCommand`);
    /// false if the connection is gone.
    pub fn send_message(&self, m: CommandMessage, entry: Bytes) -> bool {
        self.queue(Outgoing::Message(m, entry)).is_ok()
    }

    /// Queues `o`; its size travels with it, so the protobuf size is computed once per frame
    /// here.
    fn queue(&self, o: Outgoing) -> Result<(), Closed> {
        let n = o.encoded_len();
        self.push(Queued::One(o), n)
    }

    fn push(&self, q: Queued, n: usize) -> Result<(), Closed> {
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.tx.send((q, n)).map_err(|_| {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            Closed
        })
    }

    /// Queues `all`, in order, as one message of the queue; false if the connection is gone.
    pub fn send_all(&self, all: Vec<Outgoing>) -> bool {
        let n = all.iter().map(Outgoing::encoded_len).sum();
        self.push(Queued::Many(all), n).is_ok()
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
    /// Takes a queued message: its first frame, the others kept for the next calls.
    fn taken(&mut self, (q, n): (Queued, usize)) -> Option<Outgoing> {
        self.queued.fetch_sub(n, Ordering::Relaxed);
        match q {
            Queued::One(o) => Some(o),
            Queued::Many(all) => {
                self.many = all.into_iter();
                self.many.next()
            }
        }
    }

    /// The next frame to write (None when every sender is gone).
    pub async fn recv_outgoing(&mut self) -> Option<Outgoing> {
        loop {
            if let Some(o) = self.many.next() {
                return Some(o);
            }
            let q = self.rx.recv().await?;
            if let Some(o) = self.taken(q) {
                return Some(o);
            }
        }
    }

    /// A frame to write if one is queued.
    pub fn try_recv_outgoing(&mut self) -> Option<Outgoing> {
        loop {
            if let Some(o) = self.many.next() {
                return Some(o);
            }
            let q = self.rx.try_recv().ok()?;
            if let Some(o) = self.taken(q) {
                return Some(o);
            }
        }
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
