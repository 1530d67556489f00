//! Admin operations on a partitioned topic whose partitions live on different brokers.
//!
//! A partition is served by the owner of its bundle, so an operation on a whole partitioned
//! topic (its subscriptions, cursor operations, partitioned stats, unload, delete) cannot run on
//! one broker, and a 307 to "the owner" would bounce between brokers. As Pulsar does with its
//! internal admin client, the broker that receives such a request sends the same request for each
//! partition (`{topic}-partition-{i}`) to that partition's owner (itself included, over its own
//! HTTP port) and merges the answers. When every partition is local the request is handled
//! directly.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::forward::{MAX_ANSWER, forward};
use crate::admin::partitioned_stats;
use crate::service::{BrokerService, Owner};
use crate::topic_name::TopicName;

/// What kind of aggregate operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Every partition must succeed; 404 only if all partitions answer 404.
    Each,
    /// `GET .../subscriptions`: the union of the partitions' lists.
    Subscriptions,
    /// `GET .../partitioned-stats`: the partitions' stats summed.
    Stats { per_partition: bool },
    /// Deleting the partitioned topic: the partitions first, then the local handler deletes
    /// the partitioned metadata.
    Delete,
}

fn classify(method: &Method, rest: &[&str], query: &str) -> Option<Kind> {
    match (method.as_str(), rest) {
        ("GET", ["subscriptions"]) => Some(Kind::Subscriptions),
        ("GET", ["partitioned-stats"]) => Some(Kind::Stats {
            per_partition: query
                .split('&')
                .any(|kv| kv.eq_ignore_ascii_case("perPartition=true")),
        }),
        ("PUT", ["unload"]) => Some(Kind::Each),
        ("PUT" | "DELETE", ["subscription", _]) => Some(Kind::Each),
        ("POST", ["subscription", _, "resetcursor" | "skip_all"])
        | (
            "POST",
            [
                "subscription",
                _,
                "resetcursor" | "skip" | "expireMessages",
                _,
            ],
        ) => Some(Kind::Each),
        ("DELETE", []) | ("DELETE", ["partitions"]) => Some(Kind::Delete),
        _ => None,
    }
}

/// The middleware (see the module doc).
pub async fn layer(State(s): State<Arc<BrokerService>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // admin / v2 / domain / tenant / ns / topic / rest...
    let (domain, tenant, ns, topic, rest) = match segs.as_slice() {
        [
            "admin",
            "v2",
            d @ ("persistent" | "non-persistent"),
            t,
            n,
            tp,
            rest @ ..,
        ] => (*d, *t, *n, *tp, rest),
        _ => return next.run(req).await,
    };
    let Some(kind) = classify(req.method(), rest, &query) else {
        return next.run(req).await;
    };
    let Ok(name) = TopicName::from_parts(domain, tenant, ns, topic) else {
        return next.run(req).await;
    };
    if name.partition_index().is_some() {
        return next.run(req).await;
    }
    let parts = match s.partitions(&name).await {
        Ok(n) if n > 0 => n,
        _ => return next.run(req).await,
    };
    // Owners of the partitions; all local: the handler does it.
    let mut owners = Vec::with_capacity(parts as usize);
    let mut all_local = true;
    for i in 0..parts {
        let url = match s.owner(&name.partition(i)).await {
            Ok(Owner::Local) => s.http_url(),
            Ok(Owner::Remote { http_url, .. } | Owner::Leader { http_url, .. }) => {
                all_local = false;
                http_url
            }
            Err(e) => return crate::admin::ApiError::from(e).into_response(),
        };
        owners.push(url);
    }
    if all_local {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let headers = req.headers().clone();
    let (parts_req, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_ANSWER).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response(),
    };
    let sub_path = |i: u32, extra: &str| {
        let mut p = format!(
            "/admin/v2/{domain}/{tenant}/{ns}/{}",
            name.partition(i).local
        );
        for r in rest {
            if *r == "partitions" || *r == "partitioned-stats" {
                continue;
            }
            p.push('/');
            p.push_str(r);
        }
        p.push_str(extra);
        if !query.is_empty() && !matches!(kind, Kind::Stats { .. }) {
            p.push('?');
            p.push_str(&query);
        }
        p
    };
    let calls = owners.iter().enumerate().map(|(i, url)| {
        let extra = if matches!(kind, Kind::Stats { .. }) {
            "/stats"
        } else {
            ""
        };
        let p = sub_path(i as u32, extra);
        let (m, h, b) = (method.clone(), headers.clone(), body.clone());
        async move { forward(url, &m, &p, &h, b).await }
    });
    let answers = futures::future::join_all(calls).await;
    match kind {
        Kind::Each | Kind::Delete => {
            let mut not_found = 0;
            for a in &answers {
                match a {
                    Ok((st, _)) if st.is_success() => {}
                    Ok((StatusCode::NOT_FOUND, _)) => not_found += 1,
                    Ok((st, b)) => return (*st, b.clone()).into_response(),
                    Err(e) => return (StatusCode::BAD_GATEWAY, e.clone()).into_response(),
                }
            }
            if kind == Kind::Delete {
                // The partitions are gone; the handler removes the partitioned metadata.
                let req = Request::from_parts(parts_req, Body::from(body));
                return next.run(req).await;
            }
            if not_found == answers.len() {
                return (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({ "reason": "Subscription not found" })),
                )
                    .into_response();
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Kind::Subscriptions => merge_subscriptions(answers),
        Kind::Stats { per_partition } => merge_stats(answers, &name, parts, per_partition),
    }
}

/// What each partition answered: `(status, body)` or why forwarding failed.
type Answers = Vec<Result<(StatusCode, Bytes), String>>;

/// `GET .../subscriptions`: the union of the partitions' lists.
fn merge_subscriptions(answers: Answers) -> Response {
    let mut out = std::collections::BTreeSet::new();
    for a in answers {
        match a {
            Ok((st, b)) if st.is_success() => {
                if let Ok(Value::Array(v)) = serde_json::from_slice::<Value>(&b) {
                    out.extend(v.into_iter().filter_map(|x| x.as_str().map(str::to_owned)));
                }
            }
            Ok((StatusCode::NOT_FOUND, _)) => {}
            Ok((st, b)) => return (st, b).into_response(),
            Err(e) => return (StatusCode::BAD_GATEWAY, e).into_response(),
        }
    }
    axum::Json(out.into_iter().collect::<Vec<_>>()).into_response()
}

/// `GET .../partitioned-stats`: the partitions' stats summed (and each one with
/// `perPartition=true`).
fn merge_stats(answers: Answers, name: &TopicName, parts: u32, per_partition: bool) -> Response {
    let mut per = Vec::with_capacity(answers.len());
    for (i, a) in answers.into_iter().enumerate() {
        let st = match a {
            Ok((st, b)) if st.is_success() => {
                serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null)
            }
            Ok((StatusCode::NOT_FOUND, _)) => partitioned_stats::unloaded_partition(),
            Ok((st, b)) => return (st, b).into_response(),
            Err(e) => return (StatusCode::BAD_GATEWAY, e).into_response(),
        };
        per.push((name.partition(i as u32).to_string(), st));
    }
    axum::Json(partitioned_stats::merge(parts, per, per_partition)).into_response()
}

/// The client of forwarded requests: one connection pool for the process; `http://` and
/// `https://` (rustls; the platform's roots).
#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, header};

    #[test]
    fn aggregate_operations_are_recognised() {
        let get = Method::GET;
        assert_eq!(
            classify(&get, &["subscriptions"], ""),
            Some(Kind::Subscriptions)
        );
        assert_eq!(
            classify(&get, &["partitioned-stats"], "perPartition=true"),
            Some(Kind::Stats {
                per_partition: true
            })
        );
        assert_eq!(classify(&get, &["stats"], ""), None);
        assert_eq!(
            classify(&Method::POST, &["subscription", "s", "skip", "5"], ""),
            Some(Kind::Each)
        );
        assert_eq!(
            classify(&Method::DELETE, &["partitions"], "force=true"),
            Some(Kind::Delete)
        );
        assert_eq!(classify(&Method::PUT, &[], ""), None);
    }

    /// A forwarded request reaches the other broker with its method, path, query and
    /// authorization, and its answer (status and a streamed body) comes back whole.
    #[tokio::test]
    async fn forward_sends_the_request_and_reads_the_whole_answer() {
        use axum::routing::any;
        let app = axum::Router::new().route(
            "/admin/v2/{*rest}",
            any(
                |m: Method, uri: axum::http::Uri, h: HeaderMap, body: Bytes| async move {
                    let auth = h
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let chunks =
                        ["[\"", m.as_str(), " ", &uri.to_string(), " ", &auth, " "].concat();
                    let tail = format!("{}\"]", String::from_utf8_lossy(&body));
                    let stream = futures::stream::iter([
                        Ok::<_, std::io::Error>(Bytes::from(chunks)),
                        Ok(Bytes::from(tail)),
                    ]);
                    (StatusCode::CONFLICT, Body::from_stream(stream))
                },
            ),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        let (st, body) = forward(
            &base,
            &Method::POST,
            "/admin/v2/persistent/t/ns/a-partition-0/subscription/s/skip/5?x=1",
            &h,
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
        assert_eq!(st, StatusCode::CONFLICT);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "[\"POST /admin/v2/persistent/t/ns/a-partition-0/subscription/s/skip/5?x=1 Bearer t {}\"]"
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        assert!(
            forward(&dead, &Method::GET, "/x", &h, Bytes::new())
                .await
                .is_err()
        );
    }
}
