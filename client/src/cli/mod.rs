//! The client commands of the `strata` binary: `produce`, `consume` and `perf produce|consume`.
//!
//! Wire them in `main` as subcommands with `#[command(subcommand)]`-free variants, e.g.
//! `Produce(strata_client::cli::ProduceArgs)` → `strata_client::cli::run_produce(args, shutdown)`.

mod common;
mod consume;
mod pending;
mod perf;
mod produce;
mod send_stamp;

pub use common::{CompressionArg, SubTypeArg};
pub use consume::{ConsumeArgs, run_consume};
pub use perf::{PerfArgs, PerfCommand, PerfConsumeArgs, PerfProduceArgs, run_perf};
pub use produce::{ProduceArgs, run_produce};
