//! The permission table: which binary command and which REST operation needs what.
//!
//! Every check also passes for superusers, and every check on a tenant's resources (not
//! [`Permission::Superuser`] ones) passes for that tenant's admin roles. See the crate docs for
//! the table in prose; `tests::doc_table_matches_code` keeps the two identical.

use strata_meta::model::AuthAction;

/// What an operation requires of a (non-superuser, non-tenant-admin) role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Any authenticated role.
    Authenticated,
    /// `produce` on the topic (namespace or topic grant).
    Produce,
    /// `consume` on the topic, and the subscription's role list admits the role.
    Consume,
    /// `produce` or `consume` on the topic (lookup, metadata, schema reads).
    ProduceOrConsume,
    /// Namespace-level `produce` or `consume` (listing a namespace's topics).
    NamespaceProduceOrConsume,
    /// A namespace-level action (`consume` for namespace-wide backlog operations, `functions`,
    /// `sources`, `sinks`, `packages`).
    NamespaceAction(AuthAction),
    /// Only the tenant's admin roles (and superusers).
    TenantAdmin,
    /// Only superusers.
    Superuser,
}

impl Permission {
    /// Name used in the docs table and in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::Produce => "produce",
            Self::Consume => "consume",
            Self::ProduceOrConsume => "produce-or-consume",
            Self::NamespaceProduceOrConsume => "namespace-produce-or-consume",
            Self::NamespaceAction(AuthAction::Produce) => "namespace-produce",
            Self::NamespaceAction(AuthAction::Consume) => "namespace-consume",
            Self::NamespaceAction(AuthAction::Functions) => "namespace-functions",
            Self::NamespaceAction(AuthAction::Sources) => "namespace-sources",
            Self::NamespaceAction(AuthAction::Sinks) => "namespace-sinks",
            Self::NamespaceAction(AuthAction::Packages) => "namespace-packages",
            Self::TenantAdmin => "tenant-admin",
            Self::Superuser => "superuser",
        }
    }
}

/// Which [`crate::Resource`] constructor an operation's check takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// [`crate::Resource::cluster`].
    Cluster,
    /// [`crate::Resource::tenant`].
    Tenant,
    /// [`crate::Resource::namespace`].
    Namespace,
    /// [`crate::Resource::topic`] (with the subscription for consume operations that name one).
    Topic,
}

macro_rules! op_table {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $perm:expr, $scope:ident, $label:literal;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v,)* }

        impl $name {
            /// Every operation, in table order.
            pub const ALL: &'static [Self] = &[$(Self::$v,)*];

            /// What it requires.
            pub fn permission(self) -> Permission {
                match self { $(Self::$v => $perm,)* }
            }

            /// What kind of [`crate::Resource`] to build for it.
            pub fn scope(self) -> Scope {
                match self { $(Self::$v => Scope::$scope,)* }
            }

            /// The Pulsar command or REST route it stands for.
            pub fn label(self) -> &'static str {
                match self { $(Self::$v => $label,)* }
            }
        }
    };
}

use Permission::*;

op_table! {
    /// Binary-protocol commands that name a topic or namespace. Commands that act on a
    /// producer/consumer id (SEND, ACK, FLOW, SEEK, UNSUBSCRIBE, REDELIVER, CLOSE_*) need no
    /// check of their own: the id must belong to the connection, whose PRODUCER/SUBSCRIBE was
    /// checked. CONNECT / AUTH_RESPONSE are authentication.
    BinaryCommand {
        /// PRODUCER.
        Producer => Produce, Topic, "PRODUCER";
        /// SUBSCRIBE (pass the subscription in the resource).
        Subscribe => Consume, Topic, "SUBSCRIBE";
        /// LOOKUP.
        Lookup => ProduceOrConsume, Topic, "LOOKUP";
        /// PARTITIONED_METADATA.
        PartitionedMetadata => ProduceOrConsume, Topic, "PARTITIONED_METADATA";
        /// GET_SCHEMA.
        GetSchema => ProduceOrConsume, Topic, "GET_SCHEMA";
        /// GET_OR_CREATE_SCHEMA (may add a schema version: a producer's right).
        GetOrCreateSchema => Produce, Topic, "GET_OR_CREATE_SCHEMA";
        /// GET_LAST_MESSAGE_ID.
        GetLastMessageId => ProduceOrConsume, Topic, "GET_LAST_MESSAGE_ID";
        /// GET_TOPICS_OF_NAMESPACE.
        GetTopicsOfNamespace => NamespaceProduceOrConsume, Namespace, "GET_TOPICS_OF_NAMESPACE";
        /// WATCH_TOPIC_LIST.
        WatchTopicList => NamespaceProduceOrConsume, Namespace, "WATCH_TOPIC_LIST";
    }
}

op_table! {
    /// REST operations (`/admin/v2`, `/lookup/v2`, `/metrics`).
    RestOperation {
        /// GET /admin/v2/clusters.
        ListClusters => Authenticated, Cluster, "GET /admin/v2/clusters";
        /// GET /admin/v2/clusters/{cluster}.
        GetCluster => Superuser, Cluster, "GET /admin/v2/clusters/{c}";
        /// Create, update or delete a cluster.
        ManageCluster => Superuser, Cluster, "PUT|POST|DELETE /admin/v2/clusters/{c}";
        /// GET /admin/v2/brokers/{cluster}.
        ListBrokers => Superuser, Cluster, "GET /admin/v2/brokers/{c}";
        /// GET /admin/v2/brokers/leaderBroker.
        LeaderBroker => Superuser, Cluster, "GET /admin/v2/brokers/leaderBroker";
        /// GET /admin/v2/brokers/health.
        HealthCheck => Superuser, Cluster, "GET /admin/v2/brokers/health";
        /// GET /admin/v2/bookies/all, racks-info.
        ListBookies => Superuser, Cluster, "GET /admin/v2/bookies/*";
        /// GET /metrics (every tenant's topic names and rates).
        Metrics => Superuser, Cluster, "GET /metrics";
        /// GET /admin/v2/tenants.
        ListTenants => Superuser, Cluster, "GET /admin/v2/tenants";
        /// GET /admin/v2/tenants/{t}.
        GetTenant => TenantAdmin, Tenant, "GET /admin/v2/tenants/{t}";
        /// PUT /admin/v2/tenants/{t}.
        CreateTenant => Superuser, Tenant, "PUT /admin/v2/tenants/{t}";
        /// POST /admin/v2/tenants/{t}.
        UpdateTenant => Superuser, Tenant, "POST /admin/v2/tenants/{t}";
        /// DELETE /admin/v2/tenants/{t}.
        DeleteTenant => Superuser, Tenant, "DELETE /admin/v2/tenants/{t}";
        /// GET /admin/v2/namespaces/{t}.
        ListNamespaces => TenantAdmin, Tenant, "GET /admin/v2/namespaces/{t}";
        /// PUT /admin/v2/namespaces/{t}/{ns}.
        CreateNamespace => TenantAdmin, Namespace, "PUT /admin/v2/namespaces/{t}/{ns}";
        /// DELETE /admin/v2/namespaces/{t}/{ns}.
        DeleteNamespace => TenantAdmin, Namespace, "DELETE /admin/v2/namespaces/{t}/{ns}";
        /// GET /admin/v2/namespaces/{t}/{ns} and every policy GET.
        GetNamespacePolicies => TenantAdmin, Namespace, "GET /admin/v2/namespaces/{t}/{ns}[/policy]";
        /// Every policy POST/DELETE (retention, TTL, backlog quota, persistence, ...).
        SetNamespacePolicy => TenantAdmin, Namespace, "POST|DELETE /admin/v2/namespaces/{t}/{ns}/policy";
        /// GET /admin/v2/namespaces/{t}/{ns}/permissions.
        GetNamespacePermissions => TenantAdmin, Namespace, "GET /admin/v2/namespaces/{t}/{ns}/permissions";
        /// POST/DELETE /admin/v2/namespaces/{t}/{ns}/permissions/{role}.
        GrantRevokeNamespacePermission => TenantAdmin, Namespace, "POST|DELETE /admin/v2/namespaces/{t}/{ns}/permissions/{role}";
        /// POST /admin/v2/namespaces/{t}/{ns}/clearBacklog, unsubscribe/{sub}.
        NamespaceClearBacklog => NamespaceAction(AuthAction::Consume), Namespace, "POST /admin/v2/namespaces/{t}/{ns}/clearBacklog|unsubscribe";
        /// GET /admin/v2/namespaces/{t}/{ns}/topics, GET /admin/v2/persistent/{t}/{ns}[/partitioned].
        ListTopics => NamespaceProduceOrConsume, Namespace, "GET /admin/v2/namespaces/{t}/{ns}/topics";
        /// PUT /admin/v2/persistent/{t}/{ns}/{topic}[/partitions].
        CreateTopic => TenantAdmin, Topic, "PUT /admin/v2/persistent/{t}/{ns}/{topic}[/partitions]";
        /// DELETE /admin/v2/persistent/{t}/{ns}/{topic}[/partitions] (force).
        DeleteTopic => TenantAdmin, Topic, "DELETE /admin/v2/persistent/{t}/{ns}/{topic}[/partitions]";
        /// POST /admin/v2/persistent/{t}/{ns}/{topic}/partitions (increase).
        UpdatePartitions => TenantAdmin, Topic, "POST /admin/v2/persistent/{t}/{ns}/{topic}/partitions";
        /// GET /admin/v2/persistent/{t}/{ns}/{topic}/partitions.
        GetPartitionedMetadata => ProduceOrConsume, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/partitions";
        /// GET /lookup/v2/topic/persistent/{t}/{ns}/{topic}.
        LookupTopic => ProduceOrConsume, Topic, "GET /lookup/v2/topic/persistent/{t}/{ns}/{topic}";
        /// GET .../stats (subscriptions, consumers, addresses).
        TopicStats => Consume, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/stats";
        /// GET .../partitioned-stats.
        PartitionedStats => Consume, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/partitioned-stats";
        /// GET .../internalStats (ledgers, cursors).
        InternalStats => Consume, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/internalStats";
        /// PUT .../unload.
        Unload => TenantAdmin, Topic, "PUT /admin/v2/persistent/{t}/{ns}/{topic}/unload";
        /// POST .../terminate.
        Terminate => TenantAdmin, Topic, "POST /admin/v2/persistent/{t}/{ns}/{topic}/terminate";
        /// GET .../subscriptions.
        ListSubscriptions => Consume, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/subscriptions";
        /// PUT .../subscription/{sub}.
        CreateSubscription => Consume, Topic, "PUT /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}";
        /// DELETE .../subscription/{sub}.
        DeleteSubscription => Consume, Topic, "DELETE /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}";
        /// POST .../subscription/{sub}/resetcursor[/{time}].
        ResetCursor => Consume, Topic, "POST /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}/resetcursor";
        /// POST .../subscription/{sub}/skip/{n}, skip_all (clear backlog).
        SkipMessages => Consume, Topic, "POST /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}/skip*";
        /// POST .../subscription/{sub}/expireMessages/{secs}.
        ExpireMessages => Consume, Topic, "POST /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}/expireMessages";
        /// GET .../subscription/{sub}/position/{n} (peek; CVE-2021-41571 class).
        PeekMessages => Consume, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/subscription/{sub}/position/{n}";
        /// GET .../ledger/{l}/entry/{e} (CVE-2021-41571).
        GetMessageById => Consume, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/ledger/{l}/entry/{e}";
        /// GET .../lastMessageId.
        GetLastMessageIdRest => Consume, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/lastMessageId";
        /// GET .../examinemessage (a stored message, like peek).
        ExamineMessage => Consume, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/examinemessage";
        /// PUT .../compaction.
        TriggerCompaction => TenantAdmin, Topic, "PUT /admin/v2/persistent/{t}/{ns}/{topic}/compaction";
        /// GET .../compaction.
        CompactionStatus => TenantAdmin, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/compaction";
        /// PUT .../offload (tiered storage).
        TriggerOffload => TenantAdmin, Topic, "PUT /admin/v2/persistent/{t}/{ns}/{topic}/offload";
        /// GET .../offload.
        OffloadStatus => TenantAdmin, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/offload";
        /// GET .../permissions.
        GetTopicPermissions => TenantAdmin, Topic, "GET /admin/v2/persistent/{t}/{ns}/{topic}/permissions";
        /// POST/DELETE .../permissions/{role}.
        GrantRevokeTopicPermission => TenantAdmin, Topic, "POST|DELETE /admin/v2/persistent/{t}/{ns}/{topic}/permissions/{role}";
        /// Topic-level policies (CVE-2024-28098 class: never for produce/consume roles).
        TopicPolicies => TenantAdmin, Topic, "GET|POST|DELETE /admin/v2/persistent/{t}/{ns}/{topic}/policy";
        /// GET /admin/v2/schemas/{t}/{ns}/{topic}/schema.
        GetSchemaRest => ProduceOrConsume, Topic, "GET /admin/v2/schemas/{t}/{ns}/{topic}/schema";
        /// POST /admin/v2/schemas/{t}/{ns}/{topic}/schema.
        PostSchema => Produce, Topic, "POST /admin/v2/schemas/{t}/{ns}/{topic}/schema";
        /// DELETE /admin/v2/schemas/{t}/{ns}/{topic}/schema.
        DeleteSchema => TenantAdmin, Topic, "DELETE /admin/v2/schemas/{t}/{ns}/{topic}/schema";
    }
}

/// The permission table as Markdown rows (`| operation | permission |`), as in the crate docs.
pub fn markdown_table() -> String {
    let mut s = String::from("| operation | needs |\n|---|---|\n");
    for c in BinaryCommand::ALL {
        s.push_str(&format!(
            "| `{}` | {} |\n",
            c.label(),
            c.permission().name()
        ));
    }
    for o in RestOperation::ALL {
        s.push_str(&format!(
            "| `{}` | {} |\n",
            o.label(),
            o.permission().name()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in the crate docs (`lib.rs`) is the code's table, row for row.
    #[test]
    fn doc_table_matches_code() {
        let docs: String = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! ").or(l.strip_prefix("//!")))
            .map(|l| format!("{l}\n"))
            .collect();
        let table = markdown_table();
        if !docs.contains(&table) {
            println!("{table}");
            panic!("the permission table in lib.rs is out of date: paste the table printed above");
        }
    }

    #[test]
    fn every_permission_has_a_distinct_name() {
        let mut names: Vec<&str> = RestOperation::ALL.iter().map(|o| o.label()).collect();
        names.extend(BinaryCommand::ALL.iter().map(|c| c.label()));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate labels");
    }
}
