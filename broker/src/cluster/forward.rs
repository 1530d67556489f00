//! Forwarding one admin request to another broker over HTTP (reqwest, no redirects followed):
//! the partitioned-topic fan-out (`fanout.rs`) and the web console's follow-the-owner requests
//! (`crate::admin::redirect_layer`).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

/// Largest forwarded answer read.
pub(crate) const MAX_ANSWER: usize = 16 << 20;
/// Time limit of one forwarded request.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    let c = reqwest::Client::builder()
        .timeout(FORWARD_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("build the forwarding client: {e}"))?;
    Ok(CLIENT.get_or_init(|| c))
}

/// Sends one request to `base` (`http://host:port` or `https://host:port`) and reads the answer
/// (status, body of at most [`MAX_ANSWER`] bytes).
pub(crate) async fn forward(
    base: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut req = client()?.request(method.clone(), &url).body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v.clone());
        }
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| format!("forward to {url}: {e}"))?;
    let status = resp.status();
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("read the answer of {url}: {e}"))?
    {
        if out.len() + chunk.len() > MAX_ANSWER {
            return Err(format!(
                "the answer of {url} is larger than {MAX_ANSWER} bytes"
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((status, Bytes::from(out)))
}

/// Sends one request to `base` and answers with the answer: status, body and the headers that
/// describe the content (the `FOLLOW_OWNER` path of `crate::admin::redirect_layer`).
pub async fn proxy(
    base: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let fail = |e: String| {
        (
            StatusCode::BAD_GATEWAY,
            axum::Json(json!({ "reason": format!("forward to the owner: {e}") })),
        )
            .into_response()
    };
    let req = match client() {
        Ok(c) => c.request(method.clone(), &url).body(body),
        Err(e) => return fail(e),
    };
    let req = [header::AUTHORIZATION, header::CONTENT_TYPE]
        .into_iter()
        .fold(req, |r, name| match headers.get(&name) {
            Some(v) => r.header(name, v.clone()),
            None => r,
        });
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let status = resp.status();
    let mut out = Response::builder().status(status);
    for (k, v) in resp.headers() {
        let name = k.as_str();
        if name == "content-type" || name.starts_with("x-pulsar-") || name == "location" {
            out = out.header(k, v);
        }
    }
    let body = match resp.bytes().await {
        Ok(b) if b.len() <= MAX_ANSWER => b,
        Ok(_) => return fail(format!("the answer is larger than {MAX_ANSWER} bytes")),
        Err(e) => return fail(e.to_string()),
    };
    out.body(Body::from(body))
        .unwrap_or_else(|e| fail(e.to_string()))
}
