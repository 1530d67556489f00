//! Process-wide metrics of the ledger client and auto-recovery (prometheus-client), named after
//! the BookKeeper client's as Pulsar exports them. [`register`] adds them to a registry (the
//! broker's `/metrics`).

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// The counters.
#[derive(Default)]
pub struct LedgerMetrics {
    /// Bookie writes that failed or timed out.
    pub add_failures: Counter,
    /// Ensemble changes committed by writers.
    pub ensemble_changes: Counter,
    /// Writers that failed for want of a replacement bookie.
    pub not_enough_bookies: Counter,
    /// Reads sent to another replica because one was slow.
    pub speculative_reads: Counter,
    /// Ledger recoveries completed.
    pub recoveries: Counter,
    /// Ledger recoveries that failed (retryable).
    pub recovery_failures: Counter,
    /// Entries written back by recoveries.
    pub recovery_entries: Counter,
    /// Ensemble segments re-replicated by auto-recovery.
    pub autorecovery_segments: Counter,
    /// Entries copied by auto-recovery.
    pub autorecovery_entries: Counter,
    /// Segment repairs that failed (retried on the next pass).
    pub autorecovery_failures: Counter,
    /// Entries copied back to bookies that came back with a new disk.
    pub autorecovery_refill_entries: Counter,
    /// Payload bytes copied by auto-recovery (re-replication and refill).
    pub autorecovery_bytes: Counter,
}

/// The process-wide counters.
pub static METRICS: LazyLock<LedgerMetrics> = LazyLock::new(LedgerMetrics::default);

/// Registers the counters in `registry`.
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    let all: [(&str, &str, &Counter); 12] = [
        (
            "bookkeeper_client_add_entry_failures",
            "Bookie writes that failed or timed out",
            &m.add_failures,
        ),
        (
            "bookkeeper_client_ensemble_changes",
            "Ensemble changes committed by ledger writers",
            &m.ensemble_changes,
        ),
        (
            "bookkeeper_client_not_enough_bookies",
            "Ledger writers failed for want of a replacement bookie",
            &m.not_enough_bookies,
        ),
        (
            "bookkeeper_client_speculative_read_count",
            "Reads sent to another replica because one was slow",
            &m.speculative_reads,
        ),
        (
            "bookkeeper_client_ledger_recovery",
            "Ledger recoveries completed",
            &m.recoveries,
        ),
        (
            "bookkeeper_client_ledger_recovery_failures",
            "Ledger recoveries that failed",
            &m.recovery_failures,
        ),
        (
            "bookkeeper_client_ledger_recovery_entries",
            "Entries written back by ledger recoveries",
            &m.recovery_entries,
        ),
        (
            "bookkeeper_autorecovery_segments",
            "Ensemble segments re-replicated by auto-recovery",
            &m.autorecovery_segments,
        ),
        (
            "bookkeeper_autorecovery_entries",
            "Entries copied by auto-recovery",
            &m.autorecovery_entries,
        ),
        (
            "bookkeeper_autorecovery_failures",
            "Segment re-replications that failed",
            &m.autorecovery_failures,
        ),
        (
            "bookkeeper_autorecovery_refill_entries",
            "Entries copied back to bookies that came back with a new disk",
            &m.autorecovery_refill_entries,
        ),
        (
            "bookkeeper_autorecovery_bytes",
            "Payload bytes copied by auto-recovery",
            &m.autorecovery_bytes,
        ),
    ];
    for (name, help, c) in all {
        registry.register(name, help, c.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_counters_are_exported() {
        let mut r = Registry::default();
        register(&mut r);
        METRICS.ensemble_changes.inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        assert!(
            out.contains("bookkeeper_client_ensemble_changes_total"),
            "{out}"
        );
        assert!(
            out.contains("bookkeeper_autorecovery_entries_total"),
            "{out}"
        );
    }
}
