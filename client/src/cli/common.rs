//! Argument types shared by the client commands.

use std::io::Write;
use std::time::Duration;

use strata_proto::pulsar::CompressionType;
use strata_proto::pulsar::command_subscribe::SubType;

/// Default service URL of the client commands.
pub const DEFAULT_SERVICE_URL: &str = "pulsar://127.0.0.1:6650";

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
