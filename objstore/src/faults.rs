//! Seeded fault injection for tests: errors by operation and key, latency, truncated bodies,
//! an unreachable store. A [`Faults`] holds rules; each attempt of a matching call draws from a
//! seeded generator, so a failing schedule replays with the same seed.

use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// An object-store operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Create-only write.
    Put,
    /// Whole-object read.
    Get,
    /// Ranged read.
    GetRange,
    /// Metadata read.
    Head,
    /// Delete.
    Delete,
    /// Listing.
    List,
}

impl Op {
    /// The metric label.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::GetRange => "get_range",
            Op::Head => "head",
            Op::Delete => "delete",
            Op::List => "list",
        }
    }
}

/// What happens to a matching attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The server answers this HTTP status (500, 503, ...): nothing is written.
    Status(u16),
    /// The connection is refused: nothing is written.
    Unreachable,
    /// The attempt is delayed this long, then proceeds.
    Latency(Duration),
    /// The body is cut short: a read returns half the bytes; a write fails with nothing stored
    /// (the server rejects a short body, as S3 does on a Content-Length mismatch).
    Truncate,
}

/// One rule: which attempts it applies to and how often.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// Only this operation (`None`: any).
    pub op: Option<Op>,
    /// Only keys containing this (`None`: any).
    pub key_contains: Option<String>,
    /// The fault.
    pub fault: Fault,
    /// Chance per matching attempt, 0.0..=1.0.
    pub probability: f64,
    /// Stop after this many injections (`None`: never).
    pub remaining: Option<u64>,
}

impl FaultRule {
    /// `fault` on every attempt of `op` (any op if `None`).
    pub fn always(op: Option<Op>, fault: Fault) -> Self {
        Self {
            op,
            key_contains: None,
            fault,
            probability: 1.0,
            remaining: None,
        }
    }

    /// With a probability per attempt.
    pub fn sometimes(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    /// Only on keys containing `s`.
    pub fn on_keys(mut self, s: impl Into<String>) -> Self {
        self.key_contains = Some(s.into());
        self
    }

    /// At most `n` times.
    pub fn times(mut self, n: u64) -> Self {
        self.remaining = Some(n);
        self
    }
}

/// The rules and the seeded generator. Shared by the stores of a test.
#[derive(Debug)]
pub struct Faults {
    state: Mutex<(StdRng, Vec<FaultRule>, u64)>,
}

impl Faults {
    /// No rules yet, generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: Mutex::new((StdRng::seed_from_u64(seed), Vec::new(), 0)),
        }
    }

    /// Adds a rule.
    pub fn add(&self, rule: FaultRule) {
        self.state.lock().1.push(rule);
    }

    /// Removes every rule (the store heals).
    pub fn clear(&self) {
        self.state.lock().1.clear();
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().2
    }

    /// The faults for one attempt of `op` on `key` (latency first, then at most one failure).
    pub(crate) fn draw(&self, op: Op, key: &str) -> Vec<Fault> {
        let mut st = self.state.lock();
        let (rng, rules, count) = &mut *st;
        let mut out = Vec::new();
        for r in rules.iter_mut() {
            if r.op.is_some_and(|o| o != op)
                || r.key_contains
                    .as_ref()
                    .is_some_and(|s| !key.contains(s.as_str()))
                || r.remaining == Some(0)
            {
                continue;
            }
            if rng.random::<f64>() < r.probability {
                if let Some(n) = r.remaining.as_mut() {
                    *n -= 1;
                }
                *count += 1;
                out.push(r.fault.clone());
            }
        }
        out.sort_by_key(|f| !matches!(f, Fault::Latency(_)));
        out
    }
}
