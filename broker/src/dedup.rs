//! Message deduplication (namespace policy `deduplicationEnabled`), as Pulsar does it: per
//! producer name, the broker remembers the highest sequence id it has *pushed* (handed to the
//! managed ledger) and the highest *persisted* (its add completed). A SEND whose (highest)
//! sequence id is at most the persisted one is a duplicate — it is not written and gets a receipt
//! with message id `-1:-1`; one at most the pushed one but above the persisted one is still in
//! flight, so its status is unknown and it is refused with a retryable error (the client sends it
//! again, and then it is either persisted or not). A failed add resets the producer's pushed id
//! to its persisted one, so the client's resend is not mistaken for a duplicate.
//!
//! The persisted map survives restarts and failovers: a snapshot `{position, producers}` is
//! stored in the metadata store (`dedup/{topic}`) at most every second while it changes and
//! when the topic closes; a new owner loads it and replays the entries written after its
//! position (their metadata carries producer name and sequence ids), so duplicates sent after a
//! failover are still recognised.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::error::Result;
use crate::managed_ledger::ManagedLedger;
use crate::metadata::{MetaClient, MetaError, topic_path};
use crate::position::Position;
use strata_meta::Expected;

/// What to do with a SEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Publish,
    /// Already persisted: answer with the `-1:-1` receipt, do not write.
    Duplicate,
    /// An earlier copy is still in flight: refuse, the client retries.
    InFlight,
}

/// The message id of a duplicate's receipt (`-1:-1` on the wire).
pub const DUPLICATE_POSITION: Position = Position {
    ledger: u64::MAX,
    entry: -1,
};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    /// Every entry up to and including this one is reflected in `producers`.
    ledger: u64,
    entry: i64,
    producers: HashMap<String, u64>,
}

#[derive(Default)]
struct State {
    pushed: HashMap<String, u64>,
    persisted: HashMap<String, u64>,
    /// Last entry whose sequence ids are in `persisted`.
    position: Option<Position>,
    dirty: bool,
}

/// The deduplication state of one topic.
#[derive(Default)]
pub struct Dedup {
    enabled: AtomicBool,
    /// Shared with the [`Outcome`]s of the adds in flight.
    state: Arc<Mutex<State>>,
}

/// Reports how the add of a message that [`Dedup::check`] let through ended; it outlives the
/// borrow of the topic (the add completes later, elsewhere).
pub struct Outcome {
    state: Arc<Mutex<State>>,
}

/// Metadata key of a topic's snapshot.
pub fn snapshot_key(meta: &MetaClient, ml_name: &str) -> String {
    meta.paths().dedup_snapshot(&topic_path(ml_name))
}

impl Dedup {
    /// Whether deduplication is on for the topic.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Turns deduplication on or off (policy refresh).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Release);
    }

    /// The highest persisted sequence id of `producer` (`-1`: none), for PRODUCER_SUCCESS.
    pub fn last_sequence_id(&self, producer: &str) -> i64 {
        self.state
            .lock()
            .persisted
            .get(producer)
            .map_or(-1, |s| i64::try_from(*s).unwrap_or(i64::MAX))
    }

    /// Classifies a SEND of `producer` whose sequence ids go up to `highest`; a `Publish`
    /// verdict records `highest` as pushed.
    pub fn check(&self, producer: &str, highest: u64) -> Verdict {
        let mut st = self.state.lock();
        if st.persisted.get(producer).is_some_and(|p| highest <= *p) {
            return Verdict::Duplicate;
        }
        if st.pushed.get(producer).is_some_and(|p| highest <= *p) {
            return Verdict::InFlight;
        }
        st.pushed.insert(producer.to_owned(), highest);
        Verdict::Publish
    }

    /// What the adds of messages let through report to.
    pub fn outcome(&self) -> Outcome {
        Outcome {
            state: self.state.clone(),
        }
    }

    /// Stores the snapshot if it changed since the last one.
    pub async fn save(&self, meta: &MetaClient, ml_name: &str) -> Result<()> {
        let snap = {
            let mut st = self.state.lock();
            if !st.dirty {
                return Ok(());
            }
            let Some(pos) = st.position else {
                return Ok(());
            };
            st.dirty = false;
            Snapshot {
                ledger: pos.ledger,
                entry: pos.entry,
                producers: st.persisted.clone(),
            }
        };
        let v = serde_json::to_vec(&snap).map_err(|e| MetaError::InvalidArgument(e.to_string()))?;
        if let Err(e) = meta
            .store()
            .put(&snapshot_key(meta, ml_name), Bytes::from(v), Expected::Any)
            .await
        {
            self.state.lock().dirty = true;
            return Err(e.into());
        }
        Ok(())
    }

    /// Loads the snapshot (if any) and replays the entries written after it.
    pub async fn load(&self, meta: &MetaClient, ml: &ManagedLedger) -> Result<()> {
        let key = snapshot_key(meta, ml.name());
        let Some(v) = meta.store().get(&key).await? else {
            return Ok(());
        };
        let snap: Snapshot = match serde_json::from_slice(&v.value) {
            Ok(s) => s,
            Err(e) => {
                warn!(key, error = %e, "corrupt deduplication snapshot; starting empty");
                return Ok(());
            }
        };
        let mut persisted = snap.producers;
        let mut pos = Position::new(snap.ledger, snap.entry);
        let mut replayed = 0u64;
        let mut from = ml.next_position(pos);
        while let Some(f) = from {
            let batch = ml.read(f, 256).await?;
            let Some((last, _)) = batch.last() else {
                break;
            };
            let last = *last;
            for (p, raw) in &batch {
                if let Ok(pl) = strata_proto::frame::Payload::from_raw(raw.clone()) {
                    let m = &pl.metadata;
                    let hi = m.highest_sequence_id.unwrap_or(0).max(m.sequence_id);
                    let e = persisted.entry(m.producer_name.clone()).or_insert(hi);
                    *e = (*e).max(hi);
                }
                pos = *p;
                replayed += 1;
            }
            from = ml.next_position(last);
        }
        debug!(
            topic = ml.name(),
            replayed,
            producers = persisted.len(),
            "deduplication state loaded"
        );
        let mut st = self.state.lock();
        st.pushed = persisted.clone();
        st.persisted = persisted;
        st.position = Some(pos);
        st.dirty = replayed > 0;
        Ok(())
    }
}

impl Outcome {
    /// The add of `producer`'s message up to `highest` completed at `pos` (completions arrive in
    /// log order).
    pub fn persisted(&self, producer: &str, highest: u64, pos: Position) {
        let mut st = self.state.lock();
        let e = st.persisted.entry(producer.to_owned()).or_insert(highest);
        *e = (*e).max(highest);
        if st.position.is_none_or(|p| pos > p) {
            st.position = Some(pos);
        }
        st.dirty = true;
    }

    /// The add failed: later sends of `producer` are judged against what is persisted.
    pub fn failed(&self, producer: &str) {
        let mut st = self.state.lock();
        match st.persisted.get(producer).copied() {
            Some(p) => st.pushed.insert(producer.to_owned(), p),
            None => st.pushed.remove(producer),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_in_flight_and_failures() {
        let d = Dedup::default();
        assert_eq!(d.check("p", 0), Verdict::Publish);
        assert_eq!(d.check("p", 0), Verdict::InFlight);
        d.outcome().persisted("p", 0, Position::new(1, 0));
        assert_eq!(d.check("p", 0), Verdict::Duplicate);
        assert_eq!(d.check("p", 1), Verdict::Publish);
        d.outcome().failed("p");
        assert_eq!(
            d.check("p", 1),
            Verdict::Publish,
            "a resend after a failed add"
        );
        assert_eq!(d.last_sequence_id("p"), 0);
        assert_eq!(d.last_sequence_id("q"), -1);
        assert_eq!(d.check("q", 5), Verdict::Publish);
    }
}
