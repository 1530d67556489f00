//! Lost / duplicate / reorder checker for end-to-end tests (in the spirit of Jepsen's queue
//! checkers): every message carries `(producer, sequence)`; the checker compares what producers
//! had acknowledged with what consumers received.
//!
//! - **lost**: acknowledged to the producer, never received;
//! - **duplicated**: received more than once (allowed after a crash for unacknowledged
//!   consumption, so reported separately from loss);
//! - **reordered**: for one producer, a sequence received after a higher one on its first
//!   delivery (redeliveries are not counted as reorders);
//! - **unexpected**: received but never sent (corruption).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// Encodes a payload `"<producer>:<seq>"` (the format the checker parses).
pub fn payload(producer: &str, seq: u64) -> String {
    format!("{producer}:{seq}")
}

/// Parses a payload written by [`payload`].
pub fn parse(payload: &[u8]) -> Option<(String, u64)> {
    let s = std::str::from_utf8(payload).ok()?;
    let (p, seq) = s.rsplit_once(':')?;
    Some((p.to_owned(), seq.parse().ok()?))
}

/// Records sends and receives; [`Checker::report`] classifies them.
#[derive(Debug, Default)]
pub struct Checker {
    /// Sends the producer saw acknowledged.
    acked: BTreeMap<String, BTreeSet<u64>>,
    /// Sends attempted but not acknowledged (may or may not be stored).
    unacked: BTreeMap<String, BTreeSet<u64>>,
    /// Receives in order of arrival.
    received: Vec<(String, u64)>,
}

/// The outcome of a check.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Acknowledged sends that were never received.
    pub lost: Vec<(String, u64)>,
    /// Messages received more than once, with the count.
    pub duplicated: Vec<((String, u64), usize)>,
    /// (producer, seq, previous higher seq) on first deliveries.
    pub reordered: Vec<(String, u64, u64)>,
    /// Received messages no producer sent.
    pub unexpected: Vec<(String, u64)>,
    /// Distinct messages received.
    pub received_distinct: usize,
    /// Acknowledged sends.
    pub acked: usize,
    /// Unacknowledged sends that were received anyway (fine: the broker stored them).
    pub unacked_received: usize,
}

impl Report {
    /// No loss, no reorder, nothing unexpected (duplicates are tolerated).
    pub fn is_valid_at_least_once(&self) -> bool {
        self.lost.is_empty() && self.reordered.is_empty() && self.unexpected.is_empty()
    }

    /// Also no duplicates.
    pub fn is_exactly_once(&self) -> bool {
        self.is_valid_at_least_once() && self.duplicated.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = |v: &[(String, u64)]| v.iter().take(10).cloned().collect::<Vec<_>>();
        write!(
            f,
            "acked {} received {} (unacked but received {}): lost {} {:?}, duplicated {}, reordered {} {:?}, unexpected {} {:?}",
            self.acked,
            self.received_distinct,
            self.unacked_received,
            self.lost.len(),
            head(&self.lost),
            self.duplicated.len(),
            self.reordered.len(),
            self.reordered.iter().take(10).collect::<Vec<_>>(),
            self.unexpected.len(),
            head(&self.unexpected),
        )
    }
}

impl Checker {
    /// A new, empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The producer's send of `seq` was acknowledged.
    pub fn sent_acked(&mut self, producer: &str, seq: u64) {
        self.unacked
            .entry(producer.to_owned())
            .or_default()
            .remove(&seq);
        self.acked
            .entry(producer.to_owned())
            .or_default()
            .insert(seq);
    }

    /// The producer attempted `seq` but got no acknowledgement (error or crash).
    pub fn sent_unacked(&mut self, producer: &str, seq: u64) {
        if !self.acked.get(producer).is_some_and(|s| s.contains(&seq)) {
            self.unacked
                .entry(producer.to_owned())
                .or_default()
                .insert(seq);
        }
    }

    /// A consumer received `(producer, seq)` (call in arrival order).
    pub fn received(&mut self, producer: &str, seq: u64) {
        self.received.push((producer.to_owned(), seq));
    }

    /// A consumer received `payload` in the [`payload`] format; false if it does not parse.
    pub fn received_payload(&mut self, payload: &[u8]) -> bool {
        match parse(payload) {
            Some((p, s)) => {
                self.received(&p, s);
                true
            }
            None => false,
        }
    }

    /// Classifies everything recorded.
    pub fn report(&self) -> Report {
        let mut r = Report {
            acked: self.acked.values().map(BTreeSet::len).sum(),
            ..Default::default()
        };
        let mut counts: HashMap<(String, u64), usize> = HashMap::new();
        let mut highest: HashMap<&str, u64> = HashMap::new();
        for (p, s) in &self.received {
            let c = counts.entry((p.clone(), *s)).or_default();
            *c += 1;
            if *c > 1 {
                continue; // a redelivery is not a reorder
            }
            let known = self.acked.get(p).is_some_and(|x| x.contains(s))
                || self.unacked.get(p).is_some_and(|x| x.contains(s));
            if !known {
                r.unexpected.push((p.clone(), *s));
            }
            if self.unacked.get(p).is_some_and(|x| x.contains(s)) {
                r.unacked_received += 1;
            }
            match highest.get(p.as_str()) {
                Some(h) if *h > *s => r.reordered.push((p.clone(), *s, *h)),
                _ => {
                    highest.insert(p.as_str(), *s);
                }
            }
        }
        r.received_distinct = counts.len();
        for (p, seqs) in &self.acked {
            for s in seqs {
                if !counts.contains_key(&(p.clone(), *s)) {
                    r.lost.push((p.clone(), *s));
                }
            }
        }
        let mut dups: Vec<_> = counts.into_iter().filter(|(_, c)| *c > 1).collect();
        dups.sort();
        r.duplicated = dups;
        r
    }
}

/// A message id as the broker assigns them: (ledger, entry, batch index); ordered like Pulsar's
/// (a later ledger, then a later entry, then a later index in the batch is newer).
pub type MsgId = (u64, u64, i32);

/// Message-id regressions of one producer's acknowledged sends: taken in sequence order, each id
/// must be greater than the one before (Pulsar #24722: ids went backwards after a failover).
/// Returns `(producer, seq, id, previous seq, previous id)` for each violation.
pub fn id_regressions(acks: &[(String, u64, MsgId)]) -> Vec<(String, u64, MsgId, u64, MsgId)> {
    let mut by_producer: BTreeMap<&str, Vec<(u64, MsgId)>> = BTreeMap::new();
    for (p, s, id) in acks {
        by_producer.entry(p.as_str()).or_default().push((*s, *id));
    }
    let mut out = Vec::new();
    for (p, mut v) in by_producer {
        v.sort();
        for w in v.windows(2) {
            let ((ps, pid), (s, id)) = (w[0], w[1]);
            if id <= pid {
                out.push((p.to_owned(), s, id, ps, pid));
            }
        }
    }
    out
}

/// Acknowledged sends whose acknowledged id was never received: the entry the producer was told
/// is stored is not readable (even if a resent copy of the same (producer, seq) is).
pub fn acked_ids_not_received(
    acks: &[(String, u64, MsgId)],
    received: &[(String, u64, MsgId)],
) -> Vec<(String, u64, MsgId)> {
    let seen: std::collections::HashSet<(&str, u64, MsgId)> = received
        .iter()
        .map(|(p, s, id)| (p.as_str(), *s, *id))
        .collect();
    acks.iter()
        .filter(|(p, s, id)| !seen.contains(&(p.as_str(), *s, *id)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_run_is_exactly_once() {
        let mut c = Checker::new();
        for s in 0..5 {
            c.sent_acked("p", s);
        }
        for s in 0..5 {
            assert!(c.received_payload(payload("p", s).as_bytes()));
        }
        let r = c.report();
        assert!(r.is_exactly_once(), "{r}");
        assert_eq!(r.received_distinct, 5);
    }

    #[test]
    fn finds_lost_duplicated_reordered_unexpected() {
        let mut c = Checker::new();
        for s in 0..6 {
            c.sent_acked("p", s);
        }
        c.sent_unacked("p", 6);
        for s in [0, 2, 1, 2, 4, 6, 9] {
            c.received("p", s);
        }
        c.received("ghost", 1);
        let r = c.report();
        assert_eq!(r.lost, vec![("p".to_owned(), 3), ("p".to_owned(), 5)]);
        assert_eq!(r.duplicated, vec![(("p".to_owned(), 2), 2)]);
        assert_eq!(r.reordered, vec![("p".to_owned(), 1, 2)]);
        assert_eq!(
            r.unexpected,
            vec![("p".to_owned(), 9), ("ghost".to_owned(), 1)]
        );
        assert_eq!(r.unacked_received, 1);
        assert!(!r.is_valid_at_least_once());
    }

    #[test]
    fn redelivery_after_crash_is_a_duplicate_not_a_reorder() {
        let mut c = Checker::new();
        for s in 0..4 {
            c.sent_acked("p", s);
        }
        for s in [0, 1, 2, 1, 2, 3] {
            c.received("p", s);
        }
        let r = c.report();
        assert!(r.is_valid_at_least_once(), "{r}");
        assert!(!r.is_exactly_once());
    }

    #[test]
    fn message_ids_going_backwards_are_reported() {
        let p = |s: u64, id: MsgId| ("p".to_owned(), s, id);
        let acks = vec![
            p(0, (5, 0, 0)),
            p(1, (5, 0, 1)),
            p(2, (6, 0, -1)),
            p(3, (4, 9, -1)),
        ];
        let r = id_regressions(&acks);
        assert_eq!(r, vec![("p".to_owned(), 3, (4, 9, -1), 2, (6, 0, -1))]);
        let received = vec![p(0, (5, 0, 0)), p(1, (5, 0, 1)), p(2, (7, 0, -1))];
        assert_eq!(
            acked_ids_not_received(&acks[..3], &received),
            vec![p(2, (6, 0, -1))]
        );
    }
}
