//! Who a producer or consumer is, as topic stats show it: the connection's address, when it
//! connected and the client library's version string.

use std::time::SystemTime;

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Peer address, `host:port`.
    pub address: String,
    /// When the connection was made (RFC 3339, milliseconds, as Pulsar prints it).
    pub connected_since: String,
    /// CONNECT's `client_version`.
    pub client_version: String,
}

impl ClientInfo {
    /// A client connected now.
    pub fn new(address: String, client_version: String) -> Self {
        ClientInfo {
            address,
            connected_since: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            client_version,
        }
    }
}
