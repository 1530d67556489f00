//! The consumers attached to a subscription: their permits, the entries each holds unacked, and
//! which consumer holds which entry.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use strata_proto::commands;
use strata_proto::frame::Frame;

use super::types::{ConsumerSpec, ConsumerStats};
use crate::position::Position;
use crate::stats::{RateMeter, RateSampler};

/// One attached consumer.
pub(super) struct Consumer {
    pub spec: ConsumerSpec,
    pub permits: i64,
    pub unacked: BTreeSet<Position>,
    pub msg_out: u64,
    /// Entries sent.
    pub entries_out: u64,
    /// Dispatched messages and bytes.
    pub out: Arc<RateMeter>,
    /// Redelivered messages.
    pub redelivered: Arc<RateMeter>,
}

impl Consumer {
    /// A consumer can take an entry: it has permits and its connection keeps up.
    pub fn ready(&self) -> bool {
        self.permits > 0 && !self.spec.out.is_congested()
    }

    /// Its statistics, given the subscription's backlog.
    pub fn stats(&self, backlog: u64) -> ConsumerStats {
        ConsumerStats {
            consumer_id: self.spec.consumer_id,
            name: self.spec.name.clone(),
            permits: self.permits,
            unacked: self.unacked.len() as u64,
            backlog,
            msg_out: self.msg_out,
            entries_out: self.entries_out,
            sub_type: format!("{:?}", self.spec.sub_type),
            client: self.spec.client.clone(),
            metadata: self.spec.metadata.clone(),
            out: self.out.read(),
            redelivered: self.redelivered.read(),
            blocked: false,
        }
    }
}

/// The attached consumers, in join order, and the holder of every unacked entry.
#[derive(Default)]
pub(super) struct Consumers {
    list: Vec<Consumer>,
    /// Entry -> key of the consumer holding it unacked.
    holder: HashMap<Position, u64>,
}

impl Consumers {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Consumer> {
        self.list.iter()
    }

    pub fn get(&self, i: usize) -> &Consumer {
        &self.list[i]
    }

    pub fn first(&self) -> Option<&Consumer> {
        self.list.first()
    }

    /// Index of the consumer with this key.
    pub fn index_of(&self, key: u64) -> Option<usize> {
        self.list.iter().position(|c| c.spec.key == key)
    }

    pub fn find(&self, key: u64) -> Option<&Consumer> {
        self.list.iter().find(|c| c.spec.key == key)
    }

    pub fn find_mut(&mut self, key: u64) -> Option<&mut Consumer> {
        self.list.iter_mut().find(|c| c.spec.key == key)
    }

    /// Attaches a consumer whose rates `sampler` keeps.
    pub fn push(&mut self, spec: ConsumerSpec, sampler: &RateSampler) {
        self.list.push(Consumer {
            spec,
            permits: 0,
            unacked: BTreeSet::new(),
            msg_out: 0,
            entries_out: 0,
            out: sampler.meter(),
            redelivered: sampler.meter(),
        });
    }

    /// Detaches a consumer; its entries stay recorded in its `unacked` (the caller replays them).
    pub fn remove(&mut self, key: u64) -> Option<Consumer> {
        let i = self.index_of(key)?;
        let c = self.list.remove(i);
        for p in &c.unacked {
            self.holder.remove(p);
        }
        Some(c)
    }

    /// Detaches every consumer without telling them (unsubscribe); returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.list.len();
        self.list.clear();
        self.holder.clear();
        n
    }

    /// Detaches every consumer, telling each to reconnect (to `assigned` when given).
    pub fn close_all(&mut self, assigned: Option<String>) -> usize {
        let n = self.list.len();
        for c in self.list.drain(..) {
            let _ = c.spec.out.send(Frame::simple(commands::close_consumer(
                c.spec.consumer_id,
                0,
                assigned.clone(),
            )));
        }
        self.holder.clear();
        n
    }

    /// Grants permits.
    pub fn flow(&mut self, key: u64, permits: u32) {
        if let Some(c) = self.find_mut(key) {
            c.permits = c.permits.saturating_add(i64::from(permits));
        }
    }

    /// Whether some consumer can take an entry now; the second value says whether a consumer
    /// with permits was skipped because its connection is congested.
    pub fn any_ready(&self) -> (bool, bool) {
        let mut congested = false;
        for c in &self.list {
            if c.permits > 0 {
                if !c.spec.out.is_congested() {
                    return (true, congested);
                }
                congested = true;
            }
        }
        (false, congested)
    }

    /// Whether a consumer with permits waits for its connection to drain.
    pub fn any_congested(&self) -> bool {
        self.list
            .iter()
            .any(|c| c.permits > 0 && c.spec.out.is_congested())
    }

    /// Records that consumer `i` was sent entry `p` of `bytes` costing `messages` permits.
    pub fn delivered(&mut self, i: usize, p: Position, messages: i64, bytes: u64) {
        let c = &mut self.list[i];
        c.permits -= messages;
        c.msg_out += messages as u64;
        c.entries_out += 1;
        c.out.record(messages.max(0) as u64, bytes);
        c.unacked.insert(p);
        self.holder.insert(p, c.spec.key);
    }

    /// The entry is no longer held by anyone (acked or going back to replay).
    pub fn release(&mut self, p: Position) {
        if let Some(k) = self.holder.remove(&p)
            && let Some(c) = self.find_mut(k)
        {
            c.unacked.remove(&p);
        }
    }

    /// Takes entries out of consumer `key`'s unacked set: the given ones (those it holds), or
    /// all when `positions` is None or empty.
    pub fn take_unacked(&mut self, key: u64, positions: Option<Vec<Position>>) -> Vec<Position> {
        let Some(c) = self.list.iter_mut().find(|c| c.spec.key == key) else {
            return Vec::new();
        };
        let taken: Vec<Position> = match positions {
            Some(ps) if !ps.is_empty() => ps.into_iter().filter(|p| c.unacked.remove(p)).collect(),
            _ => std::mem::take(&mut c.unacked).into_iter().collect(),
        };
        c.redelivered.record(taken.len() as u64, 0);
        for p in &taken {
            self.holder.remove(p);
        }
        taken
    }

    /// Entries consumer `key` holds up to `upto` (cumulative ack).
    pub fn unacked_up_to(&self, key: u64, upto: Position) -> Vec<Position> {
        self.find(key)
            .map(|c| c.unacked.range(..=upto).copied().collect())
            .unwrap_or_default()
    }
}
