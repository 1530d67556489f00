//! Bounded retry with backoff for object-store calls.

use std::future::Future;
use std::time::Duration;

use strata_common::backoff::BackoffPolicy;
use tracing::debug;

use crate::error::{ObjStoreError, Result};

/// How calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delays between attempts (jittered, bounded in number).
    pub backoff: BackoffPolicy,
    /// Bound of one attempt: a hung request fails and is retried.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            backoff: BackoffPolicy::exponential(Duration::from_millis(100), Duration::from_secs(5))
                .with_jitter()
                .with_max_retries(6),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Few, quick retries (tests).
    pub fn quick() -> Self {
        Self {
            backoff: BackoffPolicy::exponential(
                Duration::from_millis(5),
                Duration::from_millis(50),
            )
            .with_max_retries(4),
            attempt_timeout: Duration::from_secs(5),
        }
    }

    /// Runs `attempt(n)` (n = 0, 1, ...) until it succeeds, fails with an error that is not
    /// retryable, or the backoff is exhausted; each attempt bounded by `attempt_timeout`.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        key: &str,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut backoff = self.backoff.start();
        let mut n = 0u32;
        loop {
            let res = match tokio::time::timeout(self.attempt_timeout, attempt(n)).await {
                Ok(r) => r,
                Err(_) => Err(ObjStoreError::Timeout {
                    op,
                    key: key.to_string(),
                }),
            };
            match res {
                Err(e) if e.is_retryable() => match backoff.next_delay() {
                    Some(d) => {
                        crate::metrics::retried(op);
                        debug!(op, key, attempt = n, error = %e, delay = ?d, "object store call failed; retrying");
                        tokio::time::sleep(d).await;
                        n += 1;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }
}
