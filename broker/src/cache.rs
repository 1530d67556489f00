//! The entry cache: recently written entries of every topic, bounded by bytes, evicted oldest
//! write first.
//!
//! Only appends insert into it, so tailing consumers are served from memory; catch-up reads go to
//! storage with read-ahead into the reading subscription's own buffer and never insert here, so a
//! consumer replaying a backlog cannot evict the tail.
//!
//! A ledger's entries are written in order, so each ledger keeps its cached entries as a run of
//! consecutive entry ids (a deque indexed by `entry - first`) and the cache as a whole keeps one
//! queue of writes in the order they came: an insert or a lookup is one map lookup by ledger id
//! and an index, and eviction pops the oldest write (always the front of its ledger's run).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::position::Position;

/// Bytes an entry is charged beyond its data (bookkeeping, as the old cache weighed it).
const OVERHEAD: u64 = 64;

/// Shared entry cache keyed by `(ledger, entry)` (ledger ids are unique across topics). Cheap to
/// clone.
#[derive(Clone)]
pub struct EntryCache {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    max_bytes: u64,
    bytes: u64,
    ledgers: HashMap<u64, Run>,
    /// Every cached write, oldest first. A write removed early (its ledger invalidated or
    /// restarted) leaves a stale record, recognised because its ledger's run no longer holds
    /// it; [`State::compact`] drops stale records when they pile up.
    order: VecDeque<Record>,
    /// Entries held by all runs.
    live: usize,
    /// Runs made so far (each run's `epoch`).
    runs: u64,
}

/// One write in [`State::order`]: its ledger, entry and the epoch of the run it joined.
struct Record {
    ledger: u64,
    entry: i64,
    epoch: u64,
}

/// The cached entries of one ledger: ids `first..first + entries.len()`.
struct Run {
    first: i64,
    entries: VecDeque<Bytes>,
    /// Tells this run's records from those of an earlier run of the same ledger.
    epoch: u64,
}

impl Run {
    fn holds(&self, r: &Record) -> bool {
        r.epoch == self.epoch
            && r.entry >= self.first
            && r.entry < self.first + self.entries.len() as i64
    }
}

fn weight(data: &Bytes) -> u64 {
    data.len() as u64 + OVERHEAD
}

impl EntryCache {
    /// A cache holding at most `max_bytes` of entry data (entries count their length plus a
    /// small fixed overhead). Zero disables it.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State {
                max_bytes,
                ..State::default()
            })),
        }
    }

    /// Inserts a freshly written entry. Entries of a ledger come in order; one that does not
    /// follow the ledger's cached run replaces it (the cache is best effort).
    pub fn insert(&self, p: Position, data: Bytes) {
        let w = weight(&data);
        let mut st = self.inner.lock();
        if w > st.max_bytes {
            st.remove_ledger(p.ledger);
            return;
        }
        st.push(p, data, w);
        while st.bytes > st.max_bytes {
            st.evict_oldest();
        }
        st.compact();
    }

    /// The entry at `p`, if cached.
    pub fn get(&self, p: &Position) -> Option<Bytes> {
        let st = self.inner.lock();
        let run = st.ledgers.get(&p.ledger)?;
        let i = usize::try_from(p.entry.checked_sub(run.first)?).ok()?;
        run.entries.get(i).cloned()
    }

    /// The cached entries of `ledger` from `from` through `last`, stopping at the first one not
    /// cached.
    pub fn get_run(&self, ledger: u64, from: i64, last: i64) -> Vec<(Position, Bytes)> {
        let st = self.inner.lock();
        let Some(run) = st.ledgers.get(&ledger) else {
            return Vec::new();
        };
        let Some(skip) = from
            .checked_sub(run.first)
            .and_then(|d| usize::try_from(d).ok())
        else {
            return Vec::new();
        };
        let take = usize::try_from(last.saturating_sub(from).saturating_add(1)).unwrap_or(0);
        run.entries
            .iter()
            .skip(skip)
            .take(take)
            .zip(from..)
            .map(|(d, e)| (Position::new(ledger, e), d.clone()))
            .collect()
    }

    /// Drops every entry of `ledger` (after it was deleted).
    pub fn invalidate_ledger(&self, ledger: u64) {
        let mut st = self.inner.lock();
        st.remove_ledger(ledger);
        st.compact();
    }

    /// Bytes held (data plus the per-entry overhead).
    pub fn weighted_size(&self) -> u64 {
        self.inner.lock().bytes
    }
}

impl State {
    fn push(&mut self, p: Position, data: Bytes, w: u64) {
        let follows = self
            .ledgers
            .get(&p.ledger)
            .is_some_and(|r| r.first + r.entries.len() as i64 == p.entry);
        if !follows {
            self.remove_ledger(p.ledger);
            self.runs += 1;
            self.ledgers.insert(
                p.ledger,
                Run {
                    first: p.entry,
                    entries: VecDeque::new(),
                    epoch: self.runs,
                },
            );
        }
        if let Some(run) = self.ledgers.get_mut(&p.ledger) {
            run.entries.push_back(data);
            self.bytes += w;
            self.live += 1;
            self.order.push_back(Record {
                ledger: p.ledger,
                entry: p.entry,
                epoch: run.epoch,
            });
        }
    }

    /// Removes the oldest cached write (skipping stale records).
    fn evict_oldest(&mut self) {
        while let Some(r) = self.order.pop_front() {
            let Some(run) = self.ledgers.get_mut(&r.ledger) else {
                continue;
            };
            if !run.holds(&r) {
                continue;
            }
            if let Some(d) = run.entries.pop_front() {
                self.bytes -= weight(&d);
                self.live -= 1;
            }
            run.first += 1;
            if run.entries.is_empty() {
                self.ledgers.remove(&r.ledger);
            }
            return;
        }
    }

    fn remove_ledger(&mut self, ledger: u64) {
        if let Some(run) = self.ledgers.remove(&ledger) {
            self.live -= run.entries.len();
            self.bytes -= run.entries.iter().map(weight).sum::<u64>();
        }
    }

    /// Drops stale records once they outnumber the live ones (amortised O(1) per write).
    fn compact(&mut self) {
        if self.order.len() <= 2 * self.live + 1024 {
            return;
        }
        let ledgers = &self.ledgers;
        self.order
            .retain(|r| ledgers.get(&r.ledger).is_some_and(|run| run.holds(r)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(n: usize) -> Bytes {
        Bytes::from(vec![7u8; n])
    }

    #[test]
    fn evicts_the_oldest_write_first_across_ledgers() {
        let c = EntryCache::new(3 * (100 + OVERHEAD));
        c.insert(Position::new(1, 0), entry(100));
        c.insert(Position::new(2, 0), entry(100));
        c.insert(Position::new(1, 1), entry(100));
        c.insert(Position::new(2, 1), entry(100));
        assert!(c.get(&Position::new(1, 0)).is_none());
        for (l, e) in [(2, 0), (1, 1), (2, 1)] {
            assert!(c.get(&Position::new(l, e)).is_some(), "{l}:{e}");
        }
        assert_eq!(c.weighted_size(), 3 * (100 + OVERHEAD));
    }

    #[test]
    fn runs_stop_at_the_first_missing_entry() {
        let c = EntryCache::new(1 << 20);
        for e in 5..10 {
            c.insert(Position::new(3, e), entry(10));
        }
        let got = c.get_run(3, 7, 20);
        assert_eq!(
            got.iter().map(|(p, _)| p.entry).collect::<Vec<_>>(),
            vec![7, 8, 9]
        );
        assert!(c.get_run(3, 2, 6).is_empty(), "starts before the run");
        assert!(c.get_run(4, 5, 6).is_empty());
        assert_eq!(c.get_run(3, 5, 5).len(), 1);
    }

    #[test]
    fn invalidation_and_restarts_free_their_bytes() {
        let c = EntryCache::new(1 << 20);
        for e in 0..10 {
            c.insert(Position::new(1, e), entry(10));
        }
        c.insert(Position::new(1, 20), entry(10));
        assert_eq!(c.weighted_size(), 10 + OVERHEAD);
        assert!(c.get(&Position::new(1, 0)).is_none());
        c.invalidate_ledger(1);
        assert_eq!(c.weighted_size(), 0);
        let c = EntryCache::new(0);
        c.insert(Position::new(1, 0), entry(1));
        assert!(c.get(&Position::new(1, 0)).is_none());
        assert_eq!(c.weighted_size(), 0);
    }

    #[test]
    fn stale_records_do_not_pile_up() {
        let c = EntryCache::new(1 << 30);
        for l in 0..10_000u64 {
            c.insert(Position::new(l, 0), entry(1));
            c.invalidate_ledger(l);
        }
        assert!(c.inner.lock().order.len() <= 1024 + 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, i64, usize),
        Invalidate(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0..4u64, 0..12i64, 0..200usize).prop_map(|(l, e, n)| Op::Insert(l, e, n)),
            1 => (0..4u64).prop_map(Op::Invalidate),
        ]
    }

    proptest! {
        /// Against a model (a list of writes, oldest first): the bound always holds, every
        /// cached entry has the bytes last written there, and the newest write of a ledger that
        /// fits is always cached.
        #[test]
        fn behaves_like_a_bounded_fifo(ops in proptest::collection::vec(op(), 1..200), max in 0u64..2_000) {
            let c = EntryCache::new(max);
            let mut written: HashMap<(u64, i64), Bytes> = HashMap::new();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert(l, e, n) => {
                        let d = Bytes::from(vec![i as u8; n]);
                        written.insert((l, e), d.clone());
                        c.insert(Position::new(l, e), d.clone());
                        if weight(&d) <= max {
                            prop_assert_eq!(c.get(&Position::new(l, e)), Some(d));
                        }
                    }
                    Op::Invalidate(l) => {
                        c.invalidate_ledger(l);
                        written.retain(|k, _| k.0 != l);
                        for e in 0..12 {
                            prop_assert!(c.get(&Position::new(l, e)).is_none());
                        }
                    }
                }
                prop_assert!(c.weighted_size() <= max);
                let st = c.inner.lock();
                let mut held = 0;
                for (l, run) in &st.ledgers {
                    prop_assert!(!run.entries.is_empty());
                    for (k, d) in run.entries.iter().enumerate() {
                        prop_assert_eq!(Some(d), written.get(&(*l, run.first + k as i64)));
                        held += weight(d);
                    }
                }
                prop_assert_eq!(held, st.bytes);
            }
        }
    }
}
