//! `strata admin`: the admin REST API from the command line, mirroring `pulsar-admin`.
//!
//! Wire it in `main` as `Admin(strata_client::admin::cli::AdminArgs)` →
//! `strata_client::admin::cli::run(args).await`. Success prints the answer (a table or JSON;
//! writes print nothing, like pulsar-admin); an error prints one line
//! `error: 404 Not Found: Tenant does not exist` to stderr and exits with status 1.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{OutputFormat, payload_text, render};
use super::types::*;
use super::{AdminClient, AdminConfig, AdminError, AdminResult, NamespaceRef, TopicRef};

/// `strata admin ...`.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Admin REST API URL (http:// or https://).
    #[arg(
        long,
        env = "STRATA_ADMIN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub admin_url: String,
    /// Bearer token (JWT) for authentication.
    #[arg(long, env = "STRATA_AUTH_TOKEN", hide_env_values = true, global = true)]
    pub auth_token: Option<String>,
    /// File holding the token (surrounding whitespace is ignored); takes precedence over
    /// `--auth-token` / `STRATA_AUTH_TOKEN`.
    #[arg(long, global = true)]
    pub auth_token_file: Option<PathBuf>,
    /// PEM file with the CA certificate(s) that sign the server's certificate (https:// URLs).
    #[arg(long, global = true)]
    pub tls_ca_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30, global = true)]
    pub request_timeout_secs: u64,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The command groups.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Clusters.
    #[command(subcommand)]
    Clusters(ClustersCmd),
    /// Brokers.
    #[command(subcommand)]
    Brokers(BrokersCmd),
    /// Bookies.
    #[command(subcommand)]
    Bookies(BookiesCmd),
    /// Tenants.
    #[command(subcommand)]
    Tenants(TenantsCmd),
    /// Namespaces and their policies.
    #[command(subcommand)]
    Namespaces(NamespacesCmd),
    /// Topics and subscriptions.
    #[command(subcommand)]
    Topics(TopicsCmd),
}

/// `clusters`.
#[derive(Subcommand, Debug)]
pub enum ClustersCmd {
    /// List clusters.
    List,
    /// Show a cluster's configuration.
    Get {
        /// Cluster name.
        cluster: String,
    },
}

/// `brokers`.
#[derive(Subcommand, Debug)]
pub enum BrokersCmd {
    /// List the active brokers of a cluster.
    List {
        /// Cluster name.
        #[arg(default_value = "standalone")]
        cluster: String,
    },
    /// Show the leader broker.
    Leader,
    /// Run the broker health check.
    Healthcheck,
}

/// `bookies`.
#[derive(Subcommand, Debug)]
pub enum BookiesCmd {
    /// List the bookies.
    List,
    /// Show the bookies' rack placement.
    Racks,
}

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

/// `namespaces`.
#[derive(Subcommand, Debug)]
pub enum NamespacesCmd {
    /// List a tenant's namespaces.
    List {
        /// Tenant name.
        tenant: String,
    },
    /// List the topics of a namespace.
    Topics {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Create a namespace.
    Create {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Delete a namespace (refused while it has topics unless --force).
    Delete {
        /// `tenant/namespace`.
        namespace: String,
        /// Delete its topics too.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Show all policies of a namespace.
    Policies {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Set retention of fully consumed messages.
    SetRetention {
        /// `tenant/namespace`.
        namespace: String,
        /// Size limit: bytes with an optional K/M/G/T suffix; -1 unlimited, 0 none.
        #[arg(long, short = 's', allow_hyphen_values = true)]
        size: String,
        /// Time limit: a number with s/m/h/d/w (seconds without a unit); -1 unlimited, 0 none.
        #[arg(long, short = 't', allow_hyphen_values = true)]
        time: String,
    },
    /// Show retention.
    GetRetention {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Set message TTL.
    SetMessageTtl {
        /// `tenant/namespace`.
        namespace: String,
        /// TTL: a number with s/m/h/d/w (seconds without a unit); 0 disables.
        #[arg(long, alias = "messageTTL", allow_hyphen_values = true)]
        ttl: String,
    },
    /// Show message TTL.
    GetMessageTtl {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Set the backlog quota.
    SetBacklogQuota {
        /// `tenant/namespace`.
        namespace: String,
        /// Size limit: bytes with an optional K/M/G/T suffix.
        #[arg(long, short = 'l', allow_hyphen_values = true)]
        limit: String,
        /// Time limit (s/m/h/d/w); unset: none.
        #[arg(long, alias = "limitTime", allow_hyphen_values = true)]
        limit_time: Option<String>,
        /// What to do when the backlog exceeds the limit.
        #[arg(long, short = 'p', value_enum)]
        policy: QuotaPolicyArg,
        /// Which limit this sets: `destination_storage` (size) or `message_age` (time).
        #[arg(
            long = "type",
            short = 't',
            value_enum,
            default_value = "destination_storage"
        )]
        quota_type: QuotaTypeArg,
    },
    /// Show the backlog quotas.
    GetBacklogQuotas {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Set persistence (ensemble, write quorum, ack quorum).
    SetPersistence {
        /// `tenant/namespace`.
        namespace: String,
        /// Ensemble size E.
        #[arg(long = "bookkeeper-ensemble", short = 'e')]
        ensemble: u32,
        /// Write quorum Qw.
        #[arg(long = "bookkeeper-write-quorum", short = 'w')]
        write_quorum: u32,
        /// Ack quorum Qa.
        #[arg(long = "bookkeeper-ack-quorum", short = 'a')]
        ack_quorum: u32,
        /// Mark-delete rate limit (0: none).
        #[arg(long = "ml-mark-delete-max-rate", short = 'r', default_value_t = 0.0)]
        mark_delete_rate: f64,
    },
    /// Show persistence.
    GetPersistence {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Turn deduplication on or off.
    SetDeduplication {
        /// `tenant/namespace`.
        namespace: String,
        /// Enable.
        #[arg(
            long,
            short = 'e',
            conflicts_with = "disable",
            required_unless_present = "disable"
        )]
        enable: bool,
        /// Disable.
        #[arg(long, short = 'd')]
        disable: bool,
    },
    /// Show deduplication.
    GetDeduplication {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Set the maximum number of producers per topic (0: unlimited).
    SetMaxProducersPerTopic {
        /// `tenant/namespace`.
        namespace: String,
        /// The limit.
        #[arg(long = "max-producers-per-topic", short = 'p')]
        max: i64,
    },
    /// Show the maximum number of producers per topic.
    GetMaxProducersPerTopic {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Set the maximum number of consumers per topic (0: unlimited).
    SetMaxConsumersPerTopic {
        /// `tenant/namespace`.
        namespace: String,
        /// The limit.
        #[arg(long = "max-consumers-per-topic", short = 'c')]
        max: i64,
    },
    /// Show the maximum number of consumers per topic.
    GetMaxConsumersPerTopic {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Set the dispatch rate limit (per topic, per period).
    SetDispatchRate {
        /// `tenant/namespace`.
        namespace: String,
        /// Messages per period (-1: unlimited).
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        msg_dispatch_rate: i64,
        /// Bytes per period (-1: unlimited).
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        byte_dispatch_rate: i64,
        /// Period in seconds.
        #[arg(long, default_value_t = 1)]
        dispatch_rate_period: i64,
        /// The rate is relative to the publish rate.
        #[arg(long)]
        relative_to_publish_rate: bool,
    },
    /// Show the dispatch rate limit.
    GetDispatchRate {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Set the dispatch rate limit of each subscription (per period).
    SetSubscriptionDispatchRate {
        /// `tenant/namespace`.
        namespace: String,
        /// Messages per period (-1: unlimited).
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        msg_dispatch_rate: i64,
        /// Bytes per period (-1: unlimited).
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        byte_dispatch_rate: i64,
        /// Period in seconds.
        #[arg(long, default_value_t = 1)]
        dispatch_rate_period: i64,
    },
    /// Show the subscription dispatch rate limit.
    GetSubscriptionDispatchRate {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Set the publish rate limit (per producer, per second).
    SetPublishRate {
        /// `tenant/namespace`.
        namespace: String,
        /// Messages per second (-1: unlimited).
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        msg_publish_rate: i64,
        /// Bytes per second (-1: unlimited).
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        byte_publish_rate: i64,
    },
    /// Show the publish rate limit.
    GetPublishRate {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Set the offload threshold (stored; used by tiered storage).
    SetOffloadThreshold {
        /// `tenant/namespace`.
        namespace: String,
        /// Bytes with an optional K/M/G/T suffix; -1 disables.
        #[arg(long, short = 's', allow_hyphen_values = true)]
        size: String,
    },
    /// Show the offload threshold.
    GetOffloadThreshold {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Remove a policy so the broker default applies again.
    #[command(name = "remove-policy", visible_alias = "remove")]
    RemovePolicy {
        /// `tenant/namespace`.
        namespace: String,
        /// Which policy.
        #[arg(value_enum)]
        policy: PolicyName,
    },
    /// Grant a role actions on the namespace.
    GrantPermission {
        /// `tenant/namespace`.
        namespace: String,
        /// The role.
        #[arg(long)]
        role: String,
        /// Comma-separated actions: produce, consume (also functions, sources, sinks).
        #[arg(long, value_delimiter = ',', required = true)]
        actions: Vec<String>,
    },
    /// Revoke a role's grants on the namespace.
    RevokePermission {
        /// `tenant/namespace`.
        namespace: String,
        /// The role.
        #[arg(long)]
        role: String,
    },
    /// Show the namespace's grants (role → actions).
    Permissions {
        /// `tenant/namespace`.
        namespace: String,
    },
}

/// A namespace policy that `remove-policy` can reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyName {
    /// Retention.
    Retention,
    /// Message TTL.
    MessageTtl,
    /// Backlog quota.
    BacklogQuota,
    /// Persistence.
    Persistence,
    /// Deduplication.
    Deduplication,
    /// Max producers per topic.
    MaxProducersPerTopic,
    /// Max consumers per topic.
    MaxConsumersPerTopic,
    /// Dispatch rate.
    DispatchRate,
    /// Subscription dispatch rate.
    SubscriptionDispatchRate,
    /// Publish rate.
    PublishRate,
    /// Offload threshold.
    OffloadThreshold,
}

impl PolicyName {
    /// The REST path segment.
    pub fn rest_name(self) -> &'static str {
        match self {
            PolicyName::Retention => "retention",
            PolicyName::MessageTtl => "messageTTL",
            PolicyName::BacklogQuota => "backlogQuota",
            PolicyName::Persistence => "persistence",
            PolicyName::Deduplication => "deduplication",
            PolicyName::MaxProducersPerTopic => "maxProducersPerTopic",
            PolicyName::MaxConsumersPerTopic => "maxConsumersPerTopic",
            PolicyName::DispatchRate => "dispatchRate",
            PolicyName::SubscriptionDispatchRate => "subscriptionDispatchRate",
            PolicyName::PublishRate => "publishRate",
            PolicyName::OffloadThreshold => "offloadThreshold",
        }
    }
}

/// `--policy` of `set-backlog-quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum QuotaPolicyArg {
    /// Hold producers until the backlog drops.
    ProducerRequestHold,
    /// Fail producers' sends.
    ProducerException,
    /// Evict the oldest backlog.
    ConsumerBacklogEviction,
}

/// Which backlog limit `set-backlog-quota` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum QuotaTypeArg {
    /// The size limit (`--limit`).
    DestinationStorage,
    /// The age limit of the oldest unacknowledged message (`--limit-time`).
    MessageAge,
}

impl QuotaTypeArg {
    /// The REST name (`backlogQuotaType`).
    pub fn rest_name(self) -> &'static str {
        match self {
            QuotaTypeArg::DestinationStorage => "destination_storage",
            QuotaTypeArg::MessageAge => "message_age",
        }
    }
}

impl From<QuotaPolicyArg> for BacklogQuotaPolicy {
    fn from(p: QuotaPolicyArg) -> Self {
        match p {
            QuotaPolicyArg::ProducerRequestHold => BacklogQuotaPolicy::ProducerRequestHold,
            QuotaPolicyArg::ProducerException => BacklogQuotaPolicy::ProducerException,
            QuotaPolicyArg::ConsumerBacklogEviction => BacklogQuotaPolicy::ConsumerBacklogEviction,
        }
    }
}

/// `topics`.
#[derive(Subcommand, Debug)]
pub enum TopicsCmd {
    /// List the topics of a namespace (partitions included).
    List {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// List the partitioned topics of a namespace.
    ListPartitionedTopics {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// Create a non-partitioned topic.
    Create {
        /// Topic name.
        topic: String,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        topic: String,
        /// Delete even with producers, consumers or subscriptions.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Create a partitioned topic.
    CreatePartitionedTopic {
        /// Topic name.
        topic: String,
        /// Number of partitions.
        #[arg(long, short = 'p')]
        partitions: u32,
    },
    /// Increase the partition count of a partitioned topic.
    UpdatePartitionedTopic {
        /// Topic name.
        topic: String,
        /// New number of partitions.
        #[arg(long, short = 'p')]
        partitions: u32,
    },
    /// Show a topic's partition count.
    GetPartitionedTopicMetadata {
        /// Topic name.
        topic: String,
    },
    /// Delete a partitioned topic.
    DeletePartitionedTopic {
        /// Topic name.
        topic: String,
        /// Delete even with producers, consumers or subscriptions.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Show a topic's stats.
    Stats {
        /// Topic name.
        topic: String,
    },
    /// Show a topic's internal (storage) stats.
    StatsInternal {
        /// Topic name.
        topic: String,
    },
    /// Show a partitioned topic's aggregated stats.
    PartitionedStats {
        /// Topic name.
        topic: String,
        /// Include each partition's stats.
        #[arg(long)]
        per_partition: bool,
    },
    /// Unload a topic (clients reconnect).
    Unload {
        /// Topic name.
        topic: String,
    },
    /// Grant a role actions on this topic.
    GrantPermission {
        /// Topic name.
        topic: String,
        /// The role.
        #[arg(long)]
        role: String,
        /// Comma-separated actions: produce, consume.
        #[arg(long, value_delimiter = ',', required = true)]
        actions: Vec<String>,
    },
    /// Revoke a role's grant on this topic.
    RevokePermission {
        /// Topic name.
        topic: String,
        /// The role.
        #[arg(long)]
        role: String,
    },
    /// Show who may do what on this topic (namespace grants included).
    Permissions {
        /// Topic name.
        topic: String,
    },
    /// Terminate a topic (no more writes).
    Terminate {
        /// Topic name.
        topic: String,
    },
    /// List a topic's subscriptions.
    Subscriptions {
        /// Topic name.
        topic: String,
    },
    /// Create a subscription at a position.
    CreateSubscription {
        /// Topic name.
        topic: String,
        /// Subscription name.
        #[arg(long, short = 's')]
        subscription: String,
        /// earliest, latest or LEDGER:ENTRY.
        #[arg(
            long = "messageId",
            short = 'm',
            alias = "message-id",
            default_value = "latest"
        )]
        message_id: String,
    },
    /// Delete a subscription.
    Unsubscribe {
        /// Topic name.
        topic: String,
        /// Subscription name.
        #[arg(long, short = 's')]
        subscription: String,
        /// Disconnect its consumers first.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Move a subscription's cursor to a time or a message id.
    ResetCursor {
        /// Topic name.
        topic: String,
        /// Subscription name.
        #[arg(long, short = 's')]
        subscription: String,
        /// How far back from now (s/m/h/d/w, e.g. 10m).
        #[arg(
            long,
            short = 't',
            conflicts_with = "message_id",
            required_unless_present = "message_id"
        )]
        time: Option<String>,
        /// earliest, latest or LEDGER:ENTRY.
        #[arg(long = "messageId", short = 'm', alias = "message-id")]
        message_id: Option<String>,
    },
    /// Skip messages of a subscription.
    Skip {
        /// Topic name.
        topic: String,
        /// Subscription name.
        #[arg(long, short = 's')]
        subscription: String,
        /// Number of messages.
        #[arg(long, short = 'n')]
        count: u64,
    },
    /// Skip all messages of a subscription.
    ClearBacklog {
        /// Topic name.
        topic: String,
        /// Subscription name.
        #[arg(long, short = 's')]
        subscription: String,
    },
    /// Expire messages older than a time.
    ExpireMessages {
        /// Topic name.
        topic: String,
        /// Subscription name.
        #[arg(long, short = 's')]
        subscription: String,
        /// Age (s/m/h/d/w; seconds without a unit).
        #[arg(long = "expireTime", short = 't', alias = "expire-time")]
        expire_time: String,
    },
    /// Show the next messages of a subscription without consuming them.
    PeekMessages {
        /// Topic name.
        topic: String,
        /// Subscription name.
        #[arg(long, short = 's')]
        subscription: String,
        /// Number of messages.
        #[arg(long, short = 'n', default_value_t = 1)]
        count: u32,
    },
    /// Show one message by its id.
    GetMessageById {
        /// Topic name.
        topic: String,
        /// Ledger id.
        #[arg(long, short = 'l')]
        ledger_id: i64,
        /// Entry id.
        #[arg(long, short = 'e')]
        entry_id: i64,
    },
    /// Show the id of the last message.
    LastMessageId {
        /// Topic name.
        topic: String,
    },
    /// Trigger compaction.
    Compact {
        /// Topic name.
        topic: String,
    },
    /// Show the compaction status.
    CompactionStatus {
        /// Topic name.
        topic: String,
    },
}

/// Runs `strata admin ...`: prints the result, or `error: ...` and exits with status 1.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    match execute(&args).await {
        Ok(out) => {
            print!("{out}");
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// Builds the client configuration from the global options (reads the token file).
pub fn config(args: &AdminArgs) -> AdminResult<AdminConfig> {
    let token = match (&args.auth_token, &args.auth_token_file) {
        (_, Some(path)) => {
            let t = std::fs::read_to_string(path).map_err(|e| {
                AdminError::InvalidArgument(format!(
                    "cannot read token file {}: {e}",
                    path.display()
                ))
            })?;
            Some(t.trim().to_owned())
        }
        (Some(t), None) => Some(t.trim().to_owned()),
        (None, None) => None,
    };
    if token.as_deref() == Some("") {
        return Err(AdminError::InvalidArgument(
            "the auth token is empty".into(),
        ));
    }
    Ok(AdminConfig {
        url: args.admin_url.clone(),
        token,
        tls_ca_file: args.tls_ca_file.clone(),
        timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
    })
}

/// Runs the command and returns what to print.
pub async fn execute(args: &AdminArgs) -> AdminResult<String> {
    let client = AdminClient::new(&config(args)?)?;
    let out = dispatch(&client, &args.command).await?;
    Ok(match out {
        Out::None => String::new(),
        Out::Value(v) => render(&v, args.output),
        Out::Messages(msgs) => render_messages(&msgs, args.output),
        Out::Text { text, json } => match args.output {
            OutputFormat::Table => format!("{text}\n"),
            OutputFormat::Json => render(&json, OutputFormat::Json),
        },
    })
}

/// What a command produced.
enum Out {
    None,
    Value(Value),
    Messages(Vec<RawMessage>),
    Text { text: String, json: Value },
}

fn val<T: serde::Serialize>(v: T) -> Out {
    Out::Value(serde_json::to_value(v).unwrap_or(Value::Null))
}

fn ns(s: &str) -> AdminResult<NamespaceRef> {
    NamespaceRef::parse(s)
}

fn topic(s: &str) -> AdminResult<TopicRef> {
    TopicRef::parse(s)
}

fn arg_err(e: String) -> AdminError {
    AdminError::InvalidArgument(e)
}

async fn dispatch(c: &AdminClient, cmd: &AdminCommand) -> AdminResult<Out> {
    Ok(match cmd {
        AdminCommand::Clusters(ClustersCmd::List) => val(c.clusters().await?),
        AdminCommand::Clusters(ClustersCmd::Get { cluster }) => val(c.cluster(cluster).await?),
        AdminCommand::Brokers(BrokersCmd::List { cluster }) => {
            val(c.active_brokers(cluster).await?)
        }
        AdminCommand::Brokers(BrokersCmd::Leader) => Out::Value(c.leader_broker().await?),
        AdminCommand::Brokers(BrokersCmd::Healthcheck) => {
            let s = c.healthcheck().await?;
            Out::Text {
                text: s.clone(),
                json: json!({ "status": s }),
            }
        }
        AdminCommand::Bookies(BookiesCmd::List) => {
            let v = c.bookies().await?;
            // `BookiesClusterInfo` is {"bookies": [...]}: a table of the list reads better.
            match v.get("bookies") {
                Some(list) if list.is_array() => Out::Value(list.clone()),
                _ => Out::Value(v),
            }
        }
        AdminCommand::Bookies(BookiesCmd::Racks) => Out::Value(c.bookie_racks().await?),
        AdminCommand::Tenants(cmd) => tenants(c, cmd).await?,
        AdminCommand::Namespaces(cmd) => namespaces(c, cmd).await?,
        AdminCommand::Topics(cmd) => topics(c, cmd).await?,
    })
}

async fn tenants(c: &AdminClient, cmd: &TenantsCmd) -> AdminResult<Out> {
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

async fn namespaces(c: &AdminClient, cmd: &NamespacesCmd) -> AdminResult<Out> {
    use NamespacesCmd as N;
    Ok(match cmd {
        N::List { tenant } => val(c.namespaces(tenant).await?),
        N::Topics { namespace } => val(c.namespace_topics(&ns(namespace)?).await?),
        N::Create { namespace } => {
            c.create_namespace(&ns(namespace)?).await?;
            Out::None
        }
        N::Delete { namespace, force } => {
            c.delete_namespace(&ns(namespace)?, *force).await?;
            Out::None
        }
        N::Policies { namespace } => val(c.policies(&ns(namespace)?).await?),
        N::SetRetention {
            namespace,
            size,
            time,
        } => {
            let r = retention_from_args(size, time).map_err(arg_err)?;
            c.set_retention(&ns(namespace)?, &r).await?;
            Out::None
        }
        N::SetMessageTtl { namespace, ttl } => {
            let secs = parse_duration_secs(ttl).map_err(arg_err)?;
            c.set_message_ttl(&ns(namespace)?, secs).await?;
            Out::None
        }
        N::SetBacklogQuota {
            namespace,
            limit,
            limit_time,
            policy,
            quota_type,
        } => {
            let q = BacklogQuota {
                limit_size: parse_size(limit).map_err(arg_err)?,
                limit_time: match limit_time {
                    Some(t) => parse_duration_secs(t).map_err(arg_err)?,
                    None => -1,
                },
                policy: (*policy).into(),
            };
            c.set_backlog_quota_of_type(&ns(namespace)?, &q, quota_type.rest_name())
                .await?;
            Out::None
        }
        N::SetPersistence {
            namespace,
            ensemble,
            write_quorum,
            ack_quorum,
            mark_delete_rate,
        } => {
            let p = persistence_from_args(*ensemble, *write_quorum, *ack_quorum, *mark_delete_rate)
                .map_err(arg_err)?;
            c.set_persistence(&ns(namespace)?, &p).await?;
            Out::None
        }
        N::SetDeduplication {
            namespace, enable, ..
        } => {
            c.set_deduplication(&ns(namespace)?, *enable).await?;
            Out::None
        }
        N::SetMaxProducersPerTopic { namespace, max } => {
            c.set_max_producers_per_topic(&ns(namespace)?, *max).await?;
            Out::None
        }
        N::SetMaxConsumersPerTopic { namespace, max } => {
            c.set_max_consumers_per_topic(&ns(namespace)?, *max).await?;
            Out::None
        }
        N::SetDispatchRate {
            namespace,
            msg_dispatch_rate,
            byte_dispatch_rate,
            dispatch_rate_period,
            relative_to_publish_rate,
        } => {
            let r = DispatchRate {
                dispatch_throttling_rate_in_msg: *msg_dispatch_rate,
                dispatch_throttling_rate_in_byte: *byte_dispatch_rate,
                relative_to_publish_rate: *relative_to_publish_rate,
                rate_period_in_second: *dispatch_rate_period,
            };
            c.set_dispatch_rate(&ns(namespace)?, &r).await?;
            Out::None
        }
        N::SetSubscriptionDispatchRate {
            namespace,
            msg_dispatch_rate,
            byte_dispatch_rate,
            dispatch_rate_period,
        } => {
            let r = DispatchRate {
                dispatch_throttling_rate_in_msg: *msg_dispatch_rate,
                dispatch_throttling_rate_in_byte: *byte_dispatch_rate,
                relative_to_publish_rate: false,
                rate_period_in_second: *dispatch_rate_period,
            };
            c.set_subscription_dispatch_rate(&ns(namespace)?, &r)
                .await?;
            Out::None
        }
        N::SetPublishRate {
            namespace,
            msg_publish_rate,
            byte_publish_rate,
        } => {
            let r = PublishRate {
                publish_throttling_rate_in_msg: *msg_publish_rate,
                publish_throttling_rate_in_byte: *byte_publish_rate,
            };
            c.set_publish_rate(&ns(namespace)?, &r).await?;
            Out::None
        }
        N::SetOffloadThreshold { namespace, size } => {
            let bytes = parse_size(size).map_err(arg_err)?;
            c.set_offload_threshold(&ns(namespace)?, bytes).await?;
            Out::None
        }
        N::GrantPermission {
            namespace,
            role,
            actions,
        } => {
            let actions = check_actions(actions).map_err(arg_err)?;
            c.grant_permission(&ns(namespace)?, role, &actions).await?;
            Out::None
        }
        N::RevokePermission { namespace, role } => {
            c.revoke_permission(&ns(namespace)?, role).await?;
            Out::None
        }
        N::RemovePolicy { namespace, policy } => {
            c.remove_namespace_policy(&ns(namespace)?, policy.rest_name())
                .await?;
            Out::None
        }
        N::Permissions { namespace } => val(c.permissions(&ns(namespace)?).await?),
        N::GetRetention { namespace } => get_policy(c, namespace, "retention").await?,
        N::GetMessageTtl { namespace } => get_policy(c, namespace, "messageTTL").await?,
        N::GetBacklogQuotas { namespace } => val(c.backlog_quotas(&ns(namespace)?).await?),
        N::GetPersistence { namespace } => get_policy(c, namespace, "persistence").await?,
        N::GetDeduplication { namespace } => get_policy(c, namespace, "deduplication").await?,
        N::GetMaxProducersPerTopic { namespace } => {
            get_policy(c, namespace, "maxProducersPerTopic").await?
        }
        N::GetMaxConsumersPerTopic { namespace } => {
            get_policy(c, namespace, "maxConsumersPerTopic").await?
        }
        N::GetDispatchRate { namespace } => get_policy(c, namespace, "dispatchRate").await?,
        N::GetSubscriptionDispatchRate { namespace } => {
            get_policy(c, namespace, "subscriptionDispatchRate").await?
        }
        N::GetPublishRate { namespace } => get_policy(c, namespace, "publishRate").await?,
        N::GetOffloadThreshold { namespace } => {
            get_policy(c, namespace, "offloadThreshold").await?
        }
    })
}

async fn get_policy(c: &AdminClient, namespace: &str, policy: &str) -> AdminResult<Out> {
    Ok(Out::Value(
        c.namespace_policy(&ns(namespace)?, policy).await?,
    ))
}

async fn topics(c: &AdminClient, cmd: &TopicsCmd) -> AdminResult<Out> {
    use TopicsCmd as T;
    Ok(match cmd {
        T::List { namespace } => val(c.topics(&ns(namespace)?, "persistent").await?),
        T::ListPartitionedTopics { namespace } => {
            val(c.partitioned_topics(&ns(namespace)?, "persistent").await?)
        }
        T::Create { topic: t } => {
            c.create_topic(&topic(t)?).await?;
            Out::None
        }
        T::Delete { topic: t, force } => {
            c.delete_topic(&topic(t)?, false, *force).await?;
            Out::None
        }
        T::CreatePartitionedTopic {
            topic: t,
            partitions,
        } => {
            if *partitions == 0 {
                return Err(arg_err("the partition count must be at least 1".into()));
            }
            c.create_partitioned_topic(&topic(t)?, *partitions).await?;
            Out::None
        }
        T::UpdatePartitionedTopic {
            topic: t,
            partitions,
        } => {
            c.update_partitioned_topic(&topic(t)?, *partitions).await?;
            Out::None
        }
        T::GetPartitionedTopicMetadata { topic: t } => {
            val(c.partitioned_metadata(&topic(t)?).await?)
        }
        T::DeletePartitionedTopic { topic: t, force } => {
            c.delete_topic(&topic(t)?, true, *force).await?;
            Out::None
        }
        T::Stats { topic: t } => val(c.stats(&topic(t)?).await?),
        T::StatsInternal { topic: t } => val(c.internal_stats(&topic(t)?).await?),
        T::PartitionedStats {
            topic: t,
            per_partition,
        } => Out::Value(c.partitioned_stats(&topic(t)?, *per_partition).await?),
        T::Unload { topic: t } => {
            c.unload(&topic(t)?).await?;
            Out::None
        }
        T::GrantPermission {
            topic: t,
            role,
            actions,
        } => {
            let actions = check_actions(actions).map_err(arg_err)?;
            c.grant_topic_permission(&topic(t)?, role, &actions).await?;
            Out::None
        }
        T::RevokePermission { topic: t, role } => {
            c.revoke_topic_permission(&topic(t)?, role).await?;
            Out::None
        }
        T::Permissions { topic: t } => val(c.topic_permissions(&topic(t)?).await?),
        T::Terminate { topic: t } => {
            let id = c.terminate(&topic(t)?).await?;
            Out::Text {
                text: format!("Topic successfully terminated. Last message id: {id}"),
                json: serde_json::to_value(id).unwrap_or(Value::Null),
            }
        }
        T::Subscriptions { topic: t } => val(c.subscriptions(&topic(t)?).await?),
        T::CreateSubscription {
            topic: t,
            subscription,
            message_id,
        } => {
            let id = MessageIdJson::parse(message_id).map_err(arg_err)?;
            c.create_subscription(&topic(t)?, subscription, &id).await?;
            Out::None
        }
        T::Unsubscribe {
            topic: t,
            subscription,
            force,
        } => {
            c.unsubscribe(&topic(t)?, subscription, *force).await?;
            Out::None
        }
        T::ResetCursor {
            topic: t,
            subscription,
            time,
            message_id,
        } => {
            let t = topic(t)?;
            match (time, message_id) {
                (Some(time), _) => {
                    let back_ms = parse_duration_secs(time)
                        .map_err(arg_err)?
                        .saturating_mul(1000);
                    let now_ms = i64::try_from(strata_common::clock::now_ms()).unwrap_or(i64::MAX);
                    c.reset_cursor_to_time(&t, subscription, now_ms.saturating_sub(back_ms))
                        .await?;
                }
                (None, Some(id)) => {
                    let id = MessageIdJson::parse(id).map_err(arg_err)?;
                    c.reset_cursor_to_id(&t, subscription, &id).await?;
                }
                (None, None) => return Err(arg_err("give --time or --messageId".into())),
            }
            Out::None
        }
        T::Skip {
            topic: t,
            subscription,
            count,
        } => {
            c.skip(&topic(t)?, subscription, *count).await?;
            Out::None
        }
        T::ClearBacklog {
            topic: t,
            subscription,
        } => {
            c.clear_backlog(&topic(t)?, subscription).await?;
            Out::None
        }
        T::ExpireMessages {
            topic: t,
            subscription,
            expire_time,
        } => {
            let secs = parse_duration_secs(expire_time).map_err(arg_err)?;
            let secs = u64::try_from(secs).map_err(|_| arg_err("negative expire time".into()))?;
            c.expire_messages(&topic(t)?, subscription, secs).await?;
            Out::None
        }
        T::PeekMessages {
            topic: t,
            subscription,
            count,
        } => Out::Messages(c.peek_messages(&topic(t)?, subscription, *count).await?),
        T::GetMessageById {
            topic: t,
            ledger_id,
            entry_id,
        } => Out::Messages(vec![
            c.message_by_id(&topic(t)?, *ledger_id, *entry_id).await?,
        ]),
        T::LastMessageId { topic: t } => val(c.last_message_id(&topic(t)?).await?),
        T::Compact { topic: t } => {
            c.compact(&topic(t)?).await?;
            Out::Text {
                text: "Compaction triggered".into(),
                json: json!({ "status": "triggered" }),
            }
        }
        T::CompactionStatus { topic: t } => val(c.compaction_status(&topic(t)?).await?),
    })
}

fn render_messages(entries: &[RawMessage], format: OutputFormat) -> String {
    let msgs: Vec<PeekedMessage> = entries.iter().flat_map(RawMessage::messages).collect();
    match format {
        OutputFormat::Json => {
            let v: Vec<Value> = msgs
                .iter()
                .map(|m| {
                    json!({
                        "messageId": m.id,
                        "headers": m.headers,
                        "payload": String::from_utf8_lossy(&m.payload),
                    })
                })
                .collect();
            render(&Value::Array(v), OutputFormat::Json)
        }
        OutputFormat::Table => {
            let mut out = String::new();
            for (i, m) in msgs.iter().enumerate() {
                if i > 0 {
                    out.push_str("-------------------------------------------------------------\n");
                }
                out.push_str(&format!("Message ID: {}\n", m.id));
                for (k, v) in &m.headers {
                    out.push_str(&format!("{k}: {v}\n"));
                }
                out.push_str(&payload_text(&m.payload));
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            out
        }
    }
}

/// Parses a size: `-1`, bytes, or a number with K/M/G/T (binary units, case-insensitive).
pub fn parse_size(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let (num, mult) = match s.chars().last() {
        Some(c @ ('k' | 'K' | 'm' | 'M' | 'g' | 'G' | 't' | 'T')) => {
            let shift = match c.to_ascii_lowercase() {
                'k' => 10,
                'm' => 20,
                'g' => 30,
                _ => 40,
            };
            (&s[..s.len() - 1], 1i64 << shift)
        }
        _ => (s, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (e.g. 10M, 1G, -1)"))?;
    if n < 0 {
        return Err(format!("invalid size {s:?}: only -1 may be negative"));
    }
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses a duration to seconds: `-1`, seconds, or a number with s/m/h/d/w.
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let (num, mult) = match s.chars().last() {
        Some(c @ ('s' | 'm' | 'h' | 'd' | 'w')) => (
            &s[..s.len() - 1],
            match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => 604_800,
            },
        ),
        _ => (s, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid time {s:?} (e.g. 30s, 10m, 3h, 2d, 1w, -1)"))?;
    if n < 0 {
        return Err(format!("invalid time {s:?}: only -1 may be negative"));
    }
    n.checked_mul(mult)
        .ok_or_else(|| format!("time {s:?} is too large"))
}

/// `--size`/`--time` of `set-retention` → `RetentionPolicies` (MB and minutes, -1 kept).
pub fn retention_from_args(size: &str, time: &str) -> Result<RetentionPolicies, String> {
    let bytes = parse_size(size)?;
    let secs = parse_duration_secs(time)?;
    let mb = if bytes < 0 {
        -1
    } else {
        // Round up: a limit below 1 MB must not become "no retention".
        (bytes + (1 << 20) - 1) >> 20
    };
    let minutes = if secs < 0 { -1 } else { (secs + 59) / 60 };
    Ok(RetentionPolicies {
        retention_time_in_minutes: minutes,
        retention_size_in_mb: mb,
    })
}

/// Checks E ≥ Qw ≥ Qa ≥ 1.
pub fn persistence_from_args(
    e: u32,
    w: u32,
    a: u32,
    rate: f64,
) -> Result<PersistencePolicies, String> {
    if !(e >= w && w >= a && a >= 1) {
        return Err(format!(
            "invalid persistence: need ensemble >= write quorum >= ack quorum >= 1, got {e}/{w}/{a}"
        ));
    }
    Ok(PersistencePolicies {
        bookkeeper_ensemble: e,
        bookkeeper_write_quorum: w,
        bookkeeper_ack_quorum: a,
        managed_ledger_max_mark_delete_rate: rate,
    })
}

/// Normalizes and checks grant actions.
pub fn check_actions(actions: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for a in actions {
        let a = a.trim().to_ascii_lowercase();
        if a.is_empty() {
            continue;
        }
        if !AUTH_ACTIONS.contains(&a.as_str()) {
            return Err(format!(
                "unknown action {a:?} (expected {})",
                AUTH_ACTIONS.join(", ")
            ));
        }
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err("no action given (e.g. --actions produce,consume)".into());
    }
    Ok(out)
}

/// Table rendering of peeked entries (for tests).
#[cfg(test)]
pub(crate) fn render_messages_for_test(entries: &[RawMessage]) -> String {
    render_messages(entries, OutputFormat::Table)
}
