//! The local side of object storage, run by the flusher thread: how far the journal may be
//! trimmed, eviction of uploaded segments beyond the cache bound, and the upload backlog that
//! makes the bookie read-only.

use parking_lot::Mutex;

use crate::error::BookieError;

use super::super::{State, segments};
use super::Remote;

/// The journal position a checkpoint may record: not past the first record of any local
/// segment that is not uploaded yet (the current one included) and still holds live entries.
pub(in crate::storage) fn trim_pos(st: &Mutex<State>, flushed: (u64, u64)) -> (u64, u64) {
    let s = st.lock();
    s.segments
        .map
        .iter()
        // journal segments are never uploaded: they hold no journal position back
        .filter(|(id, m)| {
            m.uploaded.is_none()
                && m.file.is_some()
                && m.live > 0
                && super::super::journal_seg::seq_of(**id).is_none()
        })
        .map(|(_, m)| m.first_pos)
        .fold(flushed, std::cmp::min)
}

/// Evicts the oldest uploaded local segments while local sealed segments exceed the bound.
/// Readers holding the file keep reading it; new reads go to the object.
pub(in crate::storage) fn evict(remote: &Remote, st: &Mutex<State>) -> Result<(), BookieError> {
    let bound = remote.cfg.segment_cache_bytes;
    loop {
        let victim = {
            let mut s = st.lock();
            let cur = s.segments.current;
            let sealed: u64 = s
                .segments
                .map
                .iter()
                .filter(|(id, m)| m.file.is_some() && Some(**id) != cur)
                .map(|(_, m)| m.size)
                .sum();
            if sealed <= bound {
                break;
            }
            let id = s
                .segments
                .map
                .iter()
                .find(|(id, m)| m.file.is_some() && m.uploaded.is_some() && Some(**id) != cur)
                .map(|(id, _)| *id);
            let Some(id) = id else {
                break;
            };
            if let Some(m) = s.segments.map.get_mut(&id) {
                m.file = None;
            }
            id
        };
        segments::remove(&remote.ledger_dir, victim)?;
        remote.metrics.remote_evicted_segments.inc();
        tracing::debug!(segment = victim, "local copy of uploaded segment evicted");
    }
    let s = st.lock();
    let local = s.segments.local_bytes();
    let pending = s.segments.pending_bytes();
    drop(s);
    remote.metrics.remote_local_bytes.set(local as i64);
    remote.metrics.remote_pending_bytes.set(pending as i64);
    Ok(())
}

/// Why adds must be refused because uploads lag, if they must (with 10% hysteresis: `was`
/// says whether they are refused now).
pub(in crate::storage) fn backlog_reason(
    remote: &Remote,
    st: &Mutex<State>,
    was: bool,
) -> Option<String> {
    let pending = st.lock().segments.pending_bytes();
    let bound = remote.backlog_bound();
    let over = if was {
        pending > bound.saturating_sub(bound / 10)
    } else {
        pending > bound
    };
    over.then(|| {
        format!(
            "object store uploads behind: {pending} bytes of sealed segments not uploaded (bound {bound}, --segment-cache-bytes){}",
            if remote.failing.load(std::sync::atomic::Ordering::Acquire) {
                "; the object store is failing"
            } else {
                ""
            }
        )
    })
}
