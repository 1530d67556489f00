//! [`ClientError`]: what a bookie call can fail with, decoded from the bookie's error details.

use prost::Message;
use strata_proto::bookie::{ErrorCode, ErrorDetail};

/// An error of a bookie call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The ledger is fenced: this writer lost ownership.
    #[error("ledger fenced: {0}")]
    Fenced(String),
    /// Wrong master key.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The bookie refuses adds.
    #[error("bookie read-only: {0}")]
    ReadOnly(String),
    /// No such ledger on this bookie.
    #[error("no such ledger: {0}")]
    NoLedger(String),
    /// No such entry on this bookie.
    #[error("no such entry: {0}")]
    NoEntry(String),
    /// The bookie found its copy corrupt.
    #[error("corrupt entry: {0}")]
    Corrupt(String),
    /// The request was rejected as malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The bookie failed internally.
    #[error("bookie internal error: {0}")]
    Internal(String),
    /// The bookie is shutting down.
    #[error("bookie shutting down")]
    ShuttingDown,
    /// The bookie cannot be reached or the connection broke (the add's outcome is unknown).
    #[error("bookie unavailable: {0}")]
    Unavailable(String),
    /// Any other gRPC failure.
    #[error("rpc failed: {0}")]
    Rpc(tonic::Status),
}

impl ClientError {
    /// Whether trying again (later, or on another bookie) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::ReadOnly(_) | Self::ShuttingDown | Self::Unavailable(_) | Self::Internal(_)
        )
    }

    /// The error a bookie answers with `code` and `message`.
    pub fn from_code(code: ErrorCode, message: String) -> Self {
        match code {
            ErrorCode::Fenced => Self::Fenced(message),
            ErrorCode::Unauthorized => Self::Unauthorized(message),
            ErrorCode::ReadOnly => Self::ReadOnly(message),
            ErrorCode::NoLedger => Self::NoLedger(message),
            ErrorCode::NoEntry => Self::NoEntry(message),
            ErrorCode::Corrupt => Self::Corrupt(message),
            ErrorCode::Invalid => Self::Invalid(message),
            ErrorCode::Internal | ErrorCode::Ok => Self::Internal(message),
            ErrorCode::ShuttingDown => Self::ShuttingDown,
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        if let Ok(d) = ErrorDetail::decode(s.details())
            && let Ok(code) = ErrorCode::try_from(d.code)
            && code != ErrorCode::Ok
        {
            return Self::from_code(code, s.message().to_string());
        }
        match s.code() {
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown => {
                Self::Unavailable(s.message().to_string())
            }
            _ => Self::Rpc(s),
        }
    }
}
