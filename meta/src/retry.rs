//! Compare-and-set with retry: the only way racing updates are resolved (never last writer
//! wins).

use std::time::Duration;

use bytes::Bytes;
use strata_common::backoff::{self, BackoffPolicy};

use crate::error::{MetaError, Result};
use crate::store::{Expected, MetadataStore, Stat, Versioned};

/// How hard [`update`] tries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before giving up with [`MetaError::Contention`] (conflicts) or the last
    /// retryable error.
    pub max_attempts: u32,
    /// First backoff; doubles up to `max_backoff`, each drawn at random from its upper half.
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
    /// The jittered backoff between attempts: `max_attempts - 1` delays.
    pub fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::exponential(self.initial_backoff, self.max_backoff)
            .with_jitter()
            .with_max_retries(self.max_attempts.saturating_sub(1) as usize)
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
    let mut backoff = policy.backoff_policy().start();
    loop {
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
                if !backoff.sleep().await {
                    return Err(if e.is_conflict() {
                        MetaError::Contention {
                            key: key.to_owned(),
                            attempts: u32::try_from(backoff.retries() + 1).unwrap_or(u32::MAX),
                        }
                    } else {
                        e
                    });
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs `op` until it succeeds or fails with a non-retryable error, at most
/// `policy.max_attempts` times.
pub async fn with_retry<T, Fut>(policy: RetryPolicy, op: impl FnMut() -> Fut) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    backoff::retry(policy.backoff_policy(), op, MetaError::is_retryable).await
}
