//! Producers on a connection: PRODUCER (admission under the topic's access mode, schema,
//! WaitForExclusive grants), SEND (handed to [`Topic::publish`], receipts in SEND order) and
//! CLOSE_PRODUCER.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use strata_common::clock;
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload};
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::{BaseCommand, CommandProducer, ProducerAccessMode, ServerError};
use tokio::sync::oneshot;
use tracing::{debug, info};

use super::receipts::SendId;
use super::{Conn, Kind, NewProducer, Origin, ProducerKind, server_error};
use crate::error::Result;
use crate::schema::version_bytes;
use crate::stats::RateMeter;
use crate::topic::{ProducerAdmission, ProducerRequest, Topic};
use crate::topic_name::TopicName;

/// A producer of this connection.
pub(super) struct ProducerState {
    pub topic: Arc<Topic>,
    pub key: u64,
    /// Counts what it publishes (topic stats).
    meter: Arc<RateMeter>,
    /// Only for a producer that waited for exclusive access (WaitForExclusive): false until
    /// granted. A producer admitted at once has none, so a SEND checks nothing more of it.
    ready: Option<Arc<AtomicBool>>,
}

impl Conn {
    /// PRODUCER (on a task of the connection, `create.rs`) and CLOSE_PRODUCER.
    pub(super) async fn on_producer(&mut self, t: Type, cmd: BaseCommand) {
        if t == Type::Producer {
            self.start_create(t, cmd).await;
            return;
        }
        let Some(c) = cmd.close_producer else { return };
        if self.close_pending(Kind::Producer, c.producer_id, c.request_id) {
            return;
        }
        if !self.close_np_producer(c.producer_id)
            && let Some(p) = self.producers.remove(&c.producer_id)
        {
            p.topic.remove_producer(p.key);
        }
        self.send(commands::success(c.request_id));
    }

    /// SEND: the topic applies quota, rate and deduplication; the receipt goes out in order.
    pub(super) fn on_send(&mut self, cmd: BaseCommand, payload: Option<Payload>) {
        let Some(s) = cmd.send else { return };
        let pid = s.producer_id;
        let seq = s.sequence_id;
        let highest = s.highest_sequence_id.unwrap_or(0);
        let fail = |this: &Self, e: ServerError, msg: &str| {
            this.send(commands::send_error(pid, seq, e, msg.to_owned()));
        };
        let Some(p) = self.producers.get(&pid) else {
            self.np_send(*s, payload);
            return;
        };
        if p.ready.as_ref().is_some_and(|r| !r.load(Ordering::Acquire)) {
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
        let reply = self.receipts.reply(SendId {
            producer_id: pid,
            sequence_id: seq,
            highest_sequence_id: highest,
            partition: p.topic.partition(),
        });
        // one clock reading for the latencies this message's append times (managed ledger,
        // local bookie)
        let topic = &p.topic;
        let until = clock::with_instant(Instant::now(), || topic.publish(payload, reply));
        if let Some(until) = until {
            self.throttle_until = Some(self.throttle_until.map_or(until, |t| t.max(until)));
        }
    }

    /// A producer queued for exclusive access (WaitForExclusive): when granted, the second
    /// PRODUCER_SUCCESS (`ready_cmd`, ready, with the new topic epoch) goes out and SENDs are
    /// accepted; when fenced meanwhile, the PRODUCER request fails with `ProducerFenced`.
    pub(super) fn await_exclusive_grant(
        &self,
        rx: oneshot::Receiver<Result<u64>>,
        ready: Arc<AtomicBool>,
        ready_cmd: BaseCommand,
    ) {
        let out = self.out.clone();
        let rid = ready_cmd
            .producer_success
            .as_ref()
            .map_or(0, |ps| ps.request_id);
        self.tasks.spawn(async move {
            let cmd = match rx.await {
                Ok(Ok(epoch)) => {
                    ready.store(true, Ordering::Release);
                    let mut cmd = ready_cmd;
                    if let Some(ps) = cmd.producer_success.as_mut() {
                        ps.topic_epoch = Some(epoch);
                    }
                    cmd
                }
                Ok(Err(e)) => {
                    debug!(error = %e, "waiting producer fenced");
                    commands::error(rid, server_error(&e), e.to_string())
                }
                // The topic went away (unloaded): the client reconnects on its own.
                Err(_) => return,
            };
            let _ = out.send(Frame::simple(cmd));
        });
    }
}

/// PRODUCER's name: the client's, or one the broker makes up.
pub(super) fn producer_name(o: &Origin, c: &CommandProducer) -> String {
    match c.producer_name.as_deref() {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => o.service.producer_name(),
    }
}

/// What PRODUCER asks of the topic's producers, the same for persistent and non-persistent
/// topics.
pub(super) fn producer_request<'a>(
    o: &Origin,
    c: &CommandProducer,
    key: u64,
    name: &'a str,
    meter: Arc<RateMeter>,
) -> ProducerRequest<'a> {
    ProducerRequest {
        key,
        producer_id: c.producer_id,
        name,
        mode: access_mode(c),
        out: o.out.clone(),
        client: o.client(),
        metadata: super::key_values(&c.metadata),
        meter,
        epoch: c.topic_epoch,
    }
}

/// PRODUCER on a persistent topic, on a task of the connection: the topic, admission under its access
/// mode, schema, the initial subscription. The producer is registered with the topic; the
/// connection registers it under its id and answers.
pub(super) async fn create_producer(
    o: &Origin,
    c: CommandProducer,
    name: TopicName,
) -> Result<NewProducer> {
    let service = &o.service;
    let topic = service
        .topic(&name, service.config.allow_auto_topic_creation)
        .await?;
    crate::policy::admit_producer(service, &topic).await?;
    let schema_version =
        crate::schema::admission::producer_schema(service, &name, c.schema.as_ref())
            .await?
            .map(version_bytes);
    let pname = producer_name(o, &c);
    let key = service.next_key();
    let mode = access_mode(&c);
    let meter = service.metrics.sampler().meter();
    let admission = topic.add_producer(producer_request(o, &c, key, &pname, meter.clone()))?;
    if let Err(e) = initial_subscription(&topic, c.initial_subscription_name.as_deref()).await {
        topic.remove_producer(key);
        return Err(e);
    }
    let rid = c.request_id;
    let success = |epoch: Option<u64>, ready: bool| {
        let last_seq = if topic.dedup().enabled() {
            topic.dedup().last_sequence_id(&pname)
        } else {
            -1
        };
        let mut cmd = commands::producer_success(rid, &pname, last_seq, schema_version.clone());
        if let Some(ps) = cmd.producer_success.as_mut() {
            ps.topic_epoch = epoch;
            ps.producer_ready = Some(ready);
        }
        cmd
    };
    let (ready, first, waiting) = match admission {
        ProducerAdmission::Ready(epoch) => {
            let exclusive = mode != ProducerAccessMode::Shared;
            info!(topic = %name, producer = %pname, ?mode, "producer created");
            (None, success(exclusive.then_some(epoch), true), None)
        }
        ProducerAdmission::Waiting(rx) => {
            info!(topic = %name, producer = %pname, "producer waiting for exclusive access");
            let ready = Arc::new(AtomicBool::new(false));
            let waiting = (rx, ready.clone(), success(None, true));
            (Some(ready), success(None, false), Some(waiting))
        }
    };
    let state = ProducerState {
        topic: topic.clone(),
        key,
        meter,
        ready,
    };
    Ok(NewProducer {
        kind: ProducerKind::Persistent(state),
        success: first,
        waiting,
    })
}

/// PRODUCER's access mode (Shared when absent or unknown).
pub(super) fn access_mode(c: &CommandProducer) -> ProducerAccessMode {
    c.producer_access_mode
        .and_then(|m| ProducerAccessMode::try_from(m).ok())
        .unwrap_or(ProducerAccessMode::Shared)
}

/// PRODUCER's `initial_subscription_name` (a dead-letter producer's): the durable subscription
/// is created at the earliest position if the topic does not have it, before the producer is
/// confirmed, so it keeps every message the producer writes.
async fn initial_subscription(topic: &Topic, name: Option<&str>) -> Result<()> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    if topic.subscription_names().await.iter().any(|s| s == name) {
        return Ok(());
    }
    info!(topic = %topic.name(), sub = name, "creating the producer's initial subscription");
    topic
        .subscribe(name, true, crate::subscription::InitialPosition::Earliest)
        .await
        .map(|_| ())
}
