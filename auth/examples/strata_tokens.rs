//! `strata tokens` before it is wired into the binary:
//! `cargo run -p strata-auth --example strata_tokens -- create-secret-key --base64`.

use clap::Parser;
use strata_auth::cli::{TokensArgs, TokensCommand};

/// Token tools (`pulsar tokens`).
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: TokensCommand,
}

fn main() -> anyhow::Result<()> {
    strata_auth::cli::run(TokensArgs {
        command: Cli::parse().command,
    })
}
