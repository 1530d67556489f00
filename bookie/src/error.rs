//! Errors of the bookie's storage and service, and their one mapping to the wire ([`ErrorCode`]).

use strata_bookie_client::ClientError;
use strata_proto::bookie::ErrorCode;

use crate::format::FormatError;

/// An error of a bookie operation.
#[derive(Debug, thiserror::Error)]
pub enum BookieError {
    /// The ledger was fenced; the writer lost ownership.
    #[error("ledger {ledger} is fenced")]
    Fenced {
        /// Ledger.
        ledger: u64,
    },
    /// The master key does not match the ledger's.
    #[error("wrong master key for ledger {ledger}")]
    Unauthorized {
        /// Ledger.
        ledger: u64,
    },
    /// The bookie accepts no adds (disk nearly full, or the journal failed).
    #[error("bookie is read-only: {reason}")]
    ReadOnly {
        /// Why.
        reason: String,
    },
    /// No such ledger.
    #[error("no ledger {ledger}")]
    NoLedger {
        /// Ledger.
        ledger: u64,
    },
    /// No such entry.
    #[error("no entry {entry} in ledger {ledger}")]
    NoEntry {
        /// Ledger.
        ledger: u64,
        /// Entry.
        entry: u64,
    },
    /// Stored bytes failed verification.
    #[error("corrupt data in {what}: {source}")]
    Corrupt {
        /// Which file or record.
        what: String,
        /// What was wrong.
        source: FormatError,
    },
    /// A malformed request.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A disk operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, as a verb phrase.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An object storage operation failed (bookies on object storage).
    #[error("{context}: {source}")]
    ObjStore {
        /// What was being done, as a verb phrase.
        context: String,
        /// The object store's error.
        source: strata_objstore::ObjStoreError,
    },
    /// The bookie is shutting down.
    #[error("bookie is shutting down")]
    ShuttingDown,
}

impl BookieError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps an object store error with what was being done.
    pub fn objstore(context: impl Into<String>, source: strata_objstore::ObjStoreError) -> Self {
        Self::ObjStore {
            context: context.into(),
            source,
        }
    }

    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Fenced { .. } => ErrorCode::Fenced,
            Self::Unauthorized { .. } => ErrorCode::Unauthorized,
            Self::ReadOnly { .. } => ErrorCode::ReadOnly,
            Self::NoLedger { .. } => ErrorCode::NoLedger,
            Self::NoEntry { .. } => ErrorCode::NoEntry,
            Self::Corrupt { .. } => ErrorCode::Corrupt,
            Self::Invalid(_) => ErrorCode::Invalid,
            Self::Io { .. } | Self::ObjStore { .. } => ErrorCode::Internal,
            Self::ShuttingDown => ErrorCode::ShuttingDown,
        }
    }

    /// Whether retrying (on this or another bookie) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::ReadOnly { .. } | Self::ShuttingDown | Self::Io { .. } | Self::ObjStore { .. }
        )
    }

    /// The gRPC status for a unary call: a `tonic::Code` plus an encoded `ErrorDetail` in `details`.
    pub fn to_status(&self) -> tonic::Status {
        code_to_status(self.code(), self.to_string())
    }
}

/// The same answer as the client of a bookie sees it over gRPC (the bookie of the same process,
/// [`crate::local`]).
impl From<BookieError> for ClientError {
    fn from(e: BookieError) -> Self {
        ClientError::from_code(e.code(), e.to_string())
    }
}

/// Builds the status of a unary call failing with `code`.
pub fn code_to_status(code: ErrorCode, message: String) -> tonic::Status {
    use prost::Message;
    let grpc = match code {
        ErrorCode::Ok => tonic::Code::Ok,
        ErrorCode::Fenced => tonic::Code::FailedPrecondition,
        ErrorCode::Unauthorized => tonic::Code::PermissionDenied,
        ErrorCode::ReadOnly => tonic::Code::Unavailable,
        ErrorCode::NoLedger | ErrorCode::NoEntry => tonic::Code::NotFound,
        ErrorCode::Corrupt => tonic::Code::DataLoss,
        ErrorCode::Invalid => tonic::Code::InvalidArgument,
        ErrorCode::Internal => tonic::Code::Internal,
        ErrorCode::ShuttingDown => tonic::Code::Unavailable,
    };
    let details = strata_proto::bookie::ErrorDetail { code: code as i32 }.encode_to_vec();
    tonic::Status::with_details(grpc, message, details.into())
}
