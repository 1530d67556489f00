//! Consumers on a connection: SUBSCRIBE (topic, schema, initial position, Key_Shared
//! settings), then FLOW, ACK (with receipts once the cursor write holds them),
//! REDELIVER_UNACKNOWLEDGED_MESSAGES, SEEK, UNSUBSCRIBE, CLOSE_CONSUMER, GET_LAST_MESSAGE_ID and
//! CONSUMER_STATS, each handed to the consumer's [`Subscription`].

use std::sync::Arc;
use std::time::Duration;

use strata_proto::commands;
use strata_proto::frame::{Frame, Payload};
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_ack::AckType;
use strata_proto::pulsar::command_subscribe::{InitialPosition as WireInitial, SubType};
use strata_proto::pulsar::{
    BaseCommand, CommandAck, CommandConsumerStatsResponse, CommandSubscribe, MessageIdData,
    ServerError,
};
use tracing::{info, warn};

use super::{Conn, Kind, NewConsumer, Origin, wire_id};
use crate::error::{BrokerError, Result};
use crate::position::Position;
use crate::service::BrokerService;
use crate::subscription::{AckId, ConsumerSpec, InitialPosition, SeekTarget, Subscription};
use crate::topic::Topic;
use crate::topic_name::TopicName;

/// A consumer of this connection.
pub(super) struct ConsumerState {
    pub topic: Arc<Topic>,
    pub sub: Subscription,
    pub key: u64,
    /// Reads the compacted view (`read_compacted`).
    pub read_compacted: bool,
}

impl ConsumerState {
    /// Detaches the consumer; a non-durable subscription goes with its last consumer.
    pub async fn detach(&self) {
        let left = self.sub.remove_consumer(self.key).await;
        if left == 0 && !self.sub.is_durable() {
            self.topic.remove_subscription(self.sub.name(), false).await;
        }
    }
}

impl Conn {
    /// The consumer commands.
    pub(super) async fn on_consumer(&mut self, t: Type, cmd: BaseCommand) {
        if let Some(c) = &cmd.close_consumer
            && t == Type::CloseConsumer
            && self.close_pending(Kind::Consumer, c.consumer_id, c.request_id)
        {
            return;
        }
        if !self.np_consumers.is_empty() && self.on_np_consumer(t, &cmd) {
            return;
        }
        match t {
            // On a task of the connection (`create.rs`).
            Type::Subscribe => self.start_create(t, cmd).await,
            Type::Flow => {
                let Some(c) = cmd.flow else { return };
                if let Some(cs) = self.consumers.get(&c.consumer_id) {
                    cs.sub.flow(cs.key, c.message_permits);
                }
            }
            Type::Ack => {
                if let Some(c) = cmd.ack {
                    self.ack(*c).await;
                }
            }
            Type::RedeliverUnacknowledgedMessages => self.redeliver(cmd),
            Type::Unsubscribe => self.unsubscribe(cmd).await,
            Type::CloseConsumer => self.close_consumer(cmd).await,
            Type::Seek => self.seek(cmd).await,
            Type::GetLastMessageId => self.get_last_message_id(cmd).await,
            Type::ConsumerStats => self.consumer_stats(cmd).await,
            _ => {}
        }
    }

    /// ACK; with a request id, the receipt waits for the cursor write that holds it.
    async fn ack(&mut self, c: CommandAck) {
        let Some(cs) = self.consumers.get(&c.consumer_id) else {
            self.ack_consumer_not_found(&c);
            return;
        };
        let cumulative = c.ack_type == AckType::Cumulative as i32;
        let ids: Vec<AckId> = c
            .message_id
            .iter()
            .map(|m| AckId {
                position: Position::from_wire(m.ledger_id, m.entry_id),
                ack_set: m.ack_set.clone(),
            })
            .collect();
        let want = c.request_id.is_some();
        let seq = cs.sub.ack(cs.key, cumulative, ids, want).await;
        let Some(rid) = c.request_id else { return };
        let Some(seq) = seq else {
            // The subscription closed this consumer (a seek, an unload) or is gone.
            self.ack_consumer_not_found(&c);
            return;
        };
        let sub = cs.sub.clone();
        let out = self.out.clone();
        let consumer_id = c.consumer_id;
        self.tasks.spawn(async move {
            sub.wait_durable(seq).await;
            let _ = out.send(Frame::simple(commands::ack_response(
                consumer_id,
                Some(rid),
                None,
            )));
        });
    }

    /// An ack of a consumer that is not attached: dropped; a receipt says so.
    fn ack_consumer_not_found(&self, c: &CommandAck) {
        if let Some(rid) = c.request_id {
            self.send(commands::ack_response(
                c.consumer_id,
                Some(rid),
                Some((ServerError::ConsumerNotFound, "consumer not found".into())),
            ));
        }
    }

    fn redeliver(&mut self, cmd: BaseCommand) {
        let Some(c) = cmd.redeliver_unacknowledged_messages else {
            return;
        };
        if let Some(cs) = self.consumers.get(&c.consumer_id) {
            let ids: Vec<Position> = c
                .message_ids
                .iter()
                .map(|m| Position::from_wire(m.ledger_id, m.entry_id))
                .collect();
            cs.sub
                .redeliver(cs.key, if ids.is_empty() { None } else { Some(ids) });
        }
    }

    async fn unsubscribe(&mut self, cmd: BaseCommand) {
        let Some(c) = cmd.unsubscribe else { return };
        let Some(cs) = self.consumers.get(&c.consumer_id) else {
            self.error(c.request_id, &BrokerError::ConsumerNotFound(c.consumer_id));
            return;
        };
        match cs.sub.unsubscribe(cs.key).await {
            Ok(()) => {
                let name = cs.sub.name().to_owned();
                let topic = cs.topic.clone();
                self.consumers.remove(&c.consumer_id);
                self.service.metrics.consumers.dec();
                topic.remove_subscription(&name, true).await;
                info!(topic = %topic.name(), sub = %name, "unsubscribed");
                self.send(commands::success(c.request_id));
            }
            Err(e) => self.error(c.request_id, &e),
        }
    }

    async fn close_consumer(&mut self, cmd: BaseCommand) {
        let Some(c) = cmd.close_consumer else { return };
        if let Some(cs) = self.consumers.remove(&c.consumer_id) {
            cs.detach().await;
            // A closed consumer's acks are durable when the close is answered.
            if tokio::time::timeout(Duration::from_secs(5), cs.sub.flush())
                .await
                .is_err()
            {
                warn!(sub = %cs.sub.name(), "cursor flush on consumer close timed out");
            }
        }
        self.send(commands::success(c.request_id));
    }

    async fn seek(&mut self, cmd: BaseCommand) {
        let Some(c) = cmd.seek else { return };
        let Some(cs) = self.consumers.get(&c.consumer_id) else {
            self.error(c.request_id, &BrokerError::ConsumerNotFound(c.consumer_id));
            return;
        };
        let target = match (&c.message_id, c.message_publish_time) {
            (Some(m), _) => SeekTarget::Position(Position::from_wire(m.ledger_id, m.entry_id)),
            (None, Some(t)) => SeekTarget::PublishTime(t),
            (None, None) => {
                self.error(
                    c.request_id,
                    &BrokerError::Protocol("SEEK without target".into()),
                );
                return;
            }
        };
        let sub = cs.sub.clone();
        match sub.seek(target).await {
            Ok(()) => {
                // The subscription disconnected its consumers (they resubscribe).
                self.send(commands::success(c.request_id));
            }
            Err(e) => self.error(c.request_id, &e),
        }
    }

    async fn get_last_message_id(&mut self, cmd: BaseCommand) {
        let Some(c) = cmd.get_last_message_id else {
            return;
        };
        let Some(cs) = self.consumers.get(&c.consumer_id) else {
            self.error(c.request_id, &BrokerError::ConsumerNotFound(c.consumer_id));
            return;
        };
        let ml = cs.topic.ledger().clone();
        let partition = cs.topic.partition();
        let lac = ml.last_confirmed();
        let found = match compacted_last(&self.service, cs, lac).await {
            Some(found) => Some(found),
            None if lac.entry < 0 => None,
            None => match ml.read_one(lac).await {
                Ok(Some(d)) => Some((lac, Some(d))),
                // Trimmed away: as no entry (the compacted view's last, if any).
                Ok(None) => None,
                Err(e) => {
                    warn!(topic = %cs.topic.name(), error = %e, "read of the last entry failed");
                    self.error(c.request_id, &e);
                    return;
                }
            },
        };
        let found = match found {
            Some(f) => Some(f),
            None => compacted_last_any(&self.service, &cs.topic).await,
        };
        let last = last_message_id(found, partition);
        let md = cs.sub.mark_delete().await.map(|p| wire_id(p, partition));
        self.send(commands::get_last_message_id_response(
            c.request_id,
            last,
            md,
        ));
    }

    async fn consumer_stats(&mut self, cmd: BaseCommand) {
        let Some(c) = cmd.consumer_stats else { return };
        let stats = match self.consumers.get(&c.consumer_id) {
            Some(cs) => cs.sub.stats(cs.key).await,
            None => None,
        };
        let body = match stats {
            Some(s) => CommandConsumerStatsResponse {
                request_id: c.request_id,
                consumer_name: Some(s.name),
                available_permits: Some(s.permits.max(0) as u64),
                unacked_messages: Some(s.unacked),
                msg_backlog: Some(s.backlog),
                address: Some(s.client.address),
                connected_since: Some(s.client.connected_since),
                r#type: Some(s.sub_type),
                msg_rate_out: Some(s.out.msg_rate),
                msg_throughput_out: Some(s.out.byte_rate),
                msg_rate_redeliver: Some(s.redelivered.msg_rate),
                blocked_consumer_on_unacked_msgs: Some(s.blocked),
                ..Default::default()
            },
            None => CommandConsumerStatsResponse {
                request_id: c.request_id,
                error_code: Some(ServerError::ConsumerNotFound as i32),
                error_message: Some("consumer not found".into()),
                ..Default::default()
            },
        };
        self.send(BaseCommand {
            consumer_stats_response: Some(Box::new(body)),
            ..commands::base(Type::ConsumerStatsResponse)
        });
    }
}

/// SUBSCRIBE to a persistent topic, on a task of the connection: the topic, schema, the subscription
/// (its cursor written for a new durable one) and the consumer added to it. The connection
/// registers the consumer under its id and answers.
pub(super) async fn create_consumer(
    o: &Origin,
    c: CommandSubscribe,
    name: TopicName,
) -> Result<NewConsumer> {
    let service = &o.service;
    let topic = service
        .topic(
            &name,
            service.config.allow_auto_topic_creation || c.force_topic_creation(),
        )
        .await?;
    if let Some(s) = &c.schema {
        crate::schema::admission::consumer_schema(service, &topic, &name, s).await?;
    }
    let durable = c.durable();
    let initial = initial_position(&c);
    let sub_type = c.sub_type();
    crate::policy::admit_consumer(service, &topic, &c.subscription).await?;
    let sub = topic.subscribe(&c.subscription, durable, initial).await?;
    let key_shared = super::key_shared_spec(&c);
    let key = service.next_key();
    let cname = super::consumer_name(&c, key);
    let spec = ConsumerSpec {
        key,
        consumer_id: c.consumer_id,
        name: cname.clone(),
        priority: c.priority_level.unwrap_or(0),
        sub_type,
        key_shared,
        out: o.out.clone(),
        client: o.client(),
        metadata: super::key_values(&c.metadata),
        compacted: compacted_reader(service, &topic, &c).await?,
    };
    let read_compacted = spec.compacted.is_some();
    if let Err(e) = sub.add_consumer(spec).await {
        if !durable {
            topic.remove_subscription(&c.subscription, false).await;
        }
        return Err(e);
    }
    info!(topic = %name, sub = %c.subscription, consumer = %cname, ?sub_type, durable, "subscribed");
    Ok(NewConsumer::Persistent(ConsumerState {
        topic,
        sub,
        key,
        read_compacted,
    }))
}

/// SUBSCRIBE's initial position: a non-durable subscription's start message id (`-1:-1` is the
/// earliest, `i64::MAX` the latest), the wire's initial position otherwise.
fn initial_position(c: &CommandSubscribe) -> InitialPosition {
    match (&c.start_message_id, c.durable()) {
        (Some(m), false) => {
            if m.ledger_id == u64::MAX {
                InitialPosition::Earliest
            } else if m.ledger_id >= i64::MAX as u64 {
                InitialPosition::Latest
            } else {
                InitialPosition::At(Position::from_wire(m.ledger_id, m.entry_id))
            }
        }
        _ => match c.initial_position() {
            WireInitial::Earliest => InitialPosition::Earliest,
            WireInitial::Latest => InitialPosition::Latest,
        },
    }
}

/// The GET_LAST_MESSAGE_ID answer for the last entry found, as Pulsar: the largest batch index
/// when the entry says how many messages it holds (a batch of one: 0), and `-1:-1` (partition
/// kept, batch index -1) when there is no entry (empty topic, all trimmed, nothing compacted).
fn last_message_id(
    found: Option<(Position, Option<bytes::Bytes>)>,
    partition: i32,
) -> MessageIdData {
    let Some((pos, entry)) = found.filter(|(p, _)| p.entry >= 0) else {
        return MessageIdData {
            ledger_id: u64::MAX,
            entry_id: u64::MAX,
            partition: Some(partition),
            batch_index: Some(-1),
            ..Default::default()
        };
    };
    let mut id = wire_id(pos, partition);
    id.batch_index = Some(
        entry
            .and_then(|d| Payload::from_raw(d).ok())
            .and_then(|p| p.metadata.num_messages_in_batch)
            .filter(|n| *n > 0)
            .map_or(-1, |n| n - 1),
    );
    id
}

/// Where the managed ledger has no entry: the compacted view's last entry, for every reader
/// (Pulsar answers from the compacted ledger once the data ledgers are gone).
async fn compacted_last_any(
    service: &BrokerService,
    topic: &Arc<Topic>,
) -> Option<(Position, Option<bytes::Bytes>)> {
    let view = topic.compaction().view()?;
    match view.last(service.storage().as_ref()).await {
        Ok(found) => found.map(|(p, d)| (p, Some(d))),
        Err(e) => {
            warn!(topic = %topic.name(), error = %e, "read of the last compacted entry failed");
            None
        }
    }
}

/// Pulsar's rule for compacted readers: while nothing was written after the compaction's
/// horizon, the last message is the compacted view's last one (`-1:-1` when compaction
/// removed everything), not an entry the reader will never get.
async fn compacted_last(
    service: &BrokerService,
    cs: &ConsumerState,
    lac: Position,
) -> Option<(Position, Option<bytes::Bytes>)> {
    if !cs.read_compacted {
        return None;
    }
    let view = cs.topic.compaction().view().filter(|v| lac <= v.horizon)?;
    match view.last(service.storage().as_ref()).await {
        Ok(Some((p, d))) => Some((p, Some(d))),
        Ok(None) => Some((Position::new(u64::MAX, -1), None)),
        Err(e) => {
            warn!(topic = %cs.topic.name(), error = %e, "read of the last compacted entry failed");
            None
        }
    }
}

/// `read_compacted`: the compacted view's reader (Exclusive and Failover only, as Pulsar).
async fn compacted_reader(
    service: &BrokerService,
    topic: &Arc<Topic>,
    c: &CommandSubscribe,
) -> Result<Option<crate::compaction::CompactedReader>> {
    if !c.read_compacted() {
        return Ok(None);
    }
    if !matches!(c.sub_type(), SubType::Exclusive | SubType::Failover) {
        return Err(BrokerError::NotAllowed(
            "Read compacted can only be used with exclusive or failover persistent subscriptions"
                .into(),
        ));
    }
    topic.compaction().load(topic).await?;
    Ok(Some(crate::compaction::CompactedReader {
        state: topic.compaction().clone(),
        storage: service.storage().clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::pulsar::MessageMetadata;

    fn entry(batch: Option<i32>) -> bytes::Bytes {
        let md = MessageMetadata {
            num_messages_in_batch: batch,
            ..Default::default()
        };
        Payload::new(md, b"x").raw
    }

    #[test]
    fn no_entry_is_minus_one_with_the_partition() {
        for found in [None, Some((Position::new(u64::MAX, -1), None))] {
            let id = last_message_id(found, 3);
            assert_eq!((id.ledger_id as i64, id.entry_id as i64), (-1, -1));
            assert_eq!((id.partition, id.batch_index), (Some(3), Some(-1)));
        }
    }

    #[test]
    fn batch_index_is_the_largest_of_the_entry() {
        let at = Position::new(7, 4);
        let single = last_message_id(Some((at, Some(entry(None)))), -1);
        assert_eq!((single.ledger_id, single.entry_id), (7, 4));
        assert_eq!(single.batch_index, Some(-1));
        let batch = last_message_id(Some((at, Some(entry(Some(5))))), -1);
        assert_eq!(batch.batch_index, Some(4));
        let one = last_message_id(Some((at, Some(entry(Some(1))))), -1);
        assert_eq!(one.batch_index, Some(0));
        let unread = last_message_id(Some((at, None)), -1);
        assert_eq!(unread.batch_index, Some(-1));
    }
}
