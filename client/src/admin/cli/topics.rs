//! `strata admin topics ...`: topics and their subscriptions.

use clap::Subcommand;
use serde_json::{Value, json};

use super::out::{Out, arg_err, ns, topic, val};
use super::parse::{check_actions, parse_duration_secs};
use crate::admin::types::*;
use crate::admin::{AdminClient, AdminError, AdminResult};

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
    /// Offload the topic's closed ledgers to tiered storage, keeping at most SIZE on the
    /// bookies.
    Offload {
        /// Topic name.
        topic: String,
        /// Bytes to keep on the bookies, with an optional K/M/G/T suffix.
        #[arg(long, short = 's')]
        size_threshold: String,
    },
    /// Show the status of the topic's offload.
    OffloadStatus {
        /// Topic name.
        topic: String,
        /// Wait until it is no longer running.
        #[arg(long, short = 'w')]
        wait: bool,
    },
}

/// Runs a `topics` command.
pub(super) async fn topics(c: &AdminClient, cmd: &TopicsCmd) -> AdminResult<Out> {
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
        T::Subscriptions { .. }
        | T::CreateSubscription { .. }
        | T::Unsubscribe { .. }
        | T::ResetCursor { .. }
        | T::Skip { .. }
        | T::ClearBacklog { .. }
        | T::ExpireMessages { .. }
        | T::PeekMessages { .. } => subscription_cmd(c, cmd).await?,
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
        T::Offload {
            topic: t,
            size_threshold,
        } => super::offload::offload(c, t, size_threshold).await?,
        T::OffloadStatus { topic: t, wait } => super::offload::offload_status(c, t, *wait).await?,
    })
}

/// Runs a `topics` command on a subscription.
async fn subscription_cmd(c: &AdminClient, cmd: &TopicsCmd) -> AdminResult<Out> {
    use TopicsCmd as T;
    Ok(match cmd {
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
        other => {
            return Err(AdminError::InvalidArgument(format!(
                "not a subscription command: {other:?}"
            )));
        }
    })
}
