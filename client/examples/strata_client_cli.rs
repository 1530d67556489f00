//! The client commands without the server crates: `cargo run --release -p strata-client --example
//! strata_client_cli -- perf produce ...` runs exactly what `strata perf produce ...` runs.

use clap::Parser;
use strata_client::cli::{ConsumeArgs, PerfArgs, ProduceArgs, run_consume, run_perf, run_produce};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
enum Cmd {
    /// Publish messages.
    Produce(ProduceArgs),
    /// Consume and print messages.
    Consume(ConsumeArgs),
    /// Load generator.
    Perf(PerfArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    match Cmd::parse() {
        Cmd::Produce(a) => run_produce(a, shutdown).await,
        Cmd::Consume(a) => run_consume(a, shutdown).await,
        Cmd::Perf(a) => run_perf(a, shutdown).await,
    }
}
