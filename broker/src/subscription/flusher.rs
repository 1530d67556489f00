//! The cursor flusher of a durable subscription: a task that coalesces acks into at most one
//! cursor write between two ticks of `cursor_flush_interval` (never one per ack), and publishes
//! the ack sequence each write covers so ack receipts can wait for it. A write somebody waits
//! for (an ack receipt, a flush, a close) does not wait out the interval: it follows the
//! previous one after [`URGENT_GAP`].
//!
//! The interval is counted in broker-wide ticks ([`next_tick`]), not from each cursor's last
//! write: the cursors of busy subscriptions are written at the same moments, so the metadata
//! store commits them in a few large transactions instead of one small one each (with 10,000
//! tailing subscriptions, the local store wrote one 4 KiB page per cursor write: more bytes
//! than the messages themselves).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use strata_common::backoff::BackoffPolicy;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::warn;

use super::Cmd;
use crate::cursor_store::CursorStore;

/// Ack sequence a snapshot answer carries to tell the flusher to stop without writing (the
/// subscription was deleted, or another broker owns the topic now).
pub(super) const STOP: u64 = u64::MAX;

/// How long a write waits after the first ack that made the cursor dirty.
const LINGER: Duration = Duration::from_millis(1);

/// Least time between two writes of one cursor, even when somebody waits for the second.
const URGENT_GAP: Duration = Duration::from_millis(10);

/// Pauses between attempts at a cursor write that failed.
const WRITE_RETRY: BackoffPolicy =
    BackoffPolicy::exponential(Duration::from_millis(50), Duration::from_secs(2));

/// The first tick after `now` of a clock of period `interval` shared by every cursor of the
/// process (its origin is the first call).
fn next_tick(now: Instant, interval: Duration) -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| now);
    let period = interval.as_nanos().max(1);
    let since = now.saturating_duration_since(origin).as_nanos();
    let ticks = since / period + 1;
    u64::try_from(ticks.saturating_mul(period))
        .ok()
        .and_then(|ns| origin.checked_add(Duration::from_nanos(ns)))
        .or_else(|| now.checked_add(interval))
        .unwrap_or(now + FAR)
}

/// A pause that stands for "never" when an interval is too large to add to a clock reading.
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// How the subscription wakes its flusher.
#[derive(Default)]
pub(super) struct Wake {
    /// The ack state changed.
    dirty: Notify,
    /// Somebody waits for the next write: cut the pause after the previous one short.
    urgent: Notify,
}

impl Wake {
    /// The ack state changed; the write may wait for the interval.
    pub fn dirty(&self) {
        self.dirty.notify_one();
    }

    /// Somebody waits for a write of the current state: write it as soon as [`URGENT_GAP`]
    /// allows.
    pub fn urgent(&self) {
        self.dirty.notify_one();
        self.urgent.notify_one();
    }
}

/// Where the flusher writes and how often.
pub(super) struct Flusher {
    pub store: CursorStore,
    /// The cursor's metadata key ([`CursorStore::key`]).
    pub key: String,
    pub interval: Duration,
}

impl Flusher {
    /// Runs until the actor is gone or answers [`STOP`]. `wake` says when there is something to
    /// write; `persisted` receives the ack sequence of every completed write.
    pub async fn run(
        self,
        tx: mpsc::UnboundedSender<Cmd>,
        wake: Arc<Wake>,
        persisted: watch::Sender<u64>,
    ) {
        let mut last_written = 0u64;
        // After a pause that ran to its tick, acks made the cursor dirty while it lasted (the
        // usual case under a steady load): they are all in, write at once.
        let mut on_tick = false;
        loop {
            let dirty = wake.dirty.notified();
            tokio::pin!(dirty);
            let waited = (&mut dirty).now_or_never().is_none();
            if waited {
                dirty.await;
            }
            if waited || !on_tick {
                // a client sends the acks of one grouping tick as several commands: let the
                // ones already on the wire reach the subscription first, so one write (and one
                // round of receipts) covers them all instead of leaving the rest for the next
                // interval
                tokio::time::sleep(LINGER).await;
            }
            let (rtx, rrx) = oneshot::channel();
            if tx.send(Cmd::Snapshot(rtx)).is_err() {
                return;
            }
            let Ok((seq, snap)) = rrx.await else { return };
            if seq == STOP {
                return;
            }
            if seq <= last_written {
                continue;
            }
            let size = self.write(&snap).await;
            last_written = seq;
            persisted.send_replace(seq);
            // Large cursors (many ack holes) are written less often: ~4 MB/s at most.
            let least = URGENT_GAP.max(Duration::from_micros(size as u64 / 4));
            on_tick = self.pause(least, &wake).await;
        }
    }

    /// The pause after a write: up to the first tick of the interval at least `least` from
    /// now, or only `least` when somebody waits for a write. One timer either way (the pause
    /// follows every cursor write: 10,000 a second with as many busy subscriptions). Whether it
    /// ran to the tick.
    async fn pause(&self, least: Duration, wake: &Wake) -> bool {
        let earliest = Instant::now() + least;
        let tick = next_tick(earliest, self.interval);
        let urgent = async {
            wake.urgent.notified().await;
            tokio::time::sleep_until(earliest).await;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(tick) => true,
            _ = urgent => false,
        }
    }

    /// Writes a snapshot, retrying until it succeeds; returns its encoded size.
    async fn write(&self, snap: &crate::cursor::CursorSnapshot) -> usize {
        let mut backoff = WRITE_RETRY.start();
        loop {
            match self.store.save_at(&self.key, snap).await {
                Ok(size) => return size,
                Err(e) => {
                    warn!(cursor = %self.key, error = %e, "persist cursor failed; retrying");
                    backoff.sleep().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_shared_and_always_ahead() {
        let i = Duration::from_millis(100);
        let t0 = Instant::now();
        let first = next_tick(t0, i);
        assert!(first > t0 && first <= t0 + i);
        // any two moments between the same ticks get the same next tick
        let a = next_tick(first + Duration::from_millis(1), i);
        let b = next_tick(first + Duration::from_millis(99), i);
        assert_eq!(a, b);
        assert_eq!(a, first + i);
        // a moment on a tick waits for the next one
        assert_eq!(next_tick(a, i), a + i);
        // another period keeps the same origin
        let j = Duration::from_millis(30);
        let c = next_tick(first + Duration::from_millis(1), j);
        assert!(c > first && c <= first + j + Duration::from_millis(1));
        // an interval too large for the clock gives a far pause, not a panic
        assert!(next_tick(t0, Duration::MAX) > t0);
    }
}
