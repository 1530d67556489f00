//! `strata`: one binary, the role is a subcommand.
//!
//! `strata standalone` runs a broker, a bookie and the embedded metadata store in one process;
//! `strata bookie`, `strata broker` and `strata init-cluster` run the cluster roles over etcd;
//! `strata produce|consume|perf` and `strata admin` are clients.

mod alloc;
mod broker;
mod check_config;
mod init_cluster;
mod offload_args;
mod standalone;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Pulsar-compatible messaging with separate compute and storage"
)]
struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. `info,strata_broker=debug`.
    #[arg(long, global = true, env = "STRATA_LOG", default_value = "info")]
    log: String,
    /// Parse flags, config file and environment, validate them, print the effective
    /// configuration and exit: 0 when valid, 1 naming what is wrong. Starts nothing.
    #[arg(long, global = true)]
    check_config: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker, a bookie and the embedded metadata store in one process.
    Standalone(standalone::StandaloneArgs),
    /// Run a bookie (storage node).
    Bookie(strata_bookie::cli::BookieArgs),
    /// Run a cluster broker (metadata and ownership in etcd, ledgers on the registered bookies).
    Broker(broker::BrokerArgs),
    /// Write a cluster's initial metadata (cluster record, tenant `public`, namespace
    /// `public/default`); idempotent, refuses to clobber a different cluster.
    InitCluster(init_cluster::InitClusterArgs),
    /// Produce messages to a topic (a first-run client, with a progress line).
    Produce(strata_client::cli::ProduceArgs),
    /// Consume messages from a topic.
    Consume(strata_client::cli::ConsumeArgs),
    /// Load generator: `strata perf produce|consume`, throughput and latency percentiles.
    Perf(strata_client::cli::PerfArgs),
    /// Administer tenants, namespaces, topics, brokers and clusters over the admin REST API
    /// (mirrors pulsar-admin).
    Admin(strata_client::admin::cli::AdminArgs),
    /// JWT token tools, like `pulsar tokens` (create-secret-key, create-key-pair, create, validate).
    Tokens(strata_auth::cli::TokensArgs),
    /// Print shell completions for this CLI.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// A token cancelled on SIGTERM or Ctrl-C: every role shuts down gracefully when it fires.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        t.cancel();
    });
    token
}

fn main() -> anyhow::Result<()> {
    // before any other thread exists: the allocator's options are plain words
    alloc::tune();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    if cli.check_config {
        let effective = match &cli.command {
            Command::Standalone(args) => check_config::standalone(args)?,
            Command::Broker(args) => check_config::broker(args)?,
            Command::Bookie(args) => args.check_config()?,
            Command::InitCluster(args) => init_cluster::check_config(args)?,
            // client commands: their flags parsed (not printed: they may carry a token)
            _ => "flags parsed (a client command: nothing else to check)".to_owned(),
        };
        println!("{effective}");
        eprintln!("configuration OK");
        return Ok(());
    }
    match cli.command {
        Command::Standalone(args) => {
            let shutdown = shutdown_on_signal();
            standalone::run(args, shutdown).await
        }
        Command::Bookie(args) => {
            let shutdown = shutdown_on_signal();
            strata_bookie::cli::run(args, shutdown).await
        }
        Command::Broker(args) => {
            let shutdown = shutdown_on_signal();
            broker::run(args, shutdown).await
        }
        Command::InitCluster(args) => init_cluster::run(args).await,
        Command::Produce(args) => strata_client::cli::run_produce(args, shutdown_on_signal()).await,
        Command::Consume(args) => strata_client::cli::run_consume(args, shutdown_on_signal()).await,
        Command::Perf(args) => strata_client::cli::run_perf(args, shutdown_on_signal()).await,
        Command::Admin(args) => strata_client::admin::cli::run(args).await,
        Command::Tokens(args) => strata_auth::cli::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "strata", &mut std::io::stdout());
            Ok(())
        }
    }
}
