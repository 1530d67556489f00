//! Strata's security core: who a client is (JWT tokens, TLS client certificates) and what it
//! may do (Pulsar's authorization model), plus `strata tokens` and TLS configuration helpers.
//! The broker calls it from its binary-protocol connection handler and its HTTP handlers; the
//! crate does no I/O on request paths (keys and certificates are read at start-up).
//!
//! # Wiring ([`config`], [`metrics`])
//!
//! [`SecurityArgs`] (clap: `--auth-token-secret-key-file`, `--auth-token-public-key-file`,
//! `--superuser-roles a,b`, `--tls-cert-file`, `--tls-key-file`, `--tls-trust-certs-file`,
//! `--tls-require-client-cert`) override a [`SecurityConfig`] (serde, unknown keys refused);
//! [`Security::from_config`] loads everything at start-up (a token key turns authentication and
//! authorization on). Then per connection / request: [`Security::authenticate_connect`],
//! [`Security::refresh`] (AUTH_RESPONSE), [`Security::authenticate_http`],
//! [`Security::check_command`], [`Security::check_rest`], and [`Security::server_tls`] for the
//! TLS listeners. [`metrics::register`] adds `pulsar_authentication_success_total`,
//! `pulsar_authentication_failures_total{reason}`, `pulsar_expired_token_total`,
//! `pulsar_expiring_token_minutes` and `strata_authorization_denied_total` to `/metrics`.
//!
//! # Authentication ([`token`], [`keys`])
//!
//! - [`TokenAuthenticator::from_sources`]`(secret_key, public_key, TokenConfig)`: exactly one
//!   Pulsar key source (`file:///path`, `data:;base64,...`, a path, inline base64). A secret
//!   key (raw bytes, ≥ 32) verifies HS256/384/512; an RSA public key RS*/PS*; an EC P-256 key
//!   ES256 (P-384: ES384). Public keys may be PEM, DER or base64 DER.
//! - [`TokenAuthenticator::authenticate`]`(&Token) -> Result<AuthenticatedRole, AuthError>`:
//!   refuses `alg: none`, any algorithm outside the key's family (HS256 signed with the RSA
//!   public key: algorithm confusion), bad signatures, `exp` ≤ now, `nbf` > now (optional
//!   leeway), a configured audience missing, no `sub` (or the configured role claim),
//!   malformed or > 64 KiB input. The role is `sub`; `expires_at` is `exp`.
//! - Credentials: [`token::connect_token`]`(auth_method_name, auth_data)` for CONNECT and
//!   AUTH_RESPONSE (`auth_method_name = "token"`), [`token::bearer_token`]`(Authorization
//!   header)` for HTTP.
//! - Live connections: [`AuthSession`] holds the role and expiry. Call
//!   [`AuthSession::on_check`] every [`token::DEFAULT_REFRESH_CHECK`] (and when its `Wait`
//!   elapses): `Wait(d)`, `SendChallenge` (AUTH_CHALLENGE with [`token::REFRESH_AUTH_DATA`], if
//!   the client set `supports_auth_refresh`) or `Close` (expired and not refreshed by the next
//!   check, or the client cannot refresh). [`AuthSession::refresh`] applies an AUTH_RESPONSE
//!   and refuses a token for another role.
//! - Errors: [`AuthError`] → `ServerError::AuthenticationError` / HTTP 401. Messages never
//!   contain tokens or keys; [`Token`] and [`Secret`] print as `[redacted]` in `Debug` and
//!   `Display`, so they can sit in structs that get logged.
//!
//! # Authorization ([`authz`], [`permissions`])
//!
//! [`Authorizer::new`]`(superuser_roles)` (or [`Authorizer::disabled`] when authentication is
//! off) answers from data passed in: build a [`Resource`] (`cluster()`, `tenant(name, info)`,
//! `namespace(tenant, info, policies)`, `topic(&TopicPath, info, policies)`, plus
//! `.with_subscription(s)`) from the resource's own `strata_meta` [`TenantInfo`] and
//! namespace [`Policies`], then call [`Authorizer::check_command`] (binary protocol) or
//! [`Authorizer::check_rest`] (REST) — or the Pulsar-named helpers `is_superuser`,
//! `is_tenant_admin`, `can_produce`, `can_consume`, `can_lookup`, `allowed_topic_operation`,
//! `allowed_namespace_operation`. [`AuthzError`] maps to `AuthorizationError` / 403 (401 for a
//! request without a role).
//!
//! Rules: superusers may do everything; a tenant's `admin_roles` everything inside that tenant;
//! other roles what the namespace's `auth_policies` grant them (namespace-level, topic-level by
//! full topic name, a partition inheriting its partitioned topic's grants; a subscription listed
//! in `subscription_auth_roles` admits only those roles). Grants are read only from the
//! resource's own policies, so no grant crosses tenants. Stats, internal stats, peek,
//! get-message-by-id and last-message-id need `consume` (not just lookup rights: they reveal
//! messages, subscriptions and consumers — CVE-2021-41571); topic policies, unload, terminate,
//! compaction, partition updates need a tenant admin (CVE-2024-28098); cluster-wide endpoints
//! (`/metrics`, brokers, bookies, tenant list) need a superuser (CVE-2022-34321 class).
//! Commands on a producer/consumer id (SEND, ACK, FLOW, SEEK, ...) need the id to belong to the
//! connection. Every check passes for superusers and, on a tenant's resources, its admins:
//!
//! | operation | needs |
//! |---|---|
//! | `PRODUCER` | produce |
//! | `SUBSCRIBE` | consume |
//! | `LOOKUP` | produce-or-consume |
//! | `PARTITIONED_METADATA` | produce-or-consume |
//! | `GET_SCHEMA` | produce-or-consume |
//! | `GET_OR_CREATE_SCHEMA` | produce |
//! | `GET_LAST_MESSAGE_ID` | produce-or-consume |
//! | `GET_TOPICS_OF_NAMESPACE` | namespace-produce-or-consume |
//! | `WATCH_TOPIC_LIST` | namespace-produce-or-consume |
//! | `GET /admin/v2/clusters` | authenticated |
//! | `GET /admin/v2/clusters/{c}` | superuser |
//! | `PUT|POST|DELETE /admin/v2/clusters/{c}` | superuser |
//! | `GET /admin/v2/brokers/{c}` | superuser |
//! | `GET /admin/v2/brokers/leaderBroker` | superuser |
//! | `GET /admin/v2/brokers/health` | superuser |
//! | `GET /admin/v2/bookies/*` | superuser |
//! | `GET /metrics` | superuser |
//! | `GET /admin/v2/tenants` | superuser |
//! | `GET /admin/v2/tenants/{t}` | tenant-admin |
//! | `PUT /admin/v2/tenants/{t}` | superuser |
//! | `POST /admin/v2/tenants/{t}` | superuser |
//! | `DELETE /admin/v2/tenants/{t}` | superuser |
//! | `GET /admin/v2/namespaces/{t}` | tenant-admin |
//! | `PUT /admin/v2/namespaces/{t}/{ns}` | tenant-admin |
//! | `DELETE /admin/v2/namespaces/{t}/{ns}` | tenant-admin |
//! | `GET /admin/v2/namespaces/{t}/{ns}[/policy]` | tenant-admin |
//! | `POST|DELETE /admin/v2/namespaces/{t}/{ns}/policy` | tenant-admin |
//! | `GET /admin/v2/namespaces/{t}/{ns}/permissions` | tenant-admin |
//! | `POST|DELETE /admin/v2/namespaces/{t}/{ns}/permissions/{role}` | tenant-admin |
//! | `POST /admin/v2/namespaces/{t}/{ns}/clearBacklog|unsubscribe` | namespace-consume |
//! | `GET /admin/v2/namespaces/{t}/{ns}/topics` | namespace-produce-or-consume |
//! | `PUT /admin/v2/persistent/{t}/{ns}/{topic}[/partitions]` | tenant-admin |
//! | `DELETE /admin/v2/persistent/{t}/{ns}/{topic}[/partitions]` | tenant-admin |
//! | `POST /admin/v2/persistent/{t}/{ns}/{topic}/partitions` | tenant-admin |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/partitions` | produce-or-consume |
//! | `GET /lookup/v2/topic/persistent/{t}/{ns}/{topic}` | produce-or-consume |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/stats` | consume |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/partitioned-stats` | consume |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/internalStats` | consume |
//! | `PUT /admin/v2/persistent/{t}/{ns}/{topic}/unload` | tenant-admin |
//! | `POST /admin/v2/persistent/{t}/{ns}/{topic}/terminate` | tenant-admin |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/subscriptions` | consume |
//! | `PUT /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}` | consume |
//! | `DELETE /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}` | consume |
//! | `POST /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}/resetcursor` | consume |
//! | `POST /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}/skip*` | consume |
//! | `POST /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}/expireMessages` | consume |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}/position/{n}` | consume |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/ledger/{l}/entry/{e}` | consume |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/lastMessageId` | consume |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/examinemessage` | consume |
//! | `PUT /admin/v2/persistent/{t}/{ns}/{topic}/compaction` | tenant-admin |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/compaction` | tenant-admin |
//! | `PUT /admin/v2/persistent/{t}/{ns}/{topic}/offload` | tenant-admin |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/offload` | tenant-admin |
//! | `GET /admin/v2/persistent/{t}/{ns}/{topic}/permissions` | tenant-admin |
//! | `POST|DELETE /admin/v2/persistent/{t}/{ns}/{topic}/permissions/{role}` | tenant-admin |
//! | `GET|POST|DELETE /admin/v2/persistent/{t}/{ns}/{topic}/policy` | tenant-admin |
//! | `GET /admin/v2/schemas/{t}/{ns}/{topic}/schema` | produce-or-consume |
//! | `POST /admin/v2/schemas/{t}/{ns}/{topic}/schema` | produce |
//! | `DELETE /admin/v2/schemas/{t}/{ns}/{topic}/schema` | tenant-admin |
//!
//! # `strata tokens` ([`cli`])
//!
//! [`cli::TokensArgs`] (clap) and [`cli::run`]: `create-secret-key [--output F] [--base64]`,
//! `create-key-pair --output-private-key F --output-public-key F [-a RS256|ES256] [--pem]`,
//! `create (--secret-key S | --private-key S) --subject ROLE [--expiry-time 1h]`,
//! `validate (--secret-key S | --public-key S) TOKEN`, `show TOKEN`. Files as `pulsar tokens`
//! writes them (raw secret, DER PKCS#8 / SPKI), secrets with mode 0600.
//!
//! # TLS ([`tls`])
//!
//! rustls with the ring provider (the same backend as the JWT code, so one crypto library).
//! [`tls::ServerTls`]`::new(chain, key).with_client_auth(ClientAuth::Required(ca))
//! .acceptor()` gives a [`tls::TlsAcceptor`] for each listener; [`tls::client_role`] is the CN of
//! a verified client certificate. [`tls::ClientTls`] verifies servers against a CA and always
//! checks the host name ([`tls::server_name`]).
//!
//! [`TenantInfo`]: strata_meta::model::TenantInfo
//! [`Policies`]: strata_meta::model::Policies

pub mod authz;
pub mod basic;
pub mod cli;
pub mod config;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod permissions;
pub mod providers;
pub mod redact;
pub mod tls;
mod tls_verifier;
pub mod token;

pub use authz::{Authorizer, NamespaceOperation, Resource, TopicOperation};
pub use basic::BasicAuthenticator;
pub use config::{Security, SecurityArgs, SecurityConfig, SecurityConfigError};
pub use error::{AuthError, AuthzError, KeyError};
pub use keys::{KeyKind, SigningKey, VerificationKey};
pub use permissions::{BinaryCommand, Permission, RestOperation, Scope};
pub use providers::Provider;
pub use redact::{Secret, Token};
pub use token::{
    AuthSession, AuthenticatedRole, SessionAction, SessionState, TokenAuthenticator, TokenConfig,
    TokenIssuer,
};
