//! How a ledger client is set up: the quorum of its ledgers and the time limits of bookie
//! requests.

use std::time::Duration;

/// Ensemble size, write quorum, ack quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    /// E.
    pub ensemble: usize,
    /// Qw.
    pub write: usize,
    /// Qa.
    pub ack: usize,
}

/// Largest ensemble a ledger may have (a writer keeps an entry's acknowledgements as one bit per
/// ensemble slot).
pub const MAX_ENSEMBLE: usize = 64;

impl Quorum {
    /// `(E, Qw, Qa)` if [`MAX_ENSEMBLE`] ≥ E ≥ Qw ≥ Qa ≥ 1.
    pub fn checked(ensemble: u32, write: u32, ack: u32) -> Option<Self> {
        let q = Self {
            ensemble: ensemble as usize,
            write: write as usize,
            ack: ack as usize,
        };
        q.is_valid().then_some(q)
    }

    /// Whether [`MAX_ENSEMBLE`] ≥ E ≥ Qw ≥ Qa ≥ 1.
    pub fn is_valid(&self) -> bool {
        self.ack >= 1
            && self.ack <= self.write
            && self.write <= self.ensemble
            && self.ensemble <= MAX_ENSEMBLE
    }
}

/// Time limits of bookie requests.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A bookie that does not acknowledge an add within this time counts as failed for it.
    pub add: Duration,
    /// Limit of one fence, recovery read, recovery add, read, or reachability probe: a hung
    /// bookie delays recovery by at most about this much (BookKeeper #1067).
    pub request: Duration,
    /// A read with no answer from a replica after this long is also sent to the next replica.
    pub speculative: Duration,
    /// How often a writer checks that the bookies of its ensemble are still registered; one
    /// missing at two checks in a row is replaced as if it had failed a write (so an idle
    /// ledger's current segment does not keep naming a dead bookie).
    pub ensemble_check: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            add: ADD_TIMEOUT,
            request: Duration::from_secs(5),
            speculative: Duration::from_millis(75),
            ensemble_check: Duration::from_secs(5),
        }
    }
}

/// A bookie that does not acknowledge an add within this time counts as failed for it.
pub const ADD_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quorum_needs_e_ge_qw_ge_qa_ge_1_and_e_at_most_the_limit() {
        assert!(Quorum::checked(3, 2, 2).is_some());
        assert!(Quorum::checked(64, 3, 2).is_some());
        assert!(Quorum::checked(65, 3, 2).is_none());
        assert!(Quorum::checked(3, 4, 2).is_none());
        assert!(Quorum::checked(3, 2, 3).is_none());
        assert!(Quorum::checked(3, 2, 0).is_none());
    }
}
