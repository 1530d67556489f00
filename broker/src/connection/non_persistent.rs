//! Producers and consumers of non-persistent topics on a connection (`crate::nonpersistent`):
//! PRODUCER, SEND (receipt at once, id `0:0`), CLOSE_PRODUCER, SUBSCRIBE, FLOW, ACK (accepted
//! and ignored, receipts answered at once), REDELIVER (nothing to redeliver), UNSUBSCRIBE,
//! CLOSE_CONSUMER, SEEK (refused, as Pulsar), GET_LAST_MESSAGE_ID and CONSUMER_STATS. Kept
//! apart from `producer.rs`/`consumer.rs` so the persistent path pays nothing for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use strata_proto::commands;
use strata_proto::frame::Payload;
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::{
    BaseCommand, CommandConsumerStatsResponse, CommandProducer, CommandSend, CommandSubscribe,
    MessageIdData, ProducerAccessMode, ServerError,
};
use tracing::info;

use super::producer::{access_mode, producer_name, producer_request};
use super::receipts::SendId;
use super::{Conn, NewConsumer, NewProducer, Origin, ProducerKind};
use crate::error::{BrokerError, Result};
use crate::nonpersistent::{NonPersistentTopic, NpConsumerSpec, NpSubscription};
use crate::position::Position;
use crate::schema::version_bytes;
use crate::stats::RateMeter;
use crate::topic::ProducerAdmission;
use crate::topic_name::TopicName;

/// A producer of a non-persistent topic on this connection.
pub(super) struct NpProducerState {
    topic: Arc<NonPersistentTopic>,
    key: u64,
    name: String,
    meter: Arc<RateMeter>,
    /// Messages no subscription took.
    drops: Arc<RateMeter>,
    ready: Arc<AtomicBool>,
}

/// A consumer of a non-persistent topic on this connection.
pub(super) struct NpConsumerState {
    topic: Arc<NonPersistentTopic>,
    sub: Arc<NpSubscription>,
    key: u64,
}

impl NpProducerState {
    pub(super) fn detach(&self) {
        self.topic.remove_producer(self.key, &self.name);
    }
}

impl NpConsumerState {
    pub(super) fn detach(&self) {
        self.topic.detach(&self.sub, self.key);
    }
}

/// PRODUCER on a non-persistent topic (on a task of the connection).
pub(super) async fn create_np_producer(
    o: &Origin,
    c: CommandProducer,
    name: TopicName,
) -> Result<NewProducer> {
    let service = &o.service;
    let topic = service
        .np_topic(&name, service.config.allow_auto_topic_creation)
        .await?;
    let schema_version =
        crate::schema::admission::producer_schema(service, &name, c.schema.as_ref())
            .await?
            .map(version_bytes);
    let pname = producer_name(o, &c);
    let key = service.next_key();
    let mode = access_mode(&c);
    let meter = service.metrics.sampler().meter();
    let drops = service.metrics.sampler().meter();
    let admission = topic.add_producer(
        producer_request(o, &c, key, &pname, meter.clone()),
        drops.clone(),
    )?;
    let rid = c.request_id;
    let success = |epoch: Option<u64>, ready: bool| {
        let mut cmd = commands::producer_success(rid, &pname, -1, schema_version.clone());
        if let Some(ps) = cmd.producer_success.as_mut() {
            ps.topic_epoch = epoch;
            ps.producer_ready = Some(ready);
        }
        cmd
    };
    let ready = Arc::new(AtomicBool::new(false));
    let (first, waiting) = match admission {
        ProducerAdmission::Ready(epoch) => {
            ready.store(true, Ordering::Release);
            info!(topic = %name, producer = %pname, ?mode, "non-persistent producer created");
            let exclusive = mode != ProducerAccessMode::Shared;
            (success(exclusive.then_some(epoch), true), None)
        }
        ProducerAdmission::Waiting(rx) => (
            success(None, false),
            Some((rx, ready.clone(), success(None, true))),
        ),
    };
    let state = NpProducerState {
        topic,
        key,
        name: pname,
        meter,
        drops,
        ready,
    };
    Ok(NewProducer {
        kind: ProducerKind::NonPersistent(state),
        success: first,
        waiting,
    })
}

/// SUBSCRIBE to a non-persistent topic (on a task of the connection).
pub(super) async fn create_np_consumer(
    o: &Origin,
    c: CommandSubscribe,
    name: TopicName,
) -> Result<NewConsumer> {
    if c.read_compacted() {
        return Err(BrokerError::NotAllowed(
            "readCompacted only valid on persistent topics".into(),
        ));
    }
    let service = &o.service;
    let topic = service
        .np_topic(
            &name,
            service.config.allow_auto_topic_creation || c.force_topic_creation(),
        )
        .await?;
    let sub_type = c.sub_type();
    let key_shared = super::key_shared_spec(&c);
    let key = service.next_key();
    let cname = super::consumer_name(&c, key);
    let spec = NpConsumerSpec {
        key,
        consumer_id: c.consumer_id,
        name: cname.clone(),
        priority: c.priority_level.unwrap_or(0),
        sub_type,
        key_shared,
        out: o.out.clone(),
        client: o.client(),
        metadata: super::key_values(&c.metadata),
    };
    let sub = topic.subscribe(&c.subscription, spec)?;
    info!(topic = %name, sub = %c.subscription, consumer = %cname, ?sub_type, "subscribed to non-persistent topic");
    Ok(NewConsumer::NonPersistent(NpConsumerState {
        topic,
        sub,
        key,
    }))
}

impl Conn {
    /// CLOSE_PRODUCER of a non-persistent producer; false if `producer_id` is not one.
    pub(super) fn close_np_producer(&mut self, producer_id: u64) -> bool {
        match self.np_producers.remove(&producer_id) {
            Some(p) => {
                p.detach();
                true
            }
            None => false,
        }
    }

    /// SEND to a non-persistent producer: delivered to the connected consumers now (or
    /// dropped); the receipt goes out at once, with Pulsar's id `0:0`.
    pub(super) fn np_send(&mut self, s: CommandSend, payload: Option<Payload>) {
        let (pid, seq) = (s.producer_id, s.sequence_id);
        let fail = |this: &Self, e: ServerError, msg: &str| {
            this.send(commands::send_error(pid, seq, e, msg.to_owned()));
        };
        let Some(p) = self.np_producers.get(&pid) else {
            fail(self, ServerError::NotAllowedError, "producer not found");
            return;
        };
        if !p.ready.load(Ordering::Acquire) {
            fail(
                self,
                ServerError::NotAllowedError,
                "producer is waiting for exclusive access",
            );
            return;
        }
        let Some(payload) = payload else {
            fail(self, ServerError::UnknownError, "SEND without payload");
            return;
        };
        p.meter.record(
            s.num_messages.unwrap_or(1).max(1) as u64,
            payload.raw.len() as u64,
        );
        p.topic.publish(&payload, &p.drops);
        let reply = self.receipts.reply(SendId {
            producer_id: pid,
            sequence_id: seq,
            highest_sequence_id: s.highest_sequence_id.unwrap_or(0),
            partition: p.topic.partition(),
        });
        reply.send(Ok(Position::new(0, 0)));
    }

    /// A consumer command for a non-persistent consumer; false if the command's consumer is
    /// not one (the persistent path handles it).
    pub(super) fn on_np_consumer(&mut self, t: Type, cmd: &BaseCommand) -> bool {
        let id = match t {
            Type::Flow => cmd.flow.as_ref().map(|c| c.consumer_id),
            Type::Ack => cmd.ack.as_ref().map(|c| c.consumer_id),
            Type::RedeliverUnacknowledgedMessages => cmd
                .redeliver_unacknowledged_messages
                .as_ref()
                .map(|c| c.consumer_id),
            Type::Unsubscribe => cmd.unsubscribe.as_ref().map(|c| c.consumer_id),
            Type::CloseConsumer => cmd.close_consumer.as_ref().map(|c| c.consumer_id),
            Type::Seek => cmd.seek.as_ref().map(|c| c.consumer_id),
            Type::GetLastMessageId => cmd.get_last_message_id.as_ref().map(|c| c.consumer_id),
            Type::ConsumerStats => cmd.consumer_stats.as_ref().map(|c| c.consumer_id),
            _ => None,
        };
        let Some(id) = id.filter(|id| self.np_consumers.contains_key(id)) else {
            return false;
        };
        self.np_consumer_command(t, cmd, id);
        true
    }

    fn np_consumer_command(&mut self, t: Type, cmd: &BaseCommand, id: u64) {
        let Some(cs) = self.np_consumers.get(&id) else {
            return;
        };
        match t {
            Type::Flow => {
                if let Some(c) = &cmd.flow {
                    cs.sub.flow(cs.key, c.message_permits);
                }
            }
            Type::Ack => {
                if let Some(rid) = cmd.ack.as_ref().and_then(|c| c.request_id) {
                    self.send(commands::ack_response(id, Some(rid), None));
                }
            }
            Type::Unsubscribe => {
                let rid = cmd.unsubscribe.as_ref().map_or(0, |c| c.request_id);
                match cs.topic.unsubscribe(&cs.sub, cs.key) {
                    Ok(()) => {
                        self.np_consumers.remove(&id);
                        self.send(commands::success(rid));
                    }
                    Err(e) => self.error(rid, &e),
                }
            }
            Type::CloseConsumer => {
                let rid = cmd.close_consumer.as_ref().map_or(0, |c| c.request_id);
                if let Some(cs) = self.np_consumers.remove(&id) {
                    cs.detach();
                }
                self.send(commands::success(rid));
            }
            Type::Seek => {
                let rid = cmd.seek.as_ref().map_or(0, |c| c.request_id);
                self.error(
                    rid,
                    &BrokerError::NotAllowed(
                        "seek is not supported on non-persistent topics".into(),
                    ),
                );
            }
            Type::GetLastMessageId => {
                let rid = cmd.get_last_message_id.as_ref().map_or(0, |c| c.request_id);
                // Nothing is stored: there is no last message to read.
                let none = MessageIdData {
                    ledger_id: u64::MAX,
                    entry_id: u64::MAX,
                    partition: Some(cs.topic.partition()),
                    ..Default::default()
                };
                self.send(commands::get_last_message_id_response(rid, none, None));
            }
            Type::ConsumerStats => {
                let rid = cmd.consumer_stats.as_ref().map_or(0, |c| c.request_id);
                let body = CommandConsumerStatsResponse {
                    request_id: rid,
                    available_permits: cs.sub.permits(cs.key).map(|p| p.max(0) as u64),
                    msg_backlog: Some(0),
                    unacked_messages: Some(0),
                    ..Default::default()
                };
                self.send(BaseCommand {
                    consumer_stats_response: Some(Box::new(body)),
                    ..commands::base(Type::ConsumerStatsResponse)
                });
            }
            _ => {}
        }
    }

    /// Detaches this connection's non-persistent producers and consumers.
    pub(super) fn np_cleanup(&mut self) {
        for (_, p) in self.np_producers.drain() {
            p.detach();
        }
        for (_, c) in self.np_consumers.drain() {
            c.detach();
        }
    }
}
