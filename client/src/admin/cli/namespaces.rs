//! `strata admin namespaces ...`: namespaces and their policies.

use clap::Subcommand;

use super::out::{Out, arg_err, ns, val};
use super::parse::{
    check_actions, parse_duration_secs, parse_size, persistence_from_args, retention_from_args,
};
use crate::admin::types::*;
use crate::admin::{AdminClient, AdminError, AdminResult};

/// A dispatch rate limit as flags (namespace and subscription dispatch rates).
#[derive(Debug, Clone, clap::Args)]
pub struct DispatchRateArgs {
    /// Messages per period (-1: unlimited).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    msg_dispatch_rate: i64,
    /// Bytes per period (-1: unlimited).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    byte_dispatch_rate: i64,
    /// Period in seconds.
    #[arg(long, default_value_t = 1)]
    dispatch_rate_period: i64,
}

impl DispatchRateArgs {
    fn dispatch_rate(&self, relative_to_publish_rate: bool) -> DispatchRate {
        DispatchRate {
            dispatch_throttling_rate_in_msg: self.msg_dispatch_rate,
            dispatch_throttling_rate_in_byte: self.byte_dispatch_rate,
            relative_to_publish_rate,
            rate_period_in_second: self.dispatch_rate_period,
        }
    }
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
        #[command(flatten)]
        rate: DispatchRateArgs,
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
        #[command(flatten)]
        rate: DispatchRateArgs,
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
    /// Offload ledgers older than this (tiered storage).
    SetOffloadThresholdInSeconds {
        /// `tenant/namespace`.
        namespace: String,
        /// Time with an optional s/m/h/d/w suffix; -1 disables.
        #[arg(long, short = 't', allow_hyphen_values = true)]
        time: String,
    },
    /// Show the offload time threshold.
    GetOffloadThresholdInSeconds {
        /// `tenant/namespace`.
        namespace: String,
    },
    /// How long bookies keep an offloaded ledger.
    SetOffloadDeletionLag {
        /// `tenant/namespace`.
        namespace: String,
        /// Time with an optional s/m/h/d/w suffix.
        #[arg(long, short = 'l')]
        lag: String,
    },
    /// Show the offload deletion lag (ms).
    GetOffloadDeletionLag {
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

/// Runs a `namespaces` command.
pub(super) async fn namespaces(c: &AdminClient, cmd: &NamespacesCmd) -> AdminResult<Out> {
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
        N::SetRetention { .. }
        | N::SetMessageTtl { .. }
        | N::SetBacklogQuota { .. }
        | N::SetPersistence { .. }
        | N::SetDeduplication { .. }
        | N::SetMaxProducersPerTopic { .. }
        | N::SetMaxConsumersPerTopic { .. }
        | N::SetDispatchRate { .. }
        | N::SetSubscriptionDispatchRate { .. }
        | N::SetPublishRate { .. }
        | N::SetOffloadThreshold { .. }
        | N::SetOffloadThresholdInSeconds { .. }
        | N::SetOffloadDeletionLag { .. } => set_namespace_policy(c, cmd).await?,
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
        N::GetOffloadThresholdInSeconds { namespace } => {
            get_policy(c, namespace, "offloadThresholdInSeconds").await?
        }
        N::GetOffloadDeletionLag { namespace } => {
            get_policy(c, namespace, "offloadDeletionLagMs").await?
        }
    })
}

/// Runs a `namespaces set-*` command.
async fn set_namespace_policy(c: &AdminClient, cmd: &NamespacesCmd) -> AdminResult<Out> {
    use NamespacesCmd as N;
    match cmd {
        N::SetRetention {
            namespace,
            size,
            time,
        } => {
            let r = retention_from_args(size, time).map_err(arg_err)?;
            c.set_retention(&ns(namespace)?, &r).await?;
            Ok(Out::None)
        }
        N::SetMessageTtl { namespace, ttl } => {
            let secs = parse_duration_secs(ttl).map_err(arg_err)?;
            c.set_message_ttl(&ns(namespace)?, secs).await?;
            Ok(Out::None)
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
            Ok(Out::None)
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
            Ok(Out::None)
        }
        N::SetDeduplication {
            namespace, enable, ..
        } => {
            c.set_deduplication(&ns(namespace)?, *enable).await?;
            Ok(Out::None)
        }
        N::SetMaxProducersPerTopic { namespace, max } => {
            c.set_max_producers_per_topic(&ns(namespace)?, *max).await?;
            Ok(Out::None)
        }
        N::SetMaxConsumersPerTopic { namespace, max } => {
            c.set_max_consumers_per_topic(&ns(namespace)?, *max).await?;
            Ok(Out::None)
        }
        N::SetDispatchRate {
            namespace,
            rate,
            relative_to_publish_rate,
        } => {
            let r = rate.dispatch_rate(*relative_to_publish_rate);
            c.set_dispatch_rate(&ns(namespace)?, &r).await?;
            Ok(Out::None)
        }
        N::SetSubscriptionDispatchRate { namespace, rate } => {
            let r = rate.dispatch_rate(false);
            c.set_subscription_dispatch_rate(&ns(namespace)?, &r)
                .await?;
            Ok(Out::None)
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
            Ok(Out::None)
        }
        N::SetOffloadThreshold { namespace, size } => {
            let bytes = parse_size(size).map_err(arg_err)?;
            c.set_offload_threshold(&ns(namespace)?, bytes).await?;
            Ok(Out::None)
        }
        N::SetOffloadThresholdInSeconds { namespace, time } => {
            let secs = parse_duration_secs(time).map_err(arg_err)?;
            c.set_offload_threshold_in_seconds(&ns(namespace)?, secs)
                .await?;
            Ok(Out::None)
        }
        N::SetOffloadDeletionLag { namespace, lag } => {
            let secs = parse_duration_secs(lag).map_err(arg_err)?;
            c.set_offload_deletion_lag(&ns(namespace)?, secs.saturating_mul(1000))
                .await?;
            Ok(Out::None)
        }
        other => Err(AdminError::InvalidArgument(format!(
            "not a policy setter: {other:?}"
        ))),
    }
}

async fn get_policy(c: &AdminClient, namespace: &str, policy: &str) -> AdminResult<Out> {
    Ok(Out::Value(
        c.namespace_policy(&ns(namespace)?, policy).await?,
    ))
}
