//! Compare-and-set with retry: the only way racing updates are resolved (never last writer
//! wins).

use std::time::Duration;

use bytes::Bytes;
use rand::Rng;

use crate::error::{MetaError, Result};
use crate::store::{Expected, MetadataStore, Stat, Versioned};

/// How hard [`update`] tries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before giving up with [`MetaError::Contention`] (conflicts) or the last
    /// retryable error.
    pub max_attempts: u32,
    /// First backoff; doubles up to `max_backoff`, with full jitter.
    pub initial_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1000,
            initial_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// Sleeps the jittered backoff of attempt `attempt` (1-based).
    pub async fn backoff(&self, attempt: u32) {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff);
        let nanos = exp.as_nanos().min(u64::MAX as u128) as u64;
        let wait = rand::rng().random_range(0..=nanos.max(1));
        tokio::time::sleep(Duration::from_nanos(wait)).await;
    }
}

/// What an update function decided.
#[derive(Debug, Clone)]
pub enum Change {
    /// Write these bytes.
    Put(Bytes),
    /// Delete the key.
    Delete,
    /// Leave it as it is.
    Keep,
}

/// Read-modify-write of `key` with compare-and-set, retried on conflicts and on retryable
/// errors. `f` sees the current value (`None`: absent) and decides; it may run several times.
/// Returns the stat of the write (`None` if `f` kept or deleted the key).
///
/// # Cancel safety
/// Not cancel safe: the write of the last attempt may or may not have been applied.
pub async fn update<F>(
    store: &dyn MetadataStore,
    key: &str,
    policy: RetryPolicy,
    mut f: F,
) -> Result<Option<Stat>>
where
    F: FnMut(Option<&Versioned>) -> Result<Change> + Send,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = async {
            let current = store.get(key).await?;
            let expected = match &current {
                Some(v) => Expected::Version(v.stat.version),
                None => Expected::Absent,
            };
            match f(current.as_ref())? {
                Change::Keep => Ok(None),
                Change::Put(bytes) => store.put(key, bytes, expected).await.map(Some),
                Change::Delete => {
                    if current.is_some() {
                        store.delete(key, expected).await?;
                    }
                    Ok(None)
                }
            }
        }
        .await;
        match outcome {
            Ok(stat) => return Ok(stat),
            Err(e) if e.is_conflict() || e.is_retryable() => {
                if attempt >= policy.max_attempts {
                    return Err(if e.is_conflict() {
                        MetaError::Contention {
                            key: key.to_owned(),
                            attempts: attempt,
                        }
                    } else {
                        e
                    });
                }
                policy.backoff(attempt).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs `op` until it succeeds or fails with a non-retryable error, at most
/// `policy.max_attempts` times.
pub async fn with_retry<T, Fut>(policy: RetryPolicy, mut op: impl FnMut() -> Fut) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(e) if e.is_retryable() && attempt < policy.max_attempts => {
                policy.backoff(attempt).await;
            }
            other => return other,
        }
    }
}
