use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::permissions::Scope;

const ROLES: [Option<&str>; 6] = [
    Some("root"),
    Some("a-admin"),
    Some("a-producer"),
    Some("a-consumer"),
    Some("b-consumer"),
    None,
];

fn set<T: Ord + Clone>(v: &[T]) -> BTreeSet<T> {
    v.iter().cloned().collect()
}

struct World {
    a: TenantInfo,
    b: TenantInfo,
    a_ns: Policies,
    b_ns: Policies,
    a_topic: TopicPath,
    a_partition: TopicPath,
    b_topic: TopicPath,
}

fn world() -> World {
    let a = TenantInfo {
        admin_roles: set(&["a-admin".to_string()]),
        allowed_clusters: set(&["standalone".to_string()]),
    };
    let b = TenantInfo {
        admin_roles: set(&["b-admin".to_string()]),
        allowed_clusters: BTreeSet::new(),
    };
    let mut a_ns = Policies::default();
    a_ns.auth_policies
        .namespace_auth
        .insert("a-producer".into(), set(&[AuthAction::Produce]));
    a_ns.auth_policies.destination_auth.insert(
        "persistent://A/ns/t".into(),
        BTreeMap::from([("a-consumer".to_string(), set(&[AuthAction::Consume]))]),
    );
    a_ns.auth_policies
        .subscription_auth_roles
        .insert("locked".into(), set(&["someone-else".to_string()]));
    let mut b_ns = Policies::default();
    b_ns.auth_policies
        .namespace_auth
        .insert("b-consumer".into(), set(&[AuthAction::Consume]));
    World {
        a,
        b,
        a_ns,
        b_ns,
        a_topic: TopicPath::parse("persistent://A/ns/t").unwrap(),
        a_partition: TopicPath::parse("persistent://A/ns/t-partition-3").unwrap(),
        b_topic: TopicPath::parse("persistent://B/ns/t").unwrap(),
    }
}

fn authorizer() -> Authorizer {
    Authorizer::new(["root"])
}

fn outcome(r: Result<(), AuthzError>) -> char {
    match r {
        Ok(()) => 'Y',
        Err(AuthzError::Forbidden { .. }) => 'N',
        Err(AuthzError::Unauthenticated) => 'U',
    }
}

/// Roles: superuser, A admin, A producer (namespace grant), A consumer (topic grant),
/// B consumer (grants only in tenant B), anonymous. Resources: tenant A's.
const REST_EXPECTED: &[(RestOperation, &str)] = {
    use RestOperation::*;
    &[
        (ListClusters, "YYYYYU"),
        (GetCluster, "YNNNNU"),
        (ManageCluster, "YNNNNU"),
        (ListBrokers, "YNNNNU"),
        (LeaderBroker, "YNNNNU"),
        (HealthCheck, "YNNNNU"),
        (ListBookies, "YNNNNU"),
        (Metrics, "YNNNNU"),
        (ListTenants, "YNNNNU"),
        (GetTenant, "YYNNNU"),
        (CreateTenant, "YNNNNU"),
        (UpdateTenant, "YNNNNU"),
        (DeleteTenant, "YNNNNU"),
        (ListNamespaces, "YYNNNU"),
        (CreateNamespace, "YYNNNU"),
        (DeleteNamespace, "YYNNNU"),
        (GetNamespacePolicies, "YYNNNU"),
        (SetNamespacePolicy, "YYNNNU"),
        (GetNamespacePermissions, "YYNNNU"),
        (GrantRevokeNamespacePermission, "YYNNNU"),
        (NamespaceClearBacklog, "YYNNNU"),
        (ListTopics, "YYYNNU"),
        (CreateTopic, "YYNNNU"),
        (DeleteTopic, "YYNNNU"),
        (UpdatePartitions, "YYNNNU"),
        (GetPartitionedMetadata, "YYYYNU"),
        (LookupTopic, "YYYYNU"),
        (TopicStats, "YYNYNU"),
        (PartitionedStats, "YYNYNU"),
        (InternalStats, "YYNYNU"),
        (Unload, "YYNNNU"),
        (Terminate, "YYNNNU"),
        (ListSubscriptions, "YYNYNU"),
        (CreateSubscription, "YYNYNU"),
        (DeleteSubscription, "YYNYNU"),
        (ResetCursor, "YYNYNU"),
        (SkipMessages, "YYNYNU"),
        (ExpireMessages, "YYNYNU"),
        (PeekMessages, "YYNYNU"),
        (GetMessageById, "YYNYNU"),
        (GetLastMessageIdRest, "YYNYNU"),
        (ExamineMessage, "YYNYNU"),
        (TriggerCompaction, "YYNNNU"),
        (CompactionStatus, "YYNNNU"),
        (TriggerOffload, "YYNNNU"),
        (OffloadStatus, "YYNNNU"),
        (GetTopicPermissions, "YYNNNU"),
        (GrantRevokeTopicPermission, "YYNNNU"),
        (TopicPolicies, "YYNNNU"),
        (GetSchemaRest, "YYYYNU"),
        (PostSchema, "YYYNNU"),
        (DeleteSchema, "YYNNNU"),
    ]
};

const BINARY_EXPECTED: &[(BinaryCommand, &str)] = {
    use BinaryCommand::*;
    &[
        (Producer, "YYYNNU"),
        (Subscribe, "YYNYNU"),
        (Lookup, "YYYYNU"),
        (PartitionedMetadata, "YYYYNU"),
        (GetSchema, "YYYYNU"),
        (GetOrCreateSchema, "YYYNNU"),
        (GetLastMessageId, "YYYYNU"),
        (GetTopicsOfNamespace, "YYYNNU"),
        (WatchTopicList, "YYYNNU"),
    ]
};

fn resource<'a>(w: &'a World, scope: Scope, topic: &'a TopicPath, tenant_b: bool) -> Resource<'a> {
    let (name, info, ns) = if tenant_b {
        ("B", &w.b, &w.b_ns)
    } else {
        ("A", &w.a, &w.a_ns)
    };
    match scope {
        Scope::Cluster => Resource::cluster(),
        Scope::Tenant => Resource::tenant(name, Some(info)),
        Scope::Namespace => Resource::namespace(name, Some(info), Some(ns)),
        Scope::Topic => Resource::topic(topic, Some(info), Some(ns)).with_subscription("sub"),
    }
}

fn row(f: impl Fn(Option<&str>) -> Result<(), AuthzError>) -> String {
    ROLES.iter().map(|r| outcome(f(*r))).collect()
}

#[test]
fn rest_matrix_covers_every_operation() {
    let w = world();
    let az = authorizer();
    assert_eq!(REST_EXPECTED.len(), RestOperation::ALL.len());
    for op in RestOperation::ALL {
        let (_, want) = REST_EXPECTED.iter().find(|(o, _)| o == op).unwrap();
        for topic in [&w.a_topic, &w.a_partition] {
            let res = resource(&w, op.scope(), topic, false);
            let got = row(|r| az.check_rest(r, *op, &res));
            assert_eq!(&got, want, "{op:?} on {topic}");
        }
    }
}

#[test]
fn binary_matrix_covers_every_command() {
    let w = world();
    let az = authorizer();
    assert_eq!(BINARY_EXPECTED.len(), BinaryCommand::ALL.len());
    for cmd in BinaryCommand::ALL {
        let (_, want) = BINARY_EXPECTED.iter().find(|(c, _)| c == cmd).unwrap();
        for topic in [&w.a_topic, &w.a_partition] {
            let res = resource(&w, cmd.scope(), topic, false);
            let got = row(|r| az.check_command(r, *cmd, &res));
            assert_eq!(&got, want, "{cmd:?} on {topic}");
        }
    }
}

#[test]
fn tenant_a_roles_get_nothing_in_tenant_b() {
    let w = world();
    let az = authorizer();
    for op in RestOperation::ALL {
        let res = resource(&w, op.scope(), &w.b_topic, true);
        for role in ["a-admin", "a-producer", "a-consumer"] {
            let r = az.check_rest(Some(role), *op, &res);
            if op.permission() == Permission::Authenticated {
                assert!(r.is_ok());
            } else {
                assert_eq!(outcome(r), 'N', "{role} {op:?}");
            }
        }
        // and B's consumer gets consume rights there
        if op.scope() == Scope::Topic && op.permission() == Permission::Consume {
            assert!(
                az.check_rest(Some("b-consumer"), *op, &res).is_ok(),
                "{op:?}"
            );
        }
    }
}

#[test]
fn subscription_roles_and_errors() {
    let w = world();
    let az = authorizer();
    let locked = Resource::topic(&w.a_topic, Some(&w.a), Some(&w.a_ns)).with_subscription("locked");
    assert!(!az.can_consume(Some("a-consumer"), &locked));
    assert!(az.can_consume(Some("a-admin"), &locked));
    assert!(az.can_consume(Some("root"), &locked));
    let free = Resource::topic(&w.a_topic, Some(&w.a), Some(&w.a_ns)).with_subscription("free");
    assert!(az.can_consume(Some("a-consumer"), &free));
    // errors map to Pulsar codes
    let e = az
        .check_command(Some("a-producer"), BinaryCommand::Subscribe, &free)
        .unwrap_err();
    // 401, as Pulsar's PulsarWebResource (HTTP does not tell it from no credentials).
    assert_eq!(e.http_status(), 401);
    assert_eq!(
        e.server_error(),
        strata_proto::pulsar::ServerError::AuthorizationError
    );
    assert!(
        e.to_string().contains("consume on persistent://A/ns/t"),
        "{e}"
    );
    let e = az
        .check_command(None, BinaryCommand::Subscribe, &free)
        .unwrap_err();
    assert_eq!(e.http_status(), 401);
    assert_eq!(
        e.server_error(),
        strata_proto::pulsar::ServerError::AuthenticationError
    );
}

#[test]
fn helpers_and_pulsar_operations() {
    let w = world();
    let az = authorizer();
    assert!(az.is_superuser(Some("root")));
    assert!(!az.is_superuser(Some("a-admin")));
    assert!(!az.is_superuser(None));
    assert!(az.is_tenant_admin(Some("a-admin"), Some(&w.a)));
    assert!(az.is_tenant_admin(Some("root"), Some(&w.a)));
    assert!(!az.is_tenant_admin(Some("a-admin"), Some(&w.b)));
    assert!(!az.is_tenant_admin(None, Some(&w.a)));
    let t = Resource::topic(&w.a_topic, Some(&w.a), Some(&w.a_ns));
    assert!(az.can_produce(Some("a-producer"), &t));
    assert!(!az.can_produce(Some("a-consumer"), &t));
    assert!(az.can_lookup(Some("a-consumer"), &t));
    assert!(!az.can_lookup(Some("b-consumer"), &t));
    assert!(az.allowed_topic_operation(Some("a-consumer"), TopicOperation::PeekMessages, &t));
    assert!(!az.allowed_topic_operation(Some("a-producer"), TopicOperation::PeekMessages, &t));
    assert!(!az.allowed_topic_operation(Some("a-consumer"), TopicOperation::Admin, &t));
    // namespace actions stored as functions/sources/sinks/packages
    let mut ns = w.a_ns.clone();
    ns.auth_policies.namespace_auth.insert(
        "fn-role".into(),
        set(&[AuthAction::Functions, AuthAction::Packages]),
    );
    let n = Resource::namespace("A", Some(&w.a), Some(&ns));
    assert!(az.allowed_namespace_operation(Some("fn-role"), NamespaceOperation::Functions, &n));
    assert!(az.allowed_namespace_operation(Some("fn-role"), NamespaceOperation::Packages, &n));
    assert!(!az.allowed_namespace_operation(Some("fn-role"), NamespaceOperation::Sinks, &n));
    assert!(!az.allowed_namespace_operation(Some("fn-role"), NamespaceOperation::GetTopics, &n));
    assert!(az.allowed_namespace_operation(Some("a-producer"), NamespaceOperation::GetTopics, &n));
    assert!(!az.allowed_namespace_operation(Some("a-producer"), NamespaceOperation::Admin, &n));
    assert!(az.allowed_namespace_operation(Some("a-admin"), NamespaceOperation::Admin, &n));
    // a deleted namespace grants nothing (admins keep access)
    let mut gone = w.a_ns.clone();
    gone.deleted = true;
    let g = Resource::topic(&w.a_topic, Some(&w.a), Some(&gone));
    assert!(!az.can_produce(Some("a-producer"), &g));
    assert!(az.can_produce(Some("a-admin"), &g));
    // a missing tenant or namespace grants nothing
    let none = Resource::topic(&w.a_topic, None, None);
    assert!(!az.can_produce(Some("a-producer"), &none));
    assert!(!az.can_produce(Some("a-admin"), &none));
    assert!(az.can_produce(Some("root"), &none));
}

#[test]
fn disabled_authorizer_allows_everything() {
    let w = world();
    let az = Authorizer::disabled();
    assert!(!az.is_enabled());
    for op in RestOperation::ALL {
        let res = resource(&w, op.scope(), &w.a_topic, false);
        assert_eq!(row(|r| az.check_rest(r, *op, &res)), "YYYYYY");
    }
}

#[test]
fn partition_names() {
    let p = |s: &str| partitioned_name(&TopicPath::parse(s).unwrap());
    assert_eq!(
        p("persistent://a/b/t-partition-0").as_deref(),
        Some("persistent://a/b/t")
    );
    assert_eq!(
        p("persistent://a/b/x-partition-1-partition-12").as_deref(),
        Some("persistent://a/b/x-partition-1")
    );
    assert_eq!(p("persistent://a/b/t-partition-"), None);
    assert_eq!(p("persistent://a/b/t-partition-x"), None);
    assert_eq!(p("persistent://a/b/-partition-1"), None);
    assert_eq!(p("persistent://a/b/t"), None);
    // a grant on a partition does not leak to the partitioned topic or to siblings
    let w = world();
    let mut ns = Policies::default();
    ns.auth_policies.destination_auth.insert(
        "persistent://A/ns/t-partition-1".into(),
        BTreeMap::from([("r".to_string(), set(&[AuthAction::Produce]))]),
    );
    let az = authorizer();
    let t1 = TopicPath::parse("persistent://A/ns/t-partition-1").unwrap();
    let t2 = TopicPath::parse("persistent://A/ns/t-partition-2").unwrap();
    assert!(az.can_produce(Some("r"), &Resource::topic(&t1, Some(&w.a), Some(&ns))));
    assert!(!az.can_produce(Some("r"), &Resource::topic(&t2, Some(&w.a), Some(&ns))));
    assert!(!az.can_produce(
        Some("r"),
        &Resource::topic(&w.a_topic, Some(&w.a), Some(&ns))
    ));
}

const PROP_ROLES: [&str; 4] = ["r0", "r1", "r2", "r3"];
const PROP_TOPICS: [&str; 3] = [
    "persistent://T/ns/x",
    "persistent://T/ns/x-partition-0",
    "persistent://T/ns/y",
];

fn arb_actions() -> impl Strategy<Value = BTreeSet<AuthAction>> {
    proptest::collection::btree_set(
        prop_oneof![
            Just(AuthAction::Produce),
            Just(AuthAction::Consume),
            Just(AuthAction::Functions),
            Just(AuthAction::Packages),
        ],
        0..3,
    )
}

fn arb_policies() -> impl Strategy<Value = Policies> {
    (
        proptest::collection::btree_map(0..4usize, arb_actions(), 0..4),
        proptest::collection::btree_map(
            0..3usize,
            proptest::collection::btree_map(0..4usize, arb_actions(), 0..3),
            0..3,
        ),
        proptest::collection::btree_map(
            prop_oneof![Just("s1"), Just("s2")],
            proptest::collection::btree_set(0..4usize, 0..3),
            0..2,
        ),
    )
        .prop_map(|(ns, topics, subs)| {
            let mut p = Policies::default();
            for (r, a) in ns {
                p.auth_policies
                    .namespace_auth
                    .insert(PROP_ROLES[r].into(), a);
            }
            for (t, m) in topics {
                p.auth_policies.destination_auth.insert(
                    PROP_TOPICS[t].into(),
                    m.into_iter()
                        .map(|(r, a)| (PROP_ROLES[r].to_string(), a))
                        .collect(),
                );
            }
            for (s, rs) in subs {
                p.auth_policies.subscription_auth_roles.insert(
                    s.into(),
                    rs.into_iter().map(|r| PROP_ROLES[r].to_string()).collect(),
                );
            }
            p
        })
}

fn all_permissions() -> Vec<Permission> {
    let mut v: Vec<Permission> = RestOperation::ALL.iter().map(|o| o.permission()).collect();
    v.extend(BinaryCommand::ALL.iter().map(|c| c.permission()));
    v.extend([
        Permission::NamespaceAction(AuthAction::Functions),
        Permission::NamespaceAction(AuthAction::Packages),
        Permission::NamespaceAction(AuthAction::Sinks),
    ]);
    v
}

proptest! {
    #[test]
    fn superuser_anonymous_lookup_and_isolation(
        policies in arb_policies(),
        admin in proptest::option::of(0..4usize),
        role in 0..4usize,
        topic in 0..3usize,
        sub in prop_oneof![Just(None), Just(Some("s1")), Just(Some("s2")), Just(Some("s3"))],
    ) {
        let az = Authorizer::new(["root"]);
        let tenant = TenantInfo {
            admin_roles: admin.map(|a| PROP_ROLES[a].to_string()).into_iter().collect(),
            allowed_clusters: BTreeSet::new(),
        };
        let t = TopicPath::parse(PROP_TOPICS[topic]).unwrap();
        let mut res = Resource::topic(&t, Some(&tenant), Some(&policies));
        if let Some(s) = sub { res = res.with_subscription(s); }
        let r = Some(PROP_ROLES[role]);
        for p in all_permissions() {
            prop_assert!(az.check(Some("root"), p, &res).is_ok());
            prop_assert_eq!(az.check(None, p, &res), Err(AuthzError::Unauthenticated));
            // a role mentioned nowhere gets only what every authenticated role gets
            let stranger = az.check(Some("stranger"), p, &res).is_ok();
            prop_assert_eq!(stranger, p == Permission::Authenticated);
        }
        let plain = Resource::topic(&t, Some(&tenant), Some(&policies));
        prop_assert_eq!(
            az.can_lookup(r, &plain),
            az.can_produce(r, &plain) || az.can_consume(r, &plain)
        );
        // tenant admins may do everything but superuser operations
        if admin == Some(role) {
            for p in all_permissions() {
                prop_assert_eq!(az.check(r, p, &res).is_ok(), p != Permission::Superuser);
            }
        }
        // in tenant U, whose policies mention nobody, T's grants and T's admin count for nothing
        let other = TopicPath::parse(&PROP_TOPICS[topic].replace("//T/", "//U/")).unwrap();
        let other_tenant = TenantInfo::default();
        let other_policies = Policies::default();
        let res_u = Resource::topic(&other, Some(&other_tenant), Some(&other_policies));
        for p in all_permissions() {
            prop_assert_eq!(az.check(r, p, &res_u).is_ok(), p == Permission::Authenticated);
        }
    }

    #[test]
    fn adding_a_grant_never_takes_a_permission_away(
        policies in arb_policies(),
        role in 0..4usize,
        topic in 0..3usize,
        grant_ns in any::<bool>(),
        grant_topic in 0..3usize,
        action in prop_oneof![Just(AuthAction::Produce), Just(AuthAction::Consume)],
        sub in prop_oneof![Just(None), Just(Some("s1")), Just(Some("s3"))],
    ) {
        let az = Authorizer::new(["root"]);
        let tenant = TenantInfo::default();
        let t = TopicPath::parse(PROP_TOPICS[topic]).unwrap();
        let mut more = policies.clone();
        let r = PROP_ROLES[role];
        if grant_ns {
            more.auth_policies.namespace_auth.entry(r.into()).or_default().insert(action);
        } else {
            more.auth_policies
                .destination_auth
                .entry(PROP_TOPICS[grant_topic].into())
                .or_default()
                .entry(r.into())
                .or_default()
                .insert(action);
        }
        let mk = |p| {
            let res = Resource::topic(&t, Some(&tenant), Some(p));
            match sub { Some(s) => res.with_subscription(s), None => res }
        };
        for p in all_permissions() {
            let before = az.check(Some(r), p, &mk(&policies)).is_ok();
            let after = az.check(Some(r), p, &mk(&more)).is_ok();
            prop_assert!(!before || after, "{p:?}");
        }
    }
}
