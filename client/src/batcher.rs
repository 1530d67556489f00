//! A partition producer's send path: messages are numbered, batched and turned into SEND frames
//! by the caller of `send_async` itself, under the producer's lock (no hop through a task). A
//! timer task only sends a batch that waited out its delay.

use std::sync::Arc;
use std::time::Duration;

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
use crate::message::OutgoingMessage;
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
    /// The open batch had no room for the message: that batch goes now, and the message opened
    /// the next one, which must go by this deadline (now, when it cannot grow either).
    SendAndOpened(Outgoing, Instant),
}

/// The numbering and batching state of one partition producer.
pub(crate) struct Batcher {
    producer_id: u64,
    name: String,
    options: ProducerOptions,
    next_seq: u64,
    batch: Vec<Queued>,
    /// Payload bytes in the open batch (what `batch_max_bytes` bounds).
    batch_bytes: usize,
    /// At least the bytes the open batch takes once built (payloads and their per-message
    /// metadata): what the broker's `max_message_size` bounds.
    batch_len_bound: usize,
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

/// At least the bytes `m` takes in a batch: its payload, its size field and its
/// `SingleMessageMetadata` (each field's tag and length prefix counted at their widest).
fn batched_len_bound(m: &OutgoingMessage) -> usize {
    const FIXED: usize = 4 + 3 * 11; // size field; payload_size, sequence_id, event_time
    let key = m.key.as_ref().map_or(0, |k| k.len() + 6);
    let props: usize = m
        .properties
        .iter()
        .map(|(k, v)| k.len() + v.len() + 18)
        .sum();
    m.payload.len() + FIXED + key + props
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
            batch_len_bound: 0,
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
        let size = q.msg.payload.len();
        self.check_size(size)?;
        let len_bound = batched_len_bound(&q.msg);
        let before = self.make_room(size, len_bound);
        self.batch_bytes += size;
        self.batch_len_bound += len_bound;
        self.batch.push(q);
        // A batch that cannot grow goes now: full, or every pending message is in it or in
        // flight (the sender waits for a receipt before it can add one).
        let full = self.batch.len() >= self.options.batch_max_messages
            || self.batch_bytes >= self.options.batch_max_bytes
            || self.batch.len() + self.inflight.messages() >= self.options.max_pending.max(1);
        if let Some(before) = before {
            // one SEND per push: a new batch that cannot grow goes from the timer, at once
            let delay = if full {
                Duration::ZERO
            } else {
                self.options.batch_max_delay
            };
            return Ok(Pushed::SendAndOpened(before, self.open_for(delay)));
        }
        if full {
            return match self.take_batch()? {
                Some(frame) => Ok(Pushed::Send(frame)),
                None => Ok(Pushed::Joined),
            };
        }
        if self.deadline.is_some() {
            return Ok(Pushed::Joined);
        }
        Ok(Pushed::Opened(self.open_for(self.options.batch_max_delay)))
    }

    /// The open batch must go within `delay`: returns its deadline.
    fn open_for(&mut self, delay: Duration) -> Instant {
        let deadline = Instant::now() + delay;
        self.deadline = Some(deadline);
        deadline
    }

    /// The open batch as one SEND when a message of `size` payload bytes (`len_bound` once
    /// batched) would take it past `batch_max_bytes` or the broker's limit (the Java client's
    /// rule), so a batch is never refused whole for the message that joined it last. A batch
    /// that fails to build has failed each of its messages; the new message goes on alone.
    fn make_room(&mut self, size: usize, len_bound: usize) -> Option<Outgoing> {
        let no_room = !self.batch.is_empty()
            && (self.batch_bytes + size > self.options.batch_max_bytes
                || self.batch_len_bound + len_bound > self.max_message_size);
        if !no_room {
            return None;
        }
        self.take_batch().ok().flatten()
    }

    /// Fails the messages of the open batch with `err`.
    pub(crate) fn fail_batch(&mut self, err: impl Fn() -> ClientError) {
        self.deadline = None;
        self.batch_bytes = 0;
        self.batch_len_bound = 0;
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
        self.batch_len_bound = 0;
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

#[cfg(test)]
mod tests {
    use tokio::sync::{Semaphore, oneshot};

    use super::*;

    fn queued(
        size: usize,
        permits: &Arc<Semaphore>,
    ) -> (Queued, oneshot::Receiver<Result<crate::MessageId>>) {
        let (reply, rx) = oneshot::channel();
        let mut msg = OutgoingMessage::new(vec![7u8; size]);
        msg.key = Some("k".into());
        msg.properties = vec![("a".into(), "b".into())];
        let q = Queued {
            msg,
            reply,
            _permit: permits.clone().try_acquire_owned().unwrap(),
        };
        (q, rx)
    }

    fn batcher(max_message_size: usize, batch_max_bytes: usize) -> Batcher {
        let options = ProducerOptions {
            batch_max_bytes,
            batch_max_delay: Duration::from_secs(60),
            ..ProducerOptions::default()
        };
        Batcher::new(
            1,
            "p".into(),
            options,
            0,
            Arc::new(Inflight::new(-1)),
            max_message_size,
        )
    }

    /// How many messages a SEND carries.
    fn sent_messages(o: &Outgoing) -> i32 {
        match o {
            Outgoing::Send(cmd, _) => cmd.num_messages(),
            _ => panic!("not a SEND"),
        }
    }

    #[tokio::test]
    async fn a_message_the_open_batch_has_no_room_for_sends_the_batch_and_opens_the_next() {
        let permits = Arc::new(Semaphore::new(100));
        // three 4,000-byte messages do not fit under a 10,000-byte limit with their metadata
        let mut b = batcher(10_000, 1 << 20);
        let mut replies = Vec::new();
        let mut pushed = Vec::new();
        for _ in 0..3 {
            let (q, rx) = queued(4_000, &permits);
            replies.push(rx);
            pushed.push(b.push(q).unwrap());
        }
        assert!(matches!(pushed[0], Pushed::Opened(_)));
        assert!(matches!(pushed[1], Pushed::Joined));
        let Pushed::SendAndOpened(first, deadline) = &pushed[2] else {
            panic!("the third message should have sent the first two");
        };
        assert_eq!(sent_messages(first), 2);
        assert!(*deadline > Instant::now(), "the next batch waits for more");
        let second = b.take_batch().unwrap().expect("the third message's batch");
        assert_eq!(sent_messages(&second), 1);
        // no message was failed for the batch it would have overfilled
        for rx in &mut replies {
            assert!(rx.try_recv().is_err());
        }
    }

    #[tokio::test]
    async fn batch_max_bytes_bounds_a_batch_before_a_message_joins() {
        let permits = Arc::new(Semaphore::new(100));
        let mut b = batcher(5 << 20, 10_000);
        let (q, _r1) = queued(6_000, &permits);
        assert!(matches!(b.push(q).unwrap(), Pushed::Opened(_)));
        let (q, _r2) = queued(6_000, &permits);
        let Pushed::SendAndOpened(first, _) = b.push(q).unwrap() else {
            panic!("12,000 payload bytes would pass batch_max_bytes");
        };
        assert_eq!(sent_messages(&first), 1);
    }

    #[test]
    fn the_length_bound_is_not_below_the_built_length() {
        let m = SingleMessageMetadata {
            properties: vec![KeyValue {
                key: "a".repeat(200),
                value: "b".repeat(300),
            }],
            partition_key: Some("k".repeat(150)),
            event_time: Some(u64::MAX),
            sequence_id: Some(u64::MAX),
            payload_size: i32::MAX,
            ..Default::default()
        };
        let mut msg = OutgoingMessage::new(vec![0u8; 1000]);
        msg.key = Some("k".repeat(150));
        msg.properties = vec![("a".repeat(200), "b".repeat(300))];
        msg.event_time = Some(u64::MAX);
        assert!(batched_len_bound(&msg) >= batch_message_len(&m, 1000));
    }
}
