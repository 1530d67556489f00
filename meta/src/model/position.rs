//! A position in a managed ledger, shared by the broker and the stored models.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A position in a managed ledger: `(ledger, entry)`. `entry == -1` means "before the first entry
/// of `ledger`" (Pulsar's convention, sent on the wire as `u64::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Ledger id.
    pub ledger: u64,
    /// Entry id inside the ledger, or -1.
    pub entry: i64,
}

impl Position {
    /// A position.
    pub const fn new(ledger: u64, entry: i64) -> Self {
        Self { ledger, entry }
    }

    /// The position before every entry of every ledger.
    pub const EARLIEST: Position = Position {
        ledger: 0,
        entry: -1,
    };

    /// Entry id as sent on the wire (`-1` becomes `u64::MAX`).
    pub fn wire_entry(&self) -> u64 {
        self.entry as u64
    }

    /// From wire ids (`u64::MAX` and anything above `i64::MAX` become -1).
    pub fn from_wire(ledger: u64, entry: u64) -> Self {
        let entry = if entry > i64::MAX as u64 {
            -1
        } else {
            entry as i64
        };
        Self { ledger, entry }
    }
}

impl Default for Position {
    fn default() -> Self {
        Position::EARLIEST
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ledger, self.entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_and_order() {
        assert_eq!(Position::from_wire(3, u64::MAX), Position::new(3, -1));
        assert_eq!(Position::new(3, -1).wire_entry(), u64::MAX);
        assert!(Position::new(3, -1) < Position::new(3, 0));
        assert!(Position::new(3, 9) < Position::new(4, -1));
        assert_eq!(Position::default(), Position::EARLIEST);
        assert_eq!(Position::new(7, 2).to_string(), "7:2");
    }
}
