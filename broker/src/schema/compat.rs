//! Compatibility of a new schema with a topic's live versions, per schema type, as Pulsar's
//! `SchemaCompatibilityCheck`s decide it:
//! - AVRO, and JSON schemas defined in Avro (what every current client sends): Avro
//!   resolution ([`super::avro`]) in the strategy's direction(s);
//! - JSON schemas that are not Avro definitions: accepted unless `ALWAYS_INCOMPATIBLE`; an
//!   Avro-defined JSON schema never evolves into another kind or back;
//! - KEY_VALUE: the key and the value schemas each by their own type;
//! - PROTOBUF_NATIVE: the root message type must stay the same (Pulsar's
//!   `ProtobufNativeSchemaCompatibilityCheck`);
//! - other types (STRING, PROTOBUF, primitives, ...): accepted unless `ALWAYS_INCOMPATIBLE`.
//!
//! A change of schema type is always refused (unless `ALWAYS_COMPATIBLE`).

use std::collections::BTreeMap;

use super::avro::{self, Parsed};
use super::strategy::Strategy;
use super::types::{kind, schema_type_name};

/// A schema as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `Schema.Type` value.
    pub type_value: i32,
    /// Definition bytes.
    pub data: Vec<u8>,
    /// Properties (KEY_VALUE keeps its parts' types there).
    pub properties: BTreeMap<String, String>,
}

/// Checks `new` against `existing` (live versions, oldest first) under `strategy`: the latest
/// only (skipped when it is the same definition), or every one when the strategy is
/// transitive. `Err` says why it is incompatible.
pub fn check(existing: &[Candidate], new: &Candidate, strategy: Strategy) -> Result<(), String> {
    if strategy.transitive() {
        return check_all(existing, new, strategy);
    }
    if strategy == Strategy::AlwaysCompatible {
        return Ok(());
    }
    let Some(latest) = existing.last() else {
        return Ok(());
    };
    same_type(latest, new)?;
    if latest.data == new.data {
        return Ok(());
    }
    by_type(
        new.type_value,
        &[&latest.data],
        &new.data,
        &new.properties,
        &[latest],
        strategy,
    )
}

/// Checks `new` against every one of `existing` (no shortcut for an identical definition:
/// Pulsar's `checkCompatibilityWithAll`).
pub fn check_all(
    existing: &[Candidate],
    new: &Candidate,
    strategy: Strategy,
) -> Result<(), String> {
    if strategy == Strategy::AlwaysCompatible || existing.is_empty() {
        return Ok(());
    }
    let targets: Vec<&Candidate> = existing.iter().rev().collect();
    for t in &targets {
        same_type(t, new)?;
    }
    let datas: Vec<&[u8]> = targets.iter().map(|t| t.data.as_slice()).collect();
    by_type(
        new.type_value,
        &datas,
        &new.data,
        &new.properties,
        &targets,
        strategy,
    )
}

fn same_type(old: &Candidate, new: &Candidate) -> Result<(), String> {
    if old.type_value == new.type_value {
        return Ok(());
    }
    Err(format!(
        "incompatible schema: existing schema type {}, new schema type {}",
        schema_type_name(old.type_value),
        schema_type_name(new.type_value)
    ))
}

fn by_type(
    type_value: i32,
    olds: &[&[u8]],
    new: &[u8],
    props: &BTreeMap<String, String>,
    targets: &[&Candidate],
    strategy: Strategy,
) -> Result<(), String> {
    if strategy == Strategy::AlwaysIncompatible {
        return Err("schema compatibility strategy is ALWAYS_INCOMPATIBLE".into());
    }
    match type_value {
        kind::AVRO => avro_check(olds, new, strategy),
        kind::JSON => json_check(olds, new, strategy),
        kind::KEY_VALUE => key_value_check(targets, new, props, strategy),
        kind::PROTOBUF_NATIVE => protobuf_native_check(olds, new),
        _ => Ok(()),
    }
}

fn parse(data: &[u8]) -> Result<Parsed, String> {
    let text = std::str::from_utf8(data).map_err(|_| "schema definition is not UTF-8")?;
    Parsed::parse(text)
}

/// Avro resolution against every old definition, in the strategy's direction(s).
fn avro_check(olds: &[&[u8]], new: &[u8], strategy: Strategy) -> Result<(), String> {
    let new_schema = parse(new)?;
    for old in olds {
        let old_schema = parse(old)?;
        if strategy.backward() {
            avro::can_read(&old_schema, &new_schema).map_err(|e| {
                format!("new schema cannot read data written with an existing one: {e}")
            })?;
        }
        if strategy.forward() {
            avro::can_read(&new_schema, &old_schema).map_err(|e| {
                format!("an existing schema cannot read data written with the new one: {e}")
            })?;
        }
    }
    Ok(())
}

fn json_check(olds: &[&[u8]], new: &[u8], strategy: Strategy) -> Result<(), String> {
    let new_is_avro = parse(new).is_ok();
    let olds_avro = olds.iter().filter(|o| parse(o).is_ok()).count();
    match (new_is_avro, olds_avro) {
        (true, n) if n == olds.len() => avro_check(olds, new, strategy),
        (false, 0) => Ok(()),
        _ => Err("a JSON schema defined in Avro cannot change to one that is not, or back".into()),
    }
}

/// Pulsar's KEY_VALUE encoding: `[len][key schema][len][value schema]` (big-endian lengths);
/// the parts' types are the properties `key.schema.type` and `value.schema.type`.
pub fn split_key_value(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let take = |d: &[u8]| -> Option<(usize, usize)> {
        let len = u32::from_be_bytes(d.get(..4)?.try_into().ok()?) as usize;
        (d.len() >= 4 + len).then_some((4, 4 + len))
    };
    let (ks, ke) = take(data)?;
    let rest = &data[ke..];
    let (vs, ve) = take(rest)?;
    Some((&data[ks..ke], &rest[vs..ve]))
}

fn part_type(props: &BTreeMap<String, String>, key: &str) -> i32 {
    props
        .get(key)
        .map(|n| super::types::schema_type_value(n))
        .unwrap_or(kind::NONE)
}

fn key_value_check(
    targets: &[&Candidate],
    new: &[u8],
    props: &BTreeMap<String, String>,
    strategy: Strategy,
) -> Result<(), String> {
    let Some((nk, nv)) = split_key_value(new) else {
        return Ok(());
    };
    for (prop, pick) in [("key.schema.type", 0usize), ("value.schema.type", 1)] {
        let t = part_type(props, prop);
        let mut olds = Vec::new();
        for c in targets {
            if part_type(&c.properties, prop) != t {
                return Err(format!("incompatible KEY_VALUE schema: {prop} changed"));
            }
            if let Some(parts) = split_key_value(&c.data) {
                olds.push(if pick == 0 { parts.0 } else { parts.1 });
            }
        }
        let part = if pick == 0 { nk } else { nv };
        by_type(t, &olds, part, &BTreeMap::new(), &[], strategy)?;
    }
    Ok(())
}

/// The root message type of a PROTOBUF_NATIVE definition (`{"fileDescriptorSet": ...,
/// "rootMessageTypeName": ..., "rootFileDescriptorName": ...}`).
fn protobuf_root(data: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    v.get("rootMessageTypeName")?.as_str().map(str::to_owned)
}

/// PROTOBUF_NATIVE: the new definition's root message type equals every old one's.
fn protobuf_native_check(olds: &[&[u8]], new: &[u8]) -> Result<(), String> {
    let root = protobuf_root(new).ok_or("invalid PROTOBUF_NATIVE schema definition")?;
    for old in olds {
        if let Some(old_root) = protobuf_root(old)
            && old_root != root
        {
            return Err(format!(
                "incompatible PROTOBUF_NATIVE schema: root message {root}, existing {old_root}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(root: &str) -> Vec<u8> {
        format!(
            r#"{{"fileDescriptorSet":"AA==","rootMessageTypeName":"{root}","rootFileDescriptorName":"t.proto"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn protobuf_native_keeps_its_root_message() {
        let old = pb("proto.TestMessage");
        assert!(protobuf_native_check(&[&old], &pb("proto.TestMessage")).is_ok());
        assert!(protobuf_native_check(&[&old], &pb("proto.external.ExternalMessage")).is_err());
        assert!(protobuf_native_check(&[&old], b"not json").is_err());
        assert!(protobuf_native_check(&[], &pb("a.B")).is_ok());
    }
}
