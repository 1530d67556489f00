//! The admin REST API from tests: one HTTP/1.1 request per connection, following a broker's
//! 307 to the topic's owner as Pulsar's admin client does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 request with an optional bearer token; returns (status, headers, body).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String, String) {
    let body_in = body;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    // Follow a broker's 307 to the topic's owner (cluster mode), as Pulsar's admin client does.
    if status == 307
        && let Some(loc) = head.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_owned())
        })
        && let Some(rest) = loc.strip_prefix("http://")
        && let Some((authority, rest_path)) = rest.split_once('/')
        && let Some(next_port) = authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
    {
        return request(next_port, method, &format!("/{rest_path}"), body_in, token);
    }
    (status, head.to_owned(), body.to_owned())
}

/// (status, body) without a token.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let (st, _, b) = request(port, method, path, body, None);
    (st, b)
}

/// Creates `persistent://public/default/<topic>` with `partitions` partitions.
pub fn create_partitioned(http_port: u16, topic: &str, partitions: u32) {
    let path = format!("/admin/v2/persistent/public/default/{topic}/partitions");
    let (st, body) = http(http_port, "PUT", &path, &partitions.to_string());
    assert!(
        (200..300).contains(&st),
        "create partitioned topic: {st} {body}"
    );
}
