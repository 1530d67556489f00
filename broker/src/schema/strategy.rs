//! Schema compatibility strategies and which one applies to a topic.
//!
//! Pulsar's precedence: the topic's own `schemaCompatibilityStrategy`, else the namespace's
//! `schema_compatibility_strategy` (unless `UNDEFINED`), else the broker's
//! `schema_compatibility_strategy` setting (default `FULL`).

use std::fmt;
use std::str::FromStr;

/// A schema compatibility strategy (Pulsar's `SchemaCompatibilityStrategy`, less `UNDEFINED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Every change is refused.
    AlwaysIncompatible,
    /// Every change is accepted.
    AlwaysCompatible,
    /// The new schema reads data written with the latest one.
    Backward,
    /// The latest schema reads data written with the new one.
    Forward,
    /// Both.
    Full,
    /// The new schema reads data written with every earlier one.
    BackwardTransitive,
    /// Every earlier schema reads data written with the new one.
    ForwardTransitive,
    /// Both, against every earlier schema.
    FullTransitive,
}

impl Strategy {
    /// Every strategy, in Pulsar's order.
    pub const ALL: [Strategy; 8] = [
        Strategy::AlwaysIncompatible,
        Strategy::AlwaysCompatible,
        Strategy::Backward,
        Strategy::Forward,
        Strategy::Full,
        Strategy::BackwardTransitive,
        Strategy::ForwardTransitive,
        Strategy::FullTransitive,
    ];

    /// Pulsar's name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::AlwaysIncompatible => "ALWAYS_INCOMPATIBLE",
            Strategy::AlwaysCompatible => "ALWAYS_COMPATIBLE",
            Strategy::Backward => "BACKWARD",
            Strategy::Forward => "FORWARD",
            Strategy::Full => "FULL",
            Strategy::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Strategy::ForwardTransitive => "FORWARD_TRANSITIVE",
            Strategy::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Checked against every live version rather than the latest only.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Strategy::BackwardTransitive | Strategy::ForwardTransitive | Strategy::FullTransitive
        )
    }

    /// The new schema must read the old ones' data.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Strategy::Backward
                | Strategy::BackwardTransitive
                | Strategy::Full
                | Strategy::FullTransitive
        )
    }

    /// The old schemas must read the new one's data.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Strategy::Forward
                | Strategy::ForwardTransitive
                | Strategy::Full
                | Strategy::FullTransitive
        )
    }

    /// Parses a stored or configured name; `UNDEFINED`, empty or unknown names give `None`.
    pub fn parse_opt(name: Option<&str>) -> Option<Strategy> {
        name.and_then(|n| n.parse().ok())
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no strategy (or `UNDEFINED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().trim_matches('"');
        Strategy::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStrategy(s.to_owned()))
    }
}

/// The strategy in force: the topic's, else the namespace's, else the broker's, else `FULL`.
pub fn effective(topic: Option<&str>, namespace: Option<&str>, broker: &str) -> Strategy {
    Strategy::parse_opt(topic)
        .or_else(|| Strategy::parse_opt(namespace))
        .or_else(|| Strategy::parse_opt(Some(broker)))
        .unwrap_or(Strategy::Full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_undefined_is_none() {
        for s in Strategy::ALL {
            assert_eq!(s.name().parse::<Strategy>(), Ok(s));
        }
        assert_eq!("\"forward\"".parse::<Strategy>(), Ok(Strategy::Forward));
        assert!(Strategy::parse_opt(Some("UNDEFINED")).is_none());
    }

    #[test]
    fn topic_beats_namespace_beats_broker() {
        assert_eq!(
            effective(Some("BACKWARD"), Some("FORWARD"), "FULL"),
            Strategy::Backward
        );
        assert_eq!(effective(None, Some("FORWARD"), "FULL"), Strategy::Forward);
        assert_eq!(
            effective(None, Some("UNDEFINED"), "ALWAYS_COMPATIBLE"),
            Strategy::AlwaysCompatible
        );
        assert_eq!(effective(None, None, "bogus"), Strategy::Full);
    }
}
