//! The dispatcher: which consumer gets an entry. One implementation per subscription type
//! (`single_active.rs` for Exclusive and Failover, `shared.rs`, `key_shared.rs`; the
//! subscription's `mod.rs` picks one); the dispatch loop in `dispatch.rs` is the same for all of
//! them and asks the dispatcher at each entry.

use strata_proto::pulsar::command_subscribe::SubType;

use super::consumers::Consumers;
use super::entry::EntryView;
use super::read_position::Replay;
use super::types::ConsumerSpec;
use crate::error::Result;
use crate::position::Position;

/// A dispatcher's answer for one entry.
pub(super) enum Pick {
    /// Send it to the consumer at this index.
    To(usize),
    /// Nobody can take it now: stop until something changes.
    Wait,
    /// Not now, but later entries may go (Key_Shared: the entry waits in replay and holds its
    /// key's later entries behind it for the rest of the round).
    Defer,
}

/// Picks consumers for entries; keeps the per-type state (active consumer, round robin, hash
/// ring and key holders).
pub(super) trait Dispatcher: Send + Sync {
    /// The subscription type served.
    fn sub_type(&self) -> SubType;

    /// Checks a joining consumer against those attached (same type already checked).
    fn admit(&self, _consumers: &Consumers, _spec: &ConsumerSpec) -> Result<()> {
        Ok(())
    }

    /// Consumer `key` joined (it is in `consumers`). Returns entries to hand back to replay
    /// (not counted as redeliveries).
    fn joined(&mut self, _consumers: &mut Consumers, _key: u64) -> Vec<Position> {
        Vec::new()
    }

    /// Consumer `key` left (it is no longer in `consumers`; its entries were replayed).
    fn left(&mut self, _consumers: &mut Consumers, _key: u64) -> Vec<Position> {
        Vec::new()
    }

    /// Whether replay goes strictly before new entries (all but Key_Shared, which defers per
    /// key and lets other keys pass).
    fn replay_first(&self) -> bool {
        true
    }

    /// Whether entries with a future `deliver_at_time` are parked (Shared, Key_Shared).
    fn delays_delivery(&self) -> bool {
        false
    }

    /// A dispatch round starts.
    fn start_round(&mut self) {}

    /// Entries still waiting in replay hold their keys back for the rest of the round.
    fn hold_back(&mut self, _replay: &Replay) {}

    /// Picks the consumer for `entry`.
    fn pick(&mut self, consumers: &Consumers, entry: &EntryView) -> Pick;

    /// Entry `p` (hash slot `slot`) was sent to consumer `key`.
    fn sent(&mut self, _p: Position, _slot: u32, _key: u64) {}

    /// Entry `p` is no longer held (acked, or going back to replay); returns its hash slot
    /// when the dispatcher tracked it.
    fn released(&mut self, _p: Position) -> Option<u32> {
        None
    }

    /// Forgets all state (seek: every consumer is disconnected).
    fn reset(&mut self) {}

    /// The key of the consumer receiving every entry (Exclusive, Failover).
    fn active(&self) -> Option<u64> {
        None
    }
}
