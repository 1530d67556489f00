//! Schemas of producers and consumers, and the schema policies in force for a topic.
//!
//! - A producer's schema is added if absent under the topic's strategy; with
//!   `isAllowAutoUpdateSchema` off only an already registered schema is accepted; with
//!   `schemaValidationEnforced` a producer without a schema is refused on a topic with one.
//! - A consumer's schema on an idle topic (no schema, producers, consumers or data) is added
//!   like a producer's; on an active topic it is checked (Pulsar's consumer check) and never
//!   stored.
//!
//! Refusals are `IncompatibleSchema` (ServerError 18).

use strata_meta::model::TopicPolicies;
use strata_proto::pulsar::Schema;

use super::PutRules;
use super::strategy::{Strategy, effective};
use crate::error::{BrokerError, Result};
use crate::service::BrokerService;
use crate::topic::Topic;
use crate::topic_name::TopicName;

/// `Schema.Type` of a consumer that takes whatever schema the topic has.
const AUTO_CONSUME: i32 = 21;

/// The schema policies in force for one topic.
#[derive(Debug, Clone, Copy)]
pub struct SchemaRules {
    /// Compatibility strategy (topic, else namespace, else broker).
    pub strategy: Strategy,
    /// Producers and consumers may add schema versions.
    pub allow_auto_update: bool,
    /// Producers without a schema are refused on topics with one.
    pub validation_enforced: bool,
}

/// The metadata key of a topic's own policies (a partition uses its partitioned topic's).
pub fn topic_policies_key(service: &BrokerService, topic: &TopicName) -> String {
    let parent = topic.partitioned_parent();
    service
        .metadata()
        .paths()
        .topic_policies(&parent.meta_path())
}

/// The topic's own policies (defaults when it has none).
pub async fn topic_policies(service: &BrokerService, topic: &TopicName) -> Result<TopicPolicies> {
    Ok(service
        .metadata()
        .get::<TopicPolicies>(&topic_policies_key(service, topic))
        .await?
        .map(|(p, _)| p)
        .unwrap_or_default())
}

/// The schema policies in force for `topic`.
pub async fn rules(service: &BrokerService, topic: &TopicName) -> Result<SchemaRules> {
    let tp = topic_policies(service, topic).await?;
    let ns = service
        .policies(&topic.tenant, &topic.namespace)
        .await?
        .unwrap_or_default();
    Ok(SchemaRules {
        strategy: effective(
            tp.schema_compatibility_strategy.as_deref(),
            ns.schema_compatibility_strategy.as_deref(),
            &service.config.schema_compatibility_strategy,
        ),
        allow_auto_update: ns.is_allow_auto_update_schema.unwrap_or(true),
        validation_enforced: ns.schema_validation_enforced.unwrap_or(false)
            || service.config.schema_validation_enforced,
    })
}

/// A producer's (or GET_OR_CREATE_SCHEMA's) schema: its version, `None` without a schema.
pub async fn producer_schema(
    service: &BrokerService,
    topic: &TopicName,
    schema: Option<&Schema>,
) -> Result<Option<u64>> {
    let rules = rules(service, topic).await?;
    match schema {
        Some(s) => {
            let put = PutRules {
                strategy: rules.strategy,
                may_add: rules.allow_auto_update,
            };
            Ok(Some(service.schemas.put_if_absent(topic, s, put).await?))
        }
        None => {
            if rules.validation_enforced && service.schemas.get(topic, None).await?.is_some() {
                return Err(BrokerError::IncompatibleSchema(
                    "Producers cannot connect or send message without a schema to topics with a \
                     schema if SchemaValidationEnforced is enabled"
                        .into(),
                ));
            }
            Ok(None)
        }
    }
}

/// A consumer's schema on `topic` (a loaded topic or partition named `name`).
pub async fn consumer_schema(
    service: &BrokerService,
    topic: &Topic,
    name: &TopicName,
    schema: &Schema,
) -> Result<()> {
    if schema.r#type == AUTO_CONSUME {
        return Ok(());
    }
    let rules = rules(service, name).await?;
    let active = service.schemas.get(name, None).await?.is_some()
        || topic.producer_count() > 0
        || topic.consumer_count().await > 0
        || topic.ledger().storage_size() > 0;
    if active {
        return service
            .schemas
            .check_consumer(name, schema, rules.strategy)
            .await;
    }
    let put = PutRules {
        strategy: rules.strategy,
        may_add: rules.allow_auto_update,
    };
    service.schemas.put_if_absent(name, schema, put).await?;
    Ok(())
}
