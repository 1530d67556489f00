//! `strata bookie`: command-line flags and the entry point of the bookie role.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

/// Flags of `strata bookie`.
#[derive(clap::Args, Debug, Clone)]
pub struct BookieArgs {
    /// Directory for journal, segments and index.
    #[arg(long, default_value = "./data/bookie")]
    pub data_dir: PathBuf,
    /// gRPC port.
    #[arg(long, default_value_t = 3181)]
    pub port: u16,
    /// HTTP port (health, readiness, /metrics).
    #[arg(long, default_value_t = 8000)]
    pub http_port: u16,
}

/// Runs a bookie until `shutdown` fires.
pub async fn run(_args: BookieArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::bail!("the bookie role is not implemented yet")
}
