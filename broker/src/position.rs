//! Positions in a managed ledger and message ids: `strata_meta`'s [`Position`] (one type for the
//! broker and the stored models).

pub use strata_meta::model::Position;
