//! Key_Shared: an entry's key hash (murmur3 of the ordering key or partition key, mod 65536)
//! picks a consumer — auto-split through a hash ring, sticky through the consumers' declared
//! ranges.
//!
//! A key whose earlier entries are still unacked by some consumer stays with that consumer, and
//! an entry never overtakes an earlier one of the same key waiting for replay: per-key order
//! holds across joins and leaves, and no consumer is stuck behind another.

use std::collections::{BTreeMap, HashMap, HashSet};

use strata_proto::pulsar::KeySharedMode;
use strata_proto::pulsar::command_subscribe::SubType;

use super::consumers::Consumers;
use super::dispatcher::{Dispatcher, Pick};
use super::entry::{EntryView, HASH_SLOTS, murmur3_32};
use super::read_position::Replay;
use super::types::ConsumerSpec;
use crate::error::{BrokerError, Result};
use crate::position::Position;

/// Points each auto-split consumer takes on the hash ring.
const RING_POINTS: u32 = 100;

/// The Key_Shared dispatcher.
#[derive(Default)]
pub(super) struct KeyShared {
    /// Auto-split hash ring: point -> consumer key.
    ring: BTreeMap<u32, u64>,
    /// Hash slot -> (consumer key, entries of that slot it holds unacked).
    holders: HashMap<u32, (u64, u32)>,
    /// Hash slot of each entry held unacked.
    held_slot: HashMap<Position, u32>,
    /// Slots that may not be sent for the rest of this round (an earlier entry waits).
    blocked: HashSet<u32>,
}

impl KeyShared {
    /// The consumer owning a hash slot by ring or sticky range.
    fn owner_of(&self, consumers: &Consumers, slot: u32) -> Option<u64> {
        let sticky = consumers
            .first()
            .is_some_and(|c| c.spec.key_shared_mode() == KeySharedMode::Sticky);
        if sticky {
            let s = slot as i32;
            return consumers
                .iter()
                .find(|c| {
                    c.spec
                        .key_shared
                        .as_ref()
                        .is_some_and(|k| k.ranges.iter().any(|(a, b)| *a <= s && s <= *b))
                })
                .map(|c| c.spec.key);
        }
        self.ring
            .range(slot..)
            .next()
            .or_else(|| self.ring.iter().next())
            .map(|(_, k)| *k)
    }

    fn target(&self, consumers: &Consumers, slot: u32) -> Option<usize> {
        let key = match self.holders.get(&slot) {
            Some((holder, n)) if *n > 0 => *holder,
            _ => self.owner_of(consumers, slot)?,
        };
        consumers.index_of(key)
    }
}

/// Checks a sticky consumer's ranges: valid, and free of the attached consumers' ranges.
fn check_ranges(consumers: &Consumers, spec: &ConsumerSpec) -> Result<()> {
    let Some(ks) = spec
        .key_shared
        .as_ref()
        .filter(|k| k.mode == KeySharedMode::Sticky)
    else {
        return Ok(());
    };
    for (s, e) in &ks.ranges {
        if *s < 0 || *e >= HASH_SLOTS as i32 || s > e {
            return Err(BrokerError::NotAllowed(format!(
                "invalid hash range [{s}, {e}]"
            )));
        }
        for c in consumers.iter() {
            if let Some(o) = &c.spec.key_shared
                && o.ranges.iter().any(|(os, oe)| s <= oe && os <= e)
            {
                return Err(BrokerError::ConsumerBusy(format!(
                    "hash range [{s}, {e}] overlaps consumer {}",
                    c.spec.name
                )));
            }
        }
    }
    Ok(())
}

impl Dispatcher for KeyShared {
    fn sub_type(&self) -> SubType {
        SubType::KeyShared
    }

    fn admit(&self, consumers: &Consumers, spec: &ConsumerSpec) -> Result<()> {
        if let Some(first) = consumers.first()
            && first.spec.key_shared_mode() != spec.key_shared_mode()
        {
            return Err(BrokerError::ConsumerBusy(
                "key_shared mode differs from other consumers".into(),
            ));
        }
        check_ranges(consumers, spec)
    }

    fn joined(&mut self, consumers: &mut Consumers, key: u64) -> Vec<Position> {
        if let Some(c) = consumers.find(key) {
            for i in 0..RING_POINTS {
                let point =
                    murmur3_32(format!("{}-{}-{i}", c.spec.name, key).as_bytes()) % HASH_SLOTS;
                self.ring.insert(point, key);
            }
        }
        Vec::new()
    }

    fn left(&mut self, _consumers: &mut Consumers, key: u64) -> Vec<Position> {
        self.ring.retain(|_, k| *k != key);
        Vec::new()
    }

    fn replay_first(&self) -> bool {
        false
    }

    fn delays_delivery(&self) -> bool {
        true
    }

    fn start_round(&mut self) {
        self.blocked.clear();
    }

    fn hold_back(&mut self, replay: &Replay) {
        self.blocked.extend(replay.slots());
    }

    fn pick(&mut self, consumers: &Consumers, entry: &EntryView) -> Pick {
        if !self.blocked.contains(&entry.slot)
            && let Some(i) = self.target(consumers, entry.slot)
            && consumers.get(i).ready()
        {
            return Pick::To(i);
        }
        // Later entries of this key stay behind it.
        self.blocked.insert(entry.slot);
        Pick::Defer
    }

    fn sent(&mut self, p: Position, slot: u32, key: u64) {
        let h = self.holders.entry(slot).or_insert((key, 0));
        h.0 = key;
        h.1 += 1;
        self.held_slot.insert(p, slot);
    }

    fn released(&mut self, p: Position) -> Option<u32> {
        let slot = self.held_slot.remove(&p)?;
        if let Some(h) = self.holders.get_mut(&slot) {
            h.1 = h.1.saturating_sub(1);
            if h.1 == 0 {
                self.holders.remove(&slot);
            }
        }
        Some(slot)
    }

    fn reset(&mut self) {
        *self = KeyShared::default();
    }
}
