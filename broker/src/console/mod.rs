//! The built-in web console at `/console`: a small single-page app (plain HTML, CSS and
//! JavaScript modules, no build step) embedded in the binary, so it works with no network beyond
//! the broker.
//!
//! The console is a client of the admin REST API like any other: every page reads and every
//! action writes through `/admin/v2` with the operator's token (`Authorization: Bearer`), so the
//! same authorization applies and a refusal shows the API's own `reason`. Serving the assets needs
//! no credentials: they hold no data.
//!
//! For work on the console itself, `STRATA_CONSOLE_DIR=<dir>` (read when the router is built)
//! serves the same fixed file names from that directory instead of the embedded copies, so a
//! change shows on reload without a rebuild.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::service::BrokerService;

/// One embedded file: its name under `/console/`, MIME type and bytes.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
}

const fn asset(name: &'static str, mime: &'static str, body: &'static str) -> Asset {
    Asset { name, mime, body }
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console (`index.html` is also served at `/console/`).
const ASSETS: &[Asset] = &[
    asset(
        "index.html",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    asset(
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    asset("app.js", JS, include_str!("assets/app.js")),
    asset("api.js", JS, include_str!("assets/api.js")),
    asset("ui.js", JS, include_str!("assets/ui.js")),
    asset("chart.js", JS, include_str!("assets/chart.js")),
    asset("cluster.js", JS, include_str!("assets/cluster.js")),
    asset("namespace.js", JS, include_str!("assets/namespace.js")),
    asset("topic.js", JS, include_str!("assets/topic.js")),
    asset(
        "subscriptions.js",
        JS,
        include_str!("assets/subscriptions.js"),
    ),
];

/// Scripts, styles and requests from the broker's own origin only; no inline code, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The routes of `/console`.
pub fn routes() -> Router<Arc<BrokerService>> {
    let dir = std::env::var_os("STRATA_CONSOLE_DIR").map(PathBuf::from);
    let index_dir = dir.clone();
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route(
            "/console/",
            get(move || serve(index_dir.clone(), "index.html".to_owned())),
        )
        .route(
            "/console/{file}",
            get(move |Path(file): Path<String>| serve(dir.clone(), file)),
        )
}

/// The asset `name` (embedded, or read from `dir` when set); 404 for any other name.
async fn serve(dir: Option<PathBuf>, name: String) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let body = match dir {
        // `a.name` is one of the fixed names above, never a path from the request.
        Some(d) => match tokio::fs::read(d.join(a.name)).await {
            Ok(b) => axum::body::Body::from(b),
            Err(e) => {
                return (StatusCode::NOT_FOUND, format!("{}: {e}", a.name)).into_response();
            }
        },
        None => axum::body::Body::from(a.body),
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_pages_import_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for a in ASSETS {
            for part in a.body.split(['"', '\'']) {
                if let Some(name) = part.strip_prefix("./")
                    && (name.ends_with(".js") || name.ends_with(".css"))
                {
                    assert!(served.contains(&name), "{} imports {name}", a.name);
                }
            }
        }
    }

    #[tokio::test]
    async fn unknown_names_are_not_found() {
        let r = serve(None, "../Cargo.toml".into()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = serve(None, "app.js".into()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], JS);
    }
}
