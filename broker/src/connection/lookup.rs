//! Lookups on a connection: LOOKUP (this broker, the owner, or the leader's choice),
//! PARTITIONED_METADATA, GET_TOPICS_OF_NAMESPACE (with the pattern filter and hash), and the
//! schema requests GET_SCHEMA and GET_OR_CREATE_SCHEMA.

use strata_proto::commands;
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_get_topics_of_namespace::Mode as TopicsMode;
use strata_proto::pulsar::{BaseCommand, CommandGetTopicsOfNamespace, ServerError};

use super::{Conn, server_error};
use crate::error::BrokerError;
use crate::schema::{SchemaVersionExt, parse_version, version_bytes};
use crate::service::Owner;
use crate::topic_name::TopicName;

impl Conn {
    /// PARTITIONED_METADATA, LOOKUP and GET_TOPICS_OF_NAMESPACE.
    pub(super) async fn on_lookup(&mut self, t: Type, cmd: BaseCommand) {
        match t {
            Type::PartitionedMetadata => self.partitioned_metadata(cmd).await,
            Type::Lookup => self.lookup(cmd).await,
            Type::GetTopicsOfNamespace => {
                if let Some(c) = cmd.get_topics_of_namespace {
                    self.topics_of_namespace(*c).await;
                }
            }
            _ => {}
        }
    }

    /// GET_SCHEMA and GET_OR_CREATE_SCHEMA.
    pub(super) async fn on_schema(&mut self, t: Type, cmd: BaseCommand) {
        match t {
            Type::GetSchema => self.get_schema(cmd).await,
            Type::GetOrCreateSchema => self.get_or_create_schema(cmd).await,
            _ => {}
        }
    }

    async fn partitioned_metadata(&mut self, cmd: BaseCommand) {
        let Some(c) = cmd.partition_metadata else {
            return;
        };
        let res = async {
            let name = TopicName::parse(&c.topic)?;
            self.service.partitions(&name).await
        }
        .await;
        self.send(match res {
            Ok(n) => commands::partitioned_metadata_response(c.request_id, n),
            Err(e) => {
                commands::partitioned_metadata_error(c.request_id, server_error(&e), e.to_string())
            }
        });
    }

    /// LOOKUP: connect here, or redirect to the owner (authoritative) or to the leader, which
    /// decides for an unowned bundle (not authoritative).
    async fn lookup(&mut self, cmd: BaseCommand) {
        let Some(c) = cmd.lookup_topic else { return };
        let authoritative = c.authoritative.unwrap_or(false);
        let res = async {
            let name = TopicName::parse(&c.topic)?;
            self.service.lookup(&name, authoritative).await
        }
        .await;
        let rid = c.request_id;
        if let Some(name) = c
            .advertised_listener_name
            .as_deref()
            .filter(|n| !n.is_empty())
        {
            let answer = match res {
                Ok(owner) => listener_lookup(self.service.clone(), rid, owner, name).await,
                Err(e) => commands::lookup_error(rid, server_error(&e), e.to_string()),
            };
            self.send(answer);
            return;
        }
        self.send(match res {
            Ok(Owner::Local) => commands::lookup_connect_tls(
                rid,
                &self.service.broker_url(),
                self.service.broker_url_tls().as_deref(),
                true,
            ),
            Ok(Owner::Remote {
                broker_url,
                broker_url_tls,
                ..
            }) => commands::lookup_redirect_tls(rid, &broker_url, broker_url_tls.as_deref(), true),
            Ok(Owner::Leader {
                broker_url,
                broker_url_tls,
                ..
            }) => commands::lookup_redirect_tls(rid, &broker_url, broker_url_tls.as_deref(), false),
            Err(e) => commands::lookup_error(rid, server_error(&e), e.to_string()),
        });
    }

    async fn get_schema(&mut self, cmd: BaseCommand) {
        let Some(c) = cmd.get_schema else { return };
        let res = async {
            let name = TopicName::parse(&c.topic)?;
            let v = c.schema_version.as_deref().and_then(parse_version);
            self.service.schemas.get(&name, v).await
        }
        .await;
        match res {
            Ok(Some(s)) => self.send(commands::get_schema_response(
                c.request_id,
                s.to_proto(),
                version_bytes(s.version),
            )),
            Ok(None) => self.send(commands::get_schema_error(
                c.request_id,
                ServerError::TopicNotFound,
                "schema not found",
            )),
            Err(e) => self.send(commands::get_schema_error(
                c.request_id,
                server_error(&e),
                e.to_string(),
            )),
        }
    }

    async fn get_or_create_schema(&mut self, cmd: BaseCommand) {
        let Some(c) = cmd.get_or_create_schema else {
            return;
        };
        let res = async {
            let name = TopicName::parse(&c.topic)?;
            crate::schema::admission::producer_schema(&self.service, &name, Some(&c.schema)).await
        }
        .await;
        let r = res
            .map(|v| version_bytes(v.unwrap_or_default()))
            .map_err(|e| (server_error(&e), e.to_string()));
        self.send(commands::get_or_create_schema_response(c.request_id, r));
    }

    async fn topics_of_namespace(&mut self, c: CommandGetTopicsOfNamespace) {
        let res = async {
            let (tenant, ns) = c.namespace.split_once('/').ok_or_else(|| {
                BrokerError::NotAllowed(format!("invalid namespace {}", c.namespace))
            })?;
            let mut topics = match c.mode() {
                TopicsMode::Persistent => self.service.topics_of_namespace(tenant, ns).await?,
                TopicsMode::NonPersistent => {
                    self.service.np_topics_of_namespace(tenant, ns).await?
                }
                TopicsMode::All => {
                    let mut all = self.service.topics_of_namespace(tenant, ns).await?;
                    all.extend(self.service.np_topics_of_namespace(tenant, ns).await?);
                    all
                }
            };
            let mut filtered = false;
            if let Some(p) = c.topics_pattern.as_deref().filter(|p| !p.is_empty()) {
                // Patterns name whole topics; strip the domain as Pulsar does before matching.
                let re = regex::Regex::new(&format!(
                    "^(?:{})$",
                    p.split_once("://").map(|(_, r)| r).unwrap_or(p)
                ))
                .map_err(|e| BrokerError::NotAllowed(format!("invalid topics pattern: {e}")))?;
                topics.retain(|t| re.is_match(t.split_once("://").map(|(_, r)| r).unwrap_or(t)));
                filtered = true;
            }
            Ok::<_, BrokerError>((topics, filtered))
        }
        .await;
        match res {
            Ok((topics, filtered)) => {
                let hash = format!(
                    "{:08x}",
                    strata_common::crc::crc32c(topics.join(",").as_bytes())
                );
                self.send(commands::get_topics_of_namespace_response(
                    c.request_id,
                    topics,
                    filtered,
                    Some(hash),
                ));
            }
            Err(e) => self.error(c.request_id, &e),
        }
    }
}

/// A LOOKUP answer with the URLs of listener `name` of the owner (or of the broker that
/// assigns the topic); `ServiceNotReady` if that broker has no such listener (Pulsar).
async fn listener_lookup(
    service: std::sync::Arc<crate::service::BrokerService>,
    rid: u64,
    owner: Owner,
    name: &str,
) -> BaseCommand {
    let (connect, authoritative) = match &owner {
        Owner::Local => (true, true),
        Owner::Remote { .. } => (false, true),
        Owner::Leader { .. } => (false, false),
    };
    match service.listener_urls(&owner, name).await {
        Ok(Some(l)) => {
            let url = l.pulsar_url.as_deref().unwrap_or_default();
            if connect {
                commands::lookup_connect_tls(rid, url, l.pulsar_url_tls.as_deref(), authoritative)
            } else {
                commands::lookup_redirect_tls(rid, url, l.pulsar_url_tls.as_deref(), authoritative)
            }
        }
        Ok(None) => commands::lookup_error(
            rid,
            ServerError::ServiceNotReady,
            crate::listeners::unknown_listener(name),
        ),
        Err(e) => commands::lookup_error(rid, server_error(&e), e.to_string()),
    }
}
