//! Errors of the Pulsar frame codec and the batch parser.

/// Why a Pulsar frame (or a part of it) could not be decoded or encoded.
///
/// Errors returned by [`crate::frame::PulsarCodec`]'s `decode` are fatal for the connection (the
/// byte stream can no longer be trusted). Errors about one frame's payload whose boundaries are
/// known come back inside [`crate::frame::BadPayload`] instead, so the broker can answer that one
/// producer (`SEND_ERROR` with `ChecksumError`) and keep the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Reading or writing the socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The frame announces (or would need) more bytes than the configured limit.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced or computed frame size (bytes after the 4-byte total-size field).
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// The frame's internal sizes do not add up.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The `BaseCommand` protobuf did not decode.
    #[error("invalid command: {0}")]
    InvalidCommand(#[source] prost::DecodeError),
    /// The command type is not one this protocol version knows.
    #[error("unknown command type {0}")]
    UnknownCommand(i32),
    /// The CRC32C over metadata and payload does not match the one the sender computed.
    #[error("checksum mismatch: frame says {expected:#010x}, payload has {computed:#010x}")]
    ChecksumMismatch {
        /// Checksum carried by the frame.
        expected: u32,
        /// Checksum of the bytes received.
        computed: u32,
    },
    /// The payload's internal sizes do not add up (the frame itself is sound).
    #[error("malformed payload: {0}")]
    PayloadLayout(&'static str),
    /// `MessageMetadata` (or `BrokerEntryMetadata`) did not decode.
    #[error("invalid message metadata: {0}")]
    InvalidMetadata(#[source] prost::DecodeError),
    /// A batch payload is truncated or its entries are inconsistent.
    #[error("invalid batch: {0}")]
    InvalidBatch(&'static str),
    /// A `SingleMessageMetadata` inside a batch did not decode.
    #[error("invalid single message metadata: {0}")]
    InvalidSingleMetadata(#[source] prost::DecodeError),
}

impl FrameError {
    /// Whether the error concerns only one frame's payload (the connection stays usable).
    pub fn is_payload_error(&self) -> bool {
        matches!(
            self,
            FrameError::ChecksumMismatch { .. }
                | FrameError::PayloadLayout(_)
                | FrameError::InvalidMetadata(_)
                | FrameError::InvalidBatch(_)
                | FrameError::InvalidSingleMetadata(_)
        )
    }
}
