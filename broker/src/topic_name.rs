//! Topic names: `persistent://tenant/namespace/topic`, short forms and partitions.
//!
//! Short names default to `public/default` as in Pulsar: `t` → `persistent://public/default/t`,
//! `tenant/ns/t` → `persistent://tenant/ns/t`. A partition is the topic `<name>-partition-N`.

use std::fmt;

use strata_meta::model::TopicPath;

use crate::error::BrokerError;

/// Suffix that marks one partition of a partitioned topic.
pub const PARTITION_SUFFIX: &str = "-partition-";

/// A fully qualified topic name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName {
    /// `persistent` or `non-persistent`.
    pub domain: String,
    /// Tenant.
    pub tenant: String,
    /// Namespace inside the tenant.
    pub namespace: String,
    /// Local name, including any `-partition-N` suffix.
    pub local: String,
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | ':' | '%'))
}

impl TopicName {
    /// `strata_meta`'s path form of the name (policies and authorization).
    pub fn meta_path(&self) -> TopicPath {
        TopicPath {
            domain: self.domain.clone(),
            tenant: self.tenant.clone(),
            namespace: self.namespace.clone(),
            topic: self.local.clone(),
        }
    }

    /// Parses a full or short topic name.
    pub fn parse(s: &str) -> Result<Self, BrokerError> {
        let invalid = || BrokerError::InvalidTopicName(s.to_owned());
        let (domain, rest) = match s.split_once("://") {
            Some((d, r)) => (d.to_owned(), r),
            None => ("persistent".to_owned(), s),
        };
        if domain != "persistent" && domain != "non-persistent" {
            return Err(invalid());
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let (tenant, namespace, local) = match parts.as_slice() {
            [t] if !s.contains("://") => ("public", "default", *t),
            [tenant, ns, topic] => (*tenant, *ns, *topic),
            // v1 names with a cluster: tenant/cluster/ns/topic are not supported.
            _ => return Err(invalid()),
        };
        if !valid_part(tenant) || !valid_part(namespace) || local.is_empty() || local.len() > 1024 {
            return Err(invalid());
        }
        if local.chars().any(|c| c.is_control() || c == '/') {
            return Err(invalid());
        }
        Ok(Self {
            domain,
            tenant: tenant.to_owned(),
            namespace: namespace.to_owned(),
            local: local.to_owned(),
        })
    }

    /// Builds a name from REST path parts.
    pub fn from_parts(
        domain: &str,
        tenant: &str,
        ns: &str,
        local: &str,
    ) -> Result<Self, BrokerError> {
        Self::parse(&format!("{domain}://{tenant}/{ns}/{local}"))
    }

    /// Whether the topic is persistent.
    pub fn is_persistent(&self) -> bool {
        self.domain == "persistent"
    }

    /// `tenant/namespace`.
    pub fn namespace_name(&self) -> String {
        format!("{}/{}", self.tenant, self.namespace)
    }

    /// The partition index if this is a partition (`...-partition-N`).
    pub fn partition_index(&self) -> Option<u32> {
        let idx = self.local.rfind(PARTITION_SUFFIX)?;
        self.local[idx + PARTITION_SUFFIX.len()..].parse().ok()
    }

    /// The partitioned topic this partition belongs to (itself when not a partition).
    pub fn partitioned_parent(&self) -> TopicName {
        match self.local.rfind(PARTITION_SUFFIX) {
            Some(idx) if self.partition_index().is_some() => TopicName {
                local: self.local[..idx].to_owned(),
                ..self.clone()
            },
            _ => self.clone(),
        }
    }

    /// The name of partition `i` of this topic.
    pub fn partition(&self, i: u32) -> TopicName {
        TopicName {
            local: format!("{}{PARTITION_SUFFIX}{i}", self.local),
            ..self.clone()
        }
    }

    /// Key path used in the metadata store: `tenant/ns/domain/local`.
    pub fn persistence_name(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.tenant, self.namespace, self.domain, self.local
        )
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/{}/{}",
            self.domain, self.tenant, self.namespace, self.local
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_names() {
        let t = TopicName::parse("my-topic").unwrap();
        assert_eq!(t.to_string(), "persistent://public/default/my-topic");
        let t = TopicName::parse("acme/ns1/t").unwrap();
        assert_eq!(t.to_string(), "persistent://acme/ns1/t");
        let t = TopicName::parse("non-persistent://a/b/c").unwrap();
        assert!(!t.is_persistent());
        assert!(TopicName::parse("foo://a/b/c").is_err());
        assert!(TopicName::parse("a/b").is_err());
        assert!(TopicName::parse("persistent://a/b").is_err());
    }

    #[test]
    fn partitions() {
        let t = TopicName::parse("persistent://public/default/p").unwrap();
        let p = t.partition(3);
        assert_eq!(p.to_string(), "persistent://public/default/p-partition-3");
        assert_eq!(p.partition_index(), Some(3));
        assert_eq!(p.partitioned_parent(), t);
        assert_eq!(t.partition_index(), None);
        let odd = TopicName::parse("x-partition-abc").unwrap();
        assert_eq!(odd.partition_index(), None);
        assert_eq!(odd.partitioned_parent(), odd);
    }
}
