//! [`FastMap`]: the hash map for lookups on the message path (ledger ids, producer ids), which
//! the standard library's SipHash makes a visible share of a message's cost.

use std::collections::HashMap;

/// A `HashMap` hashed with foldhash, seeded per process (so ids a peer chooses cannot be aimed
/// at collisions from outside it).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn works_as_a_map() {
        let mut m: FastMap<u64, &str> = FastMap::default();
        m.insert(7, "seven");
        assert_eq!(m.get(&7), Some(&"seven"));
        assert_eq!(m.remove(&7), Some("seven"));
        assert!(m.is_empty());
    }
}
