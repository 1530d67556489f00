//! Bookies that recently failed a write, left out of new ensembles for a while.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_proto::BookieId;

/// Bookies that recently failed a write, and since when; new ensembles avoid them for
/// [`QUARANTINE`] (registrations of dead bookies can outlive them by a session TTL).
pub(crate) type Quarantine = Arc<Mutex<HashMap<BookieId, std::time::Instant>>>;

/// How long a bookie that failed a write is left out of new ensembles.
pub const QUARANTINE: Duration = Duration::from_secs(30);
