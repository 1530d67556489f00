//! Producers: per partition, the caller of `send_async` numbers and batches its message and
//! queues the SEND frame itself ([`crate::batcher`]), a timer task sends batches that waited out
//! their delay, and the connection's reader resolves each message's future when its
//! SEND_RECEIPT arrives ([`crate::inflight`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use strata_proto::commands;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::batcher::{Batcher, Pushed};
use crate::client::PulsarClient;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::inflight::{Inflight, Queued};
use crate::message::{MessageId, OutgoingMessage};
pub use crate::producer_options::ProducerOptions;
use crate::topic_name::full_topic_name;

/// Resolves to the message id once the broker stored the message.
pub struct SendFuture(pub(crate) oneshot::Receiver<Result<MessageId>>);

impl std::future::Future for SendFuture {
    type Output = Result<MessageId>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Disconnected)))
    }
}

struct PartitionProducer {
    permits: Arc<Semaphore>,
    name: String,
    conn: Arc<Connection>,
    producer_id: u64,
    batcher: Arc<Mutex<Batcher>>,
    /// Tells the timer task the deadline of a newly opened batch; dropped, it stops the task.
    timer: watch::Sender<Option<Instant>>,
    inflight: Arc<Inflight>,
}

impl PartitionProducer {
    /// Numbers, batches and (when it goes now) writes the message, in the caller.
    async fn send(&self, q: Queued) -> Result<()> {
        if self.inflight.is_closed() {
            return Err(ClientError::Disconnected);
        }
        // A place in the connection's queue first: the frame is queued under the lock, so
        // SENDs are queued in sequence order.
        let slot = self.conn.reserve().await?;
        let mut batcher = self.batcher.lock();
        match batcher.push(q)? {
            Pushed::Send(frame) => slot.send(frame),
            Pushed::Opened(deadline) => {
                drop(batcher);
                self.timer.send_replace(Some(deadline));
            }
            Pushed::SendAndOpened(frame, deadline) => {
                slot.send(frame);
                drop(batcher);
                self.timer.send_replace(Some(deadline));
            }
            Pushed::Joined => {}
        }
        Ok(())
    }

    /// Writes the open batch, if any.
    async fn flush(&self) -> Result<()> {
        flush_batch(&self.batcher, &self.conn, |_| true)
            .await
            .map(|_| ())
    }
}

/// Writes the open batch if `due` says so for its deadline; returns the deadline of the batch
/// left open, if any.
async fn flush_batch(
    batcher: &Mutex<Batcher>,
    conn: &Connection,
    due: impl FnOnce(Instant) -> bool,
) -> Result<Option<Instant>> {
    let slot = conn.reserve().await?;
    let mut b = batcher.lock();
    match b.deadline() {
        Some(d) if due(d) => {
            if let Some(frame) = b.take_batch()? {
                slot.send(frame);
            }
            Ok(None)
        }
        other => Ok(other),
    }
}

/// Sends a batch that waited out its delay; when the producer is dropped, sends what is batched
/// and waits for the receipts; then fails whatever is left and unregisters the producer.
async fn run_timer(
    batcher: Arc<Mutex<Batcher>>,
    conn: Arc<Connection>,
    producer_id: u64,
    inflight: Arc<Inflight>,
    mut opened: watch::Receiver<Option<Instant>>,
) {
    let mut deadline = None;
    let dropped = loop {
        tokio::select! {
            changed = opened.changed() => match changed {
                Ok(()) => deadline = *opened.borrow_and_update(),
                Err(_) => break true,
            },
            _ = sleep_until_opt(deadline) => {
                let now = Instant::now();
                match flush_batch(&batcher, &conn, |d| d <= now).await {
                    Ok(left) => deadline = left,
                    Err(ClientError::Disconnected) => break false,
                    // the batch failed (its messages got the error); the producer goes on
                    Err(_) => deadline = None,
                }
            }
            _ = inflight.closed() => break false,
        }
    };
    if dropped && flush_batch(&batcher, &conn, |_| true).await.is_ok() {
        // what is unanswered after the operation timeout fails below
        let _ = tokio::time::timeout(conn.op_timeout(), inflight.drain()).await;
    }
    // closed first: no message joins the batch or the table after they are failed
    inflight.close();
    let err = || ClientError::ClosedByBroker;
    batcher.lock().fail_batch(err);
    inflight.fail_all(err);
    conn.unregister_producer(producer_id);
}

impl PulsarClient {
    /// Creates a producer on `topic` (all partitions when it is partitioned).
    pub async fn producer(&self, topic: &str, options: ProducerOptions) -> Result<Producer> {
        Producer::create(self, &full_topic_name(topic), options).await
    }
}

/// A producer on a topic or on every partition of a partitioned topic.
pub struct Producer {
    topic: String,
    parts: Vec<PartitionProducer>,
    next: AtomicUsize,
    tracker: TaskTracker,
}

impl Producer {
    pub(crate) async fn create(
        client: &PulsarClient,
        topic: &str,
        options: ProducerOptions,
    ) -> Result<Producer> {
        let topics = client.partition_topics(topic).await?;
        let tracker = TaskTracker::new();
        let mut parts = Vec::with_capacity(topics.len());
        for (t, partition) in topics {
            parts.push(create_partition(client, &t, partition, &options, &tracker).await?);
        }
        tracker.close();
        Ok(Producer {
            topic: topic.to_owned(),
            parts,
            next: AtomicUsize::new(0),
            tracker,
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The number of partitions it sends to (1 for a topic that is not partitioned).
    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// The producer name the broker confirmed (of the first partition).
    pub fn name(&self) -> &str {
        self.parts.first().map_or("", |p| p.name.as_str())
    }

    /// Queues a message and returns a future of its id. Waits while `max_pending` messages are
    /// unacknowledged (backpressure).
    pub async fn send_async(&self, msg: OutgoingMessage) -> Result<SendFuture> {
        let part = match (&msg.key, self.parts.len()) {
            (_, 1) => &self.parts[0],
            (Some(k), n) => &self.parts[(key_hash(k) as usize) % n],
            (None, n) => &self.parts[self.next.fetch_add(1, Ordering::Relaxed) % n],
        };
        let permit = part
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Disconnected)?;
        let (reply, rx) = oneshot::channel();
        part.send(Queued {
            msg,
            reply,
            _permit: permit,
        })
        .await?;
        Ok(SendFuture(rx))
    }

    /// Sends a message and waits until the broker stored it.
    pub async fn send(&self, msg: OutgoingMessage) -> Result<MessageId> {
        self.send_async(msg).await?.await
    }

    /// Sends any partly filled batch now.
    pub async fn flush(&self) -> Result<()> {
        for p in &self.parts {
            p.flush().await?;
        }
        Ok(())
    }

    /// Flushes, waits (up to the operation timeout) for the receipts of every message sent,
    /// closes the producer on the broker and stops its tasks.
    pub async fn close(self) -> Result<()> {
        self.flush().await?;
        for p in &self.parts {
            // what is still unanswered after the operation timeout fails when the producer closes
            let _ = tokio::time::timeout(p.conn.op_timeout(), p.inflight.drain()).await;
        }
        for p in &self.parts {
            let rid = p.conn.next_id();
            let _ = p
                .conn
                .request(rid, commands::close_producer(p.producer_id, rid, None))
                .await;
            p.conn.unregister_producer(p.producer_id);
        }
        drop(self.parts);
        self.tracker.wait().await;
        Ok(())
    }
}

/// Java's `String.hashCode` (stable across clients for the same key).
fn key_hash(k: &str) -> u32 {
    k.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
        .unsigned_abs()
}

async fn create_partition(
    client: &PulsarClient,
    topic: &str,
    partition: i32,
    options: &ProducerOptions,
    tracker: &TaskTracker,
) -> Result<PartitionProducer> {
    let conn = client.lookup(topic).await?;
    let producer_id = conn.next_id();
    let inflight = Arc::new(Inflight::new(partition));
    conn.register_producer(producer_id, inflight.clone());
    let rid = conn.next_id();
    let mut cmd = commands::producer(topic, producer_id, rid, options.name.clone());
    if let Some(p) = cmd.producer.as_mut() {
        p.schema = options.schema.clone();
    }
    let answer = match conn.request(rid, cmd).await {
        Ok(a) => a,
        Err(e) => {
            conn.unregister_producer(producer_id);
            return Err(e);
        }
    };
    let ok = answer
        .producer_success
        .ok_or_else(|| ClientError::Protocol("expected PRODUCER_SUCCESS".into()))?;
    let first_seq = u64::try_from(ok.last_sequence_id().saturating_add(1)).unwrap_or(0);
    let batcher = Arc::new(Mutex::new(Batcher::new(
        producer_id,
        ok.producer_name.clone(),
        options.clone(),
        first_seq,
        inflight.clone(),
        conn.max_message_size(),
    )));
    let (timer, opened) = watch::channel(None);
    tracker.spawn(run_timer(
        batcher.clone(),
        conn.clone(),
        producer_id,
        inflight.clone(),
        opened,
    ));
    Ok(PartitionProducer {
        permits: Arc::new(Semaphore::new(options.max_pending.max(1))),
        name: ok.producer_name,
        conn,
        producer_id,
        batcher,
        timer,
        inflight,
    })
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_matches_java_string_hash_code() {
        // "hello".hashCode() == 99162322 in Java.
        assert_eq!(key_hash("hello"), 99_162_322);
        assert_eq!(key_hash(""), 0);
    }
}
