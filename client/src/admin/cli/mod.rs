//! `strata admin`: the admin REST API from the command line, mirroring `pulsar-admin`.
//!
//! Wire it in `main` as `Admin(strata_client::admin::cli::AdminArgs)` →
//! `strata_client::admin::cli::run(args).await`. Success prints the answer (a table or JSON;
//! writes print nothing, like pulsar-admin); an error prints one line
//! `error: 404 Not Found: Tenant does not exist` to stderr and exits with status 1.

mod namespaces;
mod offload;
mod out;
mod parse;
mod tenants;
mod topics;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

pub use self::namespaces::{NamespacesCmd, PolicyName, QuotaPolicyArg, QuotaTypeArg};
#[cfg(test)]
pub(crate) use self::out::render_messages_for_test;
use self::out::{Out, render_messages, val};
pub use self::parse::{
    check_actions, parse_duration_secs, parse_size, persistence_from_args, retention_from_args,
};
pub use self::tenants::{TenantInfoArgs, TenantsCmd};
pub use self::topics::TopicsCmd;
use super::output::{OutputFormat, render};
use super::{AdminClient, AdminConfig, AdminError, AdminResult};

/// `strata admin ...`.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Admin REST API URL (http:// or https://).
    #[arg(
        long,
        env = "STRATA_ADMIN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub admin_url: String,
    /// Bearer token (JWT) for authentication.
    #[arg(long, env = "STRATA_AUTH_TOKEN", hide_env_values = true, global = true)]
    pub auth_token: Option<String>,
    /// File holding the token (surrounding whitespace is ignored); takes precedence over
    /// `--auth-token` / `STRATA_AUTH_TOKEN`.
    #[arg(long, global = true)]
    pub auth_token_file: Option<PathBuf>,
    /// PEM file with the CA certificate(s) that sign the server's certificate (https:// URLs).
    #[arg(long, global = true)]
    pub tls_ca_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30, global = true)]
    pub request_timeout_secs: u64,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The command groups.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Clusters.
    #[command(subcommand)]
    Clusters(ClustersCmd),
    /// Brokers.
    #[command(subcommand)]
    Brokers(BrokersCmd),
    /// Bookies.
    #[command(subcommand)]
    Bookies(BookiesCmd),
    /// Tenants.
    #[command(subcommand)]
    Tenants(TenantsCmd),
    /// Namespaces and their policies.
    #[command(subcommand)]
    Namespaces(NamespacesCmd),
    /// Topics and subscriptions.
    #[command(subcommand)]
    Topics(TopicsCmd),
}

/// `clusters`.
#[derive(Subcommand, Debug)]
pub enum ClustersCmd {
    /// List clusters.
    List,
    /// Show a cluster's configuration.
    Get {
        /// Cluster name.
        cluster: String,
    },
}

/// `brokers`.
#[derive(Subcommand, Debug)]
pub enum BrokersCmd {
    /// List the active brokers of a cluster.
    List {
        /// Cluster name.
        #[arg(default_value = "standalone")]
        cluster: String,
    },
    /// Show the leader broker.
    Leader,
    /// Run the broker health check.
    Healthcheck,
}

/// `bookies`.
#[derive(Subcommand, Debug)]
pub enum BookiesCmd {
    /// List the bookies.
    List,
    /// Show the bookies' rack placement.
    Racks,
}

/// Runs `strata admin ...`: prints the result, or `error: ...` and exits with status 1.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    match execute(&args).await {
        Ok(out) => {
            print!("{out}");
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// Builds the client configuration from the global options (reads the token file).
pub fn config(args: &AdminArgs) -> AdminResult<AdminConfig> {
    let token = match (&args.auth_token, &args.auth_token_file) {
        (_, Some(path)) => {
            let t = std::fs::read_to_string(path).map_err(|e| {
                AdminError::InvalidArgument(format!(
                    "cannot read token file {}: {e}",
                    path.display()
                ))
            })?;
            Some(t.trim().to_owned())
        }
        (Some(t), None) => Some(t.trim().to_owned()),
        (None, None) => None,
    };
    if token.as_deref() == Some("") {
        return Err(AdminError::InvalidArgument(
            "the auth token is empty".into(),
        ));
    }
    Ok(AdminConfig {
        url: args.admin_url.clone(),
        token,
        tls_ca_file: args.tls_ca_file.clone(),
        timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
    })
}

/// Runs the command and returns what to print.
pub async fn execute(args: &AdminArgs) -> AdminResult<String> {
    let client = AdminClient::new(&config(args)?)?;
    let out = dispatch(&client, &args.command).await?;
    Ok(match out {
        Out::None => String::new(),
        Out::Value(v) => render(&v, args.output),
        Out::Messages(msgs) => render_messages(&msgs, args.output),
        Out::Text { text, json } => match args.output {
            OutputFormat::Table => format!("{text}\n"),
            OutputFormat::Json => render(&json, OutputFormat::Json),
        },
    })
}

async fn dispatch(c: &AdminClient, cmd: &AdminCommand) -> AdminResult<Out> {
    Ok(match cmd {
        AdminCommand::Clusters(ClustersCmd::List) => val(c.clusters().await?),
        AdminCommand::Clusters(ClustersCmd::Get { cluster }) => val(c.cluster(cluster).await?),
        AdminCommand::Brokers(BrokersCmd::List { cluster }) => {
            val(c.active_brokers(cluster).await?)
        }
        AdminCommand::Brokers(BrokersCmd::Leader) => Out::Value(c.leader_broker().await?),
        AdminCommand::Brokers(BrokersCmd::Healthcheck) => {
            let s = c.healthcheck().await?;
            Out::Text {
                text: s.clone(),
                json: json!({ "status": s }),
            }
        }
        AdminCommand::Bookies(BookiesCmd::List) => {
            let v = c.bookies().await?;
            // `BookiesClusterInfo` is {"bookies": [...]}: a table of the list reads better.
            match v.get("bookies") {
                Some(list) if list.is_array() => Out::Value(list.clone()),
                _ => Out::Value(v),
            }
        }
        AdminCommand::Bookies(BookiesCmd::Racks) => Out::Value(c.bookie_racks().await?),
        AdminCommand::Tenants(cmd) => tenants::tenants(c, cmd).await?,
        AdminCommand::Namespaces(cmd) => namespaces::namespaces(c, cmd).await?,
        AdminCommand::Topics(cmd) => topics::topics(c, cmd).await?,
    })
}
