//! Errors of the client library.

use strata_proto::FrameError;
use strata_proto::pulsar::ServerError;

/// What can go wrong talking to a Pulsar broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service URL is not `pulsar://host:port` (or `pulsar+ssl://host:port`).
    #[error("invalid service url {0:?} (expected pulsar://host:port or pulsar+ssl://host:port)")]
    InvalidUrl(String),
    /// TCP connect or socket I/O failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The byte stream broke the framing rules.
    #[error("frame error: {0}")]
    Frame(#[from] FrameError),
    /// The broker answered with an error.
    #[error("broker error {code:?}: {message}")]
    Server {
        /// The broker's error code.
        code: ServerError,
        /// The broker's message.
        message: String,
    },
    /// The connection closed (or its tasks stopped) before the answer came.
    #[error("connection closed")]
    Disconnected,
    /// No answer within the operation timeout.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The broker sent something this client did not expect.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker closed our producer or consumer.
    #[error("closed by the broker")]
    ClosedByBroker,
    /// Compressing or decompressing a payload failed.
    #[error("compression error: {0}")]
    Compression(String),
    /// A message (compressed, or a batch of them) larger than the broker accepts: it is not
    /// sent (the connection and the other messages are not affected).
    #[error("message of {size} bytes exceeds the broker's max_message_size of {max} bytes")]
    MessageTooLarge {
        /// The message's (or batch's) payload bytes.
        size: usize,
        /// The broker's `max_message_size`.
        max: usize,
    },
    /// TLS configuration or handshake failed (certificate not trusted, wrong host name, ...).
    #[error("tls error: {0}")]
    Tls(String),
}

impl ClientError {
    /// Whether retrying the operation (possibly after a new lookup) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Io(_)
            | ClientError::Disconnected
            | ClientError::Timeout(_)
            | ClientError::ClosedByBroker => true,
            ClientError::Server { code, .. } => matches!(
                code,
                ServerError::ServiceNotReady
                    | ServerError::TooManyRequests
                    | ServerError::MetadataError
                    | ServerError::PersistenceError
                    | ServerError::ProducerBusy
                    | ServerError::ConsumerBusy
            ),
            _ => false,
        }
    }

    pub(crate) fn server(code: i32, message: impl Into<String>) -> Self {
        ClientError::Server {
            code: ServerError::try_from(code).unwrap_or(ServerError::UnknownError),
            message: message.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
