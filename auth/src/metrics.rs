//! Prometheus metrics of authentication and authorization, named as Pulsar's where one exists.
//! Process-wide; [`register`] adds them to the registry served on `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::{AuthError, AuthzError};

/// Labels of an authentication outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AuthnLabels {
    /// Pulsar's provider class name (`AuthenticationProviderToken`).
    pub provider_name: &'static str,
    /// `token`.
    pub auth_method: &'static str,
}

/// Labels of an authentication failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AuthnFailureLabels {
    /// Pulsar's provider class name.
    pub provider_name: &'static str,
    /// `token`.
    pub auth_method: &'static str,
    /// The [`AuthError`] kind.
    pub reason: &'static str,
}

/// Labels of an authorization refusal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AuthzLabels {
    /// `unauthenticated` or `forbidden`.
    pub reason: &'static str,
}

/// The security metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// `pulsar_authentication_success_total`.
    pub authn_success: Family<AuthnLabels, Counter>,
    /// `pulsar_authentication_failures_total`.
    pub authn_failures: Family<AuthnFailureLabels, Counter>,
    /// `pulsar_expired_token_total`: tokens refused or connections found expired.
    pub expired_tokens: Counter,
    /// `pulsar_expiring_token_minutes`: remaining lifetime of accepted tokens.
    pub expiring_token_minutes: Histogram,
    /// `strata_authorization_denied_total`.
    pub authz_denied: Family<AuthzLabels, Counter>,
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        authn_success: Family::default(),
        authn_failures: Family::default(),
        expired_tokens: Counter::default(),
        expiring_token_minutes: Histogram::new([5.0, 10.0, 60.0, 240.0, 1440.0, 10080.0, 43200.0]),
        authz_denied: Family::default(),
    })
}

const TOKEN: AuthnLabels = AuthnLabels {
    provider_name: "AuthenticationProviderToken",
    auth_method: "token",
};

/// Records an accepted token with `remaining` lifetime (`None`: no expiry).
pub fn record_success(remaining: Option<Duration>) {
    let m = global();
    m.authn_success.get_or_create(&TOKEN).inc();
    if let Some(r) = remaining {
        m.expiring_token_minutes.observe(r.as_secs_f64() / 60.0);
    }
}

/// Records a refused token.
pub fn record_failure(e: &AuthError) {
    let m = global();
    if e.is_expired() {
        m.expired_tokens.inc();
    }
    m.authn_failures
        .get_or_create(&AuthnFailureLabels {
            provider_name: TOKEN.provider_name,
            auth_method: TOKEN.auth_method,
            reason: e.kind(),
        })
        .inc();
}

/// Records a live connection whose credentials expired.
pub fn record_connection_expired() {
    global().expired_tokens.inc();
}

/// Records an authorization refusal.
pub fn record_denied(e: &AuthzError) {
    let reason = match e {
        AuthzError::Unauthenticated => "unauthenticated",
        AuthzError::Forbidden { .. } => "forbidden",
    };
    global()
        .authz_denied
        .get_or_create(&AuthzLabels { reason })
        .inc();
}

/// Registers the metrics in `registry`.
pub fn register(registry: &mut Registry) {
    let m = global();
    registry.register(
        "pulsar_authentication_success",
        "Successful authentications",
        m.authn_success.clone(),
    );
    registry.register(
        "pulsar_authentication_failures",
        "Failed authentications by reason",
        m.authn_failures.clone(),
    );
    registry.register(
        "pulsar_expired_token",
        "Expired tokens refused or live connections found expired",
        m.expired_tokens.clone(),
    );
    registry.register(
        "pulsar_expiring_token_minutes",
        "Remaining lifetime of accepted tokens in minutes",
        m.expiring_token_minutes.clone(),
    );
    registry.register(
        "strata_authorization_denied",
        "Operations refused by authorization",
        m.authz_denied.clone(),
    );
}
