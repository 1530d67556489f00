//! The task behind one etcd watch: forwards events in revision order and reconnects (to any
//! endpoint) from the revision after the last one delivered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{EventType, WatchOptions};
use strata_common::backoff::BackoffPolicy;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::convert::key_of;
use super::inner::Inner;
use crate::error::{MetaError, Result};
use crate::store::{EventKind, WatchEvent};

/// Between reconnects of a watch; back to the first delay once events flow again.
const WATCH_BACKOFF: BackoffPolicy =
    BackoffPolicy::exponential(Duration::from_millis(20), Duration::from_secs(1));

/// Runs one watch: connects to some endpoint, forwards events, reconnects from the next
/// revision on any failure.
pub(super) async fn watch_loop(
    inner: Arc<Inner>,
    prefix: String,
    start: u64,
    tx: mpsc::Sender<Result<WatchEvent>>,
) {
    let mut next = start;
    let mut backoff = WATCH_BACKOFF.start();
    loop {
        let idx = inner.preferred();
        let mut client = inner.endpoints[idx].client.clone();
        let opts = WatchOptions::new()
            .with_prefix()
            .with_progress_notify()
            .with_start_revision(i64::try_from(next).unwrap_or(i64::MAX));
        let opened = tokio::select! {
            r = tokio::time::timeout(inner.opts.attempt_timeout, client.watch(prefix.as_str(), Some(opts))) => r,
            () = inner.cancel.cancelled() => {
                let _ = tx.send(Err(MetaError::Closed)).await;
                return;
            }
            () = tx.closed() => return,
        };
        match opened {
            Ok(Ok(mut stream)) => loop {
                let msg = tokio::select! {
                    m = stream.message() => m,
                    () = inner.cancel.cancelled() => {
                        let _ = tx.send(Err(MetaError::Closed)).await;
                        return;
                    }
                    () = tx.closed() => return,
                };
                match msg {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            if resp.compact_revision() > 0 {
                                let _ = tx
                                    .send(Err(MetaError::Compacted {
                                        requested: next,
                                        oldest: resp.compact_revision() as u64,
                                    }))
                                    .await;
                                return;
                            }
                            debug!(
                                reason = resp.cancel_reason(),
                                "watch cancelled by etcd, reconnecting"
                            );
                            break;
                        }
                        backoff.reset();
                        for ev in resp.events() {
                            let Some(kv) = ev.kv() else { continue };
                            let revision = kv.mod_revision().max(0) as u64;
                            if revision < next {
                                continue;
                            }
                            let key = match key_of(kv) {
                                Ok(k) => k,
                                Err(e) => {
                                    warn!(error = %e, "skipping watch event");
                                    continue;
                                }
                            };
                            let event = match ev.event_type() {
                                EventType::Put => WatchEvent {
                                    kind: if kv.version() == 1 {
                                        EventKind::Create
                                    } else {
                                        EventKind::Modify
                                    },
                                    key,
                                    value: Bytes::copy_from_slice(kv.value()),
                                    version: kv.version().max(0) as u64,
                                    revision,
                                },
                                EventType::Delete => WatchEvent {
                                    kind: EventKind::Delete,
                                    key,
                                    value: Bytes::new(),
                                    version: 0,
                                    revision,
                                },
                            };
                            // Events of one revision (a transaction) are all delivered before
                            // `next` moves past it.
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                            next = next.max(revision);
                        }
                        if let Some(last) = resp.events().last().and_then(|e| e.kv()) {
                            next = next.max(last.mod_revision().max(0) as u64 + 1);
                        } else if !resp.created()
                            && resp.watch_id() != -1
                            && let Some(h) = resp.header()
                        {
                            // A periodic progress notification for this watcher: etcd sends
                            // them only to watchers that are in sync, so every event up to this
                            // revision has been delivered and a reconnect may resume after it.
                            // (Client-requested progress, watch id -1, is not used: etcd before
                            // 3.4.24 / 3.5.8 may answer it ahead of pending events.)
                            next = next.max(h.revision().max(0) as u64 + 1);
                        }
                    }
                    Ok(None) | Err(_) => {
                        debug!(endpoint = %inner.endpoints[idx].url, "watch stream ended, reconnecting");
                        inner.rotate(idx);
                        break;
                    }
                }
            },
            Ok(Err(e)) => {
                debug!(endpoint = %inner.endpoints[idx].url, error = %e, "watch failed to open");
                inner.rotate(idx);
            }
            Err(_) => inner.rotate(idx),
        }
        tokio::select! {
            _ = backoff.sleep() => {}
            () = inner.cancel.cancelled() => {
                let _ = tx.send(Err(MetaError::Closed)).await;
                return;
            }
            () = tx.closed() => return,
        }
        crate::metrics::global().watch_reconnects.inc();
    }
}
