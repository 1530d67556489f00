//! Who may run what: the authorization of commands that name a topic or namespace, and the
//! refusal of a command in the shape its request expects.

use strata_proto::commands;
use strata_proto::pulsar::BaseCommand;
use strata_proto::pulsar::base_command::Type;
use tracing::debug;

use super::{Conn, server_error};
use crate::error::{BrokerError, Result};
use crate::service::BrokerService;
use crate::topic_name::TopicName;

impl Conn {
    /// Answers a refused command in the shape its request expects.
    pub(super) fn refuse(&self, t: Type, cmd: &BaseCommand, e: &BrokerError) {
        debug!(peer = %self.peer, command = t.as_str_name(), error = %e, "refused");
        let se = server_error(e);
        let msg = refusal_text(t, e);
        let answer = match t {
            Type::Lookup => cmd
                .lookup_topic
                .as_ref()
                .map(|c| commands::lookup_error(c.request_id, se, msg)),
            Type::PartitionedMetadata => cmd
                .partition_metadata
                .as_ref()
                .map(|c| commands::partitioned_metadata_error(c.request_id, se, msg)),
            Type::GetSchema => cmd
                .get_schema
                .as_ref()
                .map(|c| commands::get_schema_error(c.request_id, se, msg)),
            Type::GetOrCreateSchema => cmd
                .get_or_create_schema
                .as_ref()
                .map(|c| commands::get_or_create_schema_response(c.request_id, Err((se, msg)))),
            Type::Producer => cmd
                .producer
                .as_ref()
                .map(|c| c.request_id)
                .map(|rid| commands::error(rid, se, msg)),
            Type::Subscribe => cmd
                .subscribe
                .as_ref()
                .map(|c| c.request_id)
                .map(|rid| commands::error(rid, se, msg)),
            Type::GetTopicsOfNamespace => cmd
                .get_topics_of_namespace
                .as_ref()
                .map(|c| commands::error(c.request_id, se, msg)),
            _ => request_id_of(cmd).map(|rid| commands::error(rid, se, msg)),
        };
        if let Some(answer) = answer {
            self.send(answer);
        }
    }
}

/// The text of a refusal: Pulsar's own for unauthorized lookups (the C++ client hands it to the
/// application as it is), the error's otherwise.
fn refusal_text(t: Type, e: &BrokerError) -> String {
    match (t, e) {
        (Type::Lookup, BrokerError::Unauthorized(_)) => "Client is not authorized to Lookup".into(),
        (Type::PartitionedMetadata, BrokerError::Unauthorized(_)) => {
            "Client is not authorized to Get Partition Metadata".into()
        }
        _ => e.to_string(),
    }
}

/// Authorization of a command that names a topic or namespace (PRODUCER, SUBSCRIBE, LOOKUP,
/// PARTITIONED_METADATA, GET_TOPICS_OF_NAMESPACE, GET_SCHEMA, GET_OR_CREATE_SCHEMA).
/// Commands on a producer or consumer id act on what this connection was allowed to open.
pub(super) async fn check(
    service: &BrokerService,
    role: Option<&str>,
    t: Type,
    cmd: &BaseCommand,
) -> Result<()> {
    use strata_auth::BinaryCommand as B;
    let Some(role) = role else {
        return Ok(());
    };
    let security = service.security();
    let (op, topic, sub): (B, &str, Option<&str>) = match t {
        Type::Producer => match &cmd.producer {
            Some(c) => (B::Producer, &c.topic, None),
            None => return Ok(()),
        },
        Type::Subscribe => match &cmd.subscribe {
            Some(c) => (B::Subscribe, &c.topic, Some(c.subscription.as_str())),
            None => return Ok(()),
        },
        Type::Lookup => match &cmd.lookup_topic {
            Some(c) => (B::Lookup, &c.topic, None),
            None => return Ok(()),
        },
        Type::PartitionedMetadata => match &cmd.partition_metadata {
            Some(c) => (B::PartitionedMetadata, &c.topic, None),
            None => return Ok(()),
        },
        Type::GetSchema => match &cmd.get_schema {
            Some(c) => (B::GetSchema, &c.topic, None),
            None => return Ok(()),
        },
        Type::GetOrCreateSchema => match &cmd.get_or_create_schema {
            Some(c) => (B::GetOrCreateSchema, &c.topic, None),
            None => return Ok(()),
        },
        Type::GetTopicsOfNamespace => {
            let Some(c) = &cmd.get_topics_of_namespace else {
                return Ok(());
            };
            let (tenant, ns) = c.namespace.split_once('/').ok_or_else(|| {
                BrokerError::InvalidTopicName(format!("bad namespace {:?}", c.namespace))
            })?;
            let info = service.tenant_info(tenant).await?;
            let pol = service.policies(tenant, ns).await?;
            return security
                .check_command(
                    Some(role),
                    B::GetTopicsOfNamespace,
                    &strata_auth::Resource::namespace(tenant, info.as_ref(), pol.as_ref()),
                )
                .map_err(|e| BrokerError::Unauthorized(e.to_string()));
        }
        _ => return Ok(()),
    };
    let name = TopicName::parse(topic)?;
    let info = service.tenant_info(&name.tenant).await?;
    if info.is_none() && !security.authorizer().is_superuser(Some(role)) {
        // Pulsar checks the tenant first and answers a missing one with TopicNotFound.
        return Err(BrokerError::TopicNotFound(format!(
            "tenant {} does not exist",
            name.tenant
        )));
    }
    let pol = service.policies(&name.tenant, &name.namespace).await?;
    let path = name.meta_path();
    let mut res = strata_auth::Resource::topic(&path, info.as_ref(), pol.as_ref());
    if let Some(sub) = sub {
        res = res.with_subscription(sub);
    }
    security
        .check_command(Some(role), op, &res)
        .map_err(|e| BrokerError::Unauthorized(e.to_string()))
}

/// The request id of a command that has one (for errors to unsupported commands).
pub(super) fn request_id_of(cmd: &BaseCommand) -> Option<u64> {
    cmd.new_txn
        .as_ref()
        .map(|c| c.request_id)
        .or(cmd.add_partition_to_txn.as_ref().map(|c| c.request_id))
        .or(cmd.add_subscription_to_txn.as_ref().map(|c| c.request_id))
        .or(cmd.end_txn.as_ref().map(|c| c.request_id))
        .or(cmd.tc_client_connect_request.as_ref().map(|c| c.request_id))
        .or(cmd.watch_topic_list.as_ref().map(|c| c.request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_lookups_carry_pulsars_text() {
        let no = BrokerError::Unauthorized("role anonymous may not lookup".into());
        assert_eq!(
            refusal_text(Type::PartitionedMetadata, &no),
            "Client is not authorized to Get Partition Metadata"
        );
        assert_eq!(
            refusal_text(Type::Lookup, &no),
            "Client is not authorized to Lookup"
        );
        assert_eq!(refusal_text(Type::Producer, &no), no.to_string());
        let missing = BrokerError::TopicNotFound("t".into());
        assert_eq!(
            refusal_text(Type::PartitionedMetadata, &missing),
            missing.to_string()
        );
    }
}
