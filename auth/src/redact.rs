//! Wrappers that keep secrets out of `Debug`, `Display` and therefore out of logs.
//!
//! A [`Secret`] prints as `[redacted]`; a [`Token`] as `[redacted]` with its length. Both
//! expose their content only through `expose()`, which is easy to grep for.

use std::fmt;

/// Secret bytes (an HMAC key, a private key, a token). `Debug`/`Display` never show them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value. Never log it.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

/// A bearer token as received from a client (CONNECT `auth_data`, `Authorization: Bearer`,
/// AUTH_RESPONSE) or as created by [`crate::TokenIssuer`]. `Debug`/`Display` print
/// `Token([redacted], N bytes)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token string (surrounding whitespace, e.g. a trailing newline from a file, is
    /// removed).
    pub fn new(token: impl Into<String>) -> Self {
        let s: String = token.into();
        let trimmed = s.trim();
        if trimmed.len() == s.len() {
            Self(s)
        } else {
            Self(trimmed.to_owned())
        }
    }

    /// A token from raw bytes (the binary protocol carries `auth_data` as bytes). Invalid
    /// UTF-8 is replaced, which then fails validation as malformed.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::new(String::from_utf8_lossy(bytes).into_owned())
    }

    /// The token text. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token([redacted], {} bytes)", self.0.len())
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted token]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_tokens_never_print() {
        let s = Secret::new(b"super-secret-key-bytes".to_vec());
        let t = Token::new("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl\n");
        for out in [
            format!("{s:?}"),
            format!("{s}"),
            format!("{t:?}"),
            format!("{t}"),
            format!("{:#?}", (&s, &t)),
        ] {
            assert!(!out.contains("super"), "{out}");
            assert!(!out.contains("eyJ"), "{out}");
            assert!(!out.contains("c2ln"), "{out}");
        }
        assert_eq!(
            t.expose(),
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl"
        );
        assert_eq!(s.expose().len(), 22);
    }
}
