//! Consumers: SUBSCRIBE on every partition, FLOW permits re-granted as the application receives,
//! batches split into messages, acks (a batch is acknowledged once all its messages are).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use strata_proto::batch::BatchIter;
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload};
use strata_proto::pulsar::command_ack::AckType;
use strata_proto::pulsar::command_subscribe::{InitialPosition, SubType};
use strata_proto::pulsar::{CommandMessage, CompressionType, MessageIdData};
use tokio::sync::mpsc;

use crate::client::PulsarClient;
use crate::compression;
use crate::connection::{Connection, ConsumerEvent};
use crate::error::{ClientError, Result};
use crate::message::{Message, MessageId};
use crate::topic_name::full_topic_name;

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Subscription type.
    pub sub_type: SubType,
    /// Where a new subscription starts.
    pub initial_position: InitialPosition,
    /// Messages the broker may push ahead of `receive` (FLOW permits).
    pub receiver_queue_size: u32,
    /// Consumer name.
    pub consumer_name: Option<String>,
    /// Durable cursor (false for readers).
    pub durable: bool,
    /// Start position for non-durable subscriptions (readers).
    pub start_message_id: Option<MessageIdData>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            sub_type: SubType::Exclusive,
            initial_position: InitialPosition::Latest,
            receiver_queue_size: 1000,
            consumer_name: None,
            durable: true,
            start_message_id: None,
        }
    }
}

struct Slot {
    topic: String,
    partition: i32,
    conn: Arc<Connection>,
    consumer_id: u64,
    /// Messages handed to the application since the last FLOW.
    consumed: u32,
    closed: bool,
    /// Last ACTIVE_CONSUMER_CHANGE (Failover), if any.
    active: Option<bool>,
    end_of_topic: bool,
}

impl PulsarClient {
    /// Subscribes to `topic` (all partitions when it is partitioned).
    pub async fn subscribe(
        &self,
        topic: &str,
        subscription: &str,
        options: ConsumerOptions,
    ) -> Result<Consumer> {
        Consumer::create(self, &full_topic_name(topic), subscription, options).await
    }
}

/// A consumer on a topic or on every partition of a partitioned topic.
pub struct Consumer {
    topic: String,
    slots: Vec<Slot>,
    rx: mpsc::UnboundedReceiver<ConsumerEvent>,
    ready: VecDeque<Message>,
    receiver_queue_size: u32,
    /// (slot, ledger, entry) → messages of that batch not yet acknowledged.
    open_batches: HashMap<(usize, u64, u64), i32>,
}

impl Consumer {
    pub(crate) async fn create(
        client: &PulsarClient,
        topic: &str,
        subscription: &str,
        options: ConsumerOptions,
    ) -> Result<Consumer> {
        let topics = client.partition_topics(topic).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut slots = Vec::with_capacity(topics.len());
        for (i, (t, partition)) in topics.into_iter().enumerate() {
            let conn = client.lookup(&t).await?;
            let consumer_id = conn.next_id();
            conn.register_consumer(consumer_id, i, tx.clone());
            let rid = conn.next_id();
            let mut cmd = commands::subscribe(
                &t,
                subscription,
                options.sub_type,
                consumer_id,
                rid,
                options.initial_position,
            );
            if let Some(s) = cmd.subscribe.as_mut() {
                s.consumer_name = options.consumer_name.clone();
                s.durable = Some(options.durable);
                s.start_message_id = options.start_message_id.clone();
            }
            if let Err(e) = conn.request(rid, cmd).await {
                conn.unregister_consumer(consumer_id);
                return Err(e);
            }
            conn.send(Frame::simple(commands::flow(
                consumer_id,
                options.receiver_queue_size,
            )))
            .await?;
            slots.push(Slot {
                topic: t,
                partition,
                conn,
                consumer_id,
                consumed: 0,
                closed: false,
                active: None,
                end_of_topic: false,
            });
        }
        Ok(Consumer {
            topic: topic.to_owned(),
            slots,
            rx,
            ready: VecDeque::new(),
            receiver_queue_size: options.receiver_queue_size.max(1),
            open_batches: HashMap::new(),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether the broker last said this consumer is active (Failover), per partition (`None`
    /// until it said anything). Applies notifications that already arrived.
    pub fn active(&mut self) -> Result<Vec<Option<bool>>> {
        self.drain_events()?;
        Ok(self.slots.iter().map(|s| s.active).collect())
    }

    /// Whether every partition reported REACHED_END_OF_TOPIC.
    pub fn reached_end_of_topic(&mut self) -> Result<bool> {
        self.drain_events()?;
        Ok(self.slots.iter().all(|s| s.end_of_topic))
    }

    /// Waits for the next message.
    ///
    /// # Cancel safety
    /// Cancel-safe: a message is only taken from the queue when it is returned.
    pub async fn receive(&mut self) -> Result<Message> {
        loop {
            if let Some(m) = self.ready.pop_front() {
                self.consumed(m.slot).await?;
                return Ok(m);
            }
            match self.rx.recv().await {
                Some(ev) => self.handle(ev)?,
                None => return Err(ClientError::Disconnected),
            }
        }
    }

    /// Applies events that already arrived (messages are queued for `receive`).
    fn drain_events(&mut self) -> Result<()> {
        while let Ok(ev) = self.rx.try_recv() {
            self.handle(ev)?;
        }
        Ok(())
    }

    fn handle(&mut self, ev: ConsumerEvent) -> Result<()> {
        match ev {
            ConsumerEvent::Message {
                slot,
                command,
                payload,
            } => self.unpack(slot, command, payload),
            ConsumerEvent::Closed { slot } => {
                if let Some(s) = self.slots.get_mut(slot) {
                    s.closed = true;
                }
                Err(ClientError::ClosedByBroker)
            }
            ConsumerEvent::ActiveChange { slot, active } => {
                if let Some(s) = self.slots.get_mut(slot) {
                    s.active = Some(active);
                }
                Ok(())
            }
            ConsumerEvent::EndOfTopic { slot } => {
                if let Some(s) = self.slots.get_mut(slot) {
                    s.end_of_topic = true;
                }
                Ok(())
            }
        }
    }

    async fn consumed(&mut self, slot: usize) -> Result<()> {
        let threshold = (self.receiver_queue_size / 2).max(1);
        let Some(s) = self.slots.get_mut(slot) else {
            return Ok(());
        };
        s.consumed += 1;
        if s.consumed >= threshold {
            let n = std::mem::take(&mut s.consumed);
            s.conn
                .send(Frame::simple(commands::flow(s.consumer_id, n)))
                .await?;
        }
        Ok(())
    }

    fn unpack(
        &mut self,
        slot: usize,
        command: CommandMessage,
        payload: Option<Payload>,
    ) -> Result<()> {
        let Some(s) = self.slots.get(slot) else {
            return Ok(());
        };
        let Some(payload) = payload else {
            return Err(ClientError::Protocol("MESSAGE without payload".into()));
        };
        let md = &payload.metadata;
        let data = compression::decompress(
            CompressionType::try_from(md.compression.unwrap_or(0))
                .map_err(|_| ClientError::Compression("unknown compression".into()))?,
            &payload.data,
            md.uncompressed_size.unwrap_or(0) as usize,
        )?;
        let mut id = MessageId::from_proto(&command.message_id);
        if id.partition < 0 {
            id.partition = s.partition;
        }
        let redelivery_count = command.redelivery_count();
        let props = |kv: &[strata_proto::pulsar::KeyValue]| {
            kv.iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect::<Vec<_>>()
        };
        if md.num_messages_in_batch.is_none() {
            self.ready.push_back(Message {
                topic: s.topic.clone(),
                id,
                payload: data,
                key: md.partition_key.clone(),
                properties: props(&md.properties),
                publish_time: md.publish_time,
                event_time: md.event_time.filter(|t| *t > 0),
                producer_name: md.producer_name.clone(),
                sequence_id: md.sequence_id,
                redelivery_count,
                slot,
            });
            return Ok(());
        }
        let n = md.num_messages_in_batch();
        let mut delivered = 0;
        for (i, m) in BatchIter::new(data).enumerate() {
            let m = m?;
            // The broker marks already-acknowledged batch indexes in ack_set (bit clear).
            if !command.ack_set.is_empty()
                && !strata_proto::batch::ack_set_is_unacked(&command.ack_set, i)
            {
                continue;
            }
            let mut mid = id;
            mid.batch_index = i as i32;
            mid.batch_size = n;
            delivered += 1;
            self.ready.push_back(Message {
                topic: s.topic.clone(),
                id: mid,
                payload: m.payload,
                key: m.metadata.partition_key.clone(),
                properties: props(&m.metadata.properties),
                publish_time: md.publish_time,
                event_time: m.metadata.event_time.filter(|t| *t > 0),
                producer_name: md.producer_name.clone(),
                sequence_id: m.metadata.sequence_id.unwrap_or(md.sequence_id + i as u64),
                redelivery_count,
                slot,
            });
        }
        self.open_batches
            .insert((slot, id.ledger_id, id.entry_id), delivered);
        Ok(())
    }

    /// Acknowledges one message (a batch entry is acknowledged when all its messages are).
    pub async fn ack(&mut self, m: &Message) -> Result<()> {
        if m.id.batch_index >= 0 {
            let k = (m.slot, m.id.ledger_id, m.id.entry_id);
            match self.open_batches.get_mut(&k) {
                Some(left) if *left > 1 => {
                    *left -= 1;
                    return Ok(());
                }
                _ => {
                    self.open_batches.remove(&k);
                }
            }
        }
        self.send_ack(m, AckType::Individual).await
    }

    /// Acknowledges everything up to and including `m` on its partition.
    pub async fn ack_cumulative(&mut self, m: &Message) -> Result<()> {
        self.send_ack(m, AckType::Cumulative).await
    }

    /// Sends an ACK of type `t` for `m` on its partition (nothing if the partition is unknown).
    async fn send_ack(&self, m: &Message, t: AckType) -> Result<()> {
        let Some(s) = self.slots.get(m.slot) else {
            return Ok(());
        };
        let ids = vec![m.id.to_proto(true)];
        let ack = commands::ack(s.consumer_id, t, ids);
        s.conn.send(Frame::simple(ack)).await
    }

    /// Asks the broker to redeliver every unacknowledged message of this consumer.
    pub async fn redeliver_unacknowledged(&mut self) -> Result<()> {
        self.ready.clear();
        self.open_batches.clear();
        for s in &mut self.slots {
            s.consumed = 0;
            s.conn
                .send(Frame::simple(commands::redeliver_unacknowledged(
                    s.consumer_id,
                    Vec::new(),
                )))
                .await?;
        }
        Ok(())
    }

    /// The id of the last message of each partition.
    pub async fn last_message_ids(&self) -> Result<Vec<MessageId>> {
        let mut out = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let rid = s.conn.next_id();
            let answer = s
                .conn
                .request(rid, commands::get_last_message_id(s.consumer_id, rid))
                .await?;
            let r = answer.get_last_message_id_response.ok_or_else(|| {
                ClientError::Protocol("expected GET_LAST_MESSAGE_ID_RESPONSE".into())
            })?;
            out.push(MessageId::from_proto(&r.last_message_id));
        }
        Ok(out)
    }

    /// The broker's statistics of this consumer, one answer per partition.
    pub async fn stats(&self) -> Result<Vec<strata_proto::pulsar::CommandConsumerStatsResponse>> {
        let mut out = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let rid = s.conn.next_id();
            let cmd = strata_proto::pulsar::BaseCommand {
                consumer_stats: Some(Box::new(strata_proto::pulsar::CommandConsumerStats {
                    request_id: rid,
                    consumer_id: s.consumer_id,
                })),
                ..commands::base(strata_proto::pulsar::base_command::Type::ConsumerStats)
            };
            let answer = s.conn.request(rid, cmd).await?;
            let r = answer
                .consumer_stats_response
                .ok_or_else(|| ClientError::Protocol("expected CONSUMER_STATS_RESPONSE".into()))?;
            if let Some(code) = r.error_code {
                return Err(ClientError::server(
                    code,
                    r.error_message.unwrap_or_default(),
                ));
            }
            out.push(*r);
        }
        Ok(out)
    }

    /// Deletes the subscription (fails while other consumers are attached).
    pub async fn unsubscribe(mut self) -> Result<()> {
        for s in &mut self.slots {
            let rid = s.conn.next_id();
            s.conn
                .request(rid, commands::unsubscribe(s.consumer_id, rid))
                .await?;
            s.conn.unregister_consumer(s.consumer_id);
            s.closed = true;
        }
        Ok(())
    }

    /// Closes the consumer on the broker (unacknowledged messages go to other consumers).
    pub async fn close(mut self) -> Result<()> {
        for s in &mut self.slots {
            if s.closed {
                continue;
            }
            let rid = s.conn.next_id();
            let _ = s
                .conn
                .request(rid, commands::close_consumer(s.consumer_id, rid, None))
                .await;
            s.conn.unregister_consumer(s.consumer_id);
            s.closed = true;
        }
        Ok(())
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        for s in &self.slots {
            if !s.closed {
                s.conn.unregister_consumer(s.consumer_id);
                // Best effort: tell the broker so it redelivers to others.
                let _ = s.conn.try_send(Frame::simple(commands::close_consumer(
                    s.consumer_id,
                    s.conn.next_id(),
                    None,
                )));
            }
        }
    }
}
