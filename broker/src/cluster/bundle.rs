//! Namespace bundles and the pure decisions of cluster mode: which bundle a topic falls in,
//! which broker gets an unowned bundle, and when the leader moves one for balance.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use strata_meta::model::{BundleRange, BundlesData};

use crate::topic_name::TopicName;

/// One bundle of one namespace: the unit of ownership.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsBundle {
    /// Tenant.
    pub tenant: String,
    /// Namespace (local name).
    pub namespace: String,
    /// Hash range.
    pub range: BundleRange,
}

impl fmt::Display for NsBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.tenant, self.namespace, self.range)
    }
}

/// The hash that places a topic in its namespace's bundles: CRC32C of the full topic name
/// (`persistent://t/ns/name`, a partition with its `-partition-N` suffix, so the partitions of a
/// topic spread over bundles).
pub fn topic_hash(topic: &TopicName) -> u32 {
    strata_common::crc::crc32c(topic.to_string().as_bytes())
}

/// The bundle `topic` falls in, given its namespace's bundle boundaries (malformed boundaries
/// fall back to the default split).
pub fn bundle_of(topic: &TopicName, bundles: &BundlesData) -> NsBundle {
    let h = topic_hash(topic);
    let range = bundles
        .find(h)
        .or_else(|| BundlesData::default().find(h))
        .unwrap_or(BundleRange {
            start: 0,
            end: u32::MAX,
        });
    NsBundle {
        tenant: topic.tenant.clone(),
        namespace: topic.namespace.clone(),
        range,
    }
}

/// Picks the broker for an unowned bundle: the fewest owned bundles (plus assignments handed
/// out recently and not yet acquired), then the fewest topics, then the smallest id (so the
/// choice is deterministic). `brokers`: live broker ids.
pub fn least_loaded<'a>(
    brokers: &'a [String],
    owned: &HashMap<String, usize>,
    pending: &HashMap<String, usize>,
    topics: &HashMap<String, usize>,
) -> Option<&'a String> {
    brokers.iter().min_by_key(|b| {
        (
            owned.get(*b).copied().unwrap_or(0) + pending.get(*b).copied().unwrap_or(0),
            topics.get(*b).copied().unwrap_or(0),
            (*b).clone(),
        )
    })
}

/// One move the leader asks for: `bundle` from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The bundle.
    pub bundle: NsBundle,
    /// Its owner now.
    pub from: String,
    /// The broker that should get it.
    pub to: String,
}

/// Conservative balancing: when the most loaded live broker owns at least `threshold` more
/// bundles than the least loaded one, move one bundle (one not moved recently) from the first
/// to the second. A move lowers the gap by 2, so with `threshold >= 2` a move never makes the
/// reverse move due (no flapping). Owners that are not live brokers are left alone.
pub fn plan_move(
    live: &[String],
    owned: &BTreeMap<String, Vec<NsBundle>>,
    recently_moved: &dyn Fn(&NsBundle) -> bool,
    threshold: usize,
) -> Option<Move> {
    let threshold = threshold.max(2);
    let count = |b: &String| owned.get(b).map(Vec::len).unwrap_or(0);
    let max = live.iter().max_by_key(|b| (count(b), (*b).clone()))?;
    let min = live.iter().min_by_key(|b| (count(b), (*b).clone()))?;
    if count(max) < count(min) + threshold {
        return None;
    }
    let bundle = owned.get(max)?.iter().find(|b| !recently_moved(b))?.clone();
    Some(Move {
        bundle,
        from: max.clone(),
        to: min.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TopicName {
        TopicName::parse(s).unwrap()
    }

    #[test]
    fn every_topic_falls_in_exactly_one_bundle_and_partitions_spread() {
        let data = BundlesData::default();
        let ranges = data.ranges();
        assert_eq!(ranges.len(), 4);
        let mut seen = std::collections::HashSet::new();
        let base = t("persistent://public/default/orders");
        for i in 0..64 {
            let b = bundle_of(&base.partition(i), &data);
            assert_eq!(b.tenant, "public");
            assert_eq!(b.namespace, "default");
            assert!(ranges.contains(&b.range));
            // stable
            assert_eq!(b, bundle_of(&base.partition(i), &data));
            seen.insert(b.range);
        }
        assert_eq!(seen.len(), 4, "64 partitions should cover all 4 bundles");
        // the hash's extremes map to the first and last bundles
        assert_eq!(data.find(0), Some(ranges[0]));
        assert_eq!(data.find(u32::MAX), Some(ranges[3]));
    }

    #[test]
    fn custom_and_malformed_bundles() {
        let one = BundlesData::even(1);
        let b = bundle_of(&t("a/b/c"), &one);
        assert_eq!(
            b.range,
            BundleRange {
                start: 0,
                end: u32::MAX
            }
        );
        assert_eq!(b.to_string(), "a/b/0x00000000_0xffffffff");
        let broken = BundlesData { boundaries: vec![] };
        let b = bundle_of(&t("a/b/c"), &broken);
        assert!(BundlesData::default().ranges().contains(&b.range));
    }

    #[test]
    fn least_loaded_counts_pending_then_topics_then_id() {
        let brokers: Vec<String> = vec!["b".into(), "a".into(), "c".into()];
        let mut owned = HashMap::new();
        owned.insert("a".to_string(), 2);
        owned.insert("b".to_string(), 1);
        owned.insert("c".to_string(), 1);
        let mut pending = HashMap::new();
        let mut topics = HashMap::new();
        assert_eq!(
            least_loaded(&brokers, &owned, &pending, &topics).unwrap(),
            "b"
        );
        topics.insert("b".to_string(), 5);
        assert_eq!(
            least_loaded(&brokers, &owned, &pending, &topics).unwrap(),
            "c"
        );
        pending.insert("c".to_string(), 2);
        assert_eq!(
            least_loaded(&brokers, &owned, &pending, &topics).unwrap(),
            "b"
        );
        assert!(least_loaded(&[], &owned, &pending, &topics).is_none());
    }

    fn nb(i: u32) -> NsBundle {
        NsBundle {
            tenant: "t".into(),
            namespace: "ns".into(),
            range: BundleRange {
                start: i,
                end: i + 1,
            },
        }
    }

    #[test]
    fn balancing_moves_only_on_a_real_gap_and_never_back() {
        let live: Vec<String> = vec!["a".into(), "b".into()];
        let mut owned: BTreeMap<String, Vec<NsBundle>> = BTreeMap::new();
        owned.insert("a".into(), vec![nb(1), nb(2), nb(3)]);
        owned.insert("b".into(), vec![nb(4)]);
        let never = |_: &NsBundle| false;
        let m = plan_move(&live, &owned, &never, 2).unwrap();
        assert_eq!((m.from.as_str(), m.to.as_str()), ("a", "b"));
        assert_eq!(m.bundle, nb(1));
        // apply it: 2 vs 2, nothing more to do (and not back)
        owned.get_mut("a").unwrap().retain(|b| *b != m.bundle);
        owned.get_mut("b").unwrap().push(m.bundle);
        assert_eq!(plan_move(&live, &owned, &never, 2), None);
        // a gap of one is left alone
        owned.get_mut("b").unwrap().pop();
        assert_eq!(plan_move(&live, &owned, &never, 2), None);
        // recently moved bundles stay where they are
        owned.insert("a".into(), vec![nb(1), nb(2), nb(3), nb(5)]);
        let recent = |b: &NsBundle| *b == nb(1) || *b == nb(2);
        assert_eq!(plan_move(&live, &owned, &recent, 2).unwrap().bundle, nb(3));
        // a new broker with nothing gets a bundle
        let live3: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        assert_eq!(plan_move(&live3, &owned, &never, 2).unwrap().to, "c");
        // threshold below 2 is raised to 2
        owned.insert("a".into(), vec![nb(1), nb(2)]);
        owned.insert("b".into(), vec![nb(4)]);
        assert_eq!(plan_move(&live, &owned, &never, 1), None);
    }
}
