//! A partition producer's send path: messages are numbered, batched and turned into SEND frames
//! by the caller of `send_async` itself, under the producer's lock (no hop through a task). A
//! timer task only sends a batch that waited out its delay.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use strata_common::clock::now_ms;
use strata_proto::batch::{batch_message_len, put_batch_message};
use strata_proto::commands;
use strata_proto::frame::encode_entry;
use strata_proto::outgoing::Outgoing;
use strata_proto::pulsar::{
    CommandSend, CompressionType, KeyValue, MessageMetadata, SingleMessageMetadata,
};
use tokio::time::Instant;

use crate::compression;
use crate::error::{ClientError, Result};
use crate::inflight::{Inflight, Msgs, Queued};
use crate::producer_options::ProducerOptions;

/// What became of a message given to [`Batcher::push`].
// Send is the common variant (every message without batching): boxing it would add an
// allocation per message.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Pushed {
    /// A SEND to write now (the message alone, or a batch that cannot grow).
    Send(Outgoing),
    /// The message opened a batch that must go by this deadline.
    Opened(Instant),
    /// The message joined the open batch.
    Joined,
}

/// The numbering and batching state of one partition producer.
pub(crate) struct Batcher {
    producer_id: u64,
    name: String,
    options: ProducerOptions,
    next_seq: u64,
    batch: Vec<Queued>,
    batch_bytes: usize,
    /// When the open batch must go.
    deadline: Option<Instant>,
    /// The SENDs waiting for receipts (resolved by the connection's reader).
    inflight: Arc<Inflight>,
    /// The broker's `max_message_size`: a larger payload is refused here, as the Java client
    /// does, instead of a frame the connection could not write.
    max_message_size: usize,
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

/// The error each message of a batch that could not be built gets.
fn for_each_message(e: &ClientError) -> ClientError {
    match e {
        ClientError::MessageTooLarge { size, max } => ClientError::MessageTooLarge {
            size: *size,
            max: *max,
        },
        other => ClientError::Protocol(other.to_string()),
    }
}

impl Batcher {
    pub(crate) fn new(
        producer_id: u64,
        name: String,
        options: ProducerOptions,
        first_seq: u64,
        inflight: Arc<Inflight>,
        max_message_size: usize,
    ) -> Self {
        Batcher {
            producer_id,
            name,
            options,
            next_seq: first_seq,
            batch: Vec::new(),
            batch_bytes: 0,
            deadline: None,
            inflight,
            max_message_size,
        }
    }

    /// Refuses a payload of `size` bytes over the broker's limit.
    fn check_size(&self, size: usize) -> Result<()> {
        if size > self.max_message_size {
            return Err(ClientError::MessageTooLarge {
                size,
                max: self.max_message_size,
            });
        }
        Ok(())
    }

    /// When the open batch must go (none open: `None`).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Takes a message: its SEND when it goes now, else where it waits.
    pub(crate) fn push(&mut self, q: Queued) -> Result<Pushed> {
        // Closed (the broker or the connection ended the producer): the timer task fails what
        // is batched, so nothing may join it.
        if self.inflight.is_closed() {
            return Err(ClientError::Disconnected);
        }
        if !self.options.batching {
            return self.single(q).map(Pushed::Send);
        }
        // a batched message is checked uncompressed (as the Java client does); the batch it
        // joins is checked again when it is built
        self.check_size(q.msg.payload.len())?;
        self.batch_bytes += q.msg.payload.len();
        self.batch.push(q);
        // A batch that cannot grow goes now: full, or every pending message is in it or in
        // flight (the sender waits for a receipt before it can add one).
        let full = self.batch.len() >= self.options.batch_max_messages
            || self.batch_bytes >= self.options.batch_max_bytes
            || self.batch.len() + self.inflight.messages() >= self.options.max_pending.max(1);
        if full {
            return match self.take_batch()? {
                Some(frame) => Ok(Pushed::Send(frame)),
                None => Ok(Pushed::Joined),
            };
        }
        if self.deadline.is_some() {
            return Ok(Pushed::Joined);
        }
        let deadline = Instant::now() + self.options.batch_max_delay;
        self.deadline = Some(deadline);
        Ok(Pushed::Opened(deadline))
    }

    /// Fails the messages of the open batch with `err`.
    pub(crate) fn fail_batch(&mut self, err: impl Fn() -> ClientError) {
        self.deadline = None;
        self.batch_bytes = 0;
        for q in self.batch.drain(..) {
            let _ = q.reply.send(Err(err()));
        }
    }

    fn single(&mut self, q: Queued) -> Result<Outgoing> {
        let seq = self.next_seq;
        let raw = &q.msg.payload;
        let data = compression::compress(self.options.compression, raw)?;
        self.check_size(data.len())?;
        self.next_seq += 1;
        let md = MessageMetadata {
            producer_name: std::mem::take(&mut self.name),
            sequence_id: seq,
            publish_time: now_ms(),
            properties: kvs(&q.msg.properties),
            partition_key: q.msg.key.clone(),
            compression: self.compression(),
            uncompressed_size: Some(raw.len() as u32),
            event_time: q.msg.event_time,
            ..Default::default()
        };
        let entry = self.entry(md, data.len(), |b| b.put_slice(&data));
        let frame = Outgoing::Send(commands::send_command(self.producer_id, seq, 1), entry);
        self.inflight.put(seq, Msgs::One(q));
        Ok(frame)
    }

    /// The entry a SEND carries: `md` (which holds the producer's name, taken for the encoding
    /// and given back, so a message costs no copy of it) and the data `write_data` appends.
    fn entry(
        &mut self,
        md: MessageMetadata,
        data_len: usize,
        write_data: impl FnOnce(&mut BytesMut),
    ) -> Bytes {
        let entry = encode_entry(&md, data_len, write_data);
        self.name = md.producer_name;
        entry
    }

    fn compression(&self) -> Option<i32> {
        (self.options.compression != CompressionType::None)
            .then_some(self.options.compression as i32)
    }

    /// The open batch as one SEND (recorded in flight), if there is one. A batch that cannot
    /// be compressed fails its messages.
    pub(crate) fn take_batch(&mut self) -> Result<Option<Outgoing>> {
        self.deadline = None;
        if self.batch.is_empty() {
            return Ok(None);
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let first = self.next_seq;
        let n = batch.len() as u64;
        let smds: Vec<SingleMessageMetadata> = batch
            .iter()
            .enumerate()
            .map(|(i, q)| SingleMessageMetadata {
                properties: kvs(&q.msg.properties),
                partition_key: q.msg.key.clone(),
                event_time: q.msg.event_time,
                sequence_id: Some(first + i as u64),
                payload_size: i32::try_from(q.msg.payload.len()).unwrap_or(i32::MAX),
                ..Default::default()
            })
            .collect();
        let raw_len: usize = smds
            .iter()
            .zip(&batch)
            .map(|(m, q)| batch_message_len(m, q.msg.payload.len()))
            .sum();
        let write_batch = |buf: &mut BytesMut| {
            for (m, q) in smds.iter().zip(&batch) {
                put_batch_message(buf, m, &q.msg.payload);
            }
        };
        let md = MessageMetadata {
            producer_name: std::mem::take(&mut self.name),
            sequence_id: first,
            publish_time: now_ms(),
            // Key_Shared dispatch uses the entry's key: the first message's key.
            partition_key: batch.first().and_then(|q| q.msg.key.clone()),
            compression: self.compression(),
            uncompressed_size: Some(raw_len as u32),
            num_messages_in_batch: Some(n as i32),
            highest_sequence_id: Some(first + n - 1),
            ..Default::default()
        };
        let data = match self.options.compression {
            CompressionType::None => self.check_size(raw_len).map(|()| None),
            compression => {
                let mut buf = BytesMut::with_capacity(raw_len);
                write_batch(&mut buf);
                compression::compress(compression, &buf.freeze())
                    .and_then(|data| self.check_size(data.len()).map(|()| Some(data)))
            }
        };
        let payload = match data {
            // the batch is written once, straight into the SEND's payload
            Ok(None) => self.entry(md, raw_len, write_batch),
            Ok(Some(data)) => self.entry(md, data.len(), |b| b.put_slice(&data)),
            Err(e) => {
                // not sent: each message fails (numbers are not used up)
                self.name = md.producer_name;
                for q in batch {
                    let _ = q.reply.send(Err(for_each_message(&e)));
                }
                return Err(e);
            }
        };
        self.next_seq += n;
        let cmd = CommandSend {
            highest_sequence_id: Some(first + n - 1),
            ..commands::send_command(self.producer_id, first, n as i32)
        };
        let frame = Outgoing::Send(cmd, payload);
        self.inflight.put(first, Msgs::Batch(batch));
        Ok(Some(frame))
    }
}
