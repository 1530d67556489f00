//! Schema registry: versions of each topic's schema, stored in the metadata store.
//!
//! Compatibility checking is NOT implemented yet (a later issue): a schema different from the
//! latest one is stored as a new version without any check, and the broker logs that it did so.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_proto::pulsar::{KeyValue, Schema};
use tracing::warn;

use crate::error::Result;
use crate::metadata::{BrokerMetadata, Expect, MetaError, ROOT};
use crate::topic_name::TopicName;

/// One stored schema version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SchemaVersion {
    /// Version number (0, 1, ...).
    pub version: u64,
    /// `Schema.Type` value.
    pub schema_type: i32,
    /// Schema definition, base64.
    pub data: String,
    /// Properties.
    pub properties: BTreeMap<String, String>,
    /// Time stored (ms).
    pub timestamp: u64,
    /// Name given by the client.
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SchemaList {
    versions: Vec<SchemaVersion>,
}

/// Wire form of a schema version: 8-byte big-endian.
pub fn version_bytes(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

/// Parses a wire schema version.
pub fn parse_version(b: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes)
}

impl SchemaVersion {
    /// The schema as a protocol message.
    pub fn to_proto(&self) -> Schema {
        Schema {
            name: self.name.clone(),
            schema_data: Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(&self.data)
                    .unwrap_or_default(),
            ),
            r#type: self.schema_type,
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

    /// The definition bytes.
    pub fn data_bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .unwrap_or_default()
    }
}

/// Schema storage over the metadata store.
#[derive(Clone)]
pub struct SchemaRegistry {
    meta: Arc<dyn BrokerMetadata>,
}

fn key(topic: &TopicName) -> String {
    let t = topic.partitioned_parent();
    format!("{ROOT}/schemas/{}/{}/{}", t.tenant, t.namespace, t.local)
}

impl SchemaRegistry {
    /// A registry over `meta`.
    pub fn new(meta: Arc<dyn BrokerMetadata>) -> Self {
        Self { meta }
    }

    async fn load(&self, topic: &TopicName) -> Result<(SchemaList, Option<u64>)> {
        let k = key(topic);
        match self.meta.get(&k).await? {
            Some(v) => {
                let l: SchemaList = serde_json::from_slice(&v.value)
                    .map_err(|e| MetaError::Corrupt(k, e.to_string()))?;
                Ok((l, Some(v.version)))
            }
            None => Ok((SchemaList::default(), None)),
        }
    }

    /// A version (latest when `version` is None).
    pub async fn get(
        &self,
        topic: &TopicName,
        version: Option<u64>,
    ) -> Result<Option<SchemaVersion>> {
        let (l, _) = self.load(topic).await?;
        Ok(match version {
            Some(v) => l.versions.into_iter().find(|s| s.version == v),
            None => l.versions.into_iter().next_back(),
        })
    }

    /// Every version.
    pub async fn all(&self, topic: &TopicName) -> Result<Vec<SchemaVersion>> {
        Ok(self.load(topic).await?.0.versions)
    }

    /// Returns the version of an identical stored schema, or stores it as a new version.
    pub async fn get_or_create(&self, topic: &TopicName, schema: &Schema) -> Result<u64> {
        let data = base64::engine::general_purpose::STANDARD.encode(&schema.schema_data);
        let props: BTreeMap<String, String> = schema
            .properties
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        for _ in 0..10 {
            let (mut l, ver) = self.load(topic).await?;
            if let Some(s) = l
                .versions
                .iter()
                .find(|s| s.schema_type == schema.r#type && s.data == data && s.properties == props)
            {
                return Ok(s.version);
            }
            let version = l.versions.last().map(|s| s.version + 1).unwrap_or(0);
            if version > 0 {
                warn!(topic = %topic, version, "storing a new schema version without a compatibility check (not implemented yet)");
            }
            l.versions.push(SchemaVersion {
                version,
                schema_type: schema.r#type,
                data: data.clone(),
                properties: props.clone(),
                timestamp: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                name: schema.name.clone(),
            });
            let bytes = serde_json::to_vec(&l).map_err(|e| MetaError::Other(e.to_string()))?;
            let exp = ver.map(Expect::Version).unwrap_or(Expect::Absent);
            match self.meta.put(&key(topic), Bytes::from(bytes), exp).await {
                Ok(_) => return Ok(version),
                Err(MetaError::BadVersion(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MetaError::BadVersion(key(topic)).into())
    }

    /// Deletes every version.
    pub async fn delete(&self, topic: &TopicName) -> Result<()> {
        Ok(self.meta.delete(&key(topic)).await?)
    }
}
