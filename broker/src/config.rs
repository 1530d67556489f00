//! Broker configuration: a serde struct with defaults; unknown keys are an error.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::managed_ledger::ManagedLedgerConfig;
use crate::subscription::SubscriptionConfig;

/// Settings of one broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address the Pulsar and HTTP listeners bind to.
    pub bind_address: String,
    /// Host name or address clients are told to connect to (LOOKUP answers).
    pub advertised_address: String,
    /// Pulsar protocol port (0: any free port).
    pub broker_port: u16,
    /// HTTP port: lookup, admin, /metrics (0: any free port).
    pub http_port: u16,
    /// Pulsar protocol TLS port (`pulsar+ssl://`; needs the TLS certificate settings).
    pub broker_port_tls: Option<u16>,
    /// HTTPS port (needs the TLS certificate settings).
    pub http_port_tls: Option<u16>,
    /// Largest message accepted and advertised in CONNECTED.
    pub max_message_size: usize,
    /// Entry cache size in bytes (`[broker] cache_size_bytes`; 16 MiB by default).
    pub cache_size_bytes: u64,
    /// Ping idle connections this often; close them if the next tick finds no answer.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// Roll over a ledger after this many entries.
    pub max_entries_per_ledger: u64,
    /// Roll over a ledger after this many bytes.
    pub max_ledger_size_bytes: u64,
    /// Roll over a ledger older than this.
    #[serde(with = "humantime_serde")]
    pub max_ledger_age: Duration,
    /// Keep consumed ledgers at least this long.
    #[serde(with = "humantime_serde")]
    pub retention_time: Duration,
    /// How often consumed ledgers are trimmed.
    #[serde(with = "humantime_serde")]
    pub trim_interval: Duration,
    /// Minimum time between two writes of one cursor for acks without a receipt (Pulsar's
    /// `managedLedgerDefaultMarkDeleteRateLimit`, one per second); an ack receipt, a consumer
    /// close or an unload writes sooner. A crash redelivers at most this much of acked entries.
    #[serde(with = "humantime_serde")]
    pub cursor_flush_interval: Duration,
    /// Unacknowledged SENDs per connection before the broker stops reading from it.
    pub max_pending_sends: usize,
    /// Allow producers/consumers to create topics that do not exist.
    pub allow_auto_topic_creation: bool,
    /// Name of the cluster this broker belongs to (`/admin/v2/clusters`).
    pub cluster_name: String,
    /// How often live topics re-read their namespace policies (TTL, backlog quota, limits).
    #[serde(with = "humantime_serde")]
    pub policy_refresh_interval: Duration,
    /// How often a live connection's token expiry is checked at most (AUTH_CHALLENGE, close).
    #[serde(with = "humantime_serde")]
    pub auth_check_interval: Duration,
    /// Pulsar's `advertisedListeners`: `name:pulsar://host:port,name:pulsar+ssl://host:port,...`
    /// (see [`crate::listeners`]).
    pub advertised_listeners: Option<String>,
    /// Pulsar's `internalListenerName`: the listener whose URLs are this broker's own (default:
    /// the first).
    pub internal_listener_name: Option<String>,
    /// `/metrics` carries per-topic (and per-subscription) series instead of per-namespace
    /// ones (Pulsar's `exposeTopicLevelMetricsInPrometheus`; off: the number of series does
    /// not grow with the number of topics).
    pub expose_topic_level_metrics: bool,
    /// Schema compatibility strategy when neither the topic nor its namespace sets one
    /// (Pulsar's `schemaCompatibilityStrategy`, default `FULL`).
    pub schema_compatibility_strategy: String,
    /// Refuse producers without a schema on topics that have one, unless the namespace says
    /// otherwise (Pulsar's `isSchemaValidationEnforced`).
    pub schema_validation_enforced: bool,
    /// Memory budget of the compactor's key map per pass (bytes); more keys take more passes.
    pub compaction_key_map_bytes: usize,
    /// Key_Shared auto-split over a consistent-hash ring (Pulsar's
    /// `subscriptionKeySharedUseConsistentHashing`, default true); false: the hash space is split
    /// in halves by join order, the same on every topic for the same join order.
    pub key_shared_use_consistent_hashing: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let ml = ManagedLedgerConfig::default();
        Self {
            bind_address: "127.0.0.1".into(),
            advertised_address: "127.0.0.1".into(),
            broker_port: 6650,
            http_port: 8080,
            broker_port_tls: None,
            http_port_tls: None,
            max_message_size: strata_proto::frame::DEFAULT_MAX_MESSAGE_SIZE,
            // Small by default: tailing readers are served within milliseconds of the write,
            // and a small cache keeps the standalone under ~160 MB at full load.
            cache_size_bytes: 16 << 20,
            keepalive_interval: Duration::from_secs(30),
            max_entries_per_ledger: ml.max_entries_per_ledger,
            max_ledger_size_bytes: ml.max_size_per_ledger,
            max_ledger_age: ml.max_ledger_age,
            retention_time: ml.retention_time,
            trim_interval: Duration::from_secs(60),
            cursor_flush_interval: SubscriptionConfig::default().cursor_flush_interval,
            max_pending_sends: 1000,
            allow_auto_topic_creation: true,
            cluster_name: "standalone".into(),
            policy_refresh_interval: Duration::from_secs(1),
            auth_check_interval: strata_auth::token::DEFAULT_REFRESH_CHECK,
            advertised_listeners: None,
            internal_listener_name: None,
            expose_topic_level_metrics: false,
            schema_compatibility_strategy: "FULL".into(),
            schema_validation_enforced: false,
            compaction_key_map_bytes: 64 << 20,
            key_shared_use_consistent_hashing: true,
        }
    }
}

impl BrokerConfig {
    /// Managed-ledger settings derived from this config.
    pub fn managed_ledger(&self) -> ManagedLedgerConfig {
        ManagedLedgerConfig {
            max_entries_per_ledger: self.max_entries_per_ledger,
            max_size_per_ledger: self.max_ledger_size_bytes,
            max_ledger_age: self.max_ledger_age,
            retention_time: self.retention_time,
            ..ManagedLedgerConfig::default()
        }
    }

    /// Subscription settings derived from this config.
    pub fn subscription(&self) -> SubscriptionConfig {
        SubscriptionConfig {
            cursor_flush_interval: self.cursor_flush_interval,
            key_shared_consistent_hashing: self.key_shared_use_consistent_hashing,
            ..Default::default()
        }
    }

    /// The advertised listeners (empty without them); an error names what is wrong.
    pub fn listeners(
        &self,
    ) -> Result<crate::listeners::AdvertisedListeners, crate::listeners::ListenerError> {
        crate::listeners::AdvertisedListeners::parse(
            self.advertised_listeners.as_deref().unwrap_or(""),
            self.internal_listener_name.as_deref(),
        )
    }

    /// `pulsar://advertised:port`.
    pub fn service_url(&self, port: u16) -> String {
        format!("pulsar://{}:{port}", self.advertised_address)
    }
}
