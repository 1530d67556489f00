//! Tenants: `/admin/v2/tenants[/{tenant}]`. Stored as `strata_meta`'s `TenantInfo` (the broker's
//! `tenants/{tenant}` key); the JSON is Pulsar's (`adminRoles`, `allowedClusters`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use strata_auth::RestOperation;
use strata_meta::model::TenantInfo;

use super::{ApiError, ApiResult, Caller, Svc, parse_body};
use crate::service::BrokerService;

pub(super) fn routes() -> Router<Arc<BrokerService>> {
    Router::new().route("/admin/v2/tenants", get(list)).route(
        "/admin/v2/tenants/{tenant}",
        get(get_tenant).put(create).post(update).delete(delete),
    )
}

/// Pulsar's `TenantInfo` JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TenantJson {
    /// Admin roles.
    pub admin_roles: BTreeSet<String>,
    /// Allowed clusters.
    pub allowed_clusters: BTreeSet<String>,
}

impl From<TenantInfo> for TenantJson {
    fn from(t: TenantInfo) -> Self {
        Self {
            admin_roles: t.admin_roles,
            allowed_clusters: t.allowed_clusters,
        }
    }
}

fn info_from(s: &BrokerService, body: &str) -> ApiResult<TenantInfo> {
    let j: TenantJson = if body.trim().is_empty() {
        TenantJson::default()
    } else {
        parse_body(body)?
    };
    if let Some(c) = j
        .allowed_clusters
        .iter()
        .find(|c| **c != s.config.cluster_name)
    {
        return Err(ApiError::precondition(format!(
            "Clusters do not exist: {c}"
        )));
    }
    let mut allowed = j.allowed_clusters;
    if allowed.is_empty() {
        allowed.insert(s.config.cluster_name.clone());
    }
    Ok(TenantInfo {
        admin_roles: j.admin_roles,
        allowed_clusters: allowed,
    })
}

fn valid_name(t: &str) -> ApiResult<()> {
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '='))
    {
        return Err(ApiError::precondition(format!("Invalid tenant name {t:?}")));
    }
    Ok(())
}

async fn list(State(s): Svc, c: Caller) -> ApiResult<Json<Vec<String>>> {
    c.cluster(&s, RestOperation::ListTenants)?;
    Ok(Json(s.tenants().await?))
}

async fn get_tenant(
    State(s): Svc,
    c: Caller,
    Path(t): Path<String>,
) -> ApiResult<Json<TenantJson>> {
    c.tenant(&s, RestOperation::GetTenant, &t).await?;
    match s.tenant_info(&t).await? {
        Some(i) => Ok(Json(i.into())),
        None => Err(ApiError::not_found("Tenant does not exist")),
    }
}

async fn create(
    State(s): Svc,
    c: Caller,
    Path(t): Path<String>,
    body: String,
) -> ApiResult<StatusCode> {
    c.tenant(&s, RestOperation::CreateTenant, &t).await?;
    valid_name(&t)?;
    let info = info_from(&s, &body)?;
    s.create_tenant_with(&t, &info).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update(
    State(s): Svc,
    c: Caller,
    Path(t): Path<String>,
    body: String,
) -> ApiResult<StatusCode> {
    c.tenant(&s, RestOperation::UpdateTenant, &t).await?;
    let info = info_from(&s, &body)?;
    s.update_tenant(&t, &info).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(State(s): Svc, c: Caller, Path(t): Path<String>) -> ApiResult<StatusCode> {
    c.tenant(&s, RestOperation::DeleteTenant, &t).await?;
    s.delete_tenant(&t).await?;
    Ok(StatusCode::NO_CONTENT)
}
