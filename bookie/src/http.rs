//! The bookie's HTTP endpoints: `/health` (process alive), `/ready` (storage recovered and serving;
//! the body says whether adds are accepted), `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::storage::Storage;

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    storage: Arc<Storage>,
}

/// The router of the HTTP endpoints.
pub fn router(metrics: Arc<Metrics>, storage: Arc<Storage>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState { metrics, storage })
}

async fn ready(State(s): State<HttpState>) -> impl IntoResponse {
    match s.storage.read_only_reason() {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(r) => (StatusCode::OK, format!("ready (read-only: {r})\n")),
    }
}

async fn metrics_text(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}
