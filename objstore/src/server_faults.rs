//! Fault injection on the server side of the in-process S3 server ([`crate::test_server`]): the
//! same [`Faults`] rules as the client-side layer, applied to the HTTP requests a real client
//! (another process, e.g. a `strata` broker) sends. Each request is classified into an [`Op`]
//! and a key (the path after the bucket) and draws its faults:
//!
//! - [`Fault::Latency`]: the answer is delayed;
//! - [`Fault::Status`]: the server answers that status with an S3 error body, doing nothing;
//! - [`Fault::Unreachable`]: the connection is dropped without an answer, doing nothing;
//! - [`Fault::Truncate`]: a write is cut (connection dropped, nothing stored); a read sends its
//!   headers (full `Content-Length`) and half the body, then the connection breaks.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use s3s::service::S3Service;
use s3s::{Body, HttpError};

use crate::faults::{Fault, Faults, Op};

/// The s3s service behind the fault rules.
#[derive(Clone)]
pub(crate) struct FaultyService {
    pub(crate) inner: S3Service,
    pub(crate) faults: Arc<Faults>,
}

/// The operation and object key of a path-style S3 request.
fn classify<B>(req: &Request<B>) -> (Op, String) {
    let path = req.uri().path().trim_start_matches('/');
    let key = path.split_once('/').map(|(_, k)| k).unwrap_or_default();
    let query = req.uri().query().unwrap_or_default();
    let op = match *req.method() {
        Method::POST if query.contains("delete") => Op::Delete,
        Method::PUT | Method::POST => Op::Put,
        Method::DELETE => Op::Delete,
        Method::HEAD => Op::Head,
        Method::GET if key.is_empty() || query.contains("list-type") => Op::List,
        Method::GET if req.headers().contains_key(header::RANGE) => Op::GetRange,
        _ => Op::Get,
    };
    (op, key.to_string())
}

fn dropped(what: &str) -> HttpError {
    HttpError::new(Box::new(std::io::Error::other(format!("injected: {what}"))))
}

fn status(code: u16) -> Response<Body> {
    let s = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let name = if code == 503 {
        "SlowDown"
    } else {
        "InternalError"
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{name}</Code>\
         <Message>injected fault</Message></Error>"
    );
    let mut r = Response::new(Body::from(xml));
    *r.status_mut() = s;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    r
}

/// Half of `resp`'s body, then a broken stream (headers unchanged).
async fn cut(resp: Response<Body>) -> Result<Response<Body>, HttpError> {
    let (parts, body) = resp.into_parts();
    let full = body.collect().await.map_err(HttpError::new)?.to_bytes();
    let half: Bytes = full.slice(..full.len() / 2);
    let frames = futures::stream::iter([
        Ok(Frame::data(half)),
        Err(std::io::Error::other("injected: body cut short")),
    ]);
    Ok(Response::from_parts(
        parts,
        Body::http_body_unsync(StreamBody::new(frames)),
    ))
}

impl hyper::service::Service<Request<Incoming>> for FaultyService {
    type Response = Response<Body>;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<Response<Body>, HttpError>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let (op, key) = classify(&req);
        let drawn = self.faults.draw(op, &key);
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut truncate = false;
            for f in drawn {
                match f {
                    Fault::Latency(d) => tokio::time::sleep(d).await,
                    Fault::Status(code) => return Ok(status(code)),
                    Fault::Unreachable => return Err(dropped("connection dropped")),
                    Fault::Truncate => truncate = true,
                }
            }
            if truncate && op == Op::Put {
                return Err(dropped("upload cut short"));
            }
            let resp = hyper::service::Service::call(&inner, req).await?;
            if truncate && resp.status().is_success() {
                return cut(resp).await;
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, uri: &str, range: bool) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        if range {
            b = b.header(header::RANGE, "bytes=0-9");
        }
        b.body(()).unwrap()
    }

    #[test]
    fn requests_are_classified_by_operation_and_key() {
        let c = |m, u, r| classify(&req(m, u, r));
        assert_eq!(
            c(Method::PUT, "/bkt/p/data-0", false),
            (Op::Put, "p/data-0".into())
        );
        assert_eq!(c(Method::GET, "/bkt/p/index", false).0, Op::Get);
        assert_eq!(c(Method::GET, "/bkt/p/data-0", true).0, Op::GetRange);
        assert_eq!(
            c(Method::GET, "/bkt?list-type=2&prefix=p", false).0,
            Op::List
        );
        assert_eq!(c(Method::HEAD, "/bkt/p/index", false).0, Op::Head);
        assert_eq!(c(Method::DELETE, "/bkt/p/index", false).0, Op::Delete);
        assert_eq!(c(Method::POST, "/bkt?delete", false).0, Op::Delete);
    }
}
