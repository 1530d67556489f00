//! The dispatch loop, the same for every subscription type: replay first (oldest first), then
//! new entries from the read position, each offered to the [`super::dispatcher::Dispatcher`];
//! a batch entry costs `num_messages` permits and is sent while permits are positive; the rate
//! limits and congested connections pause it.

use bytes::Bytes;
use strata_common::clock::now_ms;
use strata_proto::commands;
use strata_proto::frame::Frame;
use strata_proto::pulsar::{CommandMessage, MessageIdData};
use tracing::{debug, warn};

use super::actor::Actor;
use super::dispatcher::Pick;
use super::entry::EntryView;
use super::read_position::Fill;
use crate::position::Position;

/// Replay entries looked at per round.
const REPLAY_BATCH: usize = 256;

/// Chunks sent at most after a chunked message's first one in the same step.
const MAX_CHUNK_RUN: usize = 1024;

/// How a part of a dispatch round ended.
enum Round {
    /// Stop dispatching until something changes.
    Stop,
    /// Start a new round at once.
    Again,
    /// Go on (with whether something was sent or deferred).
    Go { progressed: bool },
}

impl Actor {
    /// Sends whatever can be sent now.
    pub(super) async fn dispatch(&mut self) {
        self.dispatch_rounds().await;
        if self.consumers.any_congested() {
            self.congested = true;
        }
    }

    async fn dispatch_rounds(&mut self) {
        loop {
            if self.rate.limited() {
                return;
            }
            if self.ml.is_terminated() && self.reads.at_end(&self.ml) {
                self.notify_end();
            }
            if self.consumers.is_empty() || !self.has_permits() {
                return;
            }
            self.dispatcher.start_round();
            let replayed = match self.dispatch_replay().await {
                Round::Stop => return,
                Round::Again => continue,
                Round::Go { progressed } => progressed,
            };
            if self.replay.len() >= self.config.max_replay {
                return;
            }
            match self.dispatch_new().await {
                Round::Go { progressed } if progressed || replayed => {}
                _ => return,
            }
        }
    }

    /// Replay, oldest first. Stops the round when replay must go strictly first and is not
    /// drained.
    async fn dispatch_replay(&mut self) -> Round {
        if self.replay.is_empty() {
            return Round::Go { progressed: false };
        }
        let mut progressed = false;
        // The consumer in the middle of a chunked message: its next chunks go on (see
        // finish_chunked).
        let mut chunk_to: Option<usize> = None;
        for p in self.replay.oldest(REPLAY_BATCH) {
            let continuing = chunk_to.filter(|&i| self.consumers.get(i).permits > 0);
            if continuing.is_none() && (!self.has_permits() || self.rate.limited()) {
                break;
            }
            if self.acks.is_acked(p) {
                self.replay.take(p);
                continue;
            }
            let Some(data) = self.read_entry(p).await else {
                return Round::Stop;
            };
            let Some(v) = EntryView::parse(data) else {
                warn!(topic = %self.id.topic, position = %p, "unreadable entry skipped");
                self.replay.take(p);
                continue;
            };
            let pick = match continuing {
                Some(i) if v.chunk => Pick::To(i),
                _ => self.dispatcher.pick(&self.consumers, &v),
            };
            match pick {
                Pick::To(i) => {
                    self.replay.take(p);
                    chunk_to = v.more_chunks.then_some(i);
                    self.send_to(i, p, v);
                    progressed = true;
                }
                Pick::Defer => {}
                Pick::Wait => break,
            }
        }
        if !self.replay.is_empty() {
            if self.dispatcher.replay_first() {
                // Replay strictly before new entries: another round if it moved.
                return if progressed {
                    Round::Again
                } else {
                    Round::Stop
                };
            }
            self.dispatcher.hold_back(&self.replay);
        }
        Round::Go { progressed }
    }

    /// New entries from the read position.
    async fn dispatch_new(&mut self) -> Round {
        match self.reads.fill(&self.ml).await {
            Ok(Fill::Ready) => {}
            Ok(Fill::End) => {
                self.notify_end();
                return Round::Stop;
            }
            Ok(Fill::Empty) => return Round::Stop,
            Err(e) => {
                warn!(topic = %self.id.topic, sub = %self.id.name, error = %e, "read failed; retrying");
                self.retry = true;
                return Round::Stop;
            }
        }
        let delays = self.dispatcher.delays_delivery();
        let mut progressed = false;
        while let Some((p, data)) = self.reads.front() {
            if !self.has_permits() || self.rate.limited() {
                return Round::Stop;
            }
            if self.acks.is_acked(p) {
                self.reads.consume_front();
                continue;
            }
            let Some(v) = EntryView::parse(data) else {
                warn!(topic = %self.id.topic, position = %p, "unreadable entry skipped");
                self.reads.consume_front();
                continue;
            };
            if delays
                && let Some(t) = v.deliver_at
                && t > now_ms()
            {
                self.delayed.add(t, p);
                self.reads.consume_front();
                continue;
            }
            match self.dispatcher.pick(&self.consumers, &v) {
                Pick::To(i) => {
                    self.reads.consume_front();
                    let more_chunks = v.more_chunks;
                    self.send_to(i, p, v);
                    progressed = true;
                    if more_chunks {
                        self.finish_chunked(i).await;
                    }
                }
                Pick::Defer => {
                    // Waits in replay; keeps this key's order behind it.
                    self.reads.consume_front();
                    self.replay.push(p, Some(v.slot), false);
                    progressed = true;
                    if self.replay.len() >= self.config.max_replay {
                        return Round::Stop;
                    }
                }
                Pick::Wait => return Round::Stop,
            }
        }
        Round::Go { progressed }
    }

    /// After a chunk that is not its message's last, the following chunks go to the same
    /// consumer in the same step (replay does the same in `dispatch_replay`), congested connection or not (permits still count): a pause
    /// between two chunks lets a seek or a consumer close in between, and the C++ client keeps
    /// the partial message across the resubscribe, then drops the whole message when its first
    /// chunk comes again (MessageChunkingTest.testSeekChunkMessages). Stops at an entry that
    /// is not a chunk, at the end of the log (the rest is not written yet) or after
    /// [`MAX_CHUNK_RUN`] entries.
    async fn finish_chunked(&mut self, i: usize) {
        for _ in 0..MAX_CHUNK_RUN {
            if !matches!(self.reads.fill(&self.ml).await, Ok(Fill::Ready)) {
                return;
            }
            let Some((p, data)) = self.reads.front() else {
                return;
            };
            if self.acks.is_acked(p) {
                self.reads.consume_front();
                continue;
            }
            if self.consumers.get(i).permits <= 0 {
                return;
            }
            let Some(v) = EntryView::parse(data).filter(|v| v.chunk) else {
                return;
            };
            let more_chunks = v.more_chunks;
            self.reads.consume_front();
            self.send_to(i, p, v);
            if !more_chunks {
                return;
            }
        }
    }

    /// Whether some consumer can take an entry now. A consumer with permits whose connection
    /// is congested schedules a quick retry instead.
    fn has_permits(&mut self) -> bool {
        let (ready, congested) = self.consumers.any_ready();
        if !ready {
            self.congested |= congested;
        }
        ready
    }

    fn send_to(&mut self, i: usize, p: Position, v: EntryView) {
        let redelivery = self.replay.redelivery_count(p);
        let ack_set = self
            .acks
            .batch_remaining(p)
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let c = self.consumers.get(i);
        let (key, consumer_id, out) = (c.spec.key, c.spec.consumer_id, c.spec.out.clone());
        let message = CommandMessage {
            consumer_id,
            message_id: MessageIdData {
                ledger_id: p.ledger,
                entry_id: p.wire_entry(),
                partition: Some(self.id.partition),
                batch_index: None,
                ..Default::default()
            },
            redelivery_count: Some(redelivery),
            ack_set,
            consumer_epoch: None,
        };
        let bytes = v.data.len() as u64;
        self.consumers.delivered(i, p, v.num_messages, bytes);
        if !out.send_message(message, v.data) {
            debug!(consumer = key, "consumer connection gone");
        }
        let messages = v.num_messages.max(0) as u64;
        self.series.msg_out.record(messages, bytes);
        self.out.record(messages, bytes);
        self.rate.charge(v.num_messages.max(1) as u64, bytes);
        self.dispatcher.sent(p, v.slot, key);
    }

    async fn read_entry(&mut self, p: Position) -> Option<Bytes> {
        match self.ml.read_one(p).await {
            Ok(d) => d,
            Err(e) => {
                warn!(topic = %self.id.topic, sub = %self.id.name, position = %p, error = %e, "read failed; retrying");
                self.retry = true;
                None
            }
        }
    }

    /// Tells consumers of a terminated topic that they have read everything.
    fn notify_end(&mut self) {
        if !self.ml.is_terminated() || !self.replay.is_empty() || !self.delayed.is_empty() {
            return;
        }
        for c in self.consumers.iter() {
            if self.ended.insert(c.spec.key) {
                let _ = c
                    .spec
                    .out
                    .send(Frame::simple(commands::reached_end_of_topic(
                        c.spec.consumer_id,
                    )));
            }
        }
    }
}
