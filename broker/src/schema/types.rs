//! Schema types and versions as the wire and the REST API spell them.

use base64::Engine;
use bytes::Bytes;
use strata_proto::pulsar::{KeyValue, Schema};

pub use strata_meta::model::SchemaVersion;

/// Wire form of a schema version: 8-byte big-endian.
pub fn version_bytes(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

/// Parses a wire schema version.
pub fn parse_version(b: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes)
}

/// `Schema.Type` values the compatibility checks distinguish.
pub mod kind {
    /// `NONE` (bytes).
    pub const NONE: i32 = 0;
    /// `JSON`.
    pub const JSON: i32 = 2;
    /// `AVRO`.
    pub const AVRO: i32 = 4;
    /// `KEY_VALUE`.
    pub const KEY_VALUE: i32 = 15;
    /// `PROTOBUF_NATIVE`.
    pub const PROTOBUF_NATIVE: i32 = 20;
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

/// The `Schema.Type` value of a Pulsar type name (any case; `BYTES` is `NONE`; `None` for
/// names Pulsar does not have).
pub fn parse_schema_type(name: &str) -> Option<i32> {
    if name.eq_ignore_ascii_case("BYTES") {
        return Some(kind::NONE);
    }
    (0..21).find(|&i| schema_type_name(i).eq_ignore_ascii_case(name))
}

/// The `Schema.Type` value of a Pulsar type name (any case; 0 for unknown names).
pub fn schema_type_value(name: &str) -> i32 {
    parse_schema_type(name).unwrap_or(0)
}

/// The stored name of a `Schema.Type` value: its Pulsar name, or the number when it has none
/// (so no value is lost).
pub fn stored_type(t: i32) -> String {
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
