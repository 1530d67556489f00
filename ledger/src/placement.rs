//! Rack-aware placement: new ensembles and replacements spread over distinct racks (failure
//! domains) when the bookies declare them, and fall back to any bookie otherwise.

use std::collections::BTreeSet;

use strata_proto::BookieId;

/// Picks up to `n` bookies from `candidates` (in preference order): first one per rack not in
/// `used_racks` (a bookie without a rack is a domain of its own), then the others in order.
pub(crate) fn choose(
    candidates: &[BookieId],
    n: usize,
    rack: impl Fn(&BookieId) -> Option<String>,
    used_racks: &BTreeSet<String>,
) -> Vec<BookieId> {
    let mut used = used_racks.clone();
    let mut out: Vec<BookieId> = Vec::with_capacity(n);
    for b in candidates {
        if out.len() == n {
            return out;
        }
        match rack(b) {
            Some(r) if used.contains(&r) => {}
            Some(r) => {
                used.insert(r);
                out.push(b.clone());
            }
            None => out.push(b.clone()),
        }
    }
    for b in candidates {
        if out.len() == n {
            break;
        }
        if !out.contains(b) {
            out.push(b.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<BookieId> {
        (0..n).map(|i| BookieId(format!("b{i}"))).collect()
    }

    fn rack_of(b: &BookieId) -> Option<String> {
        // b0, b1 in rack a; b2, b3 in rack b; b4 in rack c; b5 none
        match b.0.as_str() {
            "b0" | "b1" => Some("a".into()),
            "b2" | "b3" => Some("b".into()),
            "b4" => Some("c".into()),
            _ => None,
        }
    }

    #[test]
    fn spreads_over_racks_then_falls_back() {
        let c = ids(4);
        assert_eq!(
            choose(&c, 2, rack_of, &BTreeSet::new()),
            vec![BookieId("b0".into()), BookieId("b2".into())]
        );
        // 3 bookies over 2 racks: both racks first, then the first remaining bookie
        assert_eq!(
            choose(&c, 3, rack_of, &BTreeSet::new()),
            vec![
                BookieId("b0".into()),
                BookieId("b2".into()),
                BookieId("b1".into())
            ]
        );
        // a replacement avoids the racks the rest of the ensemble uses
        let used: BTreeSet<String> = ["a".to_string()].into();
        assert_eq!(choose(&c, 1, rack_of, &used), vec![BookieId("b2".into())]);
        // only rack-a bookies left: fall back to them
        assert_eq!(
            choose(&c[..2], 1, rack_of, &used),
            vec![BookieId("b0".into())]
        );
        // without racks the order is kept
        assert_eq!(choose(&c, 3, |_| None, &BTreeSet::new()), c[..3].to_vec());
        // not enough candidates: as many as there are
        assert_eq!(choose(&ids(6)[4..], 3, rack_of, &BTreeSet::new()).len(), 2);
    }
}
