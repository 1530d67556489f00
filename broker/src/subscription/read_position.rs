//! Where a subscription reads: the read position in the log with its read-ahead buffer, and the
//! replay set of entries to send again (redelivered, or deferred behind an earlier entry of the
//! same key), each with its redelivery count.

use std::collections::{BTreeSet, HashMap, VecDeque};

use bytes::Bytes;

use crate::compaction::CompactedReader;
use crate::managed_ledger::ManagedLedger;
use crate::position::Position;

/// Entries read from the log per catch-up read.
const READ_AHEAD: u64 = 64;

/// The read position and the entries read ahead of it.
pub(super) struct ReadAhead {
    /// Last position taken from the log (delivered, deferred or skipped).
    pos: Position,
    /// Read-ahead of catch-up reads; front is the entry after `pos`.
    buf: VecDeque<(Position, Bytes)>,
    /// `read_compacted`: the compacted view comes first, up to its horizon.
    compacted: Option<CompactedReader>,
}

impl ReadAhead {
    pub fn new(pos: Position) -> Self {
        ReadAhead {
            pos,
            buf: VecDeque::new(),
            compacted: None,
        }
    }

    /// Reads the compacted view first (`read_compacted`).
    pub fn set_compacted(&mut self, reader: Option<CompactedReader>) {
        self.compacted = reader;
    }

    /// Before the compacted view's horizon: its entries first.
    fn in_compacted(&self) -> bool {
        self.compacted
            .as_ref()
            .and_then(|c| c.state.view())
            .is_some_and(|v| self.pos < v.horizon)
    }

    /// The next entry to be taken from the log comes after this one.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Moves the read position (seek); drops the read-ahead.
    pub fn reset(&mut self, pos: Position) {
        self.pos = pos;
        self.buf.clear();
    }

    /// Skips to `mark_delete` when the read position is behind it (acked entries).
    pub fn skip_to(&mut self, mark_delete: Position) {
        if self.pos < mark_delete {
            self.reset(mark_delete);
        }
    }

    /// The next entry read ahead, if any.
    pub fn front(&self) -> Option<(Position, Bytes)> {
        self.buf.front().cloned()
    }

    /// The front entry is taken (delivered, deferred, parked or skipped).
    pub fn consume_front(&mut self) {
        if let Some((p, _)) = self.buf.pop_front() {
            self.pos = p;
        }
    }

    /// Whether the log has nothing after the read position.
    pub fn at_end(&self, ml: &ManagedLedger) -> bool {
        self.buf.is_empty() && !self.in_compacted() && ml.next_position(self.pos).is_none()
    }

    /// Reads the next entries from the log when the buffer is empty.
    pub async fn fill(&mut self, ml: &ManagedLedger) -> crate::Result<Fill> {
        if !self.buf.is_empty() {
            return Ok(Fill::Ready);
        }
        if let Some(c) = &self.compacted {
            let read = c
                .read_after(self.pos, READ_AHEAD)
                .await
                .map_err(crate::error::BrokerError::from)?;
            if let Some((entries, horizon)) = read {
                if !entries.is_empty() {
                    self.buf.extend(entries);
                    return Ok(Fill::Ready);
                }
                // Past the last compacted entry: the topic continues after the horizon.
                self.pos = horizon;
            }
        }
        let Some(next) = ml.next_position(self.pos) else {
            return Ok(Fill::End);
        };
        self.buf.extend(ml.read(next, READ_AHEAD).await?);
        Ok(if self.buf.is_empty() {
            Fill::Empty
        } else {
            Fill::Ready
        })
    }
}

/// What a read-ahead fill found.
pub(super) enum Fill {
    /// Entries are buffered.
    Ready,
    /// The log has nothing after the read position.
    End,
    /// The read returned nothing (yet).
    Empty,
}

/// Entries to send again, oldest first.
#[derive(Default)]
pub(super) struct Replay {
    set: BTreeSet<Position>,
    /// Key_Shared: hash slot of an entry waiting here (keeps its key's order behind it).
    slots: HashMap<Position, u32>,
    /// Times an entry was redelivered.
    redeliveries: HashMap<Position, u32>,
}

impl Replay {
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The oldest `n` entries.
    pub fn oldest(&self, n: usize) -> Vec<Position> {
        self.set.iter().take(n).copied().collect()
    }

    /// Hash slots of the entries waiting here (Key_Shared).
    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.set.iter().filter_map(|p| self.slots.get(p).copied())
    }

    /// Adds an entry (with its hash slot when known); `count`: it is a redelivery.
    pub fn push(&mut self, p: Position, slot: Option<u32>, count: bool) {
        if let Some(s) = slot {
            self.slots.insert(p, s);
        }
        if count {
            *self.redeliveries.entry(p).or_insert(0) += 1;
        }
        self.set.insert(p);
    }

    /// Takes an entry out to send it (its redelivery count stays until it is acked).
    pub fn take(&mut self, p: Position) {
        self.set.remove(&p);
        self.slots.remove(&p);
    }

    /// Drops an entry that was acked.
    pub fn forget(&mut self, p: Position) {
        self.take(p);
        self.redeliveries.remove(&p);
    }

    /// Drops every entry up to `upto` (cumulative ack).
    pub fn forget_up_to(&mut self, upto: Position) {
        self.set.retain(|r| *r > upto);
        self.slots.retain(|r, _| *r > upto);
        self.redeliveries.retain(|r, _| *r > upto);
    }

    pub fn redelivery_count(&self, p: Position) -> u32 {
        self.redeliveries.get(&p).copied().unwrap_or(0)
    }

    pub fn clear(&mut self) {
        *self = Replay::default();
    }
}
