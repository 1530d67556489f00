//! A deadline that may be absent, as a lazy future for `select!` loops.

use tokio::time::Instant;

/// Sleeps until `at`, or forever if `None`. Lazy: `tokio::time::sleep_until` reads the
/// runtime handle (and a caller's `unwrap_or_else(Instant::now)` the clock) when it is called,
/// and `tokio::select!` builds every branch's future on every round, enabled or not; this
/// builds its timer only when polled.
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sleeps_until_the_deadline_or_forever() {
        let start = Instant::now();
        sleep_until(Some(start + Duration::from_secs(3))).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
        let never = tokio::time::timeout(Duration::from_secs(3600), sleep_until(None)).await;
        assert!(never.is_err());
    }
}
