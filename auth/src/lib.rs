//! Strata's security core (docs filled in below).

pub mod error;
pub mod keys;
pub mod redact;
pub mod token;

pub use error::{AuthError, AuthzError, KeyError};
pub use keys::{KeyKind, SigningKey, VerificationKey};
pub use redact::{Secret, Token};
pub use token::{
    AuthSession, AuthenticatedRole, SessionState, TokenAuthenticator, TokenConfig, TokenIssuer,
};
