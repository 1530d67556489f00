//! Delayed delivery (`deliver_at_time`, Shared and Key_Shared only): entries read before their
//! time are parked in a tracker and handed back to replay when due.
//!
//! [`DelayedDeliveryTracker`] is what dispatch sees; [`InMemoryDelayedTracker`] keeps the parked
//! positions in memory (they are read again from the log after a restart, since the cursor's
//! mark-delete position stays before them). A persisted tracker can replace it without touching
//! dispatch.

use std::collections::BTreeSet;

use crate::position::Position;

/// Parks entries until their delivery time.
pub trait DelayedDeliveryTracker: Send + Sync {
    /// Parks `position` until `deliver_at` (ms since the epoch).
    fn add(&mut self, deliver_at: u64, position: Position);
    /// The earliest delivery time parked, if any.
    fn next_deliver_at(&self) -> Option<u64>;
    /// Removes and returns every entry due at `now` (ms), oldest time first.
    fn take_due(&mut self, now: u64) -> Vec<Position>;
    /// Number of parked entries.
    fn len(&self) -> usize;
    /// Whether nothing is parked.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Forgets everything (seek).
    fn clear(&mut self);
}

/// The in-memory tracker: an ordered set of `(deliver_at, position)`.
#[derive(Debug, Default)]
pub struct InMemoryDelayedTracker {
    parked: BTreeSet<(u64, Position)>,
}

impl DelayedDeliveryTracker for InMemoryDelayedTracker {
    fn add(&mut self, deliver_at: u64, position: Position) {
        self.parked.insert((deliver_at, position));
    }

    fn next_deliver_at(&self) -> Option<u64> {
        self.parked.first().map(|(t, _)| *t)
    }

    fn take_due(&mut self, now: u64) -> Vec<Position> {
        let later = self
            .parked
            .split_off(&(now.saturating_add(1), Position::EARLIEST));
        let due = std::mem::replace(&mut self.parked, later);
        due.into_iter().map(|(_, p)| p).collect()
    }

    fn len(&self) -> usize {
        self.parked.len()
    }

    fn clear(&mut self) {
        self.parked.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_entries_come_out_in_time_order() {
        let mut t = InMemoryDelayedTracker::default();
        t.add(300, Position::new(1, 0));
        t.add(100, Position::new(1, 2));
        t.add(200, Position::new(1, 1));
        assert_eq!(t.next_deliver_at(), Some(100));
        assert_eq!(
            t.take_due(200),
            vec![Position::new(1, 2), Position::new(1, 1)]
        );
        assert_eq!(t.len(), 1);
        assert!(t.take_due(299).is_empty());
        assert_eq!(t.take_due(u64::MAX), vec![Position::new(1, 0)]);
        assert!(t.is_empty());
    }
}
