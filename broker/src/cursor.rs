//! Cursor ack state: a mark-delete position plus individually acknowledged ranges and batch-index
//! ack sets, and its compact persisted form.
//!
//! Invariants:
//! - every position `<= mark_delete` is acknowledged;
//! - `acked` holds disjoint, non-adjacent inclusive ranges per ledger, all `> mark_delete`;
//! - `batch` holds, for partly acknowledged batches, the bit set of messages still unacknowledged
//!   (Pulsar's `ack_set`: bit i set = message i not yet acked); an entry is acknowledged as a whole
//!   when its set becomes empty.
//!
//! Persisted as [`CursorSnapshot`]: ranges, not positions, so a million acked messages with a few
//! holes stay a few bytes (Pulsar #25540 dropped holes beyond a limit; we never drop any).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::position::Position;

/// Acknowledgement state of one subscription.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AckState {
    mark_delete: Position,
    /// ledger -> (start entry -> end entry), inclusive.
    acked: BTreeMap<u64, BTreeMap<i64, i64>>,
    /// Partly acknowledged batches: remaining (unacked) bits.
    batch: HashMap<Position, Vec<i64>>,
}

/// Persisted form of a cursor (JSON in the metadata store).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CursorSnapshot {
    /// Format version.
    pub v: u32,
    /// Mark-delete position.
    pub md: Position,
    /// Individually acked ranges `[ledger, first, last]`.
    pub ranges: Vec<(u64, i64, i64)>,
    /// Partly acked batches `[ledger, entry, remaining bits]`.
    pub batch: Vec<(u64, i64, Vec<i64>)>,
    /// Subscription properties / type, informational.
    #[serde(default)]
    pub sub_type: Option<i32>,
}

impl AckState {
    /// A cursor whose mark-delete is `md`.
    pub fn new(md: Position) -> Self {
        Self {
            mark_delete: md,
            ..Default::default()
        }
    }

    /// Everything at or before this position is acknowledged.
    pub fn mark_delete(&self) -> Position {
        self.mark_delete
    }

    /// Whether `p` is acknowledged (as a whole entry).
    pub fn is_acked(&self, p: Position) -> bool {
        if p <= self.mark_delete {
            return true;
        }
        self.acked
            .get(&p.ledger)
            .and_then(|r| r.range(..=p.entry).next_back())
            .is_some_and(|(_, &end)| end >= p.entry)
    }

    /// For a partly acknowledged batch, the bits still unacknowledged.
    pub fn batch_remaining(&self, p: Position) -> Option<&[i64]> {
        self.batch.get(&p).map(|v| v.as_slice())
    }

    /// Number of individually acked ranges (holes + 1, roughly).
    pub fn range_count(&self) -> usize {
        self.acked.values().map(|r| r.len()).sum()
    }

    /// Acknowledges one entry. Returns false if it was already acknowledged.
    pub fn ack(&mut self, p: Position) -> bool {
        if self.is_acked(p) {
            return false;
        }
        self.batch.remove(&p);
        let ranges = self.acked.entry(p.ledger).or_default();
        let prev = ranges.range(..p.entry).next_back().map(|(&s, &e)| (s, e));
        let next = ranges.get(&(p.entry + 1)).copied();
        let start = match prev {
            Some((s, e)) if e + 1 == p.entry => s,
            _ => p.entry,
        };
        let end = match next {
            Some(e) => {
                ranges.remove(&(p.entry + 1));
                e
            }
            None => p.entry,
        };
        ranges.insert(start, end);
        true
    }

    /// Acknowledges the messages of batch entry `p` whose bits are cleared in `ack_set`
    /// (`ack_set` bit i set = message i still unacknowledged). Returns true if the whole entry is
    /// now acknowledged.
    pub fn ack_batch(&mut self, p: Position, ack_set: &[i64]) -> bool {
        if self.is_acked(p) {
            return true;
        }
        let cur = self.batch.entry(p).or_insert_with(|| ack_set.to_vec());
        for (i, w) in cur.iter_mut().enumerate() {
            *w &= ack_set.get(i).copied().unwrap_or(0);
        }
        if cur.iter().all(|w| *w == 0) {
            self.ack(p);
            true
        } else {
            false
        }
    }

    /// Acknowledges every position `<= p`.
    pub fn ack_cumulative(&mut self, p: Position) {
        if p <= self.mark_delete {
            return;
        }
        self.mark_delete = p;
        self.trim_below_mark_delete();
    }

    /// Moves the cursor to `md` (seek / reset): forgets every individual ack.
    pub fn reset(&mut self, md: Position) {
        self.mark_delete = md;
        self.acked.clear();
        self.batch.clear();
    }

    fn trim_below_mark_delete(&mut self) {
        let md = self.mark_delete;
        self.acked.retain(|&l, _| l >= md.ledger);
        if let Some(r) = self.acked.get_mut(&md.ledger) {
            let keep: BTreeMap<i64, i64> = r
                .iter()
                .filter(|(_, e)| **e > md.entry)
                .map(|(&s, &e)| (s.max(md.entry + 1), e))
                .collect();
            *r = keep;
            if r.is_empty() {
                self.acked.remove(&md.ledger);
            }
        }
        self.batch.retain(|p, _| *p > md);
    }

    /// Advances the mark-delete over acknowledged positions. `next(p)` gives the position after `p`
    /// in the managed ledger (crossing ledger boundaries), or None past the end.
    pub fn advance(&mut self, next: impl Fn(Position) -> Option<Position>) -> bool {
        let before = self.mark_delete;
        while let Some(n) = next(self.mark_delete) {
            if n <= self.mark_delete {
                break;
            }
            match self
                .acked
                .get(&n.ledger)
                .and_then(|r| r.get(&n.entry).copied())
            {
                Some(end) => {
                    self.mark_delete = Position::new(n.ledger, end);
                    if let Some(r) = self.acked.get_mut(&n.ledger) {
                        r.remove(&n.entry);
                        if r.is_empty() {
                            self.acked.remove(&n.ledger);
                        }
                    }
                }
                None => break,
            }
        }
        self.trim_below_mark_delete();
        self.mark_delete != before
    }

    /// The persisted form.
    pub fn snapshot(&self) -> CursorSnapshot {
        let ranges = self
            .acked
            .iter()
            .flat_map(|(&l, r)| r.iter().map(move |(&s, &e)| (l, s, e)))
            .collect();
        let mut batch: Vec<(u64, i64, Vec<i64>)> = self
            .batch
            .iter()
            .map(|(p, bits)| (p.ledger, p.entry, bits.clone()))
            .collect();
        batch.sort();
        CursorSnapshot {
            v: 1,
            md: self.mark_delete,
            ranges,
            batch,
            sub_type: None,
        }
    }

    /// Restores from the persisted form.
    pub fn from_snapshot(s: &CursorSnapshot) -> Self {
        let mut st = AckState::new(s.md);
        for &(l, a, b) in &s.ranges {
            if b >= a {
                st.acked.entry(l).or_default().insert(a, b);
            }
        }
        for (l, e, bits) in &s.batch {
            st.batch.insert(Position::new(*l, *e), bits.clone());
        }
        st.trim_below_mark_delete();
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One ledger 1 with entries 0..n.
    fn next_in(n: i64) -> impl Fn(Position) -> Option<Position> {
        move |p: Position| {
            if p.ledger < 1 {
                Some(Position::new(1, 0))
            } else if p.entry + 1 < n {
                Some(Position::new(1, p.entry + 1))
            } else {
                None
            }
        }
    }

    #[test]
    fn individual_acks_advance_mark_delete() {
        let mut s = AckState::new(Position::new(1, -1));
        assert!(s.ack(Position::new(1, 1)));
        assert!(s.ack(Position::new(1, 3)));
        assert!(!s.ack(Position::new(1, 3)));
        s.advance(next_in(10));
        assert_eq!(s.mark_delete(), Position::new(1, -1));
        s.ack(Position::new(1, 0));
        s.advance(next_in(10));
        assert_eq!(s.mark_delete(), Position::new(1, 1));
        s.ack(Position::new(1, 2));
        s.advance(next_in(10));
        assert_eq!(s.mark_delete(), Position::new(1, 3));
        assert_eq!(s.range_count(), 0);
    }

    #[test]
    fn batch_index_acks() {
        let mut s = AckState::new(Position::new(1, -1));
        let p = Position::new(1, 0);
        // batch of 3: all bits set = 0b111; ack index 1 -> 0b101
        assert!(!s.ack_batch(p, &[0b101]));
        assert_eq!(s.batch_remaining(p), Some(&[0b101i64][..]));
        assert!(!s.ack_batch(p, &[0b011])); // ack index 2 -> remaining 0b001
        assert!(s.ack_batch(p, &[0b110])); // ack index 0 -> empty
        assert!(s.is_acked(p));
        let snap = s.snapshot();
        assert_eq!(AckState::from_snapshot(&snap), s);
    }

    #[test]
    fn many_holes_are_kept_compactly() {
        let mut s = AckState::new(Position::new(1, -1));
        for e in (1..200_000).step_by(2) {
            s.ack(Position::new(1, e));
        }
        let snap = s.snapshot();
        assert_eq!(snap.ranges.len(), 100_000 - 1 + 1);
        let back = AckState::from_snapshot(&snap);
        assert!(back.is_acked(Position::new(1, 199_999)));
        assert!(!back.is_acked(Position::new(1, 199_998)));
    }

    proptest! {
        #[test]
        fn acked_set_matches_model(acks in proptest::collection::vec(0i64..64, 0..200), cum in proptest::option::of(0i64..64)) {
            let mut s = AckState::new(Position::new(1, -1));
            let mut model = std::collections::BTreeSet::new();
            for a in &acks {
                s.ack(Position::new(1, *a));
                model.insert(*a);
            }
            if let Some(c) = cum {
                s.ack_cumulative(Position::new(1, c));
                for e in 0..=c { model.insert(e); }
            }
            s.advance(next_in(64));
            let snap = s.snapshot();
            let s2 = AckState::from_snapshot(&snap);
            for e in 0..64 {
                prop_assert_eq!(s.is_acked(Position::new(1, e)), model.contains(&e));
                prop_assert_eq!(s2.is_acked(Position::new(1, e)), model.contains(&e));
            }
            // mark-delete is exactly the end of the acked prefix
            let mut md = -1;
            while model.contains(&(md + 1)) && md + 1 < 64 { md += 1; }
            prop_assert_eq!(s.mark_delete(), Position::new(1, md));
        }
    }
}
