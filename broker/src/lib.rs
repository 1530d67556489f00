//! strata-broker (skeleton; see the crate's issue for what it must do).
