//! Argument types shared by the client commands.

use std::io::Write;
use std::time::Duration;

use strata_proto::pulsar::CompressionType;
use strata_proto::pulsar::command_subscribe::SubType;

/// Default service URL of the client commands.
pub const DEFAULT_SERVICE_URL: &str = "pulsar://127.0.0.1:6650";

/// Authentication and TLS flags of the client commands (`produce`, `consume`, `perf`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectArgs {
    /// Token (JWT) to authenticate with.
    #[arg(long, env = "STRATA_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// File holding the token (surrounding whitespace ignored); wins over `--auth-token`.
    #[arg(long)]
    pub auth_token_file: Option<std::path::PathBuf>,
    /// CA certificates (PEM) that sign the brokers' certificates, for `pulsar+ssl://` URLs (the
    /// chain is verified and the host name checked).
    #[arg(long, env = "STRATA_TLS_CA_FILE")]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mTLS; without a token the certificate's CN is the role.
    #[arg(long, requires = "tls_key_file")]
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// Private key (PEM) of `--tls-cert-file`.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_key_file: Option<std::path::PathBuf>,
}

impl ConnectArgs {
    /// The client options (reads the token file).
    pub fn options(&self) -> anyhow::Result<crate::connection::ConnectOptions> {
        let token = match &self.auth_token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| anyhow::anyhow!("cannot read token file {}: {e}", f.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => self.auth_token.clone(),
        };
        if token.as_deref() == Some("") {
            anyhow::bail!("the auth token is empty");
        }
        Ok(crate::connection::ConnectOptions {
            auth_token: token,
            tls_ca_file: self.tls_ca_file.clone(),
            tls_identity: self.tls_cert_file.clone().zip(self.tls_key_file.clone()),
            connections_per_broker: 1,
        })
    }
}

/// Connects a client for a CLI command.
pub async fn connect(url: &str, c: &ConnectArgs) -> anyhow::Result<crate::PulsarClient> {
    connect_with(url, c.options()?).await
}

/// Connects a client for a CLI command with `options` (the flags' and the command's own).
pub async fn connect_with(
    url: &str,
    options: crate::connection::ConnectOptions,
) -> anyhow::Result<crate::PulsarClient> {
    use anyhow::Context;
    crate::PulsarClient::connect_with_options(url, Duration::from_secs(30), options)
        .await
        .with_context(|| format!("connect to {url}"))
}

/// `--compression` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    /// No compression.
    None,
    /// LZ4 block.
    Lz4,
    /// zlib.
    Zlib,
    /// Zstandard.
    Zstd,
    /// Snappy.
    Snappy,
}

impl From<CompressionArg> for CompressionType {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::None => CompressionType::None,
            CompressionArg::Lz4 => CompressionType::Lz4,
            CompressionArg::Zlib => CompressionType::Zlib,
            CompressionArg::Zstd => CompressionType::Zstd,
            CompressionArg::Snappy => CompressionType::Snappy,
        }
    }
}

/// `--sub-type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SubTypeArg {
    /// One consumer.
    Exclusive,
    /// Round robin over consumers.
    Shared,
    /// One active consumer, others standby.
    Failover,
    /// Shared, with per-key order.
    KeyShared,
}

impl From<SubTypeArg> for SubType {
    fn from(s: SubTypeArg) -> Self {
        match s {
            SubTypeArg::Exclusive => SubType::Exclusive,
            SubTypeArg::Shared => SubType::Shared,
            SubTypeArg::Failover => SubType::Failover,
            SubTypeArg::KeyShared => SubType::KeyShared,
        }
    }
}

/// Rewrites the progress line on stderr.
pub fn progress(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}

/// Ends the progress line.
pub fn progress_done(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\r\x1b[2K{line}");
}

/// How often the progress line is redrawn.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(200);
