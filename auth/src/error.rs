//! Errors of authentication, key handling and authorization, with their Pulsar mappings.

use strata_proto::pulsar::ServerError;

/// Why a client could not be authenticated. Maps to Pulsar `ServerError::AuthenticationError`
/// on the binary protocol and HTTP 401 on REST. Messages never contain the token or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials were given (no `auth_data`, no `Authorization` header).
    #[error("authentication required: no credentials")]
    MissingCredentials,
    /// An `auth_method_name` / HTTP scheme other than `token` / `Bearer`.
    #[error("unsupported authentication method `{0}`")]
    UnsupportedMethod(String),
    /// Not a JWT: wrong number of parts, bad base64url, bad JSON, claims of the wrong type, too
    /// long.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg: none` (unsigned token).
    #[error("unsigned tokens (alg none) are not accepted")]
    AlgNone,
    /// The header's `alg` is not one the configured key can verify (e.g. HS256 against an RSA
    /// public key: algorithm confusion).
    #[error("token algorithm {alg} does not match the configured {key} key")]
    AlgorithmMismatch {
        /// The token's `alg`.
        alg: String,
        /// The configured key kind.
        key: &'static str,
    },
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token expired at {exp} (unix seconds)")]
    Expired {
        /// The `exp` claim.
        exp: i64,
    },
    /// `nbf` is in the future.
    #[error("token not valid before {nbf} (unix seconds)")]
    NotYetValid {
        /// The `nbf` claim.
        nbf: i64,
    },
    /// The role claim (`sub` by default) is missing, not a string or empty.
    #[error("token has no role claim `{0}`")]
    MissingRole(String),
    /// An audience is configured and the token's `aud` does not contain it.
    #[error("token audience does not match")]
    InvalidAudience,
    /// A refreshed token (AUTH_RESPONSE) names another role than the connection's.
    #[error("refreshed token changes the role of the connection")]
    RoleChanged,
    /// Basic authentication: unknown user or wrong password (one error for both).
    #[error("unknown user or wrong password")]
    BadPassword,
}

impl AuthError {
    /// The Pulsar server error to answer with (then close the connection on CONNECT).
    pub fn server_error(&self) -> ServerError {
        ServerError::AuthenticationError
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        401
    }

    /// A short stable name of the kind (metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::UnsupportedMethod(_) => "unsupported_method",
            Self::Malformed(_) => "malformed",
            Self::AlgNone => "alg_none",
            Self::AlgorithmMismatch { .. } => "algorithm_mismatch",
            Self::BadSignature => "bad_signature",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::MissingRole(_) => "missing_role",
            Self::InvalidAudience => "invalid_audience",
            Self::RoleChanged => "role_changed",
            Self::BadPassword => "bad_password",
        }
    }

    /// Whether a new token could fix it (expired tokens can be refreshed).
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired { .. })
    }
}

/// A key or key source that could not be loaded or used. Configuration errors: they stop the
/// broker at start-up (or fail a `strata tokens` command).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading a `file:` key failed.
    #[error("read key file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A `data:` URL or inline value is not valid base64.
    #[error("key value is not valid base64")]
    Base64,
    /// The bytes are not a key of a supported kind.
    #[error("unsupported or malformed key: {0}")]
    Unsupported(String),
    /// An HMAC secret shorter than 256 bits (as jjwt, which Pulsar uses, refuses it).
    #[error("secret key too short: {0} bytes, need at least 32")]
    WeakSecret(usize),
    /// Key generation or signing failed.
    #[error("crypto operation failed: {0}")]
    Crypto(String),
}

/// Why an authorization check refused. Binary protocol: `ServerError::AuthorizationError`
/// (or `AuthenticationError` for [`AuthzError::Unauthenticated`]); HTTP 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    /// No authenticated role (anonymous) where one is required.
    #[error("authentication required")]
    Unauthenticated,
    /// The role lacks the permission.
    #[error("role {role} is not authorized to {operation}")]
    Forbidden {
        /// The role.
        role: String,
        /// The operation, e.g. `produce on persistent://a/b/c`.
        operation: String,
    },
}

impl AuthzError {
    /// The Pulsar server error.
    pub fn server_error(&self) -> ServerError {
        match self {
            Self::Unauthenticated => ServerError::AuthenticationError,
            Self::Forbidden { .. } => ServerError::AuthorizationError,
        }
    }

    /// The HTTP status: 401 for both, as Pulsar (its `PulsarWebResource` answers a role's
    /// refusal with `Status.UNAUTHORIZED`; the official clients expect it).
    pub fn http_status(&self) -> u16 {
        401
    }
}
