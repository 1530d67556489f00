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
use crate::basic::BasicAuthenticator;
use crate::error::{AuthError, AuthzError, KeyError};
use crate::permissions::{BinaryCommand, RestOperation};
use crate::providers::Provider;
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
    /// Authentication providers (Pulsar's `authenticationProviders`): `token`, `tls`, `basic`
    /// or Pulsar's class names. Empty: `token` and `tls` when a token key is given, `basic`
    /// when `basic_auth_conf` is given.
    pub authentication_providers: Vec<String>,
    /// Role of clients that present no credentials, or credentials for a method no provider
    /// answers to (Pulsar's `anonymousUserRole`); authorization then applies to that role.
    pub anonymous_user_role: Option<String>,
    /// htpasswd file of the basic provider: a path, `file:` or `data:;base64,` source (Pulsar's
    /// `basicAuthConf`).
    pub basic_auth_conf: Option<String>,
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
    /// Authentication providers, comma separated: token, tls, basic.
    #[arg(long, env = "STRATA_AUTHENTICATION_PROVIDERS", value_delimiter = ',')]
    pub authentication_providers: Option<Vec<String>>,
    /// Role given to clients without credentials (Pulsar's anonymousUserRole).
    #[arg(long, env = "STRATA_ANONYMOUS_USER_ROLE")]
    pub anonymous_user_role: Option<String>,
    /// htpasswd file of the basic authentication provider.
    #[arg(long, env = "STRATA_BASIC_AUTH_CONF")]
    pub basic_auth_conf: Option<String>,
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
        if let Some(v) = &a.authentication_providers {
            self.authentication_providers = v
                .iter()
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect();
        }
        if let Some(v) = &a.anonymous_user_role {
            self.anonymous_user_role = Some(v.clone());
        }
        if let Some(v) = &a.basic_auth_conf {
            self.basic_auth_conf = Some(v.clone());
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
    /// An authentication provider name that is not `token`, `tls` or `basic`.
    #[error(transparent)]
    UnknownProvider(#[from] crate::providers::UnknownProvider),
}

/// Keys, rules and TLS, loaded. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Security {
    providers: Vec<Provider>,
    authenticator: Option<TokenAuthenticator>,
    basic: Option<BasicAuthenticator>,
    anonymous_role: Option<String>,
    authorizer: Authorizer,
    server_tls: Option<ServerTls>,
}

/// The binary protocol's `auth_method_name` for TLS client certificates.
pub use crate::providers::AUTH_METHOD_TLS;

impl Security {
    /// Everything off (no key configured).
    pub fn disabled() -> Self {
        Self {
            providers: Vec::new(),
            authenticator: None,
            basic: None,
            anonymous_role: None,
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
        let basic = match &c.basic_auth_conf {
            Some(s) => Some(BasicAuthenticator::from_source(s)?),
            None => None,
        };
        let providers = providers(c, authenticator.is_some(), basic.is_some())?;
        let anonymous_role = c
            .anonymous_user_role
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        if anonymous_role.is_some() && providers.is_empty() {
            return Err(SecurityConfigError::Invalid(
                "anonymous_user_role needs an authentication provider",
            ));
        }
        let authorizer = if providers.is_empty() {
            Authorizer::disabled()
        } else {
            Authorizer::new(c.superuser_roles.iter().cloned())
        };
        Ok(Self {
            providers,
            authenticator,
            basic,
            anonymous_role,
            authorizer,
            server_tls,
        })
    }

    /// Whether clients must authenticate (and authorization is enforced).
    pub fn authentication_enabled(&self) -> bool {
        !self.providers.is_empty()
    }

    /// The authentication providers in force.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The anonymous role, if configured.
    pub fn anonymous_role(&self) -> Option<&str> {
        self.anonymous_role.as_deref()
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

    /// CONNECT: `Ok(None)` when authentication is off; else the session of the provider that
    /// `auth_method_name` names: a token in `auth_data` (`token`), the verified TLS client
    /// certificate's CN (`tls`, `tls_client_role` from [`crate::tls::client_role`]),
    /// `user:password` (`basic`). A method no provider answers to gets the anonymous role if
    /// one is configured (Pulsar's rule), otherwise an error.
    pub fn authenticate_connect(
        &self,
        auth_method_name: Option<&str>,
        auth_data: Option<&[u8]>,
        tls_client_role: Option<&str>,
    ) -> Result<Option<AuthSession>, AuthError> {
        if self.providers.is_empty() {
            return Ok(None);
        }
        // Clients that send a token without a method name (old ones) mean `token`.
        let method = match (auth_method_name, auth_data) {
            (Some(m), _) if !m.is_empty() => m,
            (_, Some(d)) if !d.is_empty() => crate::token::AUTH_METHOD_TOKEN,
            _ => "none",
        };
        let r = match Provider::for_method(&self.providers, method) {
            Some(Provider::Tls) => tls_client_role
                .map(|role| AuthenticatedRole {
                    role: role.to_owned(),
                    expires_at: None,
                })
                .ok_or(AuthError::MissingCredentials),
            Some(Provider::Token) => match &self.authenticator {
                Some(auth) => token::connect_token(Some(method), auth_data)
                    .and_then(|t| auth.authenticate(&t)),
                None => Err(AuthError::UnsupportedMethod(method.to_owned())),
            },
            Some(Provider::Basic) => match &self.basic {
                Some(b) => b.authenticate(auth_data.unwrap_or_default()),
                None => Err(AuthError::UnsupportedMethod(method.to_owned())),
            },
            None => self.anonymous().ok_or_else(|| {
                if method == "none" {
                    AuthError::MissingCredentials
                } else {
                    AuthError::UnsupportedMethod(method.chars().take(32).collect())
                }
            }),
        };
        record(r).map(|a| Some(AuthSession::new(a)))
    }

    fn anonymous(&self) -> Option<AuthenticatedRole> {
        self.anonymous_role.as_ref().map(|r| AuthenticatedRole {
            role: r.clone(),
            expires_at: None,
        })
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

    /// HTTP: `Ok(None)` when authentication is off; else the role of the `Authorization`
    /// header (`Bearer` token, `Basic` user:password); without the header, the verified TLS
    /// client certificate's CN, else the anonymous role. Wrong credentials are refused, never
    /// downgraded to the anonymous role.
    pub fn authenticate_http(
        &self,
        authorization: Option<&[u8]>,
        tls_client_role: Option<&str>,
    ) -> Result<Option<AuthenticatedRole>, AuthError> {
        if self.providers.is_empty() {
            return Ok(None);
        }
        let enabled = |p| self.providers.contains(&p);
        let r = match (authorization, tls_client_role) {
            (None, Some(role)) if enabled(Provider::Tls) => Ok(AuthenticatedRole {
                role: role.to_owned(),
                expires_at: None,
            }),
            (None, _) => self.anonymous().ok_or(AuthError::MissingCredentials),
            (Some(h), _) => match crate::providers::http_scheme(h).as_deref() {
                Some("bearer") if enabled(Provider::Token) => match &self.authenticator {
                    Some(auth) => token::bearer_token(Some(h)).and_then(|t| auth.authenticate(&t)),
                    None => Err(AuthError::UnsupportedMethod("bearer".into())),
                },
                Some("basic") if enabled(Provider::Basic) => match &self.basic {
                    Some(b) => b.authenticate_header(h),
                    None => Err(AuthError::UnsupportedMethod("basic".into())),
                },
                Some(other) => Err(AuthError::UnsupportedMethod(other.to_owned())),
                None => Err(AuthError::Malformed("header is not UTF-8")),
            },
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

/// The providers in force: the configured list, or those the given keys imply.
fn providers(
    c: &SecurityConfig,
    token_key: bool,
    basic_conf: bool,
) -> Result<Vec<Provider>, SecurityConfigError> {
    let mut out: Vec<Provider> = Vec::new();
    if c.authentication_providers.is_empty() {
        if token_key {
            out.extend([Provider::Token, Provider::Tls]);
        }
        if basic_conf {
            out.push(Provider::Basic);
        }
        return Ok(out);
    }
    for name in &c.authentication_providers {
        let p = Provider::parse(name)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.contains(&Provider::Token) && !token_key {
        return Err(SecurityConfigError::Invalid(
            "the token provider needs auth_token_secret_key_file or auth_token_public_key_file",
        ));
    }
    if out.contains(&Provider::Basic) && !basic_conf {
        return Err(SecurityConfigError::Invalid(
            "the basic provider needs basic_auth_conf (an htpasswd file)",
        ));
    }
    if out.contains(&Provider::Tls) && c.tls_trust_certs_file.is_none() {
        return Err(SecurityConfigError::Invalid(
            "the tls provider needs tls_trust_certs_file (the CA of client certificates)",
        ));
    }
    Ok(out)
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
