//! `strata admin tenants ...`.

use clap::{Args, Subcommand};

use super::out::{Out, val};
use crate::admin::types::TenantInfo;
use crate::admin::{AdminClient, AdminResult};

/// `tenants`.
#[derive(Subcommand, Debug)]
pub enum TenantsCmd {
    /// List tenants.
    List,
    /// Show a tenant's admin roles and allowed clusters.
    Get {
        /// Tenant name.
        tenant: String,
    },
    /// Create a tenant.
    Create {
        /// Tenant name.
        tenant: String,
        #[command(flatten)]
        info: TenantInfoArgs,
    },
    /// Update a tenant (replaces its admin roles and allowed clusters).
    Update {
        /// Tenant name.
        tenant: String,
        #[command(flatten)]
        info: TenantInfoArgs,
    },
    /// Delete a tenant (refused while it has namespaces).
    Delete {
        /// Tenant name.
        tenant: String,
    },
}

/// `--admin-roles`, `--allowed-clusters`.
#[derive(Args, Debug, Clone)]
pub struct TenantInfoArgs {
    /// Comma-separated admin roles.
    #[arg(long, short = 'r', value_delimiter = ',', alias = "adminRoles")]
    pub admin_roles: Vec<String>,
    /// Comma-separated allowed clusters.
    #[arg(long, short = 'c', value_delimiter = ',', alias = "allowedClusters")]
    pub allowed_clusters: Vec<String>,
}

/// Runs a `tenants` command.
pub(super) async fn tenants(c: &AdminClient, cmd: &TenantsCmd) -> AdminResult<Out> {
    let info = |a: &TenantInfoArgs| TenantInfo {
        admin_roles: a.admin_roles.clone(),
        allowed_clusters: a.allowed_clusters.clone(),
    };
    Ok(match cmd {
        TenantsCmd::List => val(c.tenants().await?),
        TenantsCmd::Get { tenant } => val(c.tenant(tenant).await?),
        TenantsCmd::Create { tenant, info: a } => {
            c.create_tenant(tenant, &info(a)).await?;
            Out::None
        }
        TenantsCmd::Update { tenant, info: a } => {
            c.update_tenant(tenant, &info(a)).await?;
            Out::None
        }
        TenantsCmd::Delete { tenant } => {
            c.delete_tenant(tenant).await?;
            Out::None
        }
    })
}
