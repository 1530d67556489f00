//! Basic authentication (Pulsar's `AuthenticationProviderBasic`): user names and password
//! hashes from an Apache `htpasswd` file.
//!
//! Accepted hash forms, as `htpasswd` writes them: bcrypt (`$2y$`, `$2a$`, `$2b$`), Apache
//! MD5 (`$apr1$`), SHA-1 (`{SHA}` + base64), crypt(3) DES, and the glibc crypt forms (`$1$`,
//! `$5$`, `$6$`) Pulsar's provider also reads. The `crypt3_rs` crate computes the crypt forms;
//! `{SHA}` is SHA-1 from ring.
//!
//! Credentials: `user:password` in CONNECT's `auth_data` (`auth_method_name = "basic"`), or
//! `Authorization: Basic base64(user:password)` on HTTP. The role is the user name. Passwords
//! and hashes never reach an error message or a log line.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{AuthError, KeyError};
use crate::token::AuthenticatedRole;

/// The binary protocol's `auth_method_name` of basic authentication.
pub const AUTH_METHOD_BASIC: &str = "basic";

/// Longest credentials accepted (user:password), bytes.
const MAX_CREDENTIALS: usize = 4096;

/// The users of an htpasswd file.
pub struct BasicAuthenticator {
    users: HashMap<String, String>,
}

impl std::fmt::Debug for BasicAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the hashes
        f.debug_struct("BasicAuthenticator")
            .field("users", &self.users.len())
            .finish()
    }
}

impl BasicAuthenticator {
    /// Parses htpasswd text: `user:hash` per line; blank lines and `#` comments skipped.
    pub fn from_htpasswd(text: &str) -> Result<Self, KeyError> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(KeyError::Unsupported(format!(
                    "htpasswd line {}: no `user:hash`",
                    n + 1
                )));
            };
            if user.is_empty() || hash.is_empty() {
                return Err(KeyError::Unsupported(format!(
                    "htpasswd line {}: empty user or hash",
                    n + 1
                )));
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Self { users })
    }

    /// Loads an htpasswd file: a path, `file:///path`, or `data:;base64,...` (Pulsar's
    /// `basicAuthConf` takes a path or base64 text).
    pub fn from_source(source: &str) -> Result<Self, KeyError> {
        let bytes = crate::keys::read_key_source(source)?;
        let text = String::from_utf8(bytes.expose().clone())
            .map_err(|_| KeyError::Unsupported("htpasswd file is not UTF-8".into()))?;
        Self::from_htpasswd(&text)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks `user:password` (CONNECT `auth_data`).
    pub fn authenticate(&self, credentials: &[u8]) -> Result<AuthenticatedRole, AuthError> {
        if credentials.is_empty() {
            return Err(AuthError::MissingCredentials);
        }
        if credentials.len() > MAX_CREDENTIALS {
            return Err(AuthError::Malformed("credentials too long"));
        }
        let s = std::str::from_utf8(credentials)
            .map_err(|_| AuthError::Malformed("credentials are not UTF-8"))?;
        let (user, password) = s
            .split_once(':')
            .ok_or(AuthError::Malformed("credentials are not user:password"))?;
        match self.users.get(user) {
            Some(hash) if verify(password, hash) => Ok(AuthenticatedRole {
                role: user.to_owned(),
                expires_at: None,
            }),
            // Same error for an unknown user and a wrong password.
            _ => Err(AuthError::BadPassword),
        }
    }

    /// Checks an `Authorization: Basic base64(user:password)` header value.
    pub fn authenticate_header(&self, header: &[u8]) -> Result<AuthenticatedRole, AuthError> {
        let encoded = basic_credentials(header).ok_or(AuthError::MissingCredentials)?;
        if encoded.len() > MAX_CREDENTIALS * 2 {
            return Err(AuthError::Malformed("credentials too long"));
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .map_err(|_| AuthError::Malformed("basic credentials are not base64"))?;
        self.authenticate(&decoded)
    }
}

/// The base64 part of an `Authorization: Basic ...` value (scheme case-insensitive).
pub fn basic_credentials(header: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = s.split_once(' ')?;
    scheme.eq_ignore_ascii_case("basic").then_some(rest)
}

/// Whether `password` matches an htpasswd `hash`.
fn verify(password: &str, hash: &str) -> bool {
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        let digest =
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes());
        let Ok(expected) = STANDARD.decode(b64) else {
            return false;
        };
        return constant_time_eq(digest.as_ref(), &expected);
    }
    // bcrypt reads at most 72 bytes; htpasswd's `$2y$` is bcrypt's `$2b$`.
    crypt3_rs::unix::verify(password, hash)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by Apache's `htpasswd` (2.4) for the password `123456` / `password`.
    const APR1: &str = "admin:$apr1$FG4AO6aX$KGYPuMoLUou3i6vUkPUUf.";

    #[test]
    fn apache_md5_from_the_upstream_suite() {
        let a = BasicAuthenticator::from_htpasswd(APR1).unwrap();
        assert_eq!(a.authenticate(b"admin:123456").unwrap().role, "admin");
        assert_eq!(
            a.authenticate(b"admin:1234567"),
            Err(AuthError::BadPassword)
        );
        assert_eq!(a.authenticate(b"bob:123456"), Err(AuthError::BadPassword));
        assert!(a.authenticate(b"admin").is_err());
        assert_eq!(a.authenticate(b""), Err(AuthError::MissingCredentials));
        let header = format!("Basic {}", STANDARD.encode("admin:123456"));
        assert_eq!(
            a.authenticate_header(header.as_bytes()).unwrap().role,
            "admin"
        );
        assert!(a.authenticate_header(b"Bearer abc").is_err());
        assert!(a.authenticate_header(b"Basic !!!").is_err());
    }

    #[test]
    fn every_htpasswd_form() {
        // bcrypt (htpasswd -B), SHA-1 (htpasswd -s), crypt (htpasswd -d), glibc SHA-512 crypt.
        let text = "\
# comment
b:$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe
s:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=
d:aZGJuE6EXrjEE
m:$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0

";
        let a = BasicAuthenticator::from_htpasswd(text).unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a.authenticate(b"b:password").unwrap().role, "b");
        assert!(a.authenticate(b"b:passwore").is_err());
        assert_eq!(a.authenticate(b"s:password").unwrap().role, "s");
        assert!(a.authenticate(b"s:Password").is_err());
        assert_eq!(a.authenticate(b"d:test").unwrap().role, "d");
        assert!(a.authenticate(b"d:tesT").is_err());
        assert_eq!(a.authenticate(b"m:password").unwrap().role, "m");
        assert!(a.authenticate(b"m:passwor").is_err());
    }

    #[test]
    fn malformed_files_and_no_secret_in_debug() {
        assert!(BasicAuthenticator::from_htpasswd("no-colon").is_err());
        assert!(BasicAuthenticator::from_htpasswd(":hash").is_err());
        let a = BasicAuthenticator::from_htpasswd(APR1).unwrap();
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("apr1"), "{dbg}");
        let e = a
            .authenticate(b"admin:wrong-secret")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("wrong-secret"), "{e}");
        // a garbage hash never matches (and never panics)
        let g = BasicAuthenticator::from_htpasswd("x:$2y$99$garbage\ny:$apr1$").unwrap();
        assert!(g.authenticate(b"x:garbage").is_err());
        assert!(g.authenticate(b"y:").is_err());
    }
}
