//! One place for the broker's security settings and the objects built from them.
//!
//! [`SecurityConfig`] is the serde form (a config file section), [`SecurityArgs`] the clap
//! flags of `strata standalone` / `strata broker` (flags override the file through
//! [`SecurityConfig::apply_args`]); [`Security::from_config`] loads keys and certificates once
//! at start-up and offers the calls the connection handler and the HTTP layer make.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::authz::{Authorizer, Resource};
use crate::error::{AuthError, AuthzError, KeyError};
use crate::permissions::{BinaryCommand, RestOperation};
use crate::tls::{ClientAuth, ServerTls, TlsError};
use crate::token::{self, AuthSession, AuthenticatedRole, TokenAuthenticator, TokenConfig};

/// Security settings. Giving a token key turns authentication and authorization on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// HS256 secret key: a path or a Pulsar key source (`file:`, `data:;base64,`).
    pub auth_token_secret_key_file: Option<String>,
    /// RS256/ES256 public key: a path or a Pulsar key source.
    pub auth_token_public_key_file: Option<String>,
    /// Claim holding the role (default `sub`).
    pub auth_token_role_claim: Option<String>,
    /// Required audience (`aud`), if any.
    pub auth_token_audience: Option<String>,
    /// Clock skew tolerated on `exp`/`nbf`, seconds (default 0).
    pub auth_token_allowed_clock_skew_seconds: u64,
    /// Roles allowed everything.
    pub superuser_roles: Vec<String>,
    /// PEM certificate chain of both TLS ports.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of both TLS ports.
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates that sign client certificates (mTLS).
    pub tls_trust_certs_file: Option<PathBuf>,
    /// Refuse TLS clients without a certificate signed by `tls_trust_certs_file`.
    pub tls_require_client_cert: bool,
}

/// Command-line flags for [`SecurityConfig`] (flatten them into the role's clap Args).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecurityArgs {
    /// HS256 secret key file (or `file:`/`data:;base64,` source); turns auth on.
    #[arg(long, env = "STRATA_AUTH_TOKEN_SECRET_KEY_FILE")]
    pub auth_token_secret_key_file: Option<String>,
    /// RS256/ES256 public key file (PEM, DER or base64 DER); turns auth on.
    #[arg(long, env = "STRATA_AUTH_TOKEN_PUBLIC_KEY_FILE")]
    pub auth_token_public_key_file: Option<String>,
    /// Superuser roles, comma separated.
    #[arg(long, env = "STRATA_SUPERUSER_ROLES", value_delimiter = ',')]
    pub superuser_roles: Option<Vec<String>>,
    /// TLS certificate chain (PEM) for the TLS ports.
    #[arg(long, env = "STRATA_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "STRATA_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that sign client certificates.
    #[arg(long, env = "STRATA_TLS_TRUST_CERTS_FILE")]
    pub tls_trust_certs_file: Option<PathBuf>,
    /// Require client certificates (mTLS).
    #[arg(long)]
    pub tls_require_client_cert: bool,
}

impl SecurityConfig {
    /// Overrides file settings with the flags that were given.
    pub fn apply_args(&mut self, a: &SecurityArgs) {
        if let Some(v) = &a.auth_token_secret_key_file {
            self.auth_token_secret_key_file = Some(v.clone());
        }
        if let Some(v) = &a.auth_token_public_key_file {
            self.auth_token_public_key_file = Some(v.clone());
        }
        if let Some(v) = &a.superuser_roles {
            self.superuser_roles = v
                .iter()
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect();
        }
        if let Some(v) = &a.tls_cert_file {
            self.tls_cert_file = Some(v.clone());
        }
        if let Some(v) = &a.tls_key_file {
            self.tls_key_file = Some(v.clone());
        }
        if let Some(v) = &a.tls_trust_certs_file {
            self.tls_trust_certs_file = Some(v.clone());
        }
        if a.tls_require_client_cert {
            self.tls_require_client_cert = true;
        }
    }
}

/// Invalid security settings (start-up errors).
#[derive(Debug, thiserror::Error)]
pub enum SecurityConfigError {
    /// A token key could not be loaded.
    #[error("load token key: {0}")]
    Key(#[from] KeyError),
    /// TLS could not be configured.
    #[error("configure TLS: {0}")]
    Tls(#[from] TlsError),
    /// Inconsistent settings.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Keys, rules and TLS, loaded. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Security {
    authenticator: Option<TokenAuthenticator>,
    authorizer: Authorizer,
    server_tls: Option<ServerTls>,
}

/// The binary protocol's `auth_method_name` for TLS client certificates.
pub const AUTH_METHOD_TLS: &str = "tls";

impl Security {
    /// Everything off (no key configured).
    pub fn disabled() -> Self {
        Self {
            authenticator: None,
            authorizer: Authorizer::disabled(),
            server_tls: None,
        }
    }

    /// Loads keys and checks the TLS files (reads files: call at start-up, off the runtime
    /// or before it serves).
    pub fn from_config(c: &SecurityConfig) -> Result<Self, SecurityConfigError> {
        let server_tls = match (&c.tls_cert_file, &c.tls_key_file) {
            (Some(cert), Some(key)) => {
                let client_auth = match (&c.tls_trust_certs_file, c.tls_require_client_cert) {
                    (Some(ca), true) => ClientAuth::Required(ca.clone()),
                    (Some(ca), false) => ClientAuth::Optional(ca.clone()),
                    (None, true) => {
                        return Err(SecurityConfigError::Invalid(
                            "tls_require_client_cert needs tls_trust_certs_file",
                        ));
                    }
                    (None, false) => ClientAuth::None,
                };
                let t = ServerTls::new(cert, key).with_client_auth(client_auth);
                t.server_config()?; // fail at start-up, not at the first connection
                Some(t)
            }
            (None, None) => None,
            _ => {
                return Err(SecurityConfigError::Invalid(
                    "tls_cert_file and tls_key_file go together",
                ));
            }
        };
        let config = TokenConfig {
            role_claim: c
                .auth_token_role_claim
                .clone()
                .unwrap_or_else(|| "sub".into()),
            audience: c.auth_token_audience.clone(),
            leeway: Duration::from_secs(c.auth_token_allowed_clock_skew_seconds),
            ..TokenConfig::default()
        };
        let authenticator = match (&c.auth_token_secret_key_file, &c.auth_token_public_key_file) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(SecurityConfigError::Invalid(
                    "give either a token secret key or a token public key, not both",
                ));
            }
            (s, p) => Some(TokenAuthenticator::from_sources(
                s.as_deref().map(source).as_deref(),
                p.as_deref().map(source).as_deref(),
                config,
            )?),
        };
        let authorizer = if authenticator.is_some() {
            Authorizer::new(c.superuser_roles.iter().cloned())
        } else {
            Authorizer::disabled()
        };
        Ok(Self {
            authenticator,
            authorizer,
            server_tls,
        })
    }

    /// Whether clients must authenticate (and authorization is enforced).
    pub fn authentication_enabled(&self) -> bool {
        self.authenticator.is_some()
    }

    /// The authorizer (disabled when authentication is off).
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// The token authenticator, if configured.
    pub fn authenticator(&self) -> Option<&TokenAuthenticator> {
        self.authenticator.as_ref()
    }

    /// TLS settings of the TLS ports, if configured ([`ServerTls::acceptor`]).
    pub fn server_tls(&self) -> Option<&ServerTls> {
        self.server_tls.as_ref()
    }

    /// CONNECT: `Ok(None)` when authentication is off; else the session of the token in
    /// `auth_data` (`auth_method_name` `token`), or of the verified TLS client certificate's
    /// CN (`auth_method_name` `tls`, `tls_client_role` from [`crate::tls::client_role`]).
    pub fn authenticate_connect(
        &self,
        auth_method_name: Option<&str>,
        auth_data: Option<&[u8]>,
        tls_client_role: Option<&str>,
    ) -> Result<Option<AuthSession>, AuthError> {
        let Some(auth) = &self.authenticator else {
            return Ok(None);
        };
        let r = if auth_method_name == Some(AUTH_METHOD_TLS) {
            tls_client_role
                .map(|role| AuthenticatedRole {
                    role: role.to_owned(),
                    expires_at: None,
                })
                .ok_or(AuthError::MissingCredentials)
        } else {
            token::connect_token(auth_method_name, auth_data).and_then(|t| auth.authenticate(&t))
        };
        record(r).map(|a| Some(AuthSession::new(a)))
    }

    /// AUTH_RESPONSE after an AUTH_CHALLENGE: a valid token for the same role.
    pub fn refresh(
        &self,
        session: &mut AuthSession,
        auth_method_name: Option<&str>,
        auth_data: Option<&[u8]>,
    ) -> Result<(), AuthError> {
        let Some(auth) = &self.authenticator else {
            return Ok(());
        };
        let r = token::connect_token(auth_method_name, auth_data)
            .and_then(|t| session.refresh(auth, &t, SystemTime::now()));
        if let Err(e) = &r {
            crate::metrics::record_failure(e);
        }
        r
    }

    /// HTTP: `Ok(None)` when authentication is off; else the role of the `Authorization:
    /// Bearer` header value (or of the verified TLS client certificate if there is no header).
    pub fn authenticate_http(
        &self,
        authorization: Option<&[u8]>,
        tls_client_role: Option<&str>,
    ) -> Result<Option<AuthenticatedRole>, AuthError> {
        let Some(auth) = &self.authenticator else {
            return Ok(None);
        };
        let r = match (authorization, tls_client_role) {
            (None, Some(role)) => Ok(AuthenticatedRole {
                role: role.to_owned(),
                expires_at: None,
            }),
            (h, _) => token::bearer_token(h).and_then(|t| auth.authenticate(&t)),
        };
        record(r).map(Some)
    }

    /// [`Authorizer::check_command`] with the refusal counted.
    pub fn check_command(
        &self,
        role: Option<&str>,
        command: BinaryCommand,
        resource: &Resource<'_>,
    ) -> Result<(), AuthzError> {
        let r = self.authorizer.check_command(role, command, resource);
        if let Err(e) = &r {
            crate::metrics::record_denied(e);
        }
        r
    }

    /// [`Authorizer::check_rest`] with the refusal counted.
    pub fn check_rest(
        &self,
        role: Option<&str>,
        op: RestOperation,
        resource: &Resource<'_>,
    ) -> Result<(), AuthzError> {
        let r = self.authorizer.check_rest(role, op, resource);
        if let Err(e) = &r {
            crate::metrics::record_denied(e);
        }
        r
    }
}

/// A bare path becomes a `file:` source; sources stay as they are.
fn source(s: &str) -> String {
    if s.starts_with("file:") || s.starts_with("data:") {
        s.to_owned()
    } else {
        format!("file:{s}")
    }
}

fn record(r: Result<AuthenticatedRole, AuthError>) -> Result<AuthenticatedRole, AuthError> {
    match &r {
        Ok(a) => crate::metrics::record_success(a.time_to_expiry(SystemTime::now())),
        Err(e) => {
            // the reason only: never the token
            tracing::debug!(reason = e.kind(), "authentication failed");
            crate::metrics::record_failure(e);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use strata_meta::model::{Policies, TenantInfo, TopicPath};

    use super::*;
    use crate::keys::SigningKey;
    use crate::token::TokenIssuer;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn secured() -> (tempfile::TempDir, Security, TokenIssuer) {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secret.key");
        std::fs::write(&key, SECRET).unwrap();
        let mut c = SecurityConfig::default();
        c.apply_args(&SecurityArgs {
            auth_token_secret_key_file: Some(key.display().to_string()),
            superuser_roles: Some(vec!["admin".into(), " ops ".into(), String::new()]),
            ..SecurityArgs::default()
        });
        assert_eq!(c.superuser_roles, vec!["admin", "ops"]);
        let s = Security::from_config(&c).unwrap();
        let iss = TokenIssuer::new(SigningKey::hmac(SECRET, Algorithm::HS256).unwrap());
        (dir, s, iss)
    }

    #[test]
    fn disabled_by_default() {
        let s = Security::from_config(&SecurityConfig::default()).unwrap();
        assert!(!s.authentication_enabled());
        assert_eq!(s.authenticate_connect(None, None, None), Ok(None));
        assert_eq!(s.authenticate_http(None, None), Ok(None));
        let t = TopicPath::parse("persistent://a/b/c").unwrap();
        let res = Resource::topic(&t, None, None);
        assert!(s.check_command(None, BinaryCommand::Producer, &res).is_ok());
        assert!(Security::disabled().server_tls().is_none());
    }

    #[test]
    fn a_key_turns_authentication_and_authorization_on() {
        let (_d, s, iss) = secured();
        assert!(s.authentication_enabled());
        assert!(s.authorizer().is_enabled());
        assert!(s.authorizer().is_superuser(Some("ops")));
        let tok = iss
            .create("admin", Some(Duration::from_secs(600)), SystemTime::now())
            .unwrap();
        let session = s
            .authenticate_connect(Some("token"), Some(tok.expose().as_bytes()), None)
            .unwrap()
            .unwrap();
        assert_eq!(session.role(), "admin");
        let header = format!("Bearer {}", tok.expose());
        let r = s
            .authenticate_http(Some(header.as_bytes()), None)
            .unwrap()
            .unwrap();
        assert_eq!(r.role, "admin");
        // no credentials, bad credentials
        assert_eq!(
            s.authenticate_connect(Some("token"), None, None),
            Err(AuthError::MissingCredentials)
        );
        assert_eq!(
            s.authenticate_http(None, None),
            Err(AuthError::MissingCredentials)
        );
        assert!(
            s.authenticate_connect(Some("token"), Some(b"x.y.z"), None)
                .is_err()
        );
        // TLS client certificate role
        let tls = s
            .authenticate_connect(Some("tls"), None, Some("alice"))
            .unwrap()
            .unwrap();
        assert_eq!(tls.role(), "alice");
        assert!(s.authenticate_connect(Some("tls"), None, None).is_err());
        // authorization is on
        let t = TopicPath::parse("persistent://a/b/c").unwrap();
        let (ti, p) = (TenantInfo::default(), Policies::default());
        let res = Resource::topic(&t, Some(&ti), Some(&p));
        assert!(
            s.check_command(Some("admin"), BinaryCommand::Producer, &res)
                .is_ok()
        );
        assert!(
            s.check_command(Some("nobody"), BinaryCommand::Producer, &res)
                .is_err()
        );
        assert!(
            s.check_rest(None, RestOperation::Metrics, &Resource::cluster())
                .is_err()
        );
        // refresh keeps the role
        let mut session = session;
        let other = iss.create("nobody", None, SystemTime::now()).unwrap();
        assert_eq!(
            s.refresh(&mut session, Some("token"), Some(other.expose().as_bytes())),
            Err(AuthError::RoleChanged)
        );
        let again = iss.create("admin", None, SystemTime::now()).unwrap();
        s.refresh(&mut session, Some("token"), Some(again.expose().as_bytes()))
            .unwrap();
        // metrics were recorded
        let mut reg = prometheus_client::registry::Registry::default();
        crate::metrics::register(&mut reg);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(
            text.contains("pulsar_authentication_success_total"),
            "{text}"
        );
        assert!(text.contains(r#"reason="missing_credentials""#), "{text}");
        assert!(text.contains("strata_authorization_denied_total"), "{text}");
        assert!(!text.contains(tok.expose()));
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        let both = SecurityConfig {
            auth_token_secret_key_file: Some("data:;base64,AAAA".into()),
            auth_token_public_key_file: Some("data:;base64,AAAA".into()),
            ..SecurityConfig::default()
        };
        assert!(matches!(
            Security::from_config(&both),
            Err(SecurityConfigError::Invalid(_))
        ));
        let half_tls = SecurityConfig {
            tls_cert_file: Some("/x".into()),
            ..SecurityConfig::default()
        };
        assert!(matches!(
            Security::from_config(&half_tls),
            Err(SecurityConfigError::Invalid(_))
        ));
        let missing = SecurityConfig {
            auth_token_public_key_file: Some("/nonexistent/strata.pub".into()),
            ..SecurityConfig::default()
        };
        assert!(matches!(
            Security::from_config(&missing),
            Err(SecurityConfigError::Key(_))
        ));
        let toml_err = toml::from_str::<SecurityConfig>("unknown_key = 1");
        assert!(toml_err.is_err());
        let ok: SecurityConfig =
            toml::from_str("superuser_roles = [\"a\"]\ntls_require_client_cert = false").unwrap();
        assert_eq!(ok.superuser_roles, vec!["a"]);
    }
}
