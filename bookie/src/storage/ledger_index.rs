//! Where the stored entries of one ledger are: entry id → [`Loc`].
//!
//! A bookie receives a ledger's entries in order, all of them or a regular stride of them (an
//! ensemble wider than the write quorum), so the index is a vector indexed by `entry - base`
//! with holes marked in place: 24 bytes per entry instead of a B-tree's ~60. Ids far apart from
//! the others (a gap wider than [`MAX_GAP`]) switch the ledger to a B-tree, which any order of
//! ids suits.

use std::collections::BTreeMap;

use super::segments::Loc;

/// Widest run of missing ids the dense form stores as holes.
const MAX_GAP: u64 = 4096;

/// A slot with no entry (segment ids never reach `u64::MAX`).
const HOLE: Loc = Loc {
    seg: u64::MAX,
    offset: 0,
    len: 0,
};

fn is_hole(l: &Loc) -> bool {
    l.seg == HOLE.seg
}

/// The index of one ledger; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) enum LedgerIndex {
    Dense { base: u64, locs: Vec<Loc> },
    Sparse(BTreeMap<u64, Loc>),
}

impl Default for LedgerIndex {
    fn default() -> Self {
        LedgerIndex::Dense {
            base: 0,
            locs: Vec::new(),
        }
    }
}

impl LedgerIndex {
    /// Sets where `entry` is; returns where it was. (A location in segment `u64::MAX`, which no
    /// segment has, reads as absent.)
    pub fn insert(&mut self, entry: u64, loc: Loc) -> Option<Loc> {
        if let LedgerIndex::Dense { base, locs } = self {
            if locs.is_empty() {
                *base = entry;
            }
            if entry < *base && *base - entry <= MAX_GAP {
                let pad = (*base - entry) as usize;
                locs.splice(0..0, std::iter::repeat_n(HOLE, pad));
                *base = entry;
            }
            if entry >= *base {
                let i = entry - *base;
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| locs.get_mut(i)) {
                    let old = std::mem::replace(slot, loc);
                    return (!is_hole(&old)).then_some(old);
                }
                if i - locs.len() as u64 <= MAX_GAP {
                    locs.resize(i as usize, HOLE);
                    locs.push(loc);
                    return None;
                }
            }
            let all: BTreeMap<u64, Loc> = self.iter().collect();
            *self = LedgerIndex::Sparse(all);
        }
        match self {
            LedgerIndex::Sparse(m) => m.insert(entry, loc),
            LedgerIndex::Dense { .. } => None,
        }
    }

    /// Where `entry` is.
    pub fn get(&self, entry: &u64) -> Option<&Loc> {
        match self {
            LedgerIndex::Dense { base, locs } => {
                let i = usize::try_from(entry.checked_sub(*base)?).ok()?;
                locs.get(i).filter(|l| !is_hole(l))
            }
            LedgerIndex::Sparse(m) => m.get(entry),
        }
    }

    /// Where `entry` is, to move it.
    pub fn get_mut(&mut self, entry: &u64) -> Option<&mut Loc> {
        match self {
            LedgerIndex::Dense { base, locs } => {
                let i = usize::try_from(entry.checked_sub(*base)?).ok()?;
                locs.get_mut(i).filter(|l| !is_hole(l))
            }
            LedgerIndex::Sparse(m) => m.get_mut(entry),
        }
    }

    /// Whether `entry` is stored.
    pub fn contains_key(&self, entry: &u64) -> bool {
        self.get(entry).is_some()
    }

    /// Every stored entry and its place, by entry id.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (u64, Loc)> + '_> {
        match self {
            LedgerIndex::Dense { base, locs } => Box::new(
                (*base..)
                    .zip(locs.iter())
                    .filter(|(_, l)| !is_hole(l))
                    .map(|(e, l)| (e, *l)),
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
            LedgerIndex::Dense { base, locs } => locs
                .iter()
                .rposition(|l| !is_hole(l))
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

    #[test]
    fn strided_ids_stay_dense_and_far_ids_go_sparse() {
        let mut ix = LedgerIndex::default();
        for e in (10..3000).filter(|e| e % 3 != 2) {
            assert_eq!(ix.insert(e, loc(e)), None);
        }
        assert!(matches!(ix, LedgerIndex::Dense { base: 10, .. }));
        assert_eq!(ix.get(&12), Some(&loc(12)));
        assert_eq!(ix.get(&14), None, "a hole");
        assert_eq!(ix.get(&9), None);
        assert_eq!(ix.last_key(), Some(2998));
        ix.insert(1 << 40, loc(1));
        assert!(matches!(ix, LedgerIndex::Sparse(_)));
        assert_eq!(ix.get(&12), Some(&loc(12)));
        assert_eq!(ix.get(&14), None);
        assert_eq!(ix.last_key(), Some(1 << 40));
    }

    proptest! {
        /// Any sequence of inserts and moves reads back as a B-tree would.
        #[test]
        fn behaves_like_a_btree(ops in proptest::collection::vec((0u64..20_000, any::<bool>()), 1..300)) {
            let mut ix = LedgerIndex::default();
            let mut model = BTreeMap::new();
            for (i, (e, mv)) in ops.into_iter().enumerate() {
                let l = loc(i as u64);
                if mv {
                    if let (Some(a), Some(b)) = (ix.get_mut(&e), model.get_mut(&e)) {
                        *a = l;
                        *b = l;
                    }
                    prop_assert_eq!(ix.get(&e), model.get(&e));
                } else {
                    prop_assert_eq!(ix.insert(e, l), model.insert(e, l));
                }
            }
            prop_assert_eq!(ix.iter().collect::<Vec<_>>(), model.iter().map(|(e, l)| (*e, *l)).collect::<Vec<_>>());
            prop_assert_eq!(ix.last_key(), model.keys().next_back().copied());
            for e in 0..20_000u64 {
                prop_assert_eq!(ix.contains_key(&e), model.contains_key(&e));
            }
        }
    }
}
