//! Errors of the admin REST client.

/// What can go wrong talking to the admin REST API.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The server answered with a non-2xx status; `reason` is Pulsar's `{"reason": ...}` (or the
    /// body text when it is not that shape, or the status text when the body is empty).
    #[error("{status} {}: {reason}", status_text(*.status))]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The server's explanation.
        reason: String,
    },
    /// The admin URL is not `http://host[:port][/prefix]` or `https://...`.
    #[error("invalid admin url {0:?} (expected http://host:port or https://host:port)")]
    InvalidUrl(String),
    /// Connecting, TLS or HTTP transport failed.
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The URL of the request.
        url: String,
        /// What failed.
        message: String,
    },
    /// TLS configuration (CA file) is unusable.
    #[error("tls: {0}")]
    Tls(String),
    /// The answer was not the JSON we expected.
    #[error("unexpected response from {url}: {message}")]
    Decode {
        /// The URL of the request.
        url: String,
        /// What failed to decode.
        message: String,
    },
    /// An argument cannot be turned into a request (e.g. a bad topic name or message id).
    #[error("{0}")]
    InvalidArgument(String),
    /// No answer within the request timeout.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, String),
}

impl AdminError {
    /// Whether retrying the same request may succeed (transport trouble, timeouts, 5xx, 429).
    pub fn is_retryable(&self) -> bool {
        match self {
            AdminError::Http { status, .. } => *status >= 500 || *status == 429,
            AdminError::Transport { .. } | AdminError::Timeout(..) => true,
            _ => false,
        }
    }

    /// The HTTP status when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            AdminError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Builds the error for a non-2xx answer from its status and body: Pulsar's
    /// `{"reason": "..."}` when present, else the (trimmed, bounded) body text.
    pub fn from_response(status: u16, body: &[u8]) -> AdminError {
        const MAX: usize = 512;
        let reason = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("reason")
                    .or_else(|| v.get("message"))
                    .and_then(|r| r.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let mut s: String = text.chars().take(MAX).collect();
                if text.chars().count() > MAX {
                    s.push('…');
                }
                s
            });
        let reason = if reason.is_empty() {
            status_text(status).to_owned()
        } else {
            reason.replace(['\n', '\r'], " ")
        };
        AdminError::Http { status, reason }
    }
}

/// The canonical reason phrase of an HTTP status ("Not Found").
pub fn status_text(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// Result alias of the admin client.
pub type AdminResult<T> = std::result::Result<T, AdminError>;
