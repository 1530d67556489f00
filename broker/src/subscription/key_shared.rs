//! Key_Shared: an entry's key hash (murmur3 of the ordering key or partition key, mod 65536)
//! picks a consumer — auto-split through a consistent-hash ring (or, as Pulsar without
//! consistent hashing, by splitting the largest range in halves in join order), sticky through
//! the consumers' declared ranges.
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
    /// Auto-split by range splitting instead of the ring.
    split: bool,
    /// Auto-split hash ring: point -> consumer key (or, when `split`, the end of each consumer's
    /// range, inclusive, the last one [`HASH_SLOTS`]).
    ring: BTreeMap<u32, u64>,
    /// Hash slot -> (consumer key, entries of that slot it holds unacked).
    holders: HashMap<u32, (u64, u32)>,
    /// Hash slot of each entry held unacked.
    held_slot: HashMap<Position, u32>,
    /// Slots that may not be sent for the rest of this round (an earlier entry waits).
    blocked: HashSet<u32>,
}

impl KeyShared {
    /// A Key_Shared dispatcher; `consistent_hashing` false: Pulsar's range splitting.
    pub fn new(consistent_hashing: bool) -> Self {
        KeyShared {
            split: !consistent_hashing,
            ..Default::default()
        }
    }

    /// Range splitting: the largest range `(start, end]` (the first of equal ones), as Pulsar's
    /// auto-split selector picks it for the next consumer.
    fn biggest_range(&self) -> Option<(u32, u32)> {
        let mut start = 0;
        let mut best: Option<(u32, u32)> = None;
        for end in self.ring.keys() {
            if best.is_none_or(|(s, e)| end - start > e - s) {
                best = Some((start, *end));
            }
            start = *end;
        }
        best
    }

    /// Range splitting: a joining consumer takes the lower half of the largest range.
    fn split_join(&mut self, key: u64) {
        match self.biggest_range() {
            None => {
                self.ring.insert(HASH_SLOTS, key);
            }
            Some((start, end)) => {
                self.ring.insert(start + (end - start) / 2, key);
            }
        }
    }

    /// Range splitting: a leaving consumer's range goes to the consumer above it; the top
    /// range goes to the one below.
    fn split_leave(&mut self, key: u64) {
        let Some(end) = self.ring.iter().find(|(_, k)| **k == key).map(|(e, _)| *e) else {
            return;
        };
        self.ring.remove(&end);
        if end == HASH_SLOTS
            && let Some((&below, &k)) = self.ring.iter().next_back()
        {
            self.ring.remove(&below);
            self.ring.insert(HASH_SLOTS, k);
        }
    }

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

/// Checks a sticky consumer's ranges as Pulsar: at least one, each valid, none overlapping an
/// attached consumer's (`ConsumerAssignError` otherwise).
fn check_ranges(consumers: &Consumers, spec: &ConsumerSpec) -> Result<()> {
    let Some(ks) = spec
        .key_shared
        .as_ref()
        .filter(|k| k.mode == KeySharedMode::Sticky)
    else {
        return Ok(());
    };
    if ks.ranges.is_empty() {
        return Err(BrokerError::ConsumerAssign(
            "ranges for the Key_Shared sticky policy must not be empty".into(),
        ));
    }
    for (s, e) in &ks.ranges {
        if *s < 0 || *e >= HASH_SLOTS as i32 || s > e {
            return Err(BrokerError::ConsumerAssign(format!(
                "invalid hash range [{s}, {e}]"
            )));
        }
        for c in consumers.iter() {
            if let Some(o) = &c.spec.key_shared
                && o.ranges.iter().any(|(os, oe)| s <= oe && os <= e)
            {
                return Err(BrokerError::ConsumerAssign(format!(
                    "hash range [{s}, {e}] conflicts with consumer {}",
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
        if self.split
            && spec.key_shared_mode() != KeySharedMode::Sticky
            && self.biggest_range().is_some_and(|(s, e)| e - s < 2)
        {
            return Err(BrokerError::ConsumerAssign(format!(
                "no range left for a new consumer ({} assigned)",
                self.ring.len()
            )));
        }
        check_ranges(consumers, spec)
    }

    fn joined(&mut self, consumers: &mut Consumers, key: u64) -> Vec<Position> {
        if self.split {
            self.split_join(key);
        } else if let Some(c) = consumers.find(key) {
            for i in 0..RING_POINTS {
                let point =
                    murmur3_32(format!("{}-{}-{i}", c.spec.name, key).as_bytes()) % HASH_SLOTS;
                self.ring.insert(point, key);
            }
        }
        Vec::new()
    }

    fn left(&mut self, _consumers: &mut Consumers, key: u64) -> Vec<Position> {
        if self.split {
            self.split_leave(key);
        } else {
            self.ring.retain(|_, k| *k != key);
        }
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
        *self = KeyShared::new(!self.split);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(k: &KeyShared) -> Vec<(u32, u64)> {
        k.ring.iter().map(|(e, c)| (*e, *c)).collect()
    }

    #[test]
    fn range_splitting_halves_the_largest_range_in_join_order() {
        let mut k = KeyShared::new(false);
        k.split_join(1);
        assert_eq!(ends(&k), vec![(65536, 1)]);
        k.split_join(2);
        assert_eq!(ends(&k), vec![(32768, 2), (65536, 1)]);
        // Equal ranges: the lower one is split.
        k.split_join(3);
        assert_eq!(ends(&k), vec![(16384, 3), (32768, 2), (65536, 1)]);
        k.split_join(4);
        assert_eq!(
            ends(&k),
            vec![(16384, 3), (32768, 2), (49152, 4), (65536, 1)]
        );
        assert_eq!(k.biggest_range(), Some((0, 16384)));
    }

    #[test]
    fn range_splitting_hands_a_leaving_range_on() {
        let mut k = KeyShared::new(false);
        for c in 1..=3 {
            k.split_join(c);
        }
        // The top range goes to the consumer below it.
        k.split_leave(1);
        assert_eq!(ends(&k), vec![(16384, 3), (65536, 2)]);
        // Another range merges into the one above it.
        k.split_leave(3);
        assert_eq!(ends(&k), vec![(65536, 2)]);
        k.split_leave(2);
        assert!(ends(&k).is_empty());
        k.split_leave(9);
        assert!(ends(&k).is_empty());
    }

    #[test]
    fn reset_keeps_the_mode() {
        let mut k = KeyShared::new(false);
        k.split_join(1);
        k.reset();
        assert!(k.split && k.ring.is_empty());
        let mut c = KeyShared::new(true);
        c.reset();
        assert!(!c.split);
    }
}
