//! The subscription task: owns the cursor's ack state, the consumers, the dispatcher, the read
//! position, replay and delayed entries, and runs commands from [`super::Subscription`] handles
//! one at a time, dispatching after each.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::consumers::Consumers;
use super::delayed::{DelayedDeliveryTracker, InMemoryDelayedTracker};
use super::dispatch_rate::DispatchRate;
use super::dispatcher::Dispatcher;
use super::flusher::{STOP, Wake};
use super::read_position::{ReadAhead, Replay};
use super::types::{SubscriptionConfig, SubscriptionId};
use strata_common::clock::now_ms;

use super::Cmd;
use crate::cursor::AckState;
use crate::error::BrokerError;
use crate::managed_ledger::ManagedLedger;
use crate::metrics::{Metrics, TopicMetrics};
use crate::stats::RateMeter;
use strata_proto::pulsar::command_subscribe::SubType;

/// Pause before retrying after a failed read.
const READ_RETRY: Duration = Duration::from_millis(200);
/// Pause before looking again at a congested connection.
const CONGESTION_RETRY: Duration = Duration::from_millis(5);

/// The subscription task's state.
pub(super) struct Actor {
    pub id: SubscriptionId,
    pub ml: ManagedLedger,
    pub lac: watch::Receiver<()>,
    /// The cursor: mark-delete position and individually acked entries.
    pub acks: AckState,
    /// Bumped by every change of `acks`; the flusher persists up to a sequence.
    pub ack_seq: u64,
    /// Wakes the flusher.
    pub wake: Arc<Wake>,
    pub consumers: Consumers,
    pub dispatcher: Box<dyn Dispatcher>,
    pub reads: ReadAhead,
    pub replay: Replay,
    pub delayed: Box<dyn DelayedDeliveryTracker>,
    pub rate: DispatchRate,
    pub config: SubscriptionConfig,
    pub metrics: Metrics,
    pub series: TopicMetrics,
    /// Messages and bytes this subscription dispatched.
    pub out: Arc<RateMeter>,
    /// Consumers told REACHED_END_OF_TOPIC.
    pub ended: HashSet<u64>,
    /// A read failed: try again shortly.
    pub retry: bool,
    /// A consumer with permits was skipped because its connection is congested.
    pub congested: bool,
}

impl Actor {
    /// A task over `acks` for subscription `id` of `ml`.
    pub fn new(
        id: SubscriptionId,
        ml: ManagedLedger,
        acks: AckState,
        wake: Arc<Wake>,
        config: SubscriptionConfig,
        metrics: Metrics,
    ) -> Self {
        let series = crate::topic_name::TopicName::parse(&id.topic)
            .map(|t| metrics.topic(&t))
            .unwrap_or_default();
        let mut actor = Actor {
            dispatcher: super::dispatcher_for(SubType::Exclusive, id.partition, &config),
            id,
            lac: ml.watch_lac(),
            reads: ReadAhead::new(acks.mark_delete()),
            ml,
            acks,
            ack_seq: 0,
            wake,
            consumers: Consumers::default(),
            replay: Replay::default(),
            delayed: Box::new(InMemoryDelayedTracker::default()),
            rate: DispatchRate::new(config.topic_dispatch.clone()),
            config,
            out: metrics.sampler().meter(),
            metrics,
            series,
            ended: HashSet::new(),
            retry: false,
            congested: false,
        };
        actor.advance();
        actor
    }

    /// Runs commands until the subscription is closed or deleted.
    pub async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        debug!(topic = %self.id.topic, sub = %self.id.name, md = %self.acks.mark_delete(), "subscription started");
        loop {
            let next_delay = self.delayed.next_deliver_at();
            let delay_sleep = async {
                match next_delay {
                    Some(t) => {
                        let now = now_ms();
                        tokio::time::sleep(Duration::from_millis(t.saturating_sub(now))).await
                    }
                    None => std::future::pending().await,
                }
            };
            let paused = self.rate.paused_until();
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    // Boxed, like the dispatch below: the task of an idle subscription keeps
                    // only this loop's state, not the largest command's (10,000 topics).
                    if Box::pin(self.terminal(cmd, &mut rx)).await {
                        return;
                    }
                }
                _ = self.lac.changed() => {}
                // select! builds a disabled branch's future too: these build their timers only
                // when polled (a timer reads the clock; the loop runs once per entry or ack)
                _ = async { tokio::time::sleep(READ_RETRY).await }, if self.retry => self.retry = false,
                _ = async { tokio::time::sleep(CONGESTION_RETRY).await }, if self.congested => self.congested = false,
                _ = async move {
                    if let Some(t) = paused {
                        tokio::time::sleep_until(t).await
                    }
                }, if paused.is_some() => {
                    self.rate.resume();
                }
                _ = delay_sleep => {
                    for p in self.delayed.take_due(now_ms()) {
                        self.replay.push(p, None, false);
                    }
                }
            }
            Box::pin(self.dispatch()).await;
        }
    }

    /// Runs one command; true when it ended the task (close, unsubscribe).
    async fn terminal(&mut self, cmd: Cmd, rx: &mut mpsc::UnboundedReceiver<Cmd>) -> bool {
        match cmd {
            Cmd::Close(assigned, reply) => {
                self.close_all_consumers(assigned);
                // Let the flusher take its final snapshot (none when another broker took the
                // topic over: the flusher has stopped or stops when it finds the actor gone).
                if self.id.durable {
                    self.wake.urgent();
                    if !self.ml.is_fenced() {
                        self.drain_snapshots(rx).await;
                    }
                }
                let _ = reply.send(());
                true
            }
            Cmd::Unsubscribe(key, reply) => {
                if self.consumers.iter().any(|c| c.spec.key != key) {
                    let _ = reply.send(Err(BrokerError::ConsumerBusy(
                        "subscription has other connected consumers".into(),
                    )));
                    return false;
                }
                let n = self.consumers.clear();
                debug!(sub = %self.id.name, consumers = n, "unsubscribed");
                if self.id.durable {
                    self.stop_flusher(rx).await;
                }
                let _ = reply.send(Ok(()));
                true
            }
            other => {
                self.handle(other).await;
                false
            }
        }
    }

    /// Runs a command that leaves the task running.
    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::AddConsumer(spec, reply) => {
                let r = self.add_consumer(*spec);
                let _ = reply.send(r);
            }
            Cmd::RemoveConsumer(key, reply) => {
                self.remove_consumer(key);
                let _ = reply.send(self.consumers.len());
            }
            Cmd::Flow(key, n) => self.consumers.flow(key, n),
            Cmd::Ack {
                key,
                cumulative,
                ids,
                reply,
            } => {
                // A consumer this subscription closed (a seek, an unload) may still send acks
                // its client grouped before it learnt of the close; as Pulsar, they are dropped
                // (a receipt is answered ConsumerNotFound), or they would undo the seek.
                if self.consumers.find(key).is_none() {
                    debug!(sub = %self.id.name, key, "ack of a detached consumer dropped");
                    return;
                }
                self.ack(key, cumulative, ids);
                if let Some(r) = reply {
                    let _ = r.send(self.ack_seq);
                }
            }
            Cmd::Redeliver(key, positions) => self.redeliver(key, positions),
            Cmd::Seek(target, reply) => {
                let r = self.seek(target).await;
                let _ = reply.send(r);
            }
            Cmd::SetDispatchRate(limit) => self.rate.set(limit),
            Cmd::ConsumerCount(reply) => {
                let _ = reply.send(self.consumers.len());
            }
            Cmd::Stats(key, reply) => {
                let backlog = self.ml.entries_after(self.acks.mark_delete());
                let _ = reply.send(self.consumers.find(key).map(|c| c.stats(backlog)));
            }
            Cmd::AllStats(reply) => {
                let _ = reply.send(self.stats_snapshot());
            }
            Cmd::MarkDelete(reply) => {
                let _ = reply.send(self.acks.mark_delete());
            }
            Cmd::AckSeq(reply) => {
                let _ = reply.send(self.ack_seq);
            }
            Cmd::Snapshot(reply) => {
                // Another broker owns the topic now (its ledger was fenced): it is the only
                // writer of the cursor; stop persisting ours.
                let seq = if self.ml.is_fenced() {
                    STOP
                } else {
                    self.ack_seq
                };
                let _ = reply.send((seq, self.acks.snapshot()));
            }
            Cmd::Unsubscribe(..) | Cmd::Close(..) => {}
        }
    }

    /// Answers snapshot requests until the flusher has written the latest state, then stops it.
    async fn drain_snapshots(&mut self, rx: &mut mpsc::UnboundedReceiver<Cmd>) {
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        let mut answered = self.ack_seq == 0;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Snapshot(r)) => {
                        if answered || self.ml.is_fenced() {
                            let _ = r.send((STOP, self.acks.snapshot()));
                            return;
                        }
                        let _ = r.send((self.ack_seq, self.acks.snapshot()));
                        answered = true;
                        // One more round so the flusher gets told to stop after writing.
                        self.wake.urgent();
                    }
                    Some(Cmd::AddConsumer(_, r)) => {
                        let _ = r.send(Err(BrokerError::ServiceNotReady("subscription closing".into())));
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = &mut deadline => {
                    warn!(topic = %self.id.topic, sub = %self.id.name, "cursor flush on close timed out");
                    return;
                }
            }
        }
    }

    /// Tells the flusher to stop without writing (the subscription is deleted).
    async fn stop_flusher(&mut self, rx: &mut mpsc::UnboundedReceiver<Cmd>) {
        self.wake.urgent();
        let deadline = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Snapshot(r)) => {
                        let _ = r.send((STOP, self.acks.snapshot()));
                        return;
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = &mut deadline => return,
            }
        }
    }

    /// Disconnects every consumer (told to reconnect to `assigned` when given).
    pub fn close_all_consumers(&mut self, assigned: Option<String>) {
        let n = self.consumers.close_all(assigned);
        for _ in 0..n {
            self.metrics.consumers.dec();
        }
    }
}
