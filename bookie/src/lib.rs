//! strata-bookie (skeleton; see the bookie issue for what it must do).

pub mod cli;
