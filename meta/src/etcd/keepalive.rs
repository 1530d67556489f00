//! The keep-alive task of one session (an etcd lease), and when it declares the session lost.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::convert::lease_not_found;
use super::inner::Inner;
use crate::session::SessionInner;

pub(super) fn session_margin(ttl: Duration) -> Duration {
    (ttl / 4).max(Duration::from_millis(500)).min(ttl / 2)
}

/// Keeps the lease of `session` alive until it is closed or lost; declares it lost when no
/// keep-alive succeeded for `ttl - margin`.
pub(super) async fn keep_alive_loop(
    inner: Arc<Inner>,
    session: Weak<SessionInner>,
    mut last_ok: Instant,
) {
    let Some((ttl, token, id)) = session.upgrade().map(|s| (s.ttl, s.lost.clone(), s.id)) else {
        return;
    };
    let budget = ttl - session_margin(ttl);
    let interval = (ttl / 6).max(Duration::from_millis(100));
    // One endpoint gets at most this long to answer before the next one is tried.
    let attempt = inner.opts.attempt_timeout.min(budget / 2);
    let lost = |why: &str| {
        warn!(session = id, reason = why, "metadata session lost");
        crate::metrics::session_lost("etcd");
        token.cancel();
    };
    loop {
        if token.is_cancelled() {
            return;
        }
        if session.strong_count() == 0 {
            // Every handle was dropped: stop renewing, the lease expires after its TTL.
            debug!(session = id, "session dropped, keep-alive stops");
            return;
        }
        let lost_at = last_ok + budget;
        if Instant::now() >= lost_at {
            lost("no keep-alive acknowledged in time");
            return;
        }
        let idx = inner.preferred();
        let mut client = inner.endpoints[idx].client.clone();
        let sent = Instant::now();
        let opened = tokio::select! {
            r = tokio::time::timeout_at(lost_at.min(sent + attempt), client.lease_keep_alive(id)) => r,
            () = token.cancelled() => return,
        };
        let (mut keeper, mut stream) = match opened {
            Err(_) if Instant::now() >= lost_at => {
                lost("no keep-alive acknowledged in time");
                return;
            }
            Err(_) => {
                debug!(session = id, endpoint = %inner.endpoints[idx].url, "keep-alive stream open timed out");
                inner.rotate(idx);
                continue;
            }
            Ok(Err(e)) if lease_not_found(&e) => {
                lost("lease not found");
                return;
            }
            Ok(Err(e)) => {
                debug!(session = id, endpoint = %inner.endpoints[idx].url, error = %e, "keep-alive stream failed");
                inner.rotate(idx);
                let wake = (Instant::now() + Duration::from_millis(50)).min(lost_at);
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    () = token.cancelled() => return,
                }
                continue;
            }
            Ok(Ok(ks)) => ks,
        };
        last_ok = sent;
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = token.cancelled() => return,
            }
            if session.strong_count() == 0 {
                debug!(session = id, "session dropped, keep-alive stops");
                return;
            }
            let lost_at = last_ok + budget;
            let sent = Instant::now();
            if keeper.keep_alive().await.is_err() {
                inner.rotate(idx);
                break;
            }
            let resp = tokio::select! {
                r = tokio::time::timeout_at(lost_at.min(sent + attempt), stream.message()) => r,
                () = token.cancelled() => return,
            };
            match resp {
                Err(_) if Instant::now() >= lost_at => {
                    lost("no keep-alive acknowledged in time");
                    return;
                }
                Err(_) => {
                    // This endpoint is slow or unreachable: reopen on the next one.
                    inner.rotate(idx);
                    break;
                }
                Ok(Ok(Some(r))) if r.ttl() > 0 => last_ok = sent,
                Ok(Ok(Some(_))) => {
                    lost("lease expired");
                    return;
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    inner.rotate(idx);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_sane() {
        assert_eq!(
            session_margin(Duration::from_secs(3)),
            Duration::from_millis(750)
        );
        assert_eq!(
            session_margin(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(
            session_margin(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
    }
}
