//! The schema registry's REST API, `/admin/v2/schemas/{tenant}/{ns}/{topic}/...` (Pulsar's
//! `SchemasResource`): `schema` (GET latest, POST a new version — 409 when incompatible, 422
//! when the definition is invalid — DELETE), `schema/{version}`, `schemas` (every live
//! version), `compatibility` (POST: would this schema be accepted?) and `version` (POST: the
//! version of an identical schema).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use strata_auth::RestOperation;
use strata_proto::pulsar::{KeyValue, Schema};

use super::{ApiError, ApiResult, Caller, Svc, parse_body};
use crate::schema::admission::rules;
use crate::schema::avro::Parsed;
use crate::schema::types::kind;
use crate::schema::{PutRules, SchemaVersion, SchemaVersionExt, parse_schema_type};
use crate::service::BrokerService;
use crate::topic_name::TopicName;

type TopicArgs = Path<(String, String, String)>;

pub(super) fn routes() -> Router<Arc<BrokerService>> {
    const B: &str = "/admin/v2/schemas/{tenant}/{ns}/{topic}";
    Router::new()
        .route(
            &format!("{B}/schema"),
            get(get_latest).post(post_schema).delete(delete_schema),
        )
        .route(&format!("{B}/schema/{{version}}"), get(get_version))
        .route(&format!("{B}/schemas"), get(get_all))
        .route(&format!("{B}/compatibility"), post(compatibility))
        .route(&format!("{B}/version"), post(version_of))
}

fn topic_name(t: &str, ns: &str, topic: &str) -> ApiResult<TopicName> {
    Ok(TopicName::from_parts("persistent", t, ns, topic)?)
}

/// Pulsar's `GetSchemaResponse`.
fn schema_json(v: &SchemaVersion) -> Value {
    let data = v.data_bytes();
    let text = if v.type_value() == kind::KEY_VALUE {
        key_value_text(&data)
    } else {
        None
    };
    json!({
        "version": v.version,
        "type": crate::schema::schema_type_name(v.type_value()),
        "timestamp": v.timestamp_ms,
        "data": text.unwrap_or_else(|| String::from_utf8_lossy(&data).into_owned()),
        "properties": v.properties,
    })
}

/// A KEY_VALUE schema's data as Pulsar's REST API shows it: `{"key": <key schema>, "value":
/// <value schema>}`, each part as its JSON definition (its bytes kept as they are, field order
/// included) or, when it is not JSON (a primitive part), as a string. `None` when the data is
/// not Pulsar's KEY_VALUE encoding.
fn key_value_text(data: &[u8]) -> Option<String> {
    let (k, v) = crate::schema::compat::split_key_value(data)?;
    let part = |d: &[u8]| -> String {
        match std::str::from_utf8(d) {
            Ok(t) if serde_json::from_str::<Value>(t).is_ok_and(|j| j.is_object()) => t.to_owned(),
            _ => Value::String(String::from_utf8_lossy(d).into_owned()).to_string(),
        }
    };
    Some(format!("{{\"key\":{},\"value\":{}}}", part(k), part(v)))
}

fn not_found() -> ApiError {
    ApiError::not_found("Schema not found")
}

async fn get_latest(
    State(s): Svc,
    c: Caller,
    Path((t, ns, tp)): TopicArgs,
) -> ApiResult<Json<Value>> {
    let name = topic_name(&t, &ns, &tp)?;
    c.topic(&s, RestOperation::GetSchemaRest, &name, None)
        .await?;
    let v = s.schemas.get(&name, None).await?.ok_or_else(not_found)?;
    Ok(Json(schema_json(&v)))
}

async fn get_version(
    State(s): Svc,
    c: Caller,
    Path((t, ns, tp, version)): Path<(String, String, String, u64)>,
) -> ApiResult<Json<Value>> {
    let name = topic_name(&t, &ns, &tp)?;
    c.topic(&s, RestOperation::GetSchemaRest, &name, None)
        .await?;
    let v = s
        .schemas
        .get(&name, Some(version))
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(schema_json(&v)))
}

async fn get_all(State(s): Svc, c: Caller, Path((t, ns, tp)): TopicArgs) -> ApiResult<Json<Value>> {
    let name = topic_name(&t, &ns, &tp)?;
    c.topic(&s, RestOperation::GetSchemaRest, &name, None)
        .await?;
    let all = s.schemas.all(&name).await?;
    if all.is_empty() {
        return Err(not_found());
    }
    let list: Vec<Value> = all.iter().map(schema_json).collect();
    Ok(Json(json!({ "getSchemaResponses": list })))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ForceQuery {
    force: bool,
}

async fn delete_schema(
    State(s): Svc,
    c: Caller,
    Path((t, ns, tp)): TopicArgs,
    Query(q): Query<ForceQuery>,
) -> ApiResult<Json<Value>> {
    let name = topic_name(&t, &ns, &tp)?;
    c.topic(&s, RestOperation::DeleteSchema, &name, None)
        .await?;
    let v = s
        .schemas
        .delete(&name, q.force)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(json!({ "version": v })))
}

/// Pulsar's `PostSchemaPayload`.
#[derive(Deserialize)]
struct PostSchema {
    #[serde(rename = "type")]
    schema_type: String,
    #[serde(default)]
    schema: String,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

/// The payload as a protocol schema; 422 when its type is unknown or its definition invalid.
fn payload(topic: &str, body: &str) -> ApiResult<Schema> {
    let b: PostSchema = parse_body(body)?;
    let unprocessable = |why: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, why);
    let t = parse_schema_type(&b.schema_type)
        .ok_or_else(|| unprocessable(format!("unknown schema type {:?}", b.schema_type)))?;
    match t {
        kind::AVRO => {
            Parsed::parse(&b.schema).map_err(unprocessable)?;
        }
        kind::JSON => {
            serde_json::from_str::<Value>(&b.schema)
                .map_err(|e| unprocessable(format!("invalid JSON schema: {e}")))?;
        }
        _ => {}
    }
    Ok(Schema {
        name: topic.to_owned(),
        schema_data: bytes::Bytes::from(b.schema.into_bytes()),
        r#type: t,
        properties: b
            .properties
            .into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect(),
    })
}

async fn post_schema(
    State(s): Svc,
    c: Caller,
    Path((t, ns, tp)): TopicArgs,
    body: String,
) -> ApiResult<Json<Value>> {
    let name = topic_name(&t, &ns, &tp)?;
    c.topic(&s, RestOperation::PostSchema, &name, None).await?;
    let schema = payload(&tp, &body)?;
    let put = PutRules {
        strategy: rules(&s, &name).await?.strategy,
        may_add: true,
    };
    let v = s.schemas.put_if_absent(&name, &schema, put).await?;
    Ok(Json(json!({ "version": { "version": v } })))
}

async fn compatibility(
    State(s): Svc,
    c: Caller,
    Path((t, ns, tp)): TopicArgs,
    body: String,
) -> ApiResult<Json<Value>> {
    let name = topic_name(&t, &ns, &tp)?;
    c.topic(&s, RestOperation::GetSchemaRest, &name, None)
        .await?;
    let schema = payload(&tp, &body)?;
    let strategy = rules(&s, &name).await?.strategy;
    let ok = s
        .schemas
        .is_compatible(&name, &schema, strategy)
        .await?
        .is_ok();
    Ok(Json(json!({
        "isCompatibility": ok,
        "schemaCompatibilityStrategy": strategy.name(),
    })))
}

async fn version_of(
    State(s): Svc,
    c: Caller,
    Path((t, ns, tp)): TopicArgs,
    body: String,
) -> ApiResult<Json<Value>> {
    let name = topic_name(&t, &ns, &tp)?;
    c.topic(&s, RestOperation::GetSchemaRest, &name, None)
        .await?;
    let schema = payload(&tp, &body)?;
    let v = s
        .schemas
        .version_of(&name, &schema)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(json!({ "version": v })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &[u8], v: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        for part in [k, v] {
            d.extend_from_slice(&(part.len() as u32).to_be_bytes());
            d.extend_from_slice(part);
        }
        d
    }

    #[test]
    fn key_value_data_is_shown_as_json_parts() {
        let rec = r#"{"type":"record","name":"cpx","fields":[{"name":"re","type":"double"}]}"#;
        let text = key_value_text(&kv(rec.as_bytes(), rec.as_bytes())).expect("key/value");
        // The parts keep their own bytes (field order) inside the object.
        assert_eq!(text, format!(r#"{{"key":{rec},"value":{rec}}}"#));
        let j: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(j["key"]["name"], "cpx");
        // A primitive part (no definition) is a string.
        let text = key_value_text(&kv(b"", rec.as_bytes())).expect("key/value");
        assert!(text.starts_with(r#"{"key":"","value":{"#), "{text}");
        assert_eq!(key_value_text(b"\0\0"), None);
    }
}
