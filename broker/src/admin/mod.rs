//! The admin REST API `/admin/v2` (Pulsar's paths and JSON shapes), one file per resource group:
//! [`cluster`] (clusters, brokers, bookies), [`tenants`], [`namespaces`] (and their policies),
//! [`topics`] (persistent and partitioned topics, subscriptions, messages).
//!
//! Errors are Pulsar-shaped: `{"reason": "..."}` with Pulsar's status codes (404 missing, 409
//! exists / in use, 412 precondition; 401 both for no valid credentials, with `WWW-Authenticate`,
//! and for a role not allowed, as Pulsar's `PulsarWebResource`).
//!
//! Security: every handler takes a [`Caller`] (the role of the `Authorization: Bearer` token,
//! 401 when a token is required and missing or invalid) and asks [`strata_auth::Security`]
//! (`check_rest`) with the resource's own `TenantInfo` and `Policies` before touching anything,
//! so a refusal never reveals data. Tokens are never logged.

pub mod broker_stats;
pub mod cluster;
pub mod compaction;
pub mod namespaces;
mod non_persistent;
pub mod offload;
pub mod partitioned_stats;
pub mod schema_policies;
pub mod schemas;
pub mod tenants;
pub mod topics;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use strata_auth::{AuthzError, Resource, RestOperation};

use crate::error::BrokerError;
use crate::service::BrokerService;
use crate::topic_name::TopicName;

/// Handler state.
pub type Svc = axum::extract::State<Arc<BrokerService>>;

/// Every `/admin/v2` route.
pub fn router() -> Router<Arc<BrokerService>> {
    Router::new()
        .merge(broker_stats::routes())
        .merge(cluster::routes())
        .merge(tenants::routes())
        .merge(namespaces::routes())
        .merge(topics::routes())
        .merge(offload::routes())
        .merge(schemas::routes())
        .merge(compaction::routes())
        .merge(schema_policies::routes())
}

/// A Pulsar-shaped error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `reason`.
    pub reason: String,
    /// For a 307: the owner's `http://host:port`; the request's path and query are appended by
    /// [`redirect_layer`].
    pub redirect_base: Option<String>,
    /// A 401 for missing or invalid credentials (answered with `WWW-Authenticate`), not a
    /// refusal of an authenticated role (also 401, as Pulsar).
    pub challenge: bool,
}

/// Header carrying [`ApiError::redirect_base`] from a handler to [`redirect_layer`].
const REDIRECT_BASE: &str = "x-strata-redirect-base";

/// Request header asking for a request on a topic served by another broker to be forwarded to
/// that broker and answered here, instead of a 307 (the web console sends it: browsers drop the
/// `Authorization` header when a redirect leads to another origin).
pub const FOLLOW_OWNER: &str = "x-strata-follow-owner";

/// Largest request body kept for forwarding to the owner.
const MAX_FORWARDED_BODY: usize = 16 << 20;

/// Turns a 307 produced by a handler (a topic served by another broker) into a redirect to the
/// same path and query on the owner, as Pulsar does; with [`FOLLOW_OWNER`], forwards the request
/// to the owner and answers with its answer.
pub async fn redirect_layer(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let (req, kept) = if req.headers().contains_key(FOLLOW_OWNER) {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORWARDED_BODY).await else {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
                .into_response();
        };
        let kept = (parts.method.clone(), parts.headers.clone(), bytes.clone());
        (
            axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes)),
            Some(kept),
        )
    } else {
        (req, None)
    };
    let mut resp = next.run(req).await;
    let Some(base) = resp.headers_mut().remove(REDIRECT_BASE) else {
        return resp;
    };
    let Ok(base) = base.to_str() else {
        return resp;
    };
    if let Some((method, headers, body)) = kept {
        return crate::cluster::forward::proxy(base, &method, &path, &headers, body).await;
    }
    if let Ok(loc) =
        axum::http::HeaderValue::from_str(&format!("{}{path}", base.trim_end_matches('/')))
    {
        resp.headers_mut().insert(axum::http::header::LOCATION, loc);
    }
    resp
}

impl ApiError {
    /// An error with a status and reason.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            redirect_base: None,
            challenge: false,
        }
    }

    /// 401 for missing or invalid credentials: the answer carries `WWW-Authenticate: Bearer`
    /// (a client, e.g. the console, asks for credentials), unlike a refusal.
    pub fn unauthenticated(reason: impl Into<String>) -> Self {
        Self {
            challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, reason)
        }
    }

    /// 404.
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason)
    }

    /// 412.
    pub fn precondition(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, reason)
    }

    /// 400.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        if let BrokerError::OwnedElsewhere { http_url, .. } = &e {
            return ApiError {
                status: StatusCode::TEMPORARY_REDIRECT,
                reason: e.to_string(),
                redirect_base: Some(http_url.clone()),
                challenge: false,
            };
        }
        let status = match &e {
            BrokerError::InvalidTopicName(_) | BrokerError::PreconditionFailed(_) => {
                StatusCode::PRECONDITION_FAILED
            }
            BrokerError::TopicNotFound(_)
            | BrokerError::SubscriptionNotFound(_)
            | BrokerError::NotFound(_) => StatusCode::NOT_FOUND,
            BrokerError::NotAllowed(_)
            | BrokerError::TopicTerminated(_)
            | BrokerError::Conflict(_)
            | BrokerError::IncompatibleSchema(_) => StatusCode::CONFLICT,
            BrokerError::Unauthenticated(_) => {
                return ApiError::unauthenticated(e.to_string());
            }
            // As Pulsar (PulsarWebResource: `RestException(Status.UNAUTHORIZED, "Unauthorized
            // to validateTopicOperation ...")`): a refusal is a 401 too.
            BrokerError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            BrokerError::ServiceNotReady(_) | BrokerError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<AuthzError> for ApiError {
    fn from(e: AuthzError) -> Self {
        match e {
            AuthzError::Unauthenticated => ApiError::unauthenticated(e.to_string()),
            AuthzError::Forbidden { .. } => {
                let status =
                    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
                ApiError::new(status, e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({ "reason": self.reason }))).into_response();
        if let Some(base) = self.redirect_base
            && let Ok(v) = axum::http::HeaderValue::from_str(&base)
        {
            resp.headers_mut().insert(REDIRECT_BASE, v);
        }
        if self.challenge {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// The authenticated role of a request (`None`: authentication is off).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<String>);

impl FromRequestParts<Arc<BrokerService>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<BrokerService>,
    ) -> Result<Self, Self::Rejection> {
        let sec = s.security();
        if !sec.authentication_enabled() {
            return Ok(Caller(None));
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        let tls_role = parts
            .extensions
            .get::<axum::extract::ConnectInfo<crate::tls_listener::TlsPeer>>()
            .and_then(|c| c.0.role.as_deref());
        let basic = header.is_some_and(|h| strata_auth::basic::basic_credentials(h).is_some());
        let authenticated = if basic {
            // Password hashes (bcrypt) are slow on purpose: off the runtime's threads.
            let (sec, header, role) = (
                sec.clone(),
                header.map(<[u8]>::to_vec),
                tls_role.map(str::to_owned),
            );
            tokio::task::spawn_blocking(move || {
                sec.authenticate_http(header.as_deref(), role.as_deref())
            })
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("authentication task failed: {e}"),
                )
            })?
        } else {
            sec.authenticate_http(header, tls_role)
        };
        match authenticated {
            Ok(r) => Ok(Caller(r.map(|r| r.role))),
            // The error text never contains the token.
            Err(e) => Err(ApiError::unauthenticated(e.to_string())),
        }
    }
}

impl Caller {
    fn role(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// A cluster-wide operation.
    pub fn cluster(&self, s: &BrokerService, op: RestOperation) -> ApiResult<()> {
        let sec = s.security();
        if !sec.authentication_enabled() {
            return Ok(());
        }
        Ok(sec.check_rest(self.role(), op, &Resource::cluster())?)
    }

    /// An operation on a tenant.
    pub async fn tenant(
        &self,
        s: &BrokerService,
        op: RestOperation,
        tenant: &str,
    ) -> ApiResult<()> {
        let sec = s.security();
        if !sec.authentication_enabled() {
            return Ok(());
        }
        let info = s.tenant_info(tenant).await?;
        Ok(sec.check_rest(self.role(), op, &Resource::tenant(tenant, info.as_ref()))?)
    }

    /// An operation on a namespace.
    pub async fn namespace(
        &self,
        s: &BrokerService,
        op: RestOperation,
        tenant: &str,
        ns: &str,
    ) -> ApiResult<()> {
        let sec = s.security();
        if !sec.authentication_enabled() {
            return Ok(());
        }
        let info = s.tenant_info(tenant).await?;
        let pol = s.policies(tenant, ns).await?;
        Ok(sec.check_rest(
            self.role(),
            op,
            &Resource::namespace(tenant, info.as_ref(), pol.as_ref()),
        )?)
    }

    /// An operation on a topic (and subscription).
    pub async fn topic(
        &self,
        s: &BrokerService,
        op: RestOperation,
        name: &TopicName,
        sub: Option<&str>,
    ) -> ApiResult<()> {
        let sec = s.security();
        if !sec.authentication_enabled() {
            return Ok(());
        }
        let info = s.tenant_info(&name.tenant).await?;
        let pol = s.policies(&name.tenant, &name.namespace).await?;
        let path = name.meta_path();
        let mut r = Resource::topic(&path, info.as_ref(), pol.as_ref());
        if let Some(sub) = sub {
            r = r.with_subscription(sub);
        }
        Ok(sec.check_rest(self.role(), op, &r)?)
    }
}

/// Parses a JSON body that may be empty.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &str) -> ApiResult<T> {
    serde_json::from_str(body.trim())
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}
