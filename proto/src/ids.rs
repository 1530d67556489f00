//! Id newtypes. They serialize as their inner value so stored formats stay plain.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! u64_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

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
