//! Schema policies: the namespace's `schemaCompatibilityStrategy`, `isAllowAutoUpdateSchema`
//! and `schemaValidationEnforced` (`/admin/v2/namespaces/{t}/{ns}/...`), and a topic's own
//! `schemaCompatibilityStrategy` (`/admin/v2/persistent/{t}/{ns}/{topic}/...`), which wins over
//! the namespace's (see [`crate::schema::strategy`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use strata_auth::RestOperation;
use strata_meta::model::{Policies, TopicPolicies};

use super::{ApiError, ApiResult, Caller, Svc, parse_body};
use crate::schema::Strategy;
use crate::schema::admission::topic_policies_key;
use crate::service::BrokerService;
use crate::topic_name::TopicName;

type NsArgs = Path<(String, String)>;
type TopicArgs = Path<(String, String, String, String)>;

pub(super) fn routes() -> Router<Arc<BrokerService>> {
    const N: &str = "/admin/v2/namespaces/{tenant}/{ns}";
    const T: &str = "/admin/v2/{domain}/{tenant}/{ns}/{topic}";
    Router::new()
        .route(
            &format!("{N}/schemaCompatibilityStrategy"),
            get(get_ns_strategy)
                .put(set_ns_strategy)
                .post(set_ns_strategy),
        )
        .route(
            &format!("{N}/isAllowAutoUpdateSchema"),
            get(get_auto_update)
                .post(set_auto_update)
                .put(set_auto_update),
        )
        .route(
            &format!("{N}/schemaValidationEnforced"),
            get(get_enforced).post(set_enforced).put(set_enforced),
        )
        .route(
            &format!("{T}/schemaCompatibilityStrategy"),
            get(get_topic_strategy)
                .put(set_topic_strategy)
                .post(set_topic_strategy)
                .delete(remove_topic_strategy),
        )
}

/// A strategy body (`"FORWARD"`); `UNDEFINED` clears it.
fn parse_strategy(body: &str) -> ApiResult<Option<Strategy>> {
    let name: String = parse_body(body)?;
    if name.eq_ignore_ascii_case("UNDEFINED") {
        return Ok(None);
    }
    name.parse().map(Some).map_err(|_| {
        ApiError::precondition(format!("unknown schema compatibility strategy {name:?}"))
    })
}

async fn ns_policies(s: &BrokerService, c: &Caller, t: &str, ns: &str) -> ApiResult<Policies> {
    c.namespace(s, RestOperation::GetNamespacePolicies, t, ns)
        .await?;
    s.policies(t, ns)
        .await?
        .ok_or_else(|| ApiError::not_found("Namespace does not exist"))
}

async fn set_ns(
    s: &BrokerService,
    c: &Caller,
    t: &str,
    ns: &str,
    change: impl Fn(&mut Policies) + Send + Sync,
) -> ApiResult<StatusCode> {
    c.namespace(s, RestOperation::SetNamespacePolicy, t, ns)
        .await?;
    s.update_policies(t, ns, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_ns_strategy(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): NsArgs,
) -> ApiResult<Json<Value>> {
    let p = ns_policies(&s, &c, &t, &ns).await?;
    let v = Strategy::parse_opt(p.schema_compatibility_strategy.as_deref())
        .map(|s| s.name())
        .unwrap_or("UNDEFINED");
    Ok(Json(json!(v)))
}

async fn set_ns_strategy(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): NsArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let v = parse_strategy(&body)?.map(|s| s.name().to_owned());
    set_ns(&s, &c, &t, &ns, move |p| {
        p.schema_compatibility_strategy = v.clone()
    })
    .await
}

async fn get_auto_update(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): NsArgs,
) -> ApiResult<Json<Value>> {
    let p = ns_policies(&s, &c, &t, &ns).await?;
    Ok(Json(json!(p.is_allow_auto_update_schema.unwrap_or(true))))
}

async fn set_auto_update(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): NsArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let v: bool = parse_body(&body)?;
    set_ns(&s, &c, &t, &ns, move |p| {
        p.is_allow_auto_update_schema = Some(v)
    })
    .await
}

async fn get_enforced(State(s): Svc, c: Caller, Path((t, ns)): NsArgs) -> ApiResult<Json<Value>> {
    let p = ns_policies(&s, &c, &t, &ns).await?;
    Ok(Json(json!(p.schema_validation_enforced.unwrap_or(false))))
}

async fn set_enforced(
    State(s): Svc,
    c: Caller,
    Path((t, ns)): NsArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let v: bool = parse_body(&body)?;
    set_ns(&s, &c, &t, &ns, move |p| {
        p.schema_validation_enforced = Some(v)
    })
    .await
}

async fn topic(
    s: &BrokerService,
    c: &Caller,
    args: &(String, String, String, String),
) -> ApiResult<TopicName> {
    let (d, t, ns, tp) = args;
    let name = TopicName::from_parts(d, t, ns, tp)?;
    c.topic(s, RestOperation::TopicPolicies, &name, None)
        .await?;
    if s.policies(t, ns).await?.is_none() {
        return Err(ApiError::not_found("Namespace does not exist"));
    }
    Ok(name)
}

async fn get_topic_strategy(
    State(s): Svc,
    c: Caller,
    Path(args): TopicArgs,
) -> ApiResult<Json<Value>> {
    let name = topic(&s, &c, &args).await?;
    let p = crate::schema::admission::topic_policies(&s, &name).await?;
    Ok(Json(json!(
        Strategy::parse_opt(p.schema_compatibility_strategy.as_deref()).map(|s| s.name())
    )))
}

async fn update_topic(
    s: &BrokerService,
    name: &TopicName,
    v: Option<String>,
) -> ApiResult<StatusCode> {
    let key = topic_policies_key(s, name);
    s.metadata()
        .update(&key, |cur: Option<TopicPolicies>| {
            let mut p = cur.unwrap_or_default();
            p.schema_compatibility_strategy = v.clone();
            Ok(Some(p))
        })
        .await
        .map_err(crate::error::BrokerError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_topic_strategy(
    State(s): Svc,
    c: Caller,
    Path(args): TopicArgs,
    body: String,
) -> ApiResult<StatusCode> {
    let name = topic(&s, &c, &args).await?;
    let v = parse_strategy(&body)?.map(|s| s.name().to_owned());
    update_topic(&s, &name, v).await
}

async fn remove_topic_strategy(
    State(s): Svc,
    c: Caller,
    Path(args): TopicArgs,
) -> ApiResult<StatusCode> {
    let name = topic(&s, &c, &args).await?;
    update_topic(&s, &name, None).await
}
