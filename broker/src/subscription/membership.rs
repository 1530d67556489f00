//! Consumers joining and leaving a subscription, and entries going back to replay.

use tracing::debug;

use super::actor::Actor;
use super::types::ConsumerSpec;
use crate::error::{BrokerError, Result};
use crate::position::Position;
use strata_proto::pulsar::command_subscribe::SubType;

impl Actor {
    /// Admits a consumer: same type as those attached (an Exclusive one alone), and what its
    /// dispatcher requires; a subscription without consumers takes the newcomer's type.
    pub(super) fn add_consumer(&mut self, spec: ConsumerSpec) -> Result<()> {
        let current = self.dispatcher.sub_type();
        if !self.consumers.is_empty() {
            if current != spec.sub_type {
                return Err(BrokerError::ConsumerBusy(format!(
                    "subscription {} is of type {:?}, not {:?}",
                    self.id.name, current, spec.sub_type
                )));
            }
            if current == SubType::Exclusive {
                return Err(BrokerError::ConsumerBusy(
                    "exclusive consumer is already connected".into(),
                ));
            }
            self.dispatcher.admit(&self.consumers, &spec)?;
        } else if current != spec.sub_type {
            let fresh = super::dispatcher_for(spec.sub_type, self.id.partition, &self.config);
            fresh.admit(&self.consumers, &spec)?;
            self.dispatcher = fresh;
        } else {
            self.dispatcher.admit(&self.consumers, &spec)?;
        }
        debug!(topic = %self.id.topic, sub = %self.id.name, consumer = %spec.name, sub_type = ?spec.sub_type, "consumer added");
        let key = spec.key;
        if spec.compacted.is_some() {
            self.reads.set_compacted(spec.compacted.clone());
        }
        self.consumers.push(spec, self.metrics.sampler());
        self.metrics.consumers.inc();
        for p in self.dispatcher.joined(&mut self.consumers, key) {
            self.push_replay(p, false);
        }
        Ok(())
    }

    /// Detaches a consumer; what it held unacked is redelivered to the others.
    pub(super) fn remove_consumer(&mut self, key: u64) {
        let Some(c) = self.consumers.remove(key) else {
            return;
        };
        self.metrics.consumers.dec();
        debug!(topic = %self.id.topic, sub = %self.id.name, consumer = %c.spec.name, unacked = c.unacked.len(), "consumer removed");
        for p in c.unacked {
            self.push_replay(p, true);
        }
        for p in self.dispatcher.left(&mut self.consumers, key) {
            self.push_replay(p, false);
        }
    }

    /// Moves an unacked entry back to replay; `count`: it is a redelivery.
    pub(super) fn push_replay(&mut self, p: Position, count: bool) {
        self.consumers.release(p);
        let slot = self.dispatcher.released(p);
        if !self.acks.is_acked(p) {
            self.replay.push(p, slot, count);
        }
    }

    /// Redelivers the consumer's unacked entries (all, or the given ones).
    pub(super) fn redeliver(&mut self, key: u64, positions: Option<Vec<Position>>) {
        for p in self.consumers.take_unacked(key, positions) {
            self.push_replay(p, true);
        }
    }
}
