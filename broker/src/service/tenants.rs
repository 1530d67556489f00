//! Tenants and namespaces: the one place that creates, reads, changes and deletes them.
//!
//! Stored in `strata_meta`'s shared layout (`tenants/{t}` → [`TenantInfo`],
//! `namespaces/{t}/{ns}` → [`Policies`], versioned JSON), the same keys `strata init-cluster`
//! writes. Every change of an existing value goes through [`MetaClient::update`] (read, modify,
//! compare-and-set, retry on conflicts); creation is a create-if-absent.
//!
//! [`MetaClient::update`]: strata_meta::model::MetaClient::update

use strata_meta::model::{Policies, TenantInfo, decode_segment};
use strata_meta::{Expected, MetaError};
use tracing::info;

use super::BrokerService;
use crate::error::{BrokerError, Result};

/// `e` as a broker error, with a not-found value reported as `missing`.
fn not_found_as(e: MetaError, missing: &str) -> BrokerError {
    match e {
        MetaError::NotFound(_) => BrokerError::NotFound(missing.to_owned()),
        MetaError::Contention { .. } => {
            BrokerError::Conflict("concurrent metadata updates; retry".into())
        }
        e => e.into(),
    }
}

impl BrokerService {
    fn tenant_key(&self, tenant: &str) -> String {
        self.meta.paths().tenant(tenant)
    }

    fn namespace_key(&self, tenant: &str, ns: &str) -> String {
        self.meta.paths().namespace(tenant, ns)
    }

    /// Creates `key` with `value` unless it exists (idempotent, racing creators are fine).
    async fn create_if_absent<T>(&self, key: &str, value: T) -> Result<()>
    where
        T: strata_meta::model::Model + Clone,
    {
        self.meta
            .update(key, |cur: Option<T>| {
                Ok(cur.is_none().then(|| value.clone()))
            })
            .await?;
        Ok(())
    }

    /// Creates `key` with `value`; [`BrokerError::Conflict`] (`exists`) if it exists.
    async fn create_strict<T>(&self, key: &str, value: &T, exists: &str) -> Result<()>
    where
        T: strata_meta::model::Model,
    {
        match self.meta.create(key, value).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Err(BrokerError::Conflict(exists.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a tenant (idempotent; an existing one keeps its info).
    pub async fn create_tenant(&self, tenant: &str) -> Result<()> {
        self.create_if_absent(&self.tenant_key(tenant), TenantInfo::default())
            .await
    }

    /// A tenant's info.
    pub async fn tenant_info(&self, tenant: &str) -> Result<Option<TenantInfo>> {
        Ok(self
            .meta
            .get(&self.tenant_key(tenant))
            .await?
            .map(|(t, _)| t))
    }

    /// Creates a tenant with its info; [`BrokerError::Conflict`] if it exists.
    pub async fn create_tenant_with(&self, tenant: &str, info: &TenantInfo) -> Result<()> {
        self.create_strict(&self.tenant_key(tenant), info, "Tenant already exists")
            .await
    }

    /// Replaces a tenant's info; [`BrokerError::NotFound`] if it does not exist.
    pub async fn update_tenant(&self, tenant: &str, info: &TenantInfo) -> Result<()> {
        let key = self.tenant_key(tenant);
        self.meta
            .update(&key, |cur: Option<TenantInfo>| match cur {
                Some(_) => Ok(Some(info.clone())),
                None => Err(MetaError::NotFound(key.clone())),
            })
            .await
            .map_err(|e| not_found_as(e, "Tenant does not exist"))?;
        Ok(())
    }

    /// Deletes a tenant; refuses ([`BrokerError::Conflict`]) while it has namespaces.
    pub async fn delete_tenant(&self, tenant: &str) -> Result<()> {
        if self.tenant_info(tenant).await?.is_none() {
            return Err(BrokerError::NotFound("Tenant does not exist".into()));
        }
        if !self.namespaces(tenant).await?.is_empty() {
            return Err(BrokerError::Conflict(
                "The tenant still has active namespaces".into(),
            ));
        }
        self.meta
            .store()
            .delete(&self.tenant_key(tenant), Expected::Any)
            .await?;
        info!(tenant, "tenant deleted");
        Ok(())
    }

    /// Creates a namespace (idempotent, creating its tenant if needed).
    pub async fn create_namespace(&self, tenant: &str, ns: &str) -> Result<()> {
        self.create_tenant(tenant).await?;
        self.create_if_absent(&self.namespace_key(tenant, ns), Policies::default())
            .await
    }

    /// Creates a namespace of an existing tenant; [`BrokerError::Conflict`] if it exists.
    pub async fn create_namespace_strict(
        &self,
        tenant: &str,
        ns: &str,
        policies: &Policies,
    ) -> Result<()> {
        if self.tenant_info(tenant).await?.is_none() {
            return Err(BrokerError::NotFound("Tenant does not exist".into()));
        }
        self.create_strict(
            &self.namespace_key(tenant, ns),
            policies,
            "Namespace already exists",
        )
        .await
    }

    /// A namespace's policies; `None` if the namespace does not exist.
    pub async fn policies(&self, tenant: &str, ns: &str) -> Result<Option<Policies>> {
        Ok(self.meta.namespace(tenant, ns).await?.map(|(p, _)| p))
    }

    /// Changes a namespace's policies (compare-and-set, retried on conflicts); live topics pick
    /// the change up within `policy_refresh_interval`.
    pub async fn update_policies(
        &self,
        tenant: &str,
        ns: &str,
        f: impl Fn(&mut Policies) + Send + Sync,
    ) -> Result<Policies> {
        let key = self.namespace_key(tenant, ns);
        let written = self
            .meta
            .update(&key, |cur: Option<Policies>| {
                let mut p = cur.ok_or_else(|| MetaError::NotFound(key.clone()))?;
                f(&mut p);
                Ok(Some(p))
            })
            .await
            .map_err(|e| not_found_as(e, "Namespace does not exist"))?;
        written
            .map(|(p, _)| p)
            .ok_or_else(|| BrokerError::NotFound("Namespace does not exist".into()))
    }

    /// Deletes an empty namespace; [`BrokerError::Conflict`] while it has topics.
    pub async fn delete_namespace(&self, tenant: &str, ns: &str) -> Result<()> {
        if self.policies(tenant, ns).await?.is_none() {
            return Err(BrokerError::NotFound("Namespace does not exist".into()));
        }
        if !self.topics_of_namespace(tenant, ns).await?.is_empty()
            || !self
                .partitioned_topics_of_namespace(tenant, ns)
                .await?
                .is_empty()
            || !self
                .np_partitioned_topics_of_namespace(tenant, ns)
                .await?
                .is_empty()
            || self.np_namespace_in_use(tenant, ns)
        {
            return Err(BrokerError::Conflict(
                "Cannot delete non empty namespace".into(),
            ));
        }
        self.meta
            .store()
            .delete(&self.namespace_key(tenant, ns), Expected::Any)
            .await?;
        self.unload_np_namespace(tenant, ns);
        info!(tenant, ns, "namespace deleted");
        Ok(())
    }

    /// Tenants.
    pub async fn tenants(&self) -> Result<Vec<String>> {
        let dir = self.meta.paths().tenants();
        self.children(&dir).await
    }

    /// Namespaces of a tenant (`tenant/ns`).
    pub async fn namespaces(&self, tenant: &str) -> Result<Vec<String>> {
        let dir = self.meta.paths().namespaces(tenant);
        Ok(self
            .children(&dir)
            .await?
            .into_iter()
            .map(|ns| format!("{tenant}/{ns}"))
            .collect())
    }

    /// Names (decoded) of the keys directly under `dir`.
    async fn children(&self, dir: &str) -> Result<Vec<String>> {
        let prefix = format!("{dir}/");
        let (mut keys, _) = self.meta.store().scan_keys(&prefix).await?;
        keys.sort();
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .map(decode_segment)
            .collect())
    }
}
