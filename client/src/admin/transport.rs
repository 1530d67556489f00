//! The HTTP/1.1 transport of the admin client: one connection per request (a CLI makes few),
//! plain TCP or rustls with a CA file, bearer token, bounded by a timeout.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::{AdminError, AdminResult};

/// The parsed `--admin-url`: scheme, host, port and an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `true` for `https://`.
    pub tls: bool,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (default 80 / 443).
    pub port: u16,
    /// Path prefix without a trailing `/` (usually empty).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses `http://host[:port][/prefix]` or `https://...`.
    pub fn parse(url: &str) -> AdminResult<BaseUrl> {
        let bad = || AdminError::InvalidUrl(url.to_owned());
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad());
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => default_port,
                None => return Err(bad()),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(BaseUrl {
            tls,
            host,
            port,
            prefix: prefix.to_owned(),
        })
    }

    /// The `Host` header value.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The full URL of `path` (for messages).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}{path}", self.authority(), self.prefix)
    }
}

/// An answer: status, headers, body.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// Connection settings shared by every request.
#[derive(Clone)]
pub struct Transport {
    base: BaseUrl,
    token: Option<String>,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Redirects followed by one request.
const MAX_REDIRECTS: usize = 4;

/// Splits an absolute `Location` into its base (scheme, host, port) and path-and-query.
fn split_location(loc: &str) -> AdminResult<(BaseUrl, String)> {
    let bad = || AdminError::InvalidUrl(loc.to_owned());
    let after_scheme = loc.split_once("://").map(|(_, r)| r).ok_or_else(bad)?;
    let cut = after_scheme.find('/').unwrap_or(after_scheme.len());
    let origin_len = loc.len() - after_scheme.len() + cut;
    let mut base = BaseUrl::parse(&loc[..origin_len])?;
    base.prefix = String::new();
    let path = match &loc[origin_len..] {
        "" => "/".to_owned(),
        p => p.to_owned(),
    };
    Ok((base, path))
}

/// Largest response body we accept (peeked messages and stats stay far below).
const MAX_BODY: usize = 64 << 20;

impl Transport {
    /// A transport for `base`; `tls_ca_file` (PEM) is the trust anchor for `https://` URLs.
    pub fn new(
        base: BaseUrl,
        token: Option<String>,
        tls_ca_file: Option<&Path>,
        timeout: Duration,
    ) -> AdminResult<Transport> {
        let tls = if base.tls {
            let ca = tls_ca_file.ok_or_else(|| {
                AdminError::Tls("an https:// admin url needs --tls-ca-file".to_owned())
            })?;
            Some(tls_connector(ca)?)
        } else {
            None
        };
        Ok(Transport {
            base,
            token,
            tls,
            timeout,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    /// Sends one request; `body` is sent as JSON when given. Any status is returned (no error
    /// mapping here).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> AdminResult<RawResponse> {
        let url = self.base.url(path);
        let run = async {
            // Brokers answer 307 for a topic another broker owns (as Pulsar does): follow it,
            // to the same scheme only, a few hops at most.
            let mut base = self.base.clone();
            let mut path = path.to_owned();
            for _ in 0..MAX_REDIRECTS {
                let url = base.url(&path);
                let r = self
                    .send_inner(&base, method.clone(), &path, body.clone(), &url)
                    .await?;
                if !matches!(r.status.as_u16(), 307 | 308) {
                    return Ok(r);
                }
                let Some(loc) = r
                    .headers
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                else {
                    return Ok(r);
                };
                let (next, next_path) = split_location(loc)?;
                if next.tls != self.base.tls {
                    return Err(AdminError::Transport {
                        url,
                        message: format!("refusing a redirect to another scheme: {loc}"),
                    });
                }
                base = next;
                path = next_path;
            }
            Err(AdminError::Transport {
                url: url.clone(),
                message: format!("more than {MAX_REDIRECTS} redirects"),
            })
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| AdminError::Timeout(self.timeout, url.clone()))?
    }

    async fn send_inner(
        &self,
        base: &BaseUrl,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        url: &str,
    ) -> AdminResult<RawResponse> {
        let transport = |e: &dyn std::fmt::Display| AdminError::Transport {
            url: url.to_owned(),
            message: e.to_string(),
        };
        let tcp = TcpStream::connect((base.host.as_str(), base.port))
            .await
            .map_err(|e| transport(&e))?;
        let _ = tcp.set_nodelay(true);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", base.prefix))
            .header(header::HOST, base.authority())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "strata-admin");
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                b
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(body))
            .map_err(|e| AdminError::InvalidArgument(format!("bad request for {url}: {e}")))?;
        let (resp, _conn) = match &self.tls {
            None => exchange(TokioIo::new(tcp), req).await,
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(base.host.clone())
                    .map_err(|e| AdminError::Tls(format!("bad server name: {e}")))?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| transport(&format_args!("tls handshake: {e}")))?;
                exchange(TokioIo::new(stream), req).await
            }
        }
        .map_err(|e| transport(&e))?;
        let (parts, body) = resp.into_parts();
        let limited = http_body_util::Limited::new(body, MAX_BODY);
        let body = limited
            .collect()
            .await
            .map_err(|e| transport(&format_args!("reading body: {e}")))?
            .to_bytes();
        Ok(RawResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// Sends `req` on a fresh HTTP/1.1 connection over `io`. The returned guard owns the
/// connection task: the caller keeps it until the body is read; dropping it (also when the
/// request future is cancelled by the timeout) aborts the task and closes the socket.
async fn exchange<IO>(
    io: TokioIo<IO>,
    req: Request<Full<Bytes>>,
) -> Result<(http::Response<hyper::body::Incoming>, AbortOnDrop), hyper::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let guard = AbortOnDrop(tokio::spawn(conn));
    let resp = sender.send_request(req).await?;
    Ok((resp, guard))
}

/// Aborts the connection task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn tls_connector(ca_file: &Path) -> AdminResult<tokio_rustls::TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| AdminError::Tls(format!("read {}: {e}", ca_file.display())))?;
    for cert in certs {
        let cert =
            cert.map_err(|e| AdminError::Tls(format!("parse {}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| AdminError::Tls(format!("bad CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(AdminError::Tls(format!(
            "no certificate in {}",
            ca_file.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AdminError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_into_base_and_path() {
        let (b, p) =
            split_location("http://127.0.0.1:8081/admin/v2/persistent/t/ns/x/stats?a=1").unwrap();
        assert_eq!((b.host.as_str(), b.port, b.tls), ("127.0.0.1", 8081, false));
        assert_eq!(p, "/admin/v2/persistent/t/ns/x/stats?a=1");
        let (b, p) = split_location("https://[::1]:8443").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.tls, p.as_str()),
            ("::1", 8443, true, "/")
        );
        assert!(split_location("/relative/path").is_err());
        assert!(split_location("ftp//x").is_err());
    }
}
