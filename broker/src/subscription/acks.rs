//! Acknowledgements and seeks: changes of the cursor's ack state, each bumping the ack sequence
//! and waking the flusher.

use strata_proto::frame::Payload;
use tracing::info;

use super::actor::Actor;
use super::types::{AckId, SeekTarget, before};
use crate::error::Result;
use crate::position::Position;

impl Actor {
    /// Applies acks from consumer `key`.
    pub(super) fn ack(&mut self, key: u64, cumulative: bool, ids: Vec<AckId>) {
        let mut changed = false;
        for id in ids {
            let p = id.position;
            if cumulative {
                changed |= self.ack_cumulative(key, p, &id.ack_set);
            } else if !id.ack_set.is_empty() {
                changed |= self.ack_batch(p, &id.ack_set);
            } else if self.acks.ack(p) {
                self.forget(p);
                changed = true;
            }
        }
        if changed {
            let ml = &self.ml;
            self.acks.advance(|p| ml.next_position(p));
            self.cursor_changed();
        }
    }

    /// A cumulative ack up to `p` (up to the entry before it when `ack_set` acks only part of
    /// its batch). Returns whether the ack state changed.
    fn ack_cumulative(&mut self, key: u64, p: Position, ack_set: &[i64]) -> bool {
        let mut changed = false;
        let upto = if ack_set.is_empty() { p } else { before(p) };
        if upto > self.acks.mark_delete() {
            self.acks.ack_cumulative(upto);
            changed = true;
        }
        if !ack_set.is_empty() {
            changed |= self.ack_batch(p, ack_set);
        }
        // Drop every pending entry of this consumer up to `upto`.
        for d in self.consumers.unacked_up_to(key, upto) {
            self.forget(d);
        }
        self.replay.forget_up_to(upto);
        changed
    }

    /// Acks part of a batch entry. Returns whether the ack state changed.
    fn ack_batch(&mut self, p: Position, set: &[i64]) -> bool {
        if self.acks.is_acked(p) {
            return false;
        }
        if self.acks.ack_batch(p, set) {
            self.forget(p);
        }
        true
    }

    /// An entry is fully acknowledged: drop it from every tracking structure.
    fn forget(&mut self, p: Position) {
        self.consumers.release(p);
        self.dispatcher.released(p);
        self.replay.forget(p);
    }

    /// The ack state changed: a new sequence for the flusher.
    fn cursor_changed(&mut self) {
        self.ack_seq += 1;
        self.wake.dirty();
    }

    /// Moves the cursor; consumers are disconnected (they resubscribe, so client and broker
    /// agree on permits).
    pub(super) async fn seek(&mut self, target: SeekTarget) -> Result<()> {
        let md = self.seek_position(target).await?;
        info!(topic = %self.id.topic, sub = %self.id.name, md = %md, "seek");
        self.acks.reset(md);
        self.reads.reset(md);
        self.replay.clear();
        self.delayed.clear();
        self.cursor_changed();
        self.close_all_consumers(None);
        self.dispatcher.reset();
        Ok(())
    }

    /// The mark-delete position a seek moves to.
    async fn seek_position(&self, target: SeekTarget) -> Result<Position> {
        Ok(match target {
            SeekTarget::Position(p) if p.ledger == u64::MAX => self.ml.first_position(),
            SeekTarget::Position(p) if p.ledger == i64::MAX as u64 => self.ml.last_confirmed(),
            SeekTarget::Position(p) => before(p).max(self.ml.first_position()),
            // As Pulsar (PersistentMessageFinder: the newest entry published strictly before
            // `t`, MessageImpl.isEntryPublishedEarlierThan; the cursor goes after it): the first
            // entry published at or after `t` is the next one delivered.
            SeekTarget::PublishTime(t) => {
                let found = self
                    .ml
                    .find_first(|d| {
                        Payload::from_raw(d.clone())
                            .map(|p| p.metadata.publish_time >= t)
                            .unwrap_or(false)
                    })
                    .await?;
                match found {
                    Some(p) => before(p),
                    None => self.ml.last_confirmed(),
                }
            }
        })
    }

    /// Skips over acknowledged entries at the read position.
    pub(super) fn advance(&mut self) {
        self.reads.skip_to(self.acks.mark_delete());
    }
}
