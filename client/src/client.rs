//! The client: a pool of connections keyed by broker URL, topic lookup with redirects, and
//! partitioned-topic metadata. Producers and consumers are made by [`PulsarClient::producer`]
//! (in `producer.rs`) and [`PulsarClient::subscribe`] (in `consumer.rs`), which build on this
//! file, never the other way round.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strata_proto::commands;
use strata_proto::pulsar::command_lookup_topic_response::LookupType;

use crate::connection::{ConnectOptions, Connection};
use crate::error::{ClientError, Result};
use crate::topic_name::{full_topic_name, partition_name};

/// Redirects followed before a lookup gives up (as the C++ client).
const MAX_LOOKUP_REDIRECTS: usize = 20;

/// A Pulsar client. Clone freely (shared pool).
#[derive(Clone)]
pub struct PulsarClient {
    inner: Arc<Inner>,
}

struct Inner {
    service_url: String,
    op_timeout: Duration,
    options: ConnectOptions,
    /// Connections by broker URL and slot (`0..connections_per_broker`).
    pool: tokio::sync::Mutex<HashMap<(String, usize), Arc<Connection>>>,
    /// The slot the next producer or consumer gets (taken in turn).
    next_slot: AtomicUsize,
}

impl PulsarClient {
    /// Connects to `service_url` (`pulsar://host:port`) to check that a broker answers.
    pub async fn connect(service_url: &str) -> Result<Self> {
        Self::connect_with_timeout(service_url, Duration::from_secs(30)).await
    }

    /// Like [`PulsarClient::connect`] with an operation timeout for every request.
    pub async fn connect_with_timeout(service_url: &str, op_timeout: Duration) -> Result<Self> {
        Self::connect_with_options(service_url, op_timeout, ConnectOptions::default()).await
    }

    /// Connects with authentication and TLS options (`pulsar+ssl://` URLs need
    /// [`ConnectOptions::tls_ca_file`]).
    pub async fn connect_with_options(
        service_url: &str,
        op_timeout: Duration,
        options: ConnectOptions,
    ) -> Result<Self> {
        let client = PulsarClient {
            inner: Arc::new(Inner {
                service_url: service_url.trim_end_matches('/').to_owned(),
                op_timeout,
                options,
                pool: tokio::sync::Mutex::new(HashMap::new()),
                next_slot: AtomicUsize::new(0),
            }),
        };
        client.connection(service_url).await?;
        Ok(client)
    }

    /// The service URL.
    pub fn service_url(&self) -> &str {
        &self.inner.service_url
    }

    /// The pooled connection to `url` that lookups and other requests use, reconnecting if the
    /// previous one died.
    pub async fn connection(&self, url: &str) -> Result<Arc<Connection>> {
        self.pooled(url, 0).await
    }

    /// A pooled connection to `url` for a new producer or consumer: with
    /// [`ConnectOptions::connections_per_broker`] above 1, each call takes the next of them.
    async fn connection_for_client(&self, url: &str) -> Result<Arc<Connection>> {
        let n = self.inner.options.connections_per_broker.max(1);
        let slot = self.inner.next_slot.fetch_add(1, Ordering::Relaxed) % n;
        self.pooled(url, slot).await
    }

    /// The connection to `url` in `slot`, reconnecting if the previous one died.
    async fn pooled(&self, url: &str, slot: usize) -> Result<Arc<Connection>> {
        let key = (url.trim_end_matches('/').to_owned(), slot);
        let mut pool = self.inner.pool.lock().await;
        if let Some(c) = pool.get(&key)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let c =
            Connection::connect_with(&key.0, self.inner.op_timeout, &self.inner.options).await?;
        pool.insert(key, c.clone());
        Ok(c)
    }

    /// Number of partitions of `topic` (0 when it is not partitioned).
    pub async fn partitions(&self, topic: &str) -> Result<u32> {
        let topic = full_topic_name(topic);
        let conn = self.connection(&self.inner.service_url).await?;
        let rid = conn.next_id();
        let answer = conn
            .request(rid, commands::partitioned_metadata(rid, &topic))
            .await?;
        let r = answer.partition_metadata_response.ok_or_else(|| {
            ClientError::Protocol("expected PARTITIONED_METADATA_RESPONSE".into())
        })?;
        if let Some(e) = r.error {
            return Err(ClientError::server(e, r.message.unwrap_or_default()));
        }
        Ok(r.partitions.unwrap_or(0))
    }

    /// Finds the broker that owns `topic` (following redirects) and returns a connection to it
    /// for a new producer or consumer.
    pub async fn lookup(&self, topic: &str) -> Result<Arc<Connection>> {
        let topic = full_topic_name(topic);
        let mut url = self.inner.service_url.clone();
        let mut authoritative = false;
        for _ in 0..MAX_LOOKUP_REDIRECTS {
            let conn = self.connection(&url).await?;
            let rid = conn.next_id();
            let answer = conn
                .request(rid, commands::lookup(rid, &topic, authoritative))
                .await?;
            let r = answer
                .lookup_topic_response
                .ok_or_else(|| ClientError::Protocol("expected LOOKUP_RESPONSE".into()))?;
            if let Some(e) = r.error {
                return Err(ClientError::server(e, r.message.unwrap_or_default()));
            }
            // Over TLS, follow the brokers' `pulsar+ssl://` URLs.
            let tls = self.inner.service_url.starts_with("pulsar+ssl://");
            let answered = if tls {
                r.broker_service_url_tls.clone().filter(|u| !u.is_empty())
            } else {
                r.broker_service_url.clone()
            };
            let target = answered.unwrap_or_else(|| url.clone());
            match LookupType::try_from(r.response.unwrap_or(LookupType::Failed as i32)) {
                Ok(LookupType::Connect) => {
                    let target = if r.proxy_through_service_url() {
                        self.inner.service_url.clone()
                    } else {
                        target
                    };
                    return self.connection_for_client(&target).await;
                }
                Ok(LookupType::Redirect) => {
                    authoritative = r.authoritative();
                    url = target;
                }
                _ => return Err(ClientError::Protocol(format!("lookup of {topic} failed"))),
            }
        }
        Err(ClientError::Protocol(format!(
            "lookup of {topic}: more than {MAX_LOOKUP_REDIRECTS} redirects"
        )))
    }

    /// The topics to attach to for `topic`: itself with partition -1 when it is not
    /// partitioned, else each partition with its index.
    pub(crate) async fn partition_topics(&self, topic: &str) -> Result<Vec<(String, i32)>> {
        let n = self.partitions(topic).await?;
        Ok(if n == 0 {
            vec![(topic.to_owned(), -1)]
        } else {
            (0..n)
                .map(|i| (partition_name(topic, i), i as i32))
                .collect()
        })
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        let conns: Vec<_> = self
            .inner
            .pool
            .lock()
            .await
            .drain()
            .map(|(_, c)| c)
            .collect();
        for c in conns {
            c.close().await;
        }
    }
}
