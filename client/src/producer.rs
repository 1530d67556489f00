//! Producers: one task per partition that batches messages, numbers them and sends SEND frames;
//! each message's future is resolved by the connection's reader when its SEND_RECEIPT arrives
//! ([`crate::inflight`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strata_common::clock::now_ms;
use strata_proto::batch::write_batch_message;
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload};
use strata_proto::pulsar::{
    CompressionType, KeyValue, MessageMetadata, Schema, SingleMessageMetadata,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::client::PulsarClient;
use crate::compression;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::inflight::{Inflight, Queued};
use crate::message::{MessageId, OutgoingMessage};
use crate::topic_name::full_topic_name;

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Producer name (the broker assigns one when `None`).
    pub name: Option<String>,
    /// Group messages into batches (one SEND, one stored entry per batch).
    pub batching: bool,
    /// Most messages in a batch.
    pub batch_max_messages: usize,
    /// Most payload bytes in a batch.
    pub batch_max_bytes: usize,
    /// Longest a message waits for its batch to fill (a batch that cannot grow, because every
    /// one of `max_pending` messages is in it or in flight, goes at once).
    pub batch_max_delay: Duration,
    /// Compression of each SEND's payload.
    pub compression: CompressionType,
    /// Messages sent but not yet acknowledged before `send` waits.
    pub max_pending: usize,
    /// Schema to declare.
    pub schema: Option<Schema>,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            name: None,
            batching: true,
            batch_max_messages: 1000,
            batch_max_bytes: 128 * 1024,
            batch_max_delay: Duration::from_millis(1),
            compression: CompressionType::None,
            max_pending: 1000,
            schema: None,
        }
    }
}

enum Cmd {
    Send(Queued),
    Flush(oneshot::Sender<()>),
}

/// Resolves to the message id once the broker stored the message.
pub struct SendFuture(oneshot::Receiver<Result<MessageId>>);

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
    tx: mpsc::Sender<Cmd>,
    permits: Arc<Semaphore>,
    name: String,
    conn: Arc<Connection>,
    producer_id: u64,
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
        part.tx
            .send(Cmd::Send(Queued {
                msg,
                reply,
                _permit: permit,
            }))
            .await
            .map_err(|_| ClientError::Disconnected)?;
        Ok(SendFuture(rx))
    }

    /// Sends a message and waits until the broker stored it.
    pub async fn send(&self, msg: OutgoingMessage) -> Result<MessageId> {
        self.send_async(msg).await?.await
    }

    /// Sends any partly filled batch now.
    pub async fn flush(&self) -> Result<()> {
        for p in &self.parts {
            let (tx, rx) = oneshot::channel();
            p.tx.send(Cmd::Flush(tx))
                .await
                .map_err(|_| ClientError::Disconnected)?;
            let _ = rx.await;
        }
        Ok(())
    }

    /// Flushes, closes the producer on the broker and stops its tasks.
    pub async fn close(self) -> Result<()> {
        self.flush().await?;
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
    let first_seq = u64::try_from(ok.last_sequence_id() + 1).unwrap_or(0);
    let (tx, rx) = mpsc::channel(options.max_pending.max(1));
    let task = ProducerTask {
        conn: conn.clone(),
        producer_id,
        name: ok.producer_name.clone(),
        options: options.clone(),
        next_seq: first_seq,
        batch: Vec::new(),
        batch_bytes: 0,
        deadline: None,
        inflight,
    };
    tracker.spawn(task.run(rx));
    Ok(PartitionProducer {
        tx,
        permits: Arc::new(Semaphore::new(options.max_pending.max(1))),
        name: ok.producer_name,
        conn,
        producer_id,
    })
}

struct ProducerTask {
    conn: Arc<Connection>,
    producer_id: u64,
    name: String,
    options: ProducerOptions,
    next_seq: u64,
    batch: Vec<Queued>,
    batch_bytes: usize,
    deadline: Option<Instant>,
    /// The SENDs waiting for receipts (resolved by the connection's reader).
    inflight: Arc<Inflight>,
}

fn kvs(props: &[(String, String)]) -> Vec<KeyValue> {
    props
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

impl ProducerTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            let deadline = self.deadline;
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Send(q)) => {
                        if self.options.batching {
                            self.batch_bytes += q.msg.payload.len();
                            self.batch.push(q);
                            if self.deadline.is_none() {
                                self.deadline = Some(Instant::now() + self.options.batch_max_delay);
                            }
                            // A batch that cannot grow goes now: full, or every pending
                            // message is in it or in flight (the sender waits for a receipt).
                            let full = self.batch.len() >= self.options.batch_max_messages
                                || self.batch_bytes >= self.options.batch_max_bytes
                                || self.batch.len() + self.inflight.messages()
                                    >= self.options.max_pending.max(1);
                            if full && self.flush_batch().await.is_err() {
                                break;
                            }
                        } else if self.send_single(q).await.is_err() {
                            break;
                        }
                    }
                    Some(Cmd::Flush(done)) => {
                        if self.flush_batch().await.is_err() { break; }
                        let _ = done.send(());
                    }
                    None => {
                        let _ = self.flush_batch().await;
                        // Wait for outstanding receipts, then stop.
                        self.inflight.drain().await;
                        break;
                    }
                },
                _ = self.inflight.closed() => break,
                _ = sleep_until_opt(deadline) => {
                    if self.flush_batch().await.is_err() { break; }
                }
            }
        }
        let err = || ClientError::ClosedByBroker;
        self.inflight.fail_all(err);
        for q in self.batch.drain(..) {
            let _ = q.reply.send(Err(err()));
        }
        self.conn.unregister_producer(self.producer_id);
    }

    async fn send_single(&mut self, q: Queued) -> Result<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let raw = &q.msg.payload;
        let data = compression::compress(self.options.compression, raw)?;
        let md = MessageMetadata {
            producer_name: self.name.clone(),
            sequence_id: seq,
            publish_time: now_ms(),
            properties: kvs(&q.msg.properties),
            partition_key: q.msg.key.clone(),
            compression: (self.options.compression != CompressionType::None)
                .then_some(self.options.compression as i32),
            uncompressed_size: Some(raw.len() as u32),
            event_time: q.msg.event_time,
            ..Default::default()
        };
        let frame = Frame::with_payload(
            commands::send(self.producer_id, seq, 1),
            Payload::new(md, &data),
        );
        self.inflight.put(seq, false, vec![q]);
        self.conn.send(frame).await
    }

    async fn flush_batch(&mut self) -> Result<()> {
        self.deadline = None;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let first = self.next_seq;
        let n = batch.len() as u64;
        self.next_seq += n;
        let mut buf = BytesMut::new();
        for (i, q) in batch.iter().enumerate() {
            let smd = SingleMessageMetadata {
                properties: kvs(&q.msg.properties),
                partition_key: q.msg.key.clone(),
                event_time: q.msg.event_time,
                sequence_id: Some(first + i as u64),
                ..Default::default()
            };
            write_batch_message(&mut buf, &smd, &q.msg.payload);
        }
        let raw: Bytes = buf.freeze();
        let data = compression::compress(self.options.compression, &raw)?;
        let md = MessageMetadata {
            producer_name: self.name.clone(),
            sequence_id: first,
            publish_time: now_ms(),
            // Key_Shared dispatch uses the entry's key: the first message's key.
            partition_key: batch.first().and_then(|q| q.msg.key.clone()),
            compression: (self.options.compression != CompressionType::None)
                .then_some(self.options.compression as i32),
            uncompressed_size: Some(raw.len() as u32),
            num_messages_in_batch: Some(n as i32),
            highest_sequence_id: Some(first + n - 1),
            ..Default::default()
        };
        let mut cmd = commands::send(self.producer_id, first, n as i32);
        if let Some(s) = cmd.send.as_mut() {
            s.highest_sequence_id = Some(first + n - 1);
        }
        let frame = Frame::with_payload(cmd, Payload::new(md, &data));
        self.inflight.put(first, true, batch);
        self.conn.send(frame).await
    }
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
