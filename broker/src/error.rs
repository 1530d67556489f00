//! Errors of the broker and their one mapping to Pulsar `ServerError` codes.

use crate::storage::StorageError;
use strata_meta::MetaError;

/// Pulsar `ServerError` values (same numbers as PulsarApi.proto).
#[allow(missing_docs)]
pub mod server_error {
    pub const UNKNOWN_ERROR: i32 = 0;
    pub const METADATA_ERROR: i32 = 1;
    pub const PERSISTENCE_ERROR: i32 = 2;
    pub const AUTHENTICATION_ERROR: i32 = 3;
    pub const AUTHORIZATION_ERROR: i32 = 4;
    pub const PRODUCER_BLOCKED_QUOTA_EXCEEDED_ERROR: i32 = 7;
    pub const PRODUCER_BLOCKED_QUOTA_EXCEEDED_EXCEPTION: i32 = 8;
    pub const CONSUMER_BUSY: i32 = 5;
    pub const SERVICE_NOT_READY: i32 = 6;
    pub const CHECKSUM_ERROR: i32 = 9;
    pub const UNSUPPORTED_VERSION_ERROR: i32 = 10;
    pub const TOPIC_NOT_FOUND: i32 = 11;
    pub const SUBSCRIPTION_NOT_FOUND: i32 = 12;
    pub const CONSUMER_NOT_FOUND: i32 = 13;
    pub const TOO_MANY_REQUESTS: i32 = 14;
    pub const TOPIC_TERMINATED_ERROR: i32 = 15;
    pub const PRODUCER_BUSY: i32 = 16;
    pub const INVALID_TOPIC_NAME: i32 = 17;
    pub const INCOMPATIBLE_SCHEMA: i32 = 18;
    pub const CONSUMER_ASSIGN_ERROR: i32 = 19;
    pub const NOT_ALLOWED_ERROR: i32 = 22;
    pub const PRODUCER_FENCED: i32 = 25;
}

/// Everything that can go wrong while the broker serves a request.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("invalid topic name: {0}")]
    InvalidTopicName(String),
    #[error("topic not found: {0}")]
    TopicNotFound(String),
    #[error("subscription not found: {0}")]
    SubscriptionNotFound(String),
    #[error("consumer not found: {0}")]
    ConsumerNotFound(u64),
    #[error("consumer busy: {0}")]
    ConsumerBusy(String),
    #[error("producer busy: {0}")]
    ProducerBusy(String),
    /// A Key_Shared consumer's hash ranges cannot be assigned (none, invalid, overlapping).
    #[error("consumer assign error: {0}")]
    ConsumerAssign(String),
    #[error("producer fenced: {0}")]
    ProducerFenced(String),
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// A bad subscription name (empty). Pulsar's `NamingException`, which goes on the wire as
    /// `ProducerBusy` (clients map that answer to SUBSCRIBE back to "invalid configuration").
    #[error("invalid subscription name: {0}")]
    InvalidSubscriptionName(String),
    #[error("incompatible schema: {0}")]
    IncompatibleSchema(String),
    #[error("topic terminated: {0}")]
    TopicTerminated(String),
    #[error("service not ready: {0}")]
    ServiceNotReady(String),
    /// The topic is served by another broker (HTTP: 307 to the same path there).
    #[error("topic {topic} is served by {broker_url}")]
    OwnedElsewhere {
        topic: String,
        broker_url: String,
        http_url: String,
    },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("metadata: {0}")]
    Metadata(#[from] MetaError),
    #[error("broker is shutting down")]
    ShuttingDown,
    /// A resource that does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// A resource that already exists or is in use (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// A precondition of the request does not hold (HTTP 412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// No valid credentials (HTTP 401, `AuthenticationError`).
    #[error("{0}")]
    Unauthenticated(String),
    /// The role may not do this (HTTP 403, `AuthorizationError`).
    #[error("{0}")]
    Unauthorized(String),
    /// A policy limit was reached (max producers/consumers: `ProducerBusy`/`ConsumerBusy`).
    #[error("{0}")]
    LimitReached(String, i32),
}

impl BrokerError {
    /// The `ServerError` code sent to clients for this error.
    pub fn server_error(&self) -> i32 {
        use server_error::*;
        match self {
            BrokerError::InvalidTopicName(_) => INVALID_TOPIC_NAME,
            BrokerError::TopicNotFound(_) => TOPIC_NOT_FOUND,
            BrokerError::SubscriptionNotFound(_) => SUBSCRIPTION_NOT_FOUND,
            BrokerError::ConsumerNotFound(_) => CONSUMER_NOT_FOUND,
            BrokerError::ConsumerBusy(_) => CONSUMER_BUSY,
            BrokerError::ConsumerAssign(_) => CONSUMER_ASSIGN_ERROR,
            BrokerError::ProducerBusy(_) | BrokerError::InvalidSubscriptionName(_) => PRODUCER_BUSY,
            BrokerError::ProducerFenced(_) => PRODUCER_FENCED,
            BrokerError::NotAllowed(_) => NOT_ALLOWED_ERROR,
            BrokerError::IncompatibleSchema(_) => INCOMPATIBLE_SCHEMA,
            BrokerError::TopicTerminated(_) => TOPIC_TERMINATED_ERROR,
            BrokerError::ServiceNotReady(_)
            | BrokerError::ShuttingDown
            | BrokerError::OwnedElsewhere { .. } => SERVICE_NOT_READY,
            BrokerError::Protocol(_) => UNKNOWN_ERROR,
            BrokerError::Storage(_) => PERSISTENCE_ERROR,
            BrokerError::Metadata(_) => METADATA_ERROR,
            BrokerError::NotFound(_) => TOPIC_NOT_FOUND,
            BrokerError::Conflict(_) | BrokerError::PreconditionFailed(_) => NOT_ALLOWED_ERROR,
            BrokerError::Unauthenticated(_) => AUTHENTICATION_ERROR,
            BrokerError::Unauthorized(_) => AUTHORIZATION_ERROR,
            BrokerError::LimitReached(_, code) => *code,
        }
    }

    /// Whether a client retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            BrokerError::Storage(e) => e.is_retryable(),
            // A compare-and-set conflict is retried after a re-read.
            BrokerError::Metadata(e) => e.is_retryable() || e.is_conflict(),
            BrokerError::ServiceNotReady(_)
            | BrokerError::ShuttingDown
            | BrokerError::OwnedElsewhere { .. } => true,
            _ => false,
        }
    }
}

impl BrokerError {
    /// Whether this is a metadata compare-and-set conflict (another writer changed the key).
    pub fn is_meta_conflict(&self) -> bool {
        matches!(self, BrokerError::Metadata(e) if e.is_conflict())
    }
}

/// Result alias of the broker.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
