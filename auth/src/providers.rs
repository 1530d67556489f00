//! The authentication providers a broker runs (Pulsar's `authenticationProviders` list) and
//! how a client's credentials pick one.
//!
//! - Binary protocol: CONNECT's `auth_method_name` names the provider (`token`, `tls`,
//!   `basic`). A name no configured provider answers to (or no name at all) gets the anonymous
//!   role when `anonymous_user_role` is set, as in Pulsar's `ServerCnx`; otherwise it is
//!   refused.
//! - HTTP: the `Authorization` scheme picks the provider (`Bearer` → token, `Basic` → basic);
//!   without the header, a verified TLS client certificate (tls provider), else the anonymous
//!   role, else 401. Credentials that are given and wrong are refused, never downgraded to the
//!   anonymous role.

/// The binary protocol's `auth_method_name` for TLS client certificates.
pub const AUTH_METHOD_TLS: &str = "tls";

/// A provider name that is not `token`, `tls` or `basic`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown authentication provider `{0}` (known: token, tls, basic)")]
pub struct UnknownProvider(pub String);

/// One authentication provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// JWT tokens (`AuthenticationProviderToken`), `auth_method_name = "token"`.
    Token,
    /// TLS client certificates, role = the certificate's CN (`AuthenticationProviderTls`),
    /// `auth_method_name = "tls"`.
    Tls,
    /// htpasswd user names and passwords (`AuthenticationProviderBasic`),
    /// `auth_method_name = "basic"`.
    Basic,
}

impl Provider {
    /// Parses a provider name: `token`, `tls`, `basic`, or Pulsar's class names
    /// (`org.apache.pulsar.broker.authentication.AuthenticationProviderToken`, ...).
    pub fn parse(name: &str) -> Result<Self, UnknownProvider> {
        let n = name.trim();
        let short = n.rsplit('.').next().unwrap_or(n);
        let short = short
            .strip_prefix("AuthenticationProvider")
            .unwrap_or(short);
        match short.to_ascii_lowercase().as_str() {
            "token" => Ok(Self::Token),
            "tls" => Ok(Self::Tls),
            "basic" => Ok(Self::Basic),
            _ => Err(UnknownProvider(n.to_owned())),
        }
    }

    /// The binary protocol's `auth_method_name` of this provider.
    pub fn method_name(self) -> &'static str {
        match self {
            Self::Token => crate::token::AUTH_METHOD_TOKEN,
            Self::Tls => AUTH_METHOD_TLS,
            Self::Basic => crate::basic::AUTH_METHOD_BASIC,
        }
    }

    /// The provider answering to `auth_method_name`, if it is one of `enabled`.
    pub fn for_method(enabled: &[Provider], method: &str) -> Option<Provider> {
        enabled.iter().copied().find(|p| p.method_name() == method)
    }
}

/// The HTTP `Authorization` scheme of a header value (`Bearer`, `Basic`, ...), lowercased.
pub fn http_scheme(header: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(header).ok()?.trim();
    let scheme = s.split_once(' ').map_or(s, |(a, _)| a);
    Some(
        scheme
            .chars()
            .take(32)
            .collect::<String>()
            .to_ascii_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_pulsar_class_names() {
        assert_eq!(Provider::parse("token").unwrap(), Provider::Token);
        assert_eq!(Provider::parse(" TLS ").unwrap(), Provider::Tls);
        assert_eq!(
            Provider::parse("org.apache.pulsar.broker.authentication.AuthenticationProviderBasic")
                .unwrap(),
            Provider::Basic
        );
        assert_eq!(
            Provider::parse("org.apache.pulsar.broker.authentication.AuthenticationProviderToken")
                .unwrap(),
            Provider::Token
        );
        assert!(Provider::parse("kerberos").is_err());
        let enabled = [Provider::Tls, Provider::Basic];
        assert_eq!(
            Provider::for_method(&enabled, "basic"),
            Some(Provider::Basic)
        );
        assert_eq!(Provider::for_method(&enabled, "token"), None);
        assert_eq!(http_scheme(b"Basic abc").as_deref(), Some("basic"));
        assert_eq!(http_scheme(b"bearer").as_deref(), Some("bearer"));
    }
}
