//! Where the stored entries of one ledger are: entry id → [`Loc`].
//!
//! A bookie receives a ledger's entries in order, all of them or a regular stride of them (an
//! ensemble wider than the write quorum), so the index is a vector indexed by `entry - base`
//! with holes marked in place. Each place is packed into 12 bytes ([`Slot`]: 32-bit segment,
//! offset and length) instead of a [`Loc`]'s 24 or a B-tree's ~60, and the vector grows by a
//! quarter at a time rather than doubling, so at most a fifth of its room is unused. Ids far
//! apart from the others (a gap wider than [`MAX_GAP`]) or a place that does not fit in 32 bits
//! (a segment past 4 GiB, a segment id past 2^31) switch the ledger to a B-tree of full places,
//! which any order of ids and any place suits.

use std::collections::BTreeMap;

use super::journal_seg::{seg_id, seq_of};
use super::segments::Loc;

/// Widest run of missing ids the dense form stores as holes.
const MAX_GAP: u64 = 4096;

/// A [`Slot`]'s segment with this bit is journal file `seg & !JOURNAL_BIT`.
const JOURNAL_BIT: u32 = 1 << 31;

/// The segment of a slot with no entry (no place packs to it).
const HOLE_SEG: u32 = u32::MAX;

/// A slot with no entry.
const HOLE: Slot = Slot {
    seg: HOLE_SEG,
    offset: 0,
    len: 0,
};

/// A [`Loc`] packed into 12 bytes; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    seg: u32,
    offset: u32,
    len: u32,
}

impl Slot {
    /// `loc` packed, if its segment id and offset fit.
    fn pack(loc: Loc) -> Option<Slot> {
        let (id, kind) = match seq_of(loc.seg) {
            Some(seq) => (seq, JOURNAL_BIT),
            None => (loc.seg, 0),
        };
        let seg = u32::try_from(id).ok().filter(|s| s & JOURNAL_BIT == 0)? | kind;
        (seg != HOLE_SEG).then_some(Slot {
            seg,
            offset: u32::try_from(loc.offset).ok()?,
            len: loc.len,
        })
    }

    fn unpack(self) -> Loc {
        let seg = if self.seg & JOURNAL_BIT != 0 {
            seg_id(u64::from(self.seg & !JOURNAL_BIT))
        } else {
            u64::from(self.seg)
        };
        Loc {
            seg,
            offset: u64::from(self.offset),
            len: self.len,
        }
    }

    fn is_hole(&self) -> bool {
        self.seg == HOLE_SEG
    }
}

/// The index of one ledger; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) enum LedgerIndex {
    Dense { base: u64, slots: Vec<Slot> },
    Sparse(BTreeMap<u64, Loc>),
}

impl Default for LedgerIndex {
    fn default() -> Self {
        LedgerIndex::Dense {
            base: 0,
            slots: Vec::new(),
        }
    }
}

/// Makes room in `slots` for `extra` more, growing by at least a quarter of its length.
fn reserve(slots: &mut Vec<Slot>, extra: usize) {
    if slots.capacity() - slots.len() < extra {
        slots.reserve_exact(extra.max(slots.len() / 4).max(8));
    }
}

impl LedgerIndex {
    /// Sets where `entry` is; returns where it was.
    pub fn insert(&mut self, entry: u64, loc: Loc) -> Option<Loc> {
        // a sparse ledger keeps full places: only a dense one packs
        if let LedgerIndex::Dense { base, slots } = self
            && let Some(slot) = Slot::pack(loc)
        {
            if slots.is_empty() {
                *base = entry;
            }
            if entry < *base && *base - entry <= MAX_GAP {
                let pad = (*base - entry) as usize;
                reserve(slots, pad);
                slots.splice(0..0, std::iter::repeat_n(HOLE, pad));
                *base = entry;
            }
            if entry >= *base {
                let i = entry - *base;
                if let Some(at) = usize::try_from(i).ok().and_then(|i| slots.get_mut(i)) {
                    let old = std::mem::replace(at, slot);
                    return (!old.is_hole()).then(|| old.unpack());
                }
                if i - slots.len() as u64 <= MAX_GAP {
                    reserve(slots, i as usize + 1 - slots.len());
                    slots.resize(i as usize, HOLE);
                    slots.push(slot);
                    return None;
                }
            }
        }
        if let LedgerIndex::Dense { .. } = self {
            let all: BTreeMap<u64, Loc> = self.iter().collect();
            *self = LedgerIndex::Sparse(all);
        }
        match self {
            LedgerIndex::Sparse(m) => m.insert(entry, loc),
            LedgerIndex::Dense { .. } => None,
        }
    }

    /// Where `entry` is.
    pub fn get(&self, entry: u64) -> Option<Loc> {
        match self {
            LedgerIndex::Dense { base, slots } => {
                let i = usize::try_from(entry.checked_sub(*base)?).ok()?;
                slots.get(i).filter(|s| !s.is_hole()).map(|s| s.unpack())
            }
            LedgerIndex::Sparse(m) => m.get(&entry).copied(),
        }
    }

    /// Moves `entry` to `to` if it is still at `from` (a compaction copied it from there);
    /// returns whether it moved.
    pub fn move_if_at(&mut self, entry: u64, from: Loc, to: Loc) -> bool {
        if self.get(entry) != Some(from) {
            return false;
        }
        self.insert(entry, to);
        true
    }

    /// Whether `entry` is stored.
    pub fn contains_key(&self, entry: u64) -> bool {
        self.get(entry).is_some()
    }

    /// Every stored entry and its place, by entry id.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (u64, Loc)> + '_> {
        match self {
            LedgerIndex::Dense { base, slots } => Box::new(
                (*base..)
                    .zip(slots.iter())
                    .filter(|(_, s)| !s.is_hole())
                    .map(|(e, s)| (e, s.unpack())),
            ),
            LedgerIndex::Sparse(m) => Box::new(m.iter().map(|(e, l)| (*e, *l))),
        }
    }

    /// Every stored entry's place.
    pub fn values(&self) -> impl Iterator<Item = Loc> + '_ {
        self.iter().map(|(_, l)| l)
    }

    /// The highest stored entry id.
    pub fn last_key(&self) -> Option<u64> {
        match self {
            LedgerIndex::Dense { base, slots } => slots
                .iter()
                .rposition(|s| !s.is_hole())
                .map(|i| *base + i as u64),
            LedgerIndex::Sparse(m) => m.keys().next_back().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loc(n: u64) -> Loc {
        Loc {
            seg: n % 7,
            offset: n,
            len: n as u32,
        }
    }

    /// Places of every kind: segments, journal files, and (every 13th) one too wide to pack.
    fn any_loc(n: u64) -> Loc {
        match n % 13 {
            0 => Loc {
                seg: 1 << 40,
                offset: 5 << 32,
                len: 3,
            },
            k if k % 2 == 0 => Loc {
                seg: seg_id(n % 5),
                offset: n * 100,
                len: 7,
            },
            _ => loc(n),
        }
    }

    #[test]
    fn strided_ids_stay_dense_and_far_ids_go_sparse() {
        let mut ix = LedgerIndex::default();
        for e in (10..3000).filter(|e| e % 3 != 2) {
            assert_eq!(ix.insert(e, loc(e)), None);
        }
        assert!(matches!(ix, LedgerIndex::Dense { base: 10, .. }));
        assert_eq!(ix.get(12), Some(loc(12)));
        assert_eq!(ix.get(14), None, "a hole");
        assert_eq!(ix.get(9), None);
        assert_eq!(ix.last_key(), Some(2998));
        ix.insert(1 << 40, loc(1));
        assert!(matches!(ix, LedgerIndex::Sparse(_)));
        assert_eq!(ix.get(12), Some(loc(12)));
        assert_eq!(ix.get(14), None);
        assert_eq!(ix.last_key(), Some(1 << 40));
    }

    #[test]
    fn places_pack_into_twelve_bytes_and_wide_ones_go_sparse() {
        assert_eq!(std::mem::size_of::<Slot>(), 12);
        let journal = Loc {
            seg: seg_id(u64::from(u32::MAX >> 1) - 1),
            offset: u64::from(u32::MAX),
            len: u32::MAX,
        };
        let segment = Loc {
            seg: u64::from(JOURNAL_BIT) - 1,
            offset: 0,
            len: 0,
        };
        for l in [journal, segment] {
            assert_eq!(Slot::pack(l).map(Slot::unpack), Some(l));
        }
        let mut ix = LedgerIndex::default();
        ix.insert(0, journal);
        ix.insert(1, segment);
        assert!(matches!(ix, LedgerIndex::Dense { .. }));
        // past the packed range: the journal's last sequence (its slot is the hole), a segment id
        // with the journal bit, an offset past 4 GiB
        for (e, seg, offset) in [
            (2, seg_id(u64::from(u32::MAX >> 1)), 0),
            (3, u64::from(JOURNAL_BIT), 0),
            (4, 1, 1 << 32),
        ] {
            let wide = Loc {
                seg,
                offset,
                len: 9,
            };
            assert_eq!(Slot::pack(wide), None);
            assert_eq!(ix.insert(e, wide), None);
            assert!(matches!(ix, LedgerIndex::Sparse(_)));
            assert_eq!(ix.get(e), Some(wide));
        }
        assert_eq!(ix.get(0), Some(journal));
        assert_eq!(ix.get(1), Some(segment));
    }

    #[test]
    fn a_long_ledger_leaves_at_most_a_fifth_of_its_room_unused() {
        let mut ix = LedgerIndex::default();
        for e in 0..50_000 {
            ix.insert(e, loc(e));
            let LedgerIndex::Dense { slots, .. } = &ix else {
                panic!("went sparse");
            };
            assert!(slots.capacity() <= slots.len() + slots.len() / 4 + 8);
        }
    }

    proptest! {
        /// Any sequence of inserts and moves reads back as a B-tree would.
        #[test]
        fn behaves_like_a_btree(ops in proptest::collection::vec((0u64..20_000, any::<bool>()), 1..300)) {
            let mut ix = LedgerIndex::default();
            let mut model = BTreeMap::new();
            for (i, (e, mv)) in ops.into_iter().enumerate() {
                let l = any_loc(i as u64);
                if mv {
                    let from = model.get(&e).copied().unwrap_or(l);
                    let moved = ix.move_if_at(e, from, l);
                    prop_assert_eq!(moved, model.contains_key(&e));
                    if moved {
                        model.insert(e, l);
                    }
                    let stale = Loc { len: l.len.wrapping_add(1), ..l };
                    prop_assert!(!ix.move_if_at(e, stale, from), "not where it was");
                    prop_assert_eq!(ix.get(e), model.get(&e).copied());
                } else {
                    prop_assert_eq!(ix.insert(e, l), model.insert(e, l));
                }
            }
            prop_assert_eq!(ix.iter().collect::<Vec<_>>(), model.iter().map(|(e, l)| (*e, *l)).collect::<Vec<_>>());
            prop_assert_eq!(ix.last_key(), model.keys().next_back().copied());
            for e in 0..20_000u64 {
                prop_assert_eq!(ix.contains_key(e), model.contains_key(&e));
            }
        }
    }
}
