//! How to reach an etcd cluster ([`EtcdOptions`]) and what one endpoint reported
//! ([`EndpointStatus`]).

use std::time::Duration;

/// Connection settings of an [`super::EtcdStore`].
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs, e.g. `http://127.0.0.1:2379`. Several: members of one cluster.
    pub endpoints: Vec<String>,
    /// Upper bound of one store call, failover and retries included.
    pub request_timeout: Duration,
    /// Upper bound of one attempt on one endpoint.
    pub attempt_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

impl EtcdOptions {
    /// Defaults for these endpoints: 10 s per call, 3 s per attempt, 1 s to connect.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            request_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// What one etcd endpoint reported (see [`super::EtcdStore::endpoint_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Client URL.
    pub endpoint: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Whether it is the Raft leader.
    pub is_leader: bool,
    /// etcd server version.
    pub version: String,
    /// Database size in bytes.
    pub db_size: u64,
    /// Why it did not answer.
    pub error: Option<String>,
}
