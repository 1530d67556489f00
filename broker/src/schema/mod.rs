//! Schema registry: versions of each topic's schema, stored as `strata_meta`'s
//! [`SchemaHistory`] (`schemas/{tenant}/{ns}/{topic}`; partitions share their partitioned
//! topic's history), updated with compare-and-set through [`MetaClient::update`].
//!
//! Pulsar's rules ([`admission`] applies them to producers, consumers and the REST API):
//! - a schema identical (type and definition) to a live version gets that version;
//! - otherwise it is checked ([`compat`]) against the live versions under the topic's
//!   [`strategy`] and stored as the next version, or refused with `IncompatibleSchema`;
//! - a deletion appends a marker version: versions up to it are no longer live, and the next
//!   schema starts a new history without a check; version numbers never go back.
//!
//! Files: `types.rs` (type names, wire versions), `strategy.rs` (strategies and their
//! precedence), `avro.rs` (Avro resolution), `compat.rs` (checks per schema type),
//! `admission.rs` (producers, consumers, the policies in force).

pub mod admission;
pub mod avro;
pub mod compat;
pub mod strategy;
pub mod types;

use std::collections::BTreeMap;

use base64::Engine;
use strata_common::clock::now_ms;
use strata_meta::Expected;
use strata_meta::model::SchemaHistory;
use strata_proto::pulsar::Schema;

use crate::error::{BrokerError, Result};
use crate::metadata::MetaClient;
use crate::topic_name::TopicName;

pub use compat::Candidate;
pub use strategy::Strategy;
pub use types::{
    SchemaVersion, SchemaVersionExt, parse_schema_type, parse_version, schema_type_name,
    schema_type_value, version_bytes,
};

/// The check candidate of a protocol schema.
pub fn candidate(s: &Schema) -> Candidate {
    Candidate {
        type_value: s.r#type,
        data: s.schema_data.to_vec(),
        properties: s
            .properties
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
    }
}

fn stored_candidate(v: &SchemaVersion) -> Candidate {
    Candidate {
        type_value: v.type_value(),
        data: v.data_bytes(),
        properties: v.properties.clone(),
    }
}

/// The live versions of a history: those after the last deletion marker, oldest first.
pub fn live(h: &SchemaHistory) -> &[SchemaVersion] {
    let start = h
        .versions
        .iter()
        .rposition(|v| v.deleted)
        .map(|i| i + 1)
        .unwrap_or(0);
    &h.versions[start..]
}

/// The version of a live schema with the same type and definition.
fn same_schema(live: &[SchemaVersion], c: &Candidate) -> Option<u64> {
    live.iter()
        .find(|v| v.type_value() == c.type_value && v.data_bytes() == c.data)
        .map(|v| v.version)
}

/// How a new schema may be added.
#[derive(Debug, Clone, Copy)]
pub struct PutRules {
    /// The strategy in force.
    pub strategy: Strategy,
    /// A schema that is not already live may be added (`isAllowAutoUpdateSchema`; the admin
    /// API always may).
    pub may_add: bool,
}

/// Schema storage over the metadata store.
#[derive(Clone)]
pub struct SchemaRegistry {
    meta: MetaClient,
}

impl SchemaRegistry {
    /// A registry over `meta`.
    pub fn new(meta: MetaClient) -> Self {
        Self { meta }
    }

    fn key(&self, topic: &TopicName) -> String {
        let t = topic.partitioned_parent();
        self.meta.paths().schema(&t.tenant, &t.namespace, &t.local)
    }

    /// The whole history (empty when none).
    pub async fn history(&self, topic: &TopicName) -> Result<SchemaHistory> {
        Ok(self
            .meta
            .get::<SchemaHistory>(&self.key(topic))
            .await?
            .map(|(h, _)| h)
            .unwrap_or_default())
    }

    /// A version (the latest live one when `version` is None; never a deletion marker).
    pub async fn get(
        &self,
        topic: &TopicName,
        version: Option<u64>,
    ) -> Result<Option<SchemaVersion>> {
        let h = self.history(topic).await?;
        Ok(match version {
            Some(v) => h
                .versions
                .into_iter()
                .find(|s| s.version == v && !s.deleted),
            None => live(&h).last().cloned(),
        })
    }

    /// Every live version, oldest first.
    pub async fn all(&self, topic: &TopicName) -> Result<Vec<SchemaVersion>> {
        Ok(live(&self.history(topic).await?).to_vec())
    }

    /// The live version identical to `schema`, if any.
    pub async fn version_of(&self, topic: &TopicName, schema: &Schema) -> Result<Option<u64>> {
        Ok(same_schema(
            live(&self.history(topic).await?),
            &candidate(schema),
        ))
    }

    /// Whether `schema` could be added under `strategy` (Pulsar's compatibility test).
    pub async fn is_compatible(
        &self,
        topic: &TopicName,
        schema: &Schema,
        strategy: Strategy,
    ) -> Result<std::result::Result<(), String>> {
        let h = self.history(topic).await?;
        let live = live(&h);
        let c = candidate(schema);
        if same_schema(live, &c).is_some() {
            return Ok(Ok(()));
        }
        let existing: Vec<Candidate> = live.iter().map(stored_candidate).collect();
        Ok(compat::check(&existing, &c, strategy))
    }

    /// Pulsar's consumer check: an active topic's consumer must be able to read its data.
    pub async fn check_consumer(
        &self,
        topic: &TopicName,
        schema: &Schema,
        strategy: Strategy,
    ) -> Result<()> {
        if strategy == Strategy::AlwaysCompatible {
            return Ok(());
        }
        let h = self.history(topic).await?;
        let existing: Vec<Candidate> = live(&h).iter().map(stored_candidate).collect();
        if existing.is_empty() {
            return Err(BrokerError::IncompatibleSchema(
                "Topic does not have schema to check".into(),
            ));
        }
        let c = candidate(schema);
        let r = match strategy {
            Strategy::Backward
            | Strategy::Forward
            | Strategy::ForwardTransitive
            | Strategy::Full => compat::check(&existing, &c, Strategy::Backward),
            s => compat::check_all(&existing, &c, s),
        };
        r.map_err(BrokerError::IncompatibleSchema)
    }

    /// Returns the version of an identical live schema, or checks `schema` and stores it as
    /// the next version; `IncompatibleSchema` when the check or `rules` refuse it.
    pub async fn put_if_absent(
        &self,
        topic: &TopicName,
        schema: &Schema,
        rules: PutRules,
    ) -> Result<u64> {
        let c = candidate(schema);
        let data = base64::engine::general_purpose::STANDARD.encode(&schema.schema_data);
        let props: BTreeMap<String, String> = c.properties.clone();
        let mut outcome: std::result::Result<u64, String> = Err(String::new());
        self.meta
            .update(&self.key(topic), |cur: Option<SchemaHistory>| {
                let mut h = cur.unwrap_or_default();
                let live = live(&h);
                if let Some(v) = same_schema(live, &c) {
                    outcome = Ok(v);
                    return Ok(None);
                }
                if !rules.may_add {
                    outcome = Err("Schema not found and schema auto updating is disabled.".into());
                    return Ok(None);
                }
                let existing: Vec<Candidate> = live.iter().map(stored_candidate).collect();
                if let Err(why) = compat::check(&existing, &c, rules.strategy) {
                    outcome = Err(why);
                    return Ok(None);
                }
                let version = h.versions.last().map(|s| s.version + 1).unwrap_or(0);
                h.versions.push(SchemaVersion {
                    version,
                    schema_type: types::stored_type(schema.r#type),
                    data: data.clone(),
                    properties: props.clone(),
                    timestamp_ms: now_ms(),
                    name: schema.name.clone(),
                    deleted: false,
                });
                h.deleted = false;
                outcome = Ok(version);
                Ok(Some(h))
            })
            .await?;
        outcome.map_err(BrokerError::IncompatibleSchema)
    }

    /// Deletes the topic's schema: appends a deletion marker and returns its version (`None`
    /// when there was no live schema). `force` removes the whole history instead.
    pub async fn delete(&self, topic: &TopicName, force: bool) -> Result<Option<u64>> {
        if force {
            let last = self
                .history(topic)
                .await?
                .versions
                .last()
                .map(|v| v.version);
            self.meta
                .store()
                .delete(&self.key(topic), Expected::Any)
                .await?;
            return Ok(last);
        }
        let mut marker = None;
        self.meta
            .update(&self.key(topic), |cur: Option<SchemaHistory>| {
                let Some(mut h) = cur else {
                    return Ok(None);
                };
                if live(&h).is_empty() {
                    marker = None;
                    return Ok(None);
                }
                let version = h.versions.last().map(|s| s.version + 1).unwrap_or(0);
                h.versions.push(SchemaVersion {
                    version,
                    timestamp_ms: now_ms(),
                    deleted: true,
                    ..SchemaVersion::default()
                });
                h.deleted = true;
                marker = Some(version);
                Ok(Some(h))
            })
            .await?;
        Ok(marker)
    }
}

#[cfg(test)]
mod tests;
