//! `PUT /admin/v2/namespaces/{tenant}/{ns}/{bundle}/unload`: unloads a namespace bundle
//! (`0xSTART_0xEND`) on its owner (a 307 to the owner when another broker owns it).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use strata_auth::RestOperation;

use crate::admin::{ApiError, ApiResult, Caller, Svc};
use crate::service::{BrokerService, Owner};

/// The cluster's admin routes.
pub fn routes() -> Router<Arc<BrokerService>> {
    Router::new().route(
        "/admin/v2/namespaces/{tenant}/{ns}/{bundle}/unload",
        put(unload_bundle),
    )
}

async fn unload_bundle(
    State(s): Svc,
    c: Caller,
    Path((tenant, ns, bundle)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    c.namespace(&s, RestOperation::SetNamespacePolicy, &tenant, &ns)
        .await?;
    if s.policies(&tenant, &ns).await?.is_none() {
        return Err(ApiError::not_found("Namespace does not exist"));
    }
    match s.unload_bundle(&tenant, &ns, &bundle).await? {
        Owner::Local => Ok(StatusCode::NO_CONTENT),
        Owner::Remote { http_url, .. } | Owner::Leader { http_url, .. } => Err(ApiError {
            status: StatusCode::TEMPORARY_REDIRECT,
            reason: format!("bundle {bundle} is owned by {http_url}"),
            redirect_base: Some(http_url),
            challenge: false,
        }),
    }
}
