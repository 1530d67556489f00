//! Where each model lives in the store.
//!
//! Layout under a root (default `/strata`); `{..}` segments are escaped with
//! [`encode_segment`] so a name containing `/` cannot escape its directory:
//!
//! | key | value | kind |
//! |---|---|---|
//! | `/clusters/{cluster}` | [`super::ClusterData`] | persistent |
//! | `/tenants/{tenant}` | [`super::TenantInfo`] | persistent |
//! | `/namespaces/{tenant}/{ns}` | [`super::Policies`] | persistent |
//! | `/topics/{tenant}/{ns}/{domain}/{topic}` | [`super::TopicMetadata`] | persistent |
//! | `/partitioned-topics/{tenant}/{ns}/{domain}/{topic}` | [`super::PartitionedTopicMetadata`] | persistent |
//! | `/bundle-owners/{tenant}/{ns}/{range}` | [`super::BundleOwner`] | ephemeral |
//! | `/brokers/{broker}` | [`super::BrokerInfo`] | ephemeral |
//! | `/bookies/{bookie}` | [`super::BookieInfo`] | ephemeral |
//! | `/ledgers/{id:020}` | [`super::LedgerMetadata`] | persistent |
//! | `/managed-ledgers/{tenant}/{ns}/{domain}/{topic}` | [`super::ManagedLedgerInfo`] | persistent |
//! | `/cursors/{tenant}/{ns}/{domain}/{topic}/{cursor}` | [`super::CursorInfo`] | persistent |
//! | `/schemas/{tenant}/{ns}/{topic}` | [`super::SchemaHistory`] | persistent |
//! | `/dedup/{tenant}/{ns}/{domain}/{topic}` | the broker's deduplication snapshot (JSON) | persistent |
//! | `/counters/ledger-id` | [`super::LedgerIdCounter`] | persistent |

use strata_proto::LedgerId;

/// Escapes `%` and `/` so that `s` is one path segment.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`encode_segment`] (unknown escapes are kept as they are).
pub fn decode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("%2F") {
            out.push('/');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("%25") {
            out.push('%');
            rest = t;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A topic's full name split in parts: `persistent://tenant/ns/topic`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPath {
    /// `persistent` or `non-persistent`.
    pub domain: String,
    /// Tenant.
    pub tenant: String,
    /// Namespace (local name).
    pub namespace: String,
    /// Local topic name (with `-partition-N` for a partition).
    pub topic: String,
}

impl TopicPath {
    /// Parses `domain://tenant/ns/topic` (the topic part may contain `/`).
    pub fn parse(name: &str) -> Option<Self> {
        let (domain, rest) = name.split_once("://")?;
        let mut it = rest.splitn(3, '/');
        let tenant = it.next()?;
        let namespace = it.next()?;
        let topic = it.next()?;
        if domain.is_empty() || tenant.is_empty() || namespace.is_empty() || topic.is_empty() {
            return None;
        }
        Some(Self {
            domain: domain.to_owned(),
            tenant: tenant.to_owned(),
            namespace: namespace.to_owned(),
            topic: topic.to_owned(),
        })
    }

    fn rel(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            encode_segment(&self.tenant),
            encode_segment(&self.namespace),
            encode_segment(&self.domain),
            encode_segment(&self.topic)
        )
    }
}

impl std::fmt::Display for TopicPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}/{}/{}",
            self.domain, self.tenant, self.namespace, self.topic
        )
    }
}

/// Key builder for one Strata cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: String,
}

impl Default for Paths {
    fn default() -> Self {
        Self::new("/strata")
    }
}

impl Paths {
    /// Keys under `root` (e.g. `/strata`; no trailing slash needed).
    pub fn new(root: impl Into<String>) -> Self {
        let root: String = root.into();
        Self {
            root: root.trim_end_matches('/').to_owned(),
        }
    }

    /// The root.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `<root>/bookie-disks`: every bookie's [`DiskRecord`](super::DiskRecord).
    pub fn bookie_disks(&self) -> String {
        self.dir("bookie-disks")
    }

    /// `<root>/bookie-disks/<id>`: one bookie's [`DiskRecord`](super::DiskRecord).
    pub fn bookie_disk(&self, bookie_id: &str) -> String {
        format!("{}/{}", self.bookie_disks(), encode_segment(bookie_id))
    }

    fn dir(&self, d: &str) -> String {
        format!("{}/{d}", self.root)
    }

    /// Parent of all clusters.
    pub fn clusters(&self) -> String {
        self.dir("clusters")
    }
    /// One cluster.
    pub fn cluster(&self, name: &str) -> String {
        format!("{}/{}", self.clusters(), encode_segment(name))
    }
    /// Parent of all tenants.
    pub fn tenants(&self) -> String {
        self.dir("tenants")
    }
    /// One tenant.
    pub fn tenant(&self, tenant: &str) -> String {
        format!("{}/{}", self.tenants(), encode_segment(tenant))
    }
    /// Parent of a tenant's namespaces.
    pub fn namespaces(&self, tenant: &str) -> String {
        format!("{}/namespaces/{}", self.root, encode_segment(tenant))
    }
    /// One namespace (its policies).
    pub fn namespace(&self, tenant: &str, ns: &str) -> String {
        format!("{}/{}", self.namespaces(tenant), encode_segment(ns))
    }
    /// Parent of a namespace's (non-partitioned or partition) topics of a domain.
    pub fn topics(&self, tenant: &str, ns: &str, domain: &str) -> String {
        format!(
            "{}/topics/{}/{}/{}",
            self.root,
            encode_segment(tenant),
            encode_segment(ns),
            encode_segment(domain)
        )
    }
    /// One topic.
    pub fn topic(&self, t: &TopicPath) -> String {
        format!("{}/topics/{}", self.root, t.rel())
    }
    /// Parent of a namespace's partitioned topics of a domain.
    pub fn partitioned_topics(&self, tenant: &str, ns: &str, domain: &str) -> String {
        format!(
            "{}/partitioned-topics/{}/{}/{}",
            self.root,
            encode_segment(tenant),
            encode_segment(ns),
            encode_segment(domain)
        )
    }
    /// One partitioned topic's metadata.
    pub fn partitioned_topic(&self, t: &TopicPath) -> String {
        format!("{}/partitioned-topics/{}", self.root, t.rel())
    }
    /// Parent of a namespace's bundle owners.
    pub fn bundle_owners(&self, tenant: &str, ns: &str) -> String {
        format!(
            "{}/bundle-owners/{}/{}",
            self.root,
            encode_segment(tenant),
            encode_segment(ns)
        )
    }
    /// The owner of one bundle.
    pub fn bundle_owner(&self, tenant: &str, ns: &str, range: &super::BundleRange) -> String {
        format!("{}/{}", self.bundle_owners(tenant, ns), range)
    }
    /// Parent of live brokers.
    pub fn brokers(&self) -> String {
        self.dir("brokers")
    }
    /// One live broker.
    pub fn broker(&self, id: &str) -> String {
        format!("{}/{}", self.brokers(), encode_segment(id))
    }
    /// Parent of live bookies.
    pub fn bookies(&self) -> String {
        self.dir("bookies")
    }
    /// One live bookie.
    pub fn bookie(&self, id: &str) -> String {
        format!("{}/{}", self.bookies(), encode_segment(id))
    }
    /// Parent of all ledgers.
    pub fn ledgers(&self) -> String {
        self.dir("ledgers")
    }
    /// One ledger (zero-padded, so scans return ledgers in id order).
    pub fn ledger(&self, id: LedgerId) -> String {
        format!("{}/{:020}", self.ledgers(), id.0)
    }
    /// The ledger list of a topic's managed ledger.
    pub fn managed_ledger(&self, t: &TopicPath) -> String {
        format!("{}/managed-ledgers/{}", self.root, t.rel())
    }
    /// Parent of a topic's cursors.
    pub fn cursors(&self, t: &TopicPath) -> String {
        format!("{}/cursors/{}", self.root, t.rel())
    }
    /// One cursor (subscription) pointer.
    pub fn cursor(&self, t: &TopicPath, cursor: &str) -> String {
        format!("{}/{}", self.cursors(t), encode_segment(cursor))
    }
    /// The broker's deduplication snapshot of a topic (last sequence id per producer).
    pub fn dedup_snapshot(&self, t: &TopicPath) -> String {
        format!("{}/dedup/{}", self.root, t.rel())
    }
    /// The schema history of a topic (partitions share their partitioned topic's schema).
    pub fn schema(&self, tenant: &str, ns: &str, topic: &str) -> String {
        format!(
            "{}/schemas/{}/{}/{}",
            self.root,
            encode_segment(tenant),
            encode_segment(ns),
            encode_segment(topic)
        )
    }
    /// The policies of one topic (a partitioned topic's, for partitions).
    pub fn topic_policies(&self, t: &TopicPath) -> String {
        format!("{}/topic-policies/{}", self.root, t.rel())
    }
    /// The compacted-ledger pointer of a topic.
    pub fn compaction(&self, t: &TopicPath) -> String {
        format!("{}/compaction/{}", self.root, t.rel())
    }
    /// The ledger-id counter.
    pub fn ledger_id_counter(&self) -> String {
        self.dir("counters/ledger-id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape() {
        let p = Paths::default();
        let t = TopicPath::parse("persistent://pub/default/a/b").unwrap();
        assert_eq!(t.topic, "a/b");
        assert_eq!(
            p.cursor(&t, "sub/1%"),
            "/strata/cursors/pub/default/persistent/a%2Fb/sub%2F1%25"
        );
        assert_eq!(decode_segment(&encode_segment("x/%2F")), "x/%2F");
        assert_eq!(
            p.ledger(LedgerId(42)),
            "/strata/ledgers/00000000000000000042"
        );
        assert_eq!(t.to_string(), "persistent://pub/default/a/b");
        assert!(TopicPath::parse("persistent://a/b").is_none());
    }
}
