//! Strata's security core (docs filled in below).

pub mod authz;
pub mod cli;
pub mod error;
pub mod keys;
pub mod permissions;
pub mod redact;
pub mod tls;
pub mod token;

pub use authz::{Authorizer, NamespaceOperation, Resource, TopicOperation};
pub use error::{AuthError, AuthzError, KeyError};
pub use keys::{KeyKind, SigningKey, VerificationKey};
pub use permissions::{BinaryCommand, Permission, RestOperation, Scope};
pub use redact::{Secret, Token};
pub use token::{
    AuthSession, AuthenticatedRole, SessionState, TokenAuthenticator, TokenConfig, TokenIssuer,
};
