//! Id newtypes. They serialize as their inner value so stored formats stay plain.

use std::fmt;
use std::num::ParseIntError;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! u64_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The id `v`.
            pub const fn new(v: u64) -> Self {
                Self(v)
            }

            /// The raw value.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }

        impl From<$name> for u64 {
            fn from(v: $name) -> u64 {
                v.0
            }
        }

        /// Parses the decimal form [`Display`](fmt::Display) writes.
        impl FromStr for $name {
            type Err = ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

u64_id!(
    /// A ledger: an append-only sequence of entries written by one writer.
    LedgerId
);
u64_id!(
    /// An entry's position inside its ledger, dense from 0.
    EntryId
);
impl EntryId {
    /// The entry after this one (saturating at `u64::MAX`).
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

u64_id!(
    /// An ownership generation: bumps every time a topic or ledger changes hands.
    Epoch
);

/// A bookie's identity: its advertised `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BookieId(pub String);

impl fmt::Display for BookieId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for BookieId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_convert_compare_print_and_parse() {
        let l = LedgerId::new(42);
        assert_eq!(l.get(), 42);
        assert_eq!(u64::from(l), 42);
        assert_eq!(LedgerId::from(42), l);
        assert_eq!(l.to_string(), "42");
        assert_eq!("42".parse::<LedgerId>(), Ok(l));
        assert!("-1".parse::<LedgerId>().is_err());
        assert!(EntryId(1) < EntryId(2));
        assert_eq!(EntryId(1).next(), EntryId(2));
        assert_eq!(EntryId(u64::MAX).next(), EntryId(u64::MAX));
        let set: std::collections::HashSet<_> = [EntryId(1), EntryId(1), EntryId(3)].into();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn ids_serialize_as_plain_numbers() {
        assert_eq!(
            serde_json::to_string(&LedgerId(7)).ok().as_deref(),
            Some("7")
        );
        assert_eq!(serde_json::from_str::<EntryId>("9").ok(), Some(EntryId(9)));
    }
}
