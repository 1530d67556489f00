//! Exclusive and Failover: one active consumer gets every entry in order.
//!
//! Failover picks the lowest priority level, then the name; for partition `i` of a partitioned
//! topic, consumer `i % n` of the top priority level. When the active consumer changes, what the
//! old one held unacked is redelivered and every consumer gets ACTIVE_CONSUMER_CHANGE.

use strata_proto::commands;
use strata_proto::frame::Frame;
use strata_proto::pulsar::command_subscribe::SubType;

use super::consumers::Consumers;
use super::dispatcher::{Dispatcher, Pick};
use super::entry::EntryView;
use crate::position::Position;

/// The Exclusive / Failover dispatcher.
pub(super) struct SingleActive {
    sub_type: SubType,
    partition: i32,
    /// Key of the active consumer.
    active: Option<u64>,
}

impl SingleActive {
    pub fn new(sub_type: SubType, partition: i32) -> Self {
        SingleActive {
            sub_type,
            partition,
            active: None,
        }
    }

    /// The consumer that should be active now.
    fn choose(&self, consumers: &Consumers) -> Option<u64> {
        let mut order: Vec<usize> = (0..consumers.len()).collect();
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&consumers.get(a).spec, &consumers.get(b).spec);
            (ca.priority, &ca.name).cmp(&(cb.priority, &cb.name))
        });
        let first = *order.first()?;
        let idx = if self.partition >= 0 {
            // Partitions spread over consumers of the same priority level.
            let top = consumers.get(first).spec.priority;
            let same = order
                .iter()
                .take_while(|&&i| consumers.get(i).spec.priority == top)
                .count();
            order[self.partition as usize % same]
        } else {
            first
        };
        Some(consumers.get(idx).spec.key)
    }

    /// Recomputes the active consumer; returns what the old one held unacked.
    fn update(&mut self, consumers: &mut Consumers, joined: bool) -> Vec<Position> {
        let new_active = self.choose(consumers);
        let changed = new_active != self.active;
        let mut back = Vec::new();
        if changed && let Some(old) = self.active {
            back = consumers.take_unacked(old, None);
        }
        self.active = new_active;
        if self.sub_type == SubType::Failover && (changed || joined) {
            for c in consumers.iter() {
                let is_active = Some(c.spec.key) == self.active;
                let _ = c
                    .spec
                    .out
                    .send(Frame::simple(commands::active_consumer_change(
                        c.spec.consumer_id,
                        is_active,
                    )));
            }
        }
        back
    }
}

impl Dispatcher for SingleActive {
    fn sub_type(&self) -> SubType {
        self.sub_type
    }

    fn joined(&mut self, consumers: &mut Consumers, _key: u64) -> Vec<Position> {
        self.update(consumers, true)
    }

    fn left(&mut self, consumers: &mut Consumers, key: u64) -> Vec<Position> {
        if self.active == Some(key) {
            self.active = None;
        }
        self.update(consumers, false)
    }

    fn pick(&mut self, consumers: &Consumers, _entry: &EntryView) -> Pick {
        let ready = self
            .active
            .and_then(|a| consumers.index_of(a))
            .filter(|&i| consumers.get(i).ready());
        match ready {
            Some(i) => Pick::To(i),
            None => Pick::Wait,
        }
    }

    fn reset(&mut self) {
        self.active = None;
    }

    fn active(&self) -> Option<u64> {
        self.active
    }
}
