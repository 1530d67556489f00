//! Schema registry: versions of each topic's schema, stored as `strata_meta`'s
//! [`SchemaHistory`] (`schemas/{tenant}/{ns}/{topic}`; partitions share their partitioned
//! topic's history), updated with compare-and-set through [`MetaClient::update`].
//!
//! Compatibility checking is NOT implemented yet (a later issue): a schema different from the
//! latest one is stored as a new version without any check, and the broker logs that it did so.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use strata_common::clock::now_ms;
use strata_meta::Expected;
use strata_meta::model::SchemaHistory;
use strata_proto::pulsar::{KeyValue, Schema};
use tracing::warn;

use crate::error::Result;
use crate::metadata::MetaClient;
use crate::topic_name::TopicName;

pub use strata_meta::model::SchemaVersion;

/// Wire form of a schema version: 8-byte big-endian.
pub fn version_bytes(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

/// Parses a wire schema version.
pub fn parse_version(b: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes)
}

/// Pulsar's schema type names by `Schema.Type` value.
const TYPE_NAMES: [&str; 21] = [
    "NONE",
    "STRING",
    "JSON",
    "PROTOBUF",
    "AVRO",
    "BOOLEAN",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FLOAT",
    "DOUBLE",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "KEY_VALUE",
    "INSTANT",
    "LOCAL_DATE",
    "LOCAL_TIME",
    "LOCAL_DATE_TIME",
    "PROTOBUF_NATIVE",
];

/// Pulsar's name of a `Schema.Type` value (`NONE` for values without one).
pub fn schema_type_name(t: i32) -> &'static str {
    usize::try_from(t)
        .ok()
        .and_then(|i| TYPE_NAMES.get(i))
        .copied()
        .unwrap_or("NONE")
}

/// The `Schema.Type` value of a Pulsar type name (any case; 0 for unknown names).
pub fn schema_type_value(name: &str) -> i32 {
    (0..21)
        .find(|&i| schema_type_name(i).eq_ignore_ascii_case(name))
        .unwrap_or(0)
}

/// The stored name of a `Schema.Type` value: its Pulsar name, or the number when it has none
/// (so no value is lost).
fn stored_type(t: i32) -> String {
    match usize::try_from(t).ok().and_then(|i| TYPE_NAMES.get(i)) {
        Some(n) => (*n).to_owned(),
        None => t.to_string(),
    }
}

/// The broker's view of a stored schema version.
pub trait SchemaVersionExt {
    /// The `Schema.Type` value.
    fn type_value(&self) -> i32;
    /// The definition bytes.
    fn data_bytes(&self) -> Vec<u8>;
    /// The schema as a protocol message.
    fn to_proto(&self) -> Schema;
}

impl SchemaVersionExt for SchemaVersion {
    fn type_value(&self) -> i32 {
        self.schema_type
            .parse::<i32>()
            .unwrap_or_else(|_| schema_type_value(&self.schema_type))
    }

    fn data_bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .unwrap_or_default()
    }

    fn to_proto(&self) -> Schema {
        Schema {
            name: self.name.clone(),
            schema_data: Bytes::from(self.data_bytes()),
            r#type: self.type_value(),
            properties: self
                .properties
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        }
    }
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

    async fn load(&self, topic: &TopicName) -> Result<SchemaHistory> {
        Ok(self
            .meta
            .get::<SchemaHistory>(&self.key(topic))
            .await?
            .map(|(h, _)| h)
            .unwrap_or_default())
    }

    /// A version (latest when `version` is None).
    pub async fn get(
        &self,
        topic: &TopicName,
        version: Option<u64>,
    ) -> Result<Option<SchemaVersion>> {
        let h = self.load(topic).await?;
        Ok(match version {
            Some(v) => h.versions.into_iter().find(|s| s.version == v),
            None => h.versions.into_iter().next_back(),
        })
    }

    /// Every version.
    pub async fn all(&self, topic: &TopicName) -> Result<Vec<SchemaVersion>> {
        Ok(self.load(topic).await?.versions)
    }

    /// Returns the version of an identical stored schema, or stores it as a new version.
    pub async fn get_or_create(&self, topic: &TopicName, schema: &Schema) -> Result<u64> {
        let data = base64::engine::general_purpose::STANDARD.encode(&schema.schema_data);
        let schema_type = stored_type(schema.r#type);
        let props: BTreeMap<String, String> = schema
            .properties
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        let (mut found, mut created) = (0, false);
        self.meta
            .update(&self.key(topic), |cur: Option<SchemaHistory>| {
                let mut h = cur.unwrap_or_default();
                if let Some(s) = h.versions.iter().find(|s| {
                    s.schema_type == schema_type && s.data == data && s.properties == props
                }) {
                    (found, created) = (s.version, false);
                    return Ok(None);
                }
                let version = h.versions.last().map(|s| s.version + 1).unwrap_or(0);
                h.versions.push(SchemaVersion {
                    version,
                    schema_type: schema_type.clone(),
                    data: data.clone(),
                    properties: props.clone(),
                    timestamp_ms: now_ms(),
                    name: schema.name.clone(),
                });
                (found, created) = (version, true);
                Ok(Some(h))
            })
            .await?;
        if created && found > 0 {
            warn!(topic = %topic, version = found, "stored a new schema version without a compatibility check (not implemented yet)");
        }
        Ok(found)
    }

    /// Deletes every version.
    pub async fn delete(&self, topic: &TopicName) -> Result<()> {
        self.meta
            .store()
            .delete(&self.key(topic), Expected::Any)
            .await?;
        Ok(())
    }
}
