//! A typed async client for Pulsar's admin REST API v2 (`/admin/v2/...`), and the `strata admin`
//! command built on it ([`cli`]).
//!
//! - [`AdminClient`]: one method per endpoint; JSON shapes in [`types`] follow Pulsar's classes
//!   (`TenantInfo`, `Policies`, `RetentionPolicies`, `BacklogQuota`, ...), so the client also
//!   works against an Apache Pulsar broker.
//! - Errors: a non-2xx answer becomes [`AdminError::Http`] with the status and Pulsar's
//!   `{"reason": ...}`; transport trouble, timeouts and 5xx are [`AdminError::is_retryable`].
//! - Transport: HTTP/1.1 over hyper, one connection per request, optional rustls with a CA file
//!   (host name always checked), optional bearer token (never logged: `Debug` redacts it).
//!
//! Names: topics are `persistent://tenant/ns/topic` or the short forms `tenant/ns/topic` and
//! `topic` (in `public/default`), as in pulsar-admin; namespaces are `tenant/ns`. Every path
//! segment is percent-encoded.

pub mod cli;
mod error;
mod offload;
pub mod output;
mod transport;
pub mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{AdminError, AdminResult, status_text};
pub use transport::{BaseUrl, RawResponse};
use types::*;

/// A fully qualified topic name split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRef {
    /// `persistent` or `non-persistent`.
    pub domain: String,
    /// Tenant.
    pub tenant: String,
    /// Namespace (without the tenant).
    pub namespace: String,
    /// Local name (may contain `/`).
    pub local: String,
}

impl TopicRef {
    /// Parses `persistent://t/ns/topic`, `t/ns/topic` or `topic` (→ `public/default`).
    pub fn parse(name: &str) -> AdminResult<TopicRef> {
        let bad = |why: &str| AdminError::InvalidArgument(format!("invalid topic {name:?}: {why}"));
        let (domain, rest) = match name.split_once("://") {
            Some((d @ ("persistent" | "non-persistent"), r)) => (d, r),
            Some(_) => return Err(bad("the domain must be persistent or non-persistent")),
            None => ("persistent", name),
        };
        let parts: Vec<&str> = rest.splitn(3, '/').collect();
        let (tenant, namespace, local) = match parts.as_slice() {
            [t] if !name.contains("://") => ("public", "default", *t),
            [t, ns, l] => (*t, *ns, *l),
            _ => return Err(bad("expected tenant/namespace/topic")),
        };
        if tenant.is_empty() || namespace.is_empty() || local.is_empty() {
            return Err(bad("empty name segment"));
        }
        Ok(TopicRef {
            domain: domain.to_owned(),
            tenant: tenant.to_owned(),
            namespace: namespace.to_owned(),
            local: local.to_owned(),
        })
    }

    /// `/admin/v2/{domain}/{tenant}/{ns}/{topic}` with every segment encoded.
    pub fn path(&self) -> String {
        format!(
            "/admin/v2/{}/{}/{}/{}",
            enc(&self.domain),
            enc(&self.tenant),
            enc(&self.namespace),
            enc(&self.local)
        )
    }
}

impl std::fmt::Display for TopicRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}/{}/{}",
            self.domain, self.tenant, self.namespace, self.local
        )
    }
}

/// A `tenant/namespace` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRef {
    /// Tenant.
    pub tenant: String,
    /// Namespace (without the tenant).
    pub namespace: String,
}

impl NamespaceRef {
    /// Parses `tenant/namespace`.
    pub fn parse(name: &str) -> AdminResult<NamespaceRef> {
        match name.split_once('/') {
            Some((t, ns)) if !t.is_empty() && !ns.is_empty() && !ns.contains('/') => {
                Ok(NamespaceRef {
                    tenant: t.to_owned(),
                    namespace: ns.to_owned(),
                })
            }
            _ => Err(AdminError::InvalidArgument(format!(
                "invalid namespace {name:?}: expected tenant/namespace"
            ))),
        }
    }

    /// `/admin/v2/namespaces/{tenant}/{ns}`.
    pub fn path(&self) -> String {
        format!(
            "/admin/v2/namespaces/{}/{}",
            enc(&self.tenant),
            enc(&self.namespace)
        )
    }
}

impl std::fmt::Display for NamespaceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.namespace)
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How to reach the admin API.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// `http://host:port` or `https://host:port`.
    pub url: String,
    /// Bearer token (sent as `Authorization: Bearer ...`).
    pub token: Option<String>,
    /// PEM CA file for `https://` URLs.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Bound on each request.
    pub timeout: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            url: "http://127.0.0.1:8080".to_owned(),
            token: None,
            tls_ca_file: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The admin REST client. Cheap to clone.
///
/// # Cancel safety
/// Every method is cancel safe in the sense that dropping the future closes its connection; the
/// server may or may not have applied a write that was in flight.
#[derive(Debug, Clone)]
pub struct AdminClient {
    transport: transport::Transport,
}

impl AdminClient {
    /// A client for `config`; fails on a bad URL or unusable CA file (nothing is connected yet).
    pub fn new(config: &AdminConfig) -> AdminResult<AdminClient> {
        let base = BaseUrl::parse(&config.url)?;
        let transport = transport::Transport::new(
            base,
            config.token.clone(),
            config.tls_ca_file.as_deref().map(Path::new),
            config.timeout,
        )?;
        Ok(AdminClient { transport })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &BaseUrl {
        self.transport.base()
    }

    /// Sends a request and maps a non-2xx answer to [`AdminError::Http`].
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> AdminResult<RawResponse> {
        use tracing::Instrument;
        let span = tracing::debug_span!("admin_request", %method, path);
        let resp = self
            .transport
            .send(method, path, body)
            .instrument(span)
            .await?;
        tracing::debug!(status = resp.status.as_u16(), path, "admin response");
        if resp.status.is_success() {
            Ok(resp)
        } else {
            Err(AdminError::from_response(resp.status.as_u16(), &resp.body))
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> AdminResult<T> {
        let resp = self.request(Method::GET, path, None).await?;
        self.decode(path, &resp.body)
    }

    fn decode<T: DeserializeOwned>(&self, path: &str, body: &[u8]) -> AdminResult<T> {
        serde_json::from_slice(body).map_err(|e| AdminError::Decode {
            url: self.transport.base().url(path),
            message: e.to_string(),
        })
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> AdminResult<()> {
        let body = serde_json::to_vec(body)
            .map_err(|e| AdminError::InvalidArgument(format!("encode request: {e}")))?;
        self.request(method, path, Some(Bytes::from(body))).await?;
        Ok(())
    }

    async fn send_empty(&self, method: Method, path: &str) -> AdminResult<()> {
        self.request(method, path, None).await?;
        Ok(())
    }

    /// GET a path and return its JSON (for endpoints without a typed shape here).
    pub async fn get_value(&self, path: &str) -> AdminResult<serde_json::Value> {
        let resp = self.request(Method::GET, path, None).await?;
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        match serde_json::from_slice(&resp.body) {
            Ok(v) => Ok(v),
            // Some endpoints answer plain text ("ok").
            Err(_) => Ok(serde_json::Value::String(
                String::from_utf8_lossy(&resp.body).trim().to_owned(),
            )),
        }
    }

    // ---- clusters, brokers, bookies ----

    /// `GET /admin/v2/clusters`.
    pub async fn clusters(&self) -> AdminResult<Vec<String>> {
        self.get("/admin/v2/clusters").await
    }

    /// `GET /admin/v2/clusters/{cluster}`.
    pub async fn cluster(&self, cluster: &str) -> AdminResult<ClusterData> {
        self.get(&format!("/admin/v2/clusters/{}", enc(cluster)))
            .await
    }

    /// `GET /admin/v2/brokers/{cluster}`: active brokers (`host:port` of their HTTP service).
    pub async fn active_brokers(&self, cluster: &str) -> AdminResult<Vec<String>> {
        self.get(&format!("/admin/v2/brokers/{}", enc(cluster)))
            .await
    }

    /// `GET /admin/v2/brokers/leaderBroker`.
    pub async fn leader_broker(&self) -> AdminResult<serde_json::Value> {
        self.get_value("/admin/v2/brokers/leaderBroker").await
    }

    /// `GET /admin/v2/brokers/health`: `Ok` when the broker answers "ok".
    pub async fn healthcheck(&self) -> AdminResult<String> {
        let v = self.get_value("/admin/v2/brokers/health").await?;
        Ok(match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// `GET /admin/v2/bookies/all`.
    pub async fn bookies(&self) -> AdminResult<serde_json::Value> {
        self.get_value("/admin/v2/bookies/all").await
    }

    /// `GET /admin/v2/bookies/racks-info`.
    pub async fn bookie_racks(&self) -> AdminResult<serde_json::Value> {
        self.get_value("/admin/v2/bookies/racks-info").await
    }

    // ---- tenants ----

    /// `GET /admin/v2/tenants`.
    pub async fn tenants(&self) -> AdminResult<Vec<String>> {
        self.get("/admin/v2/tenants").await
    }

    /// `GET /admin/v2/tenants/{tenant}`.
    pub async fn tenant(&self, tenant: &str) -> AdminResult<TenantInfo> {
        self.get(&tenant_path(tenant)).await
    }

    /// `PUT /admin/v2/tenants/{tenant}` (409 if it exists).
    pub async fn create_tenant(&self, tenant: &str, info: &TenantInfo) -> AdminResult<()> {
        self.send(Method::PUT, &tenant_path(tenant), info).await
    }

    /// `POST /admin/v2/tenants/{tenant}`.
    pub async fn update_tenant(&self, tenant: &str, info: &TenantInfo) -> AdminResult<()> {
        self.send(Method::POST, &tenant_path(tenant), info).await
    }

    /// `DELETE /admin/v2/tenants/{tenant}` (409 while it has namespaces).
    pub async fn delete_tenant(&self, tenant: &str) -> AdminResult<()> {
        self.send_empty(Method::DELETE, &tenant_path(tenant)).await
    }

    // ---- namespaces ----

    /// `GET /admin/v2/namespaces/{tenant}`.
    pub async fn namespaces(&self, tenant: &str) -> AdminResult<Vec<String>> {
        self.get(&format!("/admin/v2/namespaces/{}", enc(tenant)))
            .await
    }

    /// `PUT /admin/v2/namespaces/{tenant}/{ns}`.
    pub async fn create_namespace(&self, ns: &NamespaceRef) -> AdminResult<()> {
        self.send_empty(Method::PUT, &ns.path()).await
    }

    /// `DELETE /admin/v2/namespaces/{tenant}/{ns}` (409 while it has topics, unless `force`).
    pub async fn delete_namespace(&self, ns: &NamespaceRef, force: bool) -> AdminResult<()> {
        let q = if force { "?force=true" } else { "" };
        self.send_empty(Method::DELETE, &format!("{}{q}", ns.path()))
            .await
    }

    /// `GET /admin/v2/namespaces/{tenant}/{ns}`: the namespace's policies.
    pub async fn policies(&self, ns: &NamespaceRef) -> AdminResult<Policies> {
        self.get(&ns.path()).await
    }

    /// `GET /admin/v2/namespaces/{tenant}/{ns}/topics`.
    pub async fn namespace_topics(&self, ns: &NamespaceRef) -> AdminResult<Vec<String>> {
        self.get(&format!("{}/topics", ns.path())).await
    }

    /// `GET .../{policy}` as raw JSON (`retention`, `messageTTL`, `backlogQuotaMap`, ...).
    pub async fn namespace_policy(
        &self,
        ns: &NamespaceRef,
        policy: &str,
    ) -> AdminResult<serde_json::Value> {
        self.get_value(&format!("{}/{policy}", ns.path())).await
    }

    /// `DELETE .../{policy}`: back to the broker default (`retention`, `messageTTL`,
    /// `backlogQuota`, `persistence`, `deduplication`, `maxProducersPerTopic`, ...).
    pub async fn remove_namespace_policy(
        &self,
        ns: &NamespaceRef,
        policy: &str,
    ) -> AdminResult<()> {
        self.send_empty(Method::DELETE, &format!("{}/{}", ns.path(), enc(policy)))
            .await
    }

    /// `GET .../retention`.
    pub async fn retention(&self, ns: &NamespaceRef) -> AdminResult<Option<RetentionPolicies>> {
        let path = format!("{}/retention", ns.path());
        match self.get_value(&path).await? {
            serde_json::Value::Null => Ok(None),
            v => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| AdminError::Decode {
                    url: self.transport.base().url(&path),
                    message: e.to_string(),
                }),
        }
    }

    /// `POST .../retention`.
    pub async fn set_retention(&self, ns: &NamespaceRef, r: &RetentionPolicies) -> AdminResult<()> {
        self.send(Method::POST, &format!("{}/retention", ns.path()), r)
            .await
    }

    /// `POST .../messageTTL` (seconds, 0 disables).
    pub async fn set_message_ttl(&self, ns: &NamespaceRef, seconds: i64) -> AdminResult<()> {
        self.send(Method::POST, &format!("{}/messageTTL", ns.path()), &seconds)
            .await
    }

    /// `POST .../backlogQuota?backlogQuotaType=destination_storage`.
    pub async fn set_backlog_quota(&self, ns: &NamespaceRef, q: &BacklogQuota) -> AdminResult<()> {
        self.set_backlog_quota_of_type(ns, q, "destination_storage")
            .await
    }

    /// `POST .../backlogQuota?backlogQuotaType=...` (`destination_storage`: the size limit,
    /// `message_age`: the time limit).
    pub async fn set_backlog_quota_of_type(
        &self,
        ns: &NamespaceRef,
        q: &BacklogQuota,
        quota_type: &str,
    ) -> AdminResult<()> {
        let path = format!(
            "{}/backlogQuota?backlogQuotaType={}",
            ns.path(),
            enc(quota_type)
        );
        self.send(Method::POST, &path, q).await
    }

    /// `GET .../backlogQuotaMap`.
    pub async fn backlog_quotas(
        &self,
        ns: &NamespaceRef,
    ) -> AdminResult<BTreeMap<String, BacklogQuota>> {
        self.get(&format!("{}/backlogQuotaMap", ns.path())).await
    }

    /// `POST .../persistence`.
    pub async fn set_persistence(
        &self,
        ns: &NamespaceRef,
        p: &PersistencePolicies,
    ) -> AdminResult<()> {
        self.send(Method::POST, &format!("{}/persistence", ns.path()), p)
            .await
    }

    /// `POST .../deduplication`.
    pub async fn set_deduplication(&self, ns: &NamespaceRef, enabled: bool) -> AdminResult<()> {
        self.send(
            Method::POST,
            &format!("{}/deduplication", ns.path()),
            &enabled,
        )
        .await
    }

    /// `POST .../maxProducersPerTopic`.
    pub async fn set_max_producers_per_topic(&self, ns: &NamespaceRef, n: i64) -> AdminResult<()> {
        self.send(
            Method::POST,
            &format!("{}/maxProducersPerTopic", ns.path()),
            &n,
        )
        .await
    }

    /// `POST .../maxConsumersPerTopic`.
    pub async fn set_max_consumers_per_topic(&self, ns: &NamespaceRef, n: i64) -> AdminResult<()> {
        self.send(
            Method::POST,
            &format!("{}/maxConsumersPerTopic", ns.path()),
            &n,
        )
        .await
    }

    /// `POST .../dispatchRate`.
    pub async fn set_dispatch_rate(&self, ns: &NamespaceRef, r: &DispatchRate) -> AdminResult<()> {
        self.send(Method::POST, &format!("{}/dispatchRate", ns.path()), r)
            .await
    }

    /// `POST .../subscriptionDispatchRate` (per subscription).
    pub async fn set_subscription_dispatch_rate(
        &self,
        ns: &NamespaceRef,
        r: &DispatchRate,
    ) -> AdminResult<()> {
        self.send(
            Method::POST,
            &format!("{}/subscriptionDispatchRate", ns.path()),
            r,
        )
        .await
    }

    /// `POST .../publishRate`.
    pub async fn set_publish_rate(&self, ns: &NamespaceRef, r: &PublishRate) -> AdminResult<()> {
        self.send(Method::POST, &format!("{}/publishRate", ns.path()), r)
            .await
    }

    /// `PUT .../offloadThreshold` (bytes, `-1` disables).
    pub async fn set_offload_threshold(&self, ns: &NamespaceRef, bytes: i64) -> AdminResult<()> {
        self.send(
            Method::PUT,
            &format!("{}/offloadThreshold", ns.path()),
            &bytes,
        )
        .await
    }

    /// `GET .../permissions`: role → actions.
    pub async fn permissions(
        &self,
        ns: &NamespaceRef,
    ) -> AdminResult<BTreeMap<String, Vec<String>>> {
        self.get(&format!("{}/permissions", ns.path())).await
    }

    /// `POST .../permissions/{role}` with the actions.
    pub async fn grant_permission(
        &self,
        ns: &NamespaceRef,
        role: &str,
        actions: &[String],
    ) -> AdminResult<()> {
        let path = format!("{}/permissions/{}", ns.path(), enc(role));
        self.send(Method::POST, &path, actions).await
    }

    /// `DELETE .../permissions/{role}`.
    pub async fn revoke_permission(&self, ns: &NamespaceRef, role: &str) -> AdminResult<()> {
        let path = format!("{}/permissions/{}", ns.path(), enc(role));
        self.send_empty(Method::DELETE, &path).await
    }

    // ---- topics ----

    /// `GET /admin/v2/{domain}/{tenant}/{ns}`: topics (partitions included) of a namespace.
    pub async fn topics(&self, ns: &NamespaceRef, domain: &str) -> AdminResult<Vec<String>> {
        self.get(&format!(
            "/admin/v2/{}/{}/{}",
            enc(domain),
            enc(&ns.tenant),
            enc(&ns.namespace)
        ))
        .await
    }

    /// `GET /admin/v2/{domain}/{tenant}/{ns}/partitioned`.
    pub async fn partitioned_topics(
        &self,
        ns: &NamespaceRef,
        domain: &str,
    ) -> AdminResult<Vec<String>> {
        self.get(&format!(
            "/admin/v2/{}/{}/{}/partitioned",
            enc(domain),
            enc(&ns.tenant),
            enc(&ns.namespace)
        ))
        .await
    }

    /// `PUT .../{topic}`: creates a non-partitioned topic.
    pub async fn create_topic(&self, t: &TopicRef) -> AdminResult<()> {
        self.send_empty(Method::PUT, &t.path()).await
    }

    /// `DELETE .../{topic}[?force=true]` (a partitioned topic: `.../partitions`).
    pub async fn delete_topic(
        &self,
        t: &TopicRef,
        partitioned: bool,
        force: bool,
    ) -> AdminResult<()> {
        let base = if partitioned {
            format!("{}/partitions", t.path())
        } else {
            t.path()
        };
        let q = if force { "?force=true" } else { "" };
        self.send_empty(Method::DELETE, &format!("{base}{q}")).await
    }

    /// `PUT .../{topic}/partitions` with the count.
    pub async fn create_partitioned_topic(&self, t: &TopicRef, partitions: u32) -> AdminResult<()> {
        self.send(
            Method::PUT,
            &format!("{}/partitions", t.path()),
            &partitions,
        )
        .await
    }

    /// `POST .../{topic}/partitions` with the new (larger) count.
    pub async fn update_partitioned_topic(&self, t: &TopicRef, partitions: u32) -> AdminResult<()> {
        self.send(
            Method::POST,
            &format!("{}/partitions", t.path()),
            &partitions,
        )
        .await
    }

    /// `GET .../{topic}/partitions`.
    pub async fn partitioned_metadata(
        &self,
        t: &TopicRef,
    ) -> AdminResult<PartitionedTopicMetadata> {
        self.get(&format!("{}/partitions", t.path())).await
    }

    /// `GET .../{topic}/stats`.
    pub async fn stats(&self, t: &TopicRef) -> AdminResult<TopicStats> {
        self.get(&format!("{}/stats", t.path())).await
    }

    /// `GET .../{topic}/internalStats`.
    pub async fn internal_stats(&self, t: &TopicRef) -> AdminResult<PersistentTopicInternalStats> {
        self.get(&format!("{}/internalStats", t.path())).await
    }

    /// `GET .../{topic}/partitioned-stats[?perPartition=true]`.
    pub async fn partitioned_stats(
        &self,
        t: &TopicRef,
        per_partition: bool,
    ) -> AdminResult<serde_json::Value> {
        self.get_value(&format!(
            "{}/partitioned-stats?perPartition={per_partition}",
            t.path()
        ))
        .await
    }

    /// `PUT .../{topic}/unload`.
    pub async fn unload(&self, t: &TopicRef) -> AdminResult<()> {
        self.send_empty(Method::PUT, &format!("{}/unload", t.path()))
            .await
    }

    /// `GET .../{topic}/permissions`: role -> actions (namespace grants included).
    pub async fn topic_permissions(
        &self,
        t: &TopicRef,
    ) -> AdminResult<BTreeMap<String, Vec<String>>> {
        self.get(&format!("{}/permissions", t.path())).await
    }

    /// `POST .../{topic}/permissions/{role}` with the actions.
    pub async fn grant_topic_permission(
        &self,
        t: &TopicRef,
        role: &str,
        actions: &[String],
    ) -> AdminResult<()> {
        let path = format!("{}/permissions/{}", t.path(), enc(role));
        self.send(Method::POST, &path, actions).await
    }

    /// `DELETE .../{topic}/permissions/{role}`.
    pub async fn revoke_topic_permission(&self, t: &TopicRef, role: &str) -> AdminResult<()> {
        let path = format!("{}/permissions/{}", t.path(), enc(role));
        self.send_empty(Method::DELETE, &path).await
    }

    /// `POST .../{topic}/terminate`: returns the last message id.
    pub async fn terminate(&self, t: &TopicRef) -> AdminResult<MessageIdJson> {
        let path = format!("{}/terminate", t.path());
        let resp = self.request(Method::POST, &path, None).await?;
        self.decode(&path, &resp.body)
    }

    /// `GET .../{topic}/subscriptions`.
    pub async fn subscriptions(&self, t: &TopicRef) -> AdminResult<Vec<String>> {
        self.get(&format!("{}/subscriptions", t.path())).await
    }

    fn sub_path(t: &TopicRef, sub: &str) -> String {
        format!("{}/subscription/{}", t.path(), enc(sub))
    }

    /// `PUT .../subscription/{sub}` at `position`.
    pub async fn create_subscription(
        &self,
        t: &TopicRef,
        sub: &str,
        position: &MessageIdJson,
    ) -> AdminResult<()> {
        self.send(Method::PUT, &Self::sub_path(t, sub), position)
            .await
    }

    /// `DELETE .../subscription/{sub}[?force=true]`.
    pub async fn unsubscribe(&self, t: &TopicRef, sub: &str, force: bool) -> AdminResult<()> {
        let q = if force { "?force=true" } else { "" };
        self.send_empty(Method::DELETE, &format!("{}{q}", Self::sub_path(t, sub)))
            .await
    }

    /// `POST .../subscription/{sub}/resetcursor/{timestamp_ms}`.
    pub async fn reset_cursor_to_time(
        &self,
        t: &TopicRef,
        sub: &str,
        timestamp_ms: i64,
    ) -> AdminResult<()> {
        let path = format!("{}/resetcursor/{timestamp_ms}", Self::sub_path(t, sub));
        self.send_empty(Method::POST, &path).await
    }

    /// `POST .../subscription/{sub}/resetcursor` with a message id.
    pub async fn reset_cursor_to_id(
        &self,
        t: &TopicRef,
        sub: &str,
        id: &MessageIdJson,
    ) -> AdminResult<()> {
        let path = format!("{}/resetcursor", Self::sub_path(t, sub));
        self.send(Method::POST, &path, id).await
    }

    /// `POST .../subscription/{sub}/skip/{n}`.
    pub async fn skip(&self, t: &TopicRef, sub: &str, n: u64) -> AdminResult<()> {
        let path = format!("{}/skip/{n}", Self::sub_path(t, sub));
        self.send_empty(Method::POST, &path).await
    }

    /// `POST .../subscription/{sub}/skip_all`.
    pub async fn clear_backlog(&self, t: &TopicRef, sub: &str) -> AdminResult<()> {
        let path = format!("{}/skip_all", Self::sub_path(t, sub));
        self.send_empty(Method::POST, &path).await
    }

    /// `POST .../subscription/{sub}/expireMessages/{seconds}`.
    pub async fn expire_messages(&self, t: &TopicRef, sub: &str, seconds: u64) -> AdminResult<()> {
        let path = format!("{}/expireMessages/{seconds}", Self::sub_path(t, sub));
        self.send_empty(Method::POST, &path).await
    }

    /// `GET .../subscription/{sub}/position/{n}` for `n` in `1..=count`.
    pub async fn peek_messages(
        &self,
        t: &TopicRef,
        sub: &str,
        count: u32,
    ) -> AdminResult<Vec<RawMessage>> {
        let mut out = Vec::new();
        for n in 1..=count {
            let path = format!("{}/position/{n}", Self::sub_path(t, sub));
            match self.request(Method::GET, &path, None).await {
                Ok(resp) => out.push(raw_message(resp)),
                // Fewer messages than asked for: stop like pulsar-admin does.
                Err(AdminError::Http { status: 404, .. }) if !out.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// `GET .../{topic}/ledger/{ledger}/entry/{entry}`.
    pub async fn message_by_id(
        &self,
        t: &TopicRef,
        ledger: i64,
        entry: i64,
    ) -> AdminResult<RawMessage> {
        let path = format!("{}/ledger/{ledger}/entry/{entry}", t.path());
        Ok(raw_message(self.request(Method::GET, &path, None).await?))
    }

    /// `GET .../{topic}/lastMessageId`.
    pub async fn last_message_id(&self, t: &TopicRef) -> AdminResult<MessageIdJson> {
        self.get(&format!("{}/lastMessageId", t.path())).await
    }

    /// `PUT .../{topic}/compaction`.
    pub async fn compact(&self, t: &TopicRef) -> AdminResult<()> {
        self.send_empty(Method::PUT, &format!("{}/compaction", t.path()))
            .await
    }

    /// `GET .../{topic}/compaction`.
    pub async fn compaction_status(&self, t: &TopicRef) -> AdminResult<LongRunningProcessStatus> {
        self.get(&format!("{}/compaction", t.path())).await
    }
}

fn tenant_path(tenant: &str) -> String {
    format!("/admin/v2/tenants/{}", enc(tenant))
}

fn raw_message(resp: RawResponse) -> RawMessage {
    let headers = resp
        .headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix("x-pulsar-")?;
            Some((
                name.to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ))
        })
        .collect();
    RawMessage {
        headers,
        payload: resp.body,
    }
}
