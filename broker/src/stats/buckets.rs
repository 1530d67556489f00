//! Pulsar's fixed-bucket histograms (`pulsar_storage_write_latency_le_*`,
//! `pulsar_entry_size_le_*`): one relaxed atomic add per observation, no lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket bounds and the metric-name suffix of each bucket (the last one is the overflow).
#[derive(Debug)]
pub struct BucketSpec {
    /// Inclusive upper bounds, ascending.
    pub bounds: &'static [u64],
    /// Suffix of each bucket's series, `bounds.len() + 1` of them.
    pub suffixes: &'static [&'static str],
}

/// Storage write latency in microseconds (Pulsar's bounds in milliseconds: 0.5 .. 1000).
pub const WRITE_LATENCY_US: BucketSpec = BucketSpec {
    bounds: &[
        500, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 1_000_000,
    ],
    suffixes: &[
        "le_0_5", "le_1", "le_5", "le_10", "le_20", "le_50", "le_100", "le_200", "le_1000",
        "overflow",
    ],
};

/// Entry size in bytes.
pub const ENTRY_SIZE: BucketSpec = BucketSpec {
    bounds: &[128, 512, 1024, 2048, 4096, 16_384, 102_400, 1_048_576],
    suffixes: &[
        "le_128",
        "le_512",
        "le_1_kb",
        "le_2_kb",
        "le_4_kb",
        "le_16_kb",
        "le_100_kb",
        "le_1_mb",
        "le_overflow",
    ],
};

const MAX_BUCKETS: usize = 10;

/// A histogram over a [`BucketSpec`].
#[derive(Debug)]
pub struct Buckets {
    spec: &'static BucketSpec,
    counts: [AtomicU64; MAX_BUCKETS],
    sum: AtomicU64,
}

/// A copy of a histogram's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketCounts {
    /// Count per bucket, in the spec's order.
    pub counts: Vec<u64>,
    /// Sum of the observed values.
    pub sum: u64,
}

impl Buckets {
    /// An empty histogram.
    pub fn new(spec: &'static BucketSpec) -> Self {
        debug_assert!(spec.bounds.len() < MAX_BUCKETS);
        Buckets {
            spec,
            counts: Default::default(),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, v: u64) {
        let i = self.spec.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    /// The current counts.
    pub fn snapshot(&self) -> BucketCounts {
        BucketCounts {
            counts: self.counts[..=self.spec.bounds.len()]
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

impl BucketCounts {
    /// Adds another histogram's counts (same spec).
    pub fn add(&mut self, o: &BucketCounts) {
        if self.counts.len() < o.counts.len() {
            self.counts.resize(o.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.sum += o.sum;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_overflow_is_last() {
        let b = Buckets::new(&ENTRY_SIZE);
        for v in [0, 128, 129, 1024, 1025, 2_000_000] {
            b.observe(v);
        }
        let s = b.snapshot();
        assert_eq!(s.counts, vec![2, 1, 1, 1, 0, 0, 0, 0, 1]);
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum, 128 + 129 + 1024 + 1025 + 2_000_000);
        assert_eq!(ENTRY_SIZE.suffixes.len(), ENTRY_SIZE.bounds.len() + 1);
        assert_eq!(
            WRITE_LATENCY_US.suffixes.len(),
            WRITE_LATENCY_US.bounds.len() + 1
        );
    }
}
