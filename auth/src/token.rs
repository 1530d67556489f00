//! JWT token authentication (Pulsar's `AuthenticationProviderToken`) and token creation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde_json::{Map, Value};

use crate::error::{AuthError, KeyError};
use crate::keys::{KeyKind, SigningKey, VerificationKey};
use crate::redact::Token;

/// The binary protocol's `auth_method_name` for tokens.
pub const AUTH_METHOD_TOKEN: &str = "token";

/// `auth_data` of the AUTH_CHALLENGE a broker sends to ask for fresh credentials (Pulsar's
/// `AuthData.REFRESH_AUTH_DATA`); send it with `auth_method_name` [`AUTH_METHOD_TOKEN`].
pub const REFRESH_AUTH_DATA: &[u8] = b"PulsarAuthRefresh";

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Configuration of token validation (Pulsar: `tokenSecretKey`/`tokenPublicKey`,
/// `tokenAuthClaim`, `tokenAudienceClaim`/`tokenAudience`, `tokenAllowedClockSkewSeconds`).
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Claim that holds the role (default `sub`).
    pub role_claim: String,
    /// Claim that holds the audience (default `aud`).
    pub audience_claim: String,
    /// If set, tokens must name this audience.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp`/`nbf` (default 0).
    pub leeway: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            role_claim: "sub".into(),
            audience_claim: "aud".into(),
            audience: None,
            leeway: Duration::ZERO,
        }
    }
}

/// A successfully authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedRole {
    /// The role (the `sub` claim).
    pub role: String,
    /// When the token expires (`exp`), if it does.
    pub expires_at: Option<SystemTime>,
}

impl AuthenticatedRole {
    /// Whether the credentials are expired at `now` (no leeway: the broker refreshes early).
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// Time left until expiry at `now` (`None`: never expires; zero: expired).
    pub fn time_to_expiry(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at
            .map(|e| e.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

/// Validates tokens against one verification key. Cheap to clone-share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct TokenAuthenticator {
    key: VerificationKey,
    config: TokenConfig,
}

impl TokenAuthenticator {
    /// An authenticator for `key`.
    pub fn new(key: VerificationKey, config: TokenConfig) -> Self {
        Self { key, config }
    }

    /// From Pulsar-style key sources: exactly one of a secret key (HS*) or a public key
    /// (RS*/PS*/ES*), each `file:...`, `data:;base64,...`, a path or inline base64.
    pub fn from_sources(
        secret_key: Option<&str>,
        public_key: Option<&str>,
        config: TokenConfig,
    ) -> Result<Self, KeyError> {
        let key = match (secret_key, public_key) {
            (Some(s), None) => VerificationKey::hmac(crate::keys::read_key_source(s)?.expose())?,
            (None, Some(p)) => VerificationKey::public(crate::keys::read_key_source(p)?.expose())?,
            _ => {
                return Err(KeyError::Unsupported(
                    "configure exactly one of a secret key and a public key".into(),
                ));
            }
        };
        Ok(Self::new(key, config))
    }

    /// The verification key.
    pub fn key(&self) -> &VerificationKey {
        &self.key
    }

    /// Validates `token` at the current time.
    pub fn authenticate(&self, token: &Token) -> Result<AuthenticatedRole, AuthError> {
        self.authenticate_at(token, SystemTime::now())
    }

    /// Validates `token` at `now`: structure, `alg` (never `none`, only the key's family),
    /// signature, `exp`, `nbf`, audience, role claim.
    pub fn authenticate_at(
        &self,
        token: &Token,
        now: SystemTime,
    ) -> Result<AuthenticatedRole, AuthError> {
        let claims = self.verify(token)?;
        let now_s = unix_seconds(now);
        let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(i64::MAX);
        let exp = numeric_claim(&claims, "exp")?;
        if let Some(exp) = exp
            && exp.saturating_add(leeway) <= now_s
        {
            return Err(AuthError::Expired { exp });
        }
        if let Some(nbf) = numeric_claim(&claims, "nbf")?
            && nbf > now_s.saturating_add(leeway)
        {
            return Err(AuthError::NotYetValid { nbf });
        }
        if let Some(expected) = &self.config.audience {
            let ok = match claims.get(&self.config.audience_claim) {
                Some(Value::String(a)) => a == expected,
                Some(Value::Array(v)) => v.iter().any(|a| a.as_str() == Some(expected)),
                _ => false,
            };
            if !ok {
                return Err(AuthError::InvalidAudience);
            }
        }
        let role = match claims.get(&self.config.role_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(AuthError::MissingRole(self.config.role_claim.clone())),
        };
        let expires_at = exp.map(|e| UNIX_EPOCH + Duration::from_secs(e.max(0).unsigned_abs()));
        Ok(AuthenticatedRole { role, expires_at })
    }

    /// Checks structure, algorithm and signature; returns the claims.
    fn verify(&self, token: &Token) -> Result<Map<String, Value>, AuthError> {
        let t = token.expose();
        if t.is_empty() {
            return Err(AuthError::MissingCredentials);
        }
        if t.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("token too long"));
        }
        let alg = header_alg(t)?;
        let kind = self.key.kind();
        let alg = kind
            .algorithms()
            .iter()
            .copied()
            .find(|a| alg_name(*a) == alg)
            .ok_or_else(|| AuthError::AlgorithmMismatch {
                alg: alg.chars().take(16).collect(),
                key: kind.name(),
            })?;
        let mut v = Validation::new(alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.leeway = 0;
        let data = jsonwebtoken::decode::<Map<String, Value>>(t, self.key.decoding_key(), &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::Crypto(_)
                | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) => AuthError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => AuthError::AlgorithmMismatch {
                    alg: alg_name(alg).into(),
                    key: kind.name(),
                },
                _ => AuthError::Malformed("undecodable token"),
            })?;
        Ok(data.claims)
    }
}

/// The `alg` of a compact JWT, checked for shape first: three base64url parts, a JSON object
/// header with a string `alg` that is not `none`.
fn header_alg(t: &str) -> Result<String, AuthError> {
    let mut parts = t.split('.');
    let (Some(h), Some(p), Some(_s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("not three dot-separated parts"));
    };
    if h.is_empty() || p.is_empty() {
        return Err(AuthError::Malformed("empty header or payload"));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| AuthError::Malformed("header is not base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("header is not a JSON object"))?;
    // RFC 7515 §4.1.11: critical extensions we do not understand make the token invalid.
    if header.contains_key("crit") {
        return Err(AuthError::Malformed("unsupported critical header"));
    }
    match header.get("alg") {
        Some(Value::String(a)) if a.eq_ignore_ascii_case("none") => Err(AuthError::AlgNone),
        Some(Value::String(a)) => Ok(a.clone()),
        _ => Err(AuthError::Malformed("header has no alg")),
    }
}

fn alg_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

/// A JSON object (JWT header or claims).
pub type JsonObject = Map<String, Value>;

/// Decodes a token's header and claims WITHOUT verifying anything (for display only).
pub fn decode_unverified(token: &Token) -> Result<(JsonObject, JsonObject), AuthError> {
    let t = token.expose();
    if t.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed("token too long"));
    }
    let mut parts = t.split('.');
    let (Some(h), Some(p)) = (parts.next(), parts.next()) else {
        return Err(AuthError::Malformed("not three dot-separated parts"));
    };
    let part = |s: &str| -> Result<Map<String, Value>, AuthError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| AuthError::Malformed("part is not base64url"))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| AuthError::Malformed("part is not a JSON object"))
    };
    Ok((part(h)?, part(p)?))
}

/// Parses an algorithm name (`HS256`, `RS256`, `ES256`, ...).
pub fn parse_algorithm(s: &str) -> Option<Algorithm> {
    // Every algorithm some key kind verifies.
    [
        KeyKind::Hmac,
        KeyKind::EcP256,
        KeyKind::EcP384,
        KeyKind::Rsa,
    ]
    .into_iter()
    .flat_map(KeyKind::algorithms)
    .copied()
    .find(|a| alg_name(*a).eq_ignore_ascii_case(s))
}

/// A NumericDate claim: absent → None; a JSON number (integer or fraction, truncated) →
/// seconds; anything else → malformed.
fn numeric_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(u) = n.as_u64() {
                Ok(Some(i64::try_from(u).unwrap_or(i64::MAX)))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() => Ok(Some(f as i64)),
                    _ => Err(AuthError::Malformed("time claim is not a number")),
                }
            }
        }
        Some(_) => Err(AuthError::Malformed("time claim is not a number")),
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Extracts the token of an HTTP `Authorization: Bearer <token>` header value.
pub fn bearer_token(header_value: Option<&[u8]>) -> Result<Token, AuthError> {
    let v = header_value.ok_or(AuthError::MissingCredentials)?;
    let s = std::str::from_utf8(v).map_err(|_| AuthError::Malformed("header is not UTF-8"))?;
    let s = s.trim();
    let (scheme, rest) = s.split_once(' ').unwrap_or((s, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::UnsupportedMethod(
            scheme.chars().take(32).collect(),
        ));
    }
    let t = Token::new(rest);
    if t.is_empty() {
        return Err(AuthError::MissingCredentials);
    }
    Ok(t)
}

/// Extracts the token of a binary-protocol CONNECT (or AUTH_RESPONSE): `auth_method_name` must
/// be `token`; `auth_data` is the token (a `token:` prefix, as some clients send, is removed).
pub fn connect_token(
    auth_method_name: Option<&str>,
    auth_data: Option<&[u8]>,
) -> Result<Token, AuthError> {
    match auth_method_name {
        Some(AUTH_METHOD_TOKEN) | None => {}
        Some(m) => return Err(AuthError::UnsupportedMethod(m.chars().take(32).collect())),
    }
    let data = auth_data.ok_or(AuthError::MissingCredentials)?;
    let t = Token::from_bytes(data);
    let t = match t.expose().strip_prefix("token:") {
        Some(rest) => Token::new(rest),
        None => t,
    };
    if t.is_empty() {
        return Err(AuthError::MissingCredentials);
    }
    Ok(t)
}

/// What a live connection should do about its credentials (see [`AuthSession::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Valid; check again after this long (`None`: never expires).
    Valid(Option<Duration>),
    /// Expired: send AUTH_CHALLENGE (if the client set `supports_auth_refresh`) and close the
    /// connection if no valid AUTH_RESPONSE arrives in time; otherwise close now.
    Expired,
}

/// How often a broker re-checks live connections' credentials by default (Pulsar's
/// `authenticationRefreshCheckSeconds`).
pub const DEFAULT_REFRESH_CHECK: Duration = Duration::from_secs(60);

/// What the connection handler does after [`AuthSession::on_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAction {
    /// Credentials valid: check again after this long.
    Wait(Duration),
    /// Credentials expired: send AUTH_CHALLENGE (`auth_method_name` [`AUTH_METHOD_TOKEN`],
    /// `auth_data` [`REFRESH_AUTH_DATA`]) and check again after the check interval.
    SendChallenge,
    /// Close the connection (expired and the client cannot refresh, or did not in time).
    Close,
}

/// The authentication state of one live connection: the role fixed at CONNECT and the
/// current credentials' expiry. Refreshes must keep the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSession {
    current: AuthenticatedRole,
    challenged: bool,
}

impl AuthSession {
    /// Starts a session from the CONNECT's authentication.
    pub fn new(authenticated: AuthenticatedRole) -> Self {
        Self {
            current: authenticated,
            challenged: false,
        }
    }

    /// The role.
    pub fn role(&self) -> &str {
        &self.current.role
    }

    /// The current credentials.
    pub fn current(&self) -> &AuthenticatedRole {
        &self.current
    }

    /// Whether the credentials are still valid at `now` and when to look again.
    pub fn check(&self, now: SystemTime) -> SessionState {
        if self.current.is_expired_at(now) {
            SessionState::Expired
        } else {
            SessionState::Valid(self.current.time_to_expiry(now))
        }
    }

    /// The periodic check of a live connection (run it every `check_interval`, e.g.
    /// [`DEFAULT_REFRESH_CHECK`], and when a [`SessionAction::Wait`] elapses).
    /// `client_supports_refresh` is CONNECT's `feature_flags.supports_auth_refresh`.
    pub fn on_check(
        &mut self,
        now: SystemTime,
        client_supports_refresh: bool,
        check_interval: Duration,
    ) -> SessionAction {
        match self.check(now) {
            SessionState::Valid(left) => {
                self.challenged = false;
                SessionAction::Wait(left.map_or(check_interval, |l| l.min(check_interval)))
            }
            SessionState::Expired if client_supports_refresh && !self.challenged => {
                self.challenged = true;
                SessionAction::SendChallenge
            }
            SessionState::Expired => {
                crate::metrics::record_connection_expired();
                SessionAction::Close
            }
        }
    }

    /// Applies the token of an AUTH_RESPONSE: it must validate and name the same role.
    pub fn refresh(
        &mut self,
        authenticator: &TokenAuthenticator,
        token: &Token,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let new = authenticator.authenticate_at(token, now)?;
        if new.role != self.current.role {
            return Err(AuthError::RoleChanged);
        }
        self.current = new;
        self.challenged = false;
        Ok(())
    }
}

/// Creates tokens (`strata tokens create`): `{"sub": role, "exp": ...}` signed with a key,
/// header `{"alg": ..., "typ": "JWT"}`.
#[derive(Debug)]
pub struct TokenIssuer {
    key: SigningKey,
}

impl TokenIssuer {
    /// An issuer signing with `key`.
    pub fn new(key: SigningKey) -> Self {
        Self { key }
    }

    /// A token for `subject`, expiring `expiry` after `now` if given.
    pub fn create(
        &self,
        subject: &str,
        expiry: Option<Duration>,
        now: SystemTime,
    ) -> Result<Token, KeyError> {
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::String(subject.to_owned()));
        if let Some(d) = expiry {
            let exp =
                unix_seconds(now).saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            claims.insert("exp".into(), Value::from(exp));
        }
        self.create_with_claims(&claims)
    }

    /// A token with arbitrary claims.
    pub fn create_with_claims(&self, claims: &Map<String, Value>) -> Result<Token, KeyError> {
        let header = Header::new(self.key.algorithm());
        jsonwebtoken::encode(&header, claims, self.key.encoding_key())
            .map(Token::new)
            .map_err(|e| KeyError::Crypto(format!("sign token: {e}")))
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
