//! Pulsar-style authorization: a pure function of the role, the operation and the policy data
//! of the resource (no I/O; the broker looks the data up and passes it in).
//!
//! Rules (Pulsar's `PulsarAuthorizationProvider` after its CVE fixes):
//! - authorization off ([`Authorizer::disabled`]): everything is allowed;
//! - no role (anonymous): nothing is allowed ([`AuthzError::Unauthenticated`]);
//! - superuser roles may do everything;
//! - a tenant's `admin_roles` may do everything inside that tenant (not tenant creation,
//!   deletion or update, not cluster-wide operations);
//! - otherwise a permission is granted by the resource's own namespace policies: the role's
//!   namespace-level actions, or the topic's actions (`destination_auth` keyed by the full topic
//!   name; a partition also inherits its partitioned topic's grants); consuming from a
//!   subscription listed in `subscription_auth_roles` also needs the role in that list.
//!
//! Only the policies passed for the resource are consulted, so grants in another tenant or
//! namespace never apply: pass the [`TenantInfo`] of the resource's tenant and the
//! [`Policies`] of its namespace ([`Resource`] checks nothing about that pairing; it cannot).

use std::collections::BTreeSet;

use strata_meta::model::{AuthAction, Policies, TenantInfo, TopicPath};

use crate::error::AuthzError;
use crate::permissions::{BinaryCommand, Permission, RestOperation};

/// What is accessed, with the policy data that governs it.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    kind: Kind<'a>,
    tenant_info: Option<&'a TenantInfo>,
    policies: Option<&'a Policies>,
    subscription: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
enum Kind<'a> {
    Cluster,
    Tenant(&'a str),
    Namespace { tenant: &'a str },
    Topic(&'a TopicPath),
}

impl<'a> Resource<'a> {
    /// Cluster-wide things: clusters, brokers, bookies, metrics, the tenant list.
    pub fn cluster() -> Self {
        Self {
            kind: Kind::Cluster,
            tenant_info: None,
            policies: None,
            subscription: None,
        }
    }

    /// A tenant (`tenant_info`: `None` if it does not exist).
    pub fn tenant(name: &'a str, tenant_info: Option<&'a TenantInfo>) -> Self {
        Self {
            kind: Kind::Tenant(name),
            tenant_info,
            policies: None,
            subscription: None,
        }
    }

    /// A namespace `tenant/ns` with its tenant's info and its policies.
    pub fn namespace(
        tenant: &'a str,
        tenant_info: Option<&'a TenantInfo>,
        policies: Option<&'a Policies>,
    ) -> Self {
        Self {
            kind: Kind::Namespace { tenant },
            tenant_info,
            policies,
            subscription: None,
        }
    }

    /// A topic (or partition) with its tenant's info and its namespace's policies.
    pub fn topic(
        topic: &'a TopicPath,
        tenant_info: Option<&'a TenantInfo>,
        policies: Option<&'a Policies>,
    ) -> Self {
        Self {
            kind: Kind::Topic(topic),
            tenant_info,
            policies,
            subscription: None,
        }
    }

    /// The subscription a consume operation names (SUBSCRIBE, REST subscription operations).
    pub fn with_subscription(mut self, subscription: &'a str) -> Self {
        self.subscription = Some(subscription);
        self
    }

    fn tenant_name(&self) -> Option<&'a str> {
        match self.kind {
            Kind::Cluster => None,
            Kind::Tenant(t) | Kind::Namespace { tenant: t } => Some(t),
            Kind::Topic(p) => Some(p.tenant.as_str()),
        }
    }

    fn describe(&self) -> String {
        match self.kind {
            Kind::Cluster => "the cluster".into(),
            Kind::Tenant(t) => format!("tenant {t}"),
            Kind::Namespace { tenant } => format!("a namespace of tenant {tenant}"),
            Kind::Topic(p) => p.to_string(),
        }
    }

    /// Live (not deleted) namespace policies.
    fn live_policies(&self) -> Option<&'a Policies> {
        self.policies.filter(|p| !p.deleted)
    }
}

/// Pulsar's `TopicOperation`s that the authorizer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicOperation {
    /// LOOKUP.
    Lookup,
    /// GET_METADATA (partitioned metadata).
    GetMetadata,
    /// PRODUCE.
    Produce,
    /// CONSUME / SUBSCRIBE.
    Consume,
    /// GET_STATS (stats, partitioned stats, internal stats).
    GetStats,
    /// GET_SUBSCRIPTIONS.
    GetSubscriptions,
    /// UNSUBSCRIBE, SKIP, EXPIRE_MESSAGES, RESET_CURSOR, CLEAR_BACKLOG.
    ManageSubscription,
    /// PEEK_MESSAGES (peek, get message by id, last message id).
    PeekMessages,
    /// TERMINATE, COMPACT, UNLOAD, DELETE, policy and permission changes, partition updates.
    Admin,
}

impl TopicOperation {
    /// The permission it needs.
    pub fn permission(self) -> Permission {
        match self {
            Self::Lookup | Self::GetMetadata => Permission::ProduceOrConsume,
            Self::Produce => Permission::Produce,
            Self::Consume
            | Self::GetStats
            | Self::GetSubscriptions
            | Self::ManageSubscription
            | Self::PeekMessages => Permission::Consume,
            Self::Admin => Permission::TenantAdmin,
        }
    }
}

/// Pulsar's `NamespaceOperation`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceOperation {
    /// GET_TOPICS / GET_TOPIC / GET_BUNDLE.
    GetTopics,
    /// UNSUBSCRIBE / CLEAR_BACKLOG over the whole namespace.
    ConsumeAll,
    /// Functions (`functions` action).
    Functions,
    /// Sources (`sources` action).
    Sources,
    /// Sinks (`sinks` action).
    Sinks,
    /// Packages (`packages` action).
    Packages,
    /// CREATE_TOPIC, DELETE_TOPIC, bundles, GRANT/GET/REVOKE_PERMISSION, every policy read
    /// and write.
    Admin,
}

impl NamespaceOperation {
    /// The permission it needs.
    pub fn permission(self) -> Permission {
        match self {
            Self::GetTopics => Permission::NamespaceProduceOrConsume,
            Self::ConsumeAll => Permission::NamespaceAction(AuthAction::Consume),
            Self::Functions => Permission::NamespaceAction(AuthAction::Functions),
            Self::Sources => Permission::NamespaceAction(AuthAction::Sources),
            Self::Sinks => Permission::NamespaceAction(AuthAction::Sinks),
            Self::Packages => Permission::NamespaceAction(AuthAction::Packages),
            Self::Admin => Permission::TenantAdmin,
        }
    }
}

/// Answers "may this role do that": see the module docs for the rules.
#[derive(Debug, Clone)]
pub struct Authorizer {
    enabled: bool,
    superusers: BTreeSet<String>,
}

impl Authorizer {
    /// Authorization on, with these superuser roles.
    pub fn new<I, S>(superuser_roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            enabled: true,
            superusers: superuser_roles.into_iter().map(Into::into).collect(),
        }
    }

    /// Authorization off: every check passes (authentication off).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            superusers: BTreeSet::new(),
        }
    }

    /// Whether checks are enforced.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The superuser roles.
    pub fn superuser_roles(&self) -> &BTreeSet<String> {
        &self.superusers
    }

    /// Whether `role` is a superuser.
    pub fn is_superuser(&self, role: Option<&str>) -> bool {
        role.is_some_and(|r| self.superusers.contains(r))
    }

    /// Whether `role` administers the tenant described by `tenant_info` (superusers do).
    pub fn is_tenant_admin(&self, role: Option<&str>, tenant_info: Option<&TenantInfo>) -> bool {
        let Some(r) = role else { return false };
        self.is_superuser(role) || tenant_info.is_some_and(|t| t.admin_roles.contains(r))
    }

    /// PRODUCER on `resource` (a topic).
    pub fn can_produce(&self, role: Option<&str>, resource: &Resource<'_>) -> bool {
        self.check(role, Permission::Produce, resource).is_ok()
    }

    /// SUBSCRIBE on `resource` (a topic, [`Resource::with_subscription`] if known).
    pub fn can_consume(&self, role: Option<&str>, resource: &Resource<'_>) -> bool {
        self.check(role, Permission::Consume, resource).is_ok()
    }

    /// LOOKUP on `resource` (a topic): produce or consume.
    pub fn can_lookup(&self, role: Option<&str>, resource: &Resource<'_>) -> bool {
        self.check(role, Permission::ProduceOrConsume, resource)
            .is_ok()
    }

    /// A Pulsar topic operation.
    pub fn allowed_topic_operation(
        &self,
        role: Option<&str>,
        op: TopicOperation,
        resource: &Resource<'_>,
    ) -> bool {
        self.check(role, op.permission(), resource).is_ok()
    }

    /// A Pulsar namespace operation.
    pub fn allowed_namespace_operation(
        &self,
        role: Option<&str>,
        op: NamespaceOperation,
        resource: &Resource<'_>,
    ) -> bool {
        self.check(role, op.permission(), resource).is_ok()
    }

    /// A binary-protocol command (see [`BinaryCommand::permission`]).
    pub fn check_command(
        &self,
        role: Option<&str>,
        command: BinaryCommand,
        resource: &Resource<'_>,
    ) -> Result<(), AuthzError> {
        self.check(role, command.permission(), resource)
    }

    /// A REST operation (see [`RestOperation::permission`]).
    pub fn check_rest(
        &self,
        role: Option<&str>,
        op: RestOperation,
        resource: &Resource<'_>,
    ) -> Result<(), AuthzError> {
        self.check(role, op.permission(), resource)
    }

    /// The one decision function.
    pub fn check(
        &self,
        role: Option<&str>,
        permission: Permission,
        resource: &Resource<'_>,
    ) -> Result<(), AuthzError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(r) = role else {
            return Err(AuthzError::Unauthenticated);
        };
        if self.is_superuser(role) {
            return Ok(());
        }
        let deny = || AuthzError::Forbidden {
            role: r.to_owned(),
            operation: format!("{} on {}", permission.name(), resource.describe()),
        };
        if permission == Permission::Authenticated {
            return Ok(());
        }
        if permission == Permission::Superuser {
            return Err(deny());
        }
        // Tenant admins may do everything inside their tenant.
        if resource.tenant_name().is_some() && self.is_tenant_admin(role, resource.tenant_info) {
            return Ok(());
        }
        let allowed = match permission {
            Permission::Authenticated => true,
            Permission::Superuser | Permission::TenantAdmin => false,
            Permission::Produce => topic_action(r, resource, AuthAction::Produce),
            Permission::Consume => {
                subscription_allows(r, resource) && topic_action(r, resource, AuthAction::Consume)
            }
            Permission::ProduceOrConsume => {
                topic_action(r, resource, AuthAction::Produce)
                    || topic_action(r, resource, AuthAction::Consume)
            }
            Permission::NamespaceProduceOrConsume => {
                namespace_action(r, resource, AuthAction::Produce)
                    || namespace_action(r, resource, AuthAction::Consume)
            }
            Permission::NamespaceAction(a) => namespace_action(r, resource, a),
        };
        if allowed { Ok(()) } else { Err(deny()) }
    }
}

/// The role's namespace-level grant of `action` in the resource's namespace.
fn namespace_action(role: &str, resource: &Resource<'_>, action: AuthAction) -> bool {
    if matches!(resource.kind, Kind::Cluster | Kind::Tenant(_)) {
        return false;
    }
    resource
        .live_policies()
        .and_then(|p| p.auth_policies.namespace_auth.get(role))
        .is_some_and(|a| a.contains(&action))
}

/// Namespace-level or topic-level (or partitioned-topic-level for a partition) grant.
fn topic_action(role: &str, resource: &Resource<'_>, action: AuthAction) -> bool {
    let Kind::Topic(topic) = resource.kind else {
        return false;
    };
    let Some(p) = resource.live_policies() else {
        return false;
    };
    if namespace_action(role, resource, action) {
        return true;
    }
    let grants = &p.auth_policies.destination_auth;
    let has = |name: &str| {
        grants
            .get(name)
            .and_then(|roles| roles.get(role))
            .is_some_and(|a| a.contains(&action))
    };
    let full = topic.to_string();
    if has(&full) {
        return true;
    }
    partitioned_name(topic).is_some_and(|base| has(&base))
}

/// `subscription_auth_roles`: a subscription with a non-empty role list admits only them.
fn subscription_allows(role: &str, resource: &Resource<'_>) -> bool {
    let (Some(sub), Some(p)) = (resource.subscription, resource.live_policies()) else {
        return true;
    };
    match p.auth_policies.subscription_auth_roles.get(sub) {
        Some(roles) if !roles.is_empty() => roles.contains(role),
        _ => true,
    }
}

/// `persistent://t/ns/x-partition-3` → `persistent://t/ns/x`.
pub fn partitioned_name(topic: &TopicPath) -> Option<String> {
    let (base, n) = topic.topic.rsplit_once("-partition-")?;
    if base.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{}://{}/{}/{}",
        topic.domain, topic.tenant, topic.namespace, base
    ))
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
