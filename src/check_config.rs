//! `--check-config` of the server roles: parse flags, config file and environment, validate,
//! print the effective configuration and exit 0, or fail (exit 1) naming what is wrong.
//!
//! Nothing is bound, opened or written: key and certificate files are loaded (that is part of
//! validating them), stores and ports are not. The Helm chart's tests run every rendered `strata`
//! container with this flag, so the chart and the binary cannot drift apart silently.

use anyhow::Context;
use serde::Serialize;
use strata_broker::config::BrokerConfig;

use crate::broker::{BrokerArgs, Settings};
use crate::standalone::{StandaloneArgs, StandaloneConfig};

/// The effective configuration of `strata broker`, in the config file's own format.
#[derive(Serialize)]
struct EffectiveBroker<'a> {
    metadata: &'a str,
    cluster: &'a str,
    ensemble_size: usize,
    write_quorum: usize,
    ack_quorum: usize,
    session_ttl_secs: u64,
    autorecovery_grace_secs: u64,
    autorecovery_objstore_grace_secs: u64,
    broker: &'a BrokerConfig,
    security: &'a strata_auth::SecurityConfig,
}

/// The effective configuration of `strata standalone`, in the config file's own format.
#[derive(Serialize)]
struct EffectiveStandalone<'a> {
    data_dir: &'a std::path::Path,
    broker: &'a BrokerConfig,
    security: &'a strata_auth::SecurityConfig,
}

/// Checks `strata broker`'s settings; returns them as TOML.
pub fn broker(args: &BrokerArgs) -> anyhow::Result<String> {
    let s = Settings::load(args)?;
    strata_meta::StoreConfig::from_url(&s.metadata)
        .with_context(|| format!("metadata {}", s.metadata))?;
    check_ports(&s.broker)?;
    strata_auth::Security::from_config(&s.security).context("authentication/TLS settings")?;
    let security = redacted(&s.security);
    to_toml(&EffectiveBroker {
        metadata: &s.metadata,
        cluster: &s.cluster,
        ensemble_size: s.quorum.ensemble,
        write_quorum: s.quorum.write,
        ack_quorum: s.quorum.ack,
        session_ttl_secs: s.session_ttl.as_secs(),
        autorecovery_grace_secs: s.autorecovery_grace.as_secs(),
        autorecovery_objstore_grace_secs: s.autorecovery_objstore_grace.as_secs(),
        broker: &s.broker,
        security: &security,
    })
}

/// Checks `strata standalone`'s settings; returns them as TOML.
pub fn standalone(args: &StandaloneArgs) -> anyhow::Result<String> {
    let (data_dir, cfg) = StandaloneConfig::load_all(args)?;
    let (broker, security) = (cfg.broker, cfg.security);
    check_ports(&broker)?;
    strata_auth::Security::from_config(&security).context("authentication/TLS settings")?;
    to_toml(&EffectiveStandalone {
        data_dir: &data_dir,
        broker: &broker,
        security: &redacted(&security),
    })
}

/// Listeners must not share a port (0 = any free port, always allowed).
fn check_ports(b: &BrokerConfig) -> anyhow::Result<()> {
    let named = [
        ("broker_port", Some(b.broker_port)),
        ("http_port", Some(b.http_port)),
        ("broker_port_tls", b.broker_port_tls),
        ("http_port_tls", b.http_port_tls),
    ];
    let set: Vec<(&str, u16)> = named
        .iter()
        .filter_map(|(n, p)| p.filter(|p| *p != 0).map(|p| (*n, p)))
        .collect();
    for (i, (n1, p1)) in set.iter().enumerate() {
        if let Some((n2, _)) = set[i + 1..].iter().find(|(_, p2)| p2 == p1) {
            anyhow::bail!("{n1} and {n2} are both {p1}");
        }
    }
    b.bind_address
        .parse::<std::net::IpAddr>()
        .with_context(|| format!("bind_address {:?} is not an IP address", b.bind_address))?;
    if b.advertised_address.trim().is_empty() {
        anyhow::bail!("advertised_address is empty");
    }
    Ok(())
}

/// Key sources may hold the key itself (`data:;base64,...` or bare base64): print only paths.
fn redacted(c: &strata_auth::SecurityConfig) -> strata_auth::SecurityConfig {
    let hide = |v: &Option<String>| {
        v.as_ref().map(|s| {
            let is_path = s.starts_with("file:")
                || s.starts_with('/')
                || s.starts_with("./")
                || std::path::Path::new(s).exists();
            if is_path {
                s.clone()
            } else {
                "[redacted inline key]".to_owned()
            }
        })
    };
    let mut out = c.clone();
    out.auth_token_secret_key_file = hide(&c.auth_token_secret_key_file);
    out.auth_token_public_key_file = hide(&c.auth_token_public_key_file);
    out
}

fn to_toml<T: Serialize>(v: &T) -> anyhow::Result<String> {
    toml::to_string(v).context("print the effective configuration")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_prints_a_config_file_that_loads_back() {
        let args = BrokerArgs {
            metadata: Some("etcd://127.0.0.1:1".into()),
            cluster: Some("c1".into()),
            ..Default::default()
        };
        let text = broker(&args).unwrap();
        let back: crate::broker::BrokerFileConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.cluster.as_deref(), Some("c1"));
        assert_eq!(back.ensemble_size, 3);
    }

    #[test]
    fn broker_names_what_is_wrong() {
        let missing = broker(&BrokerArgs::default()).unwrap_err();
        assert!(format!("{missing:#}").contains("--metadata"), "{missing:#}");
        let same_port = BrokerArgs {
            metadata: Some("etcd://127.0.0.1:1".into()),
            cluster: Some("c1".into()),
            broker_port: Some(7000),
            http_port: Some(7000),
            ..Default::default()
        };
        let e = broker(&same_port).unwrap_err();
        assert!(
            format!("{e:#}").contains("broker_port and http_port"),
            "{e:#}"
        );
        let bad_key = BrokerArgs {
            metadata: Some("etcd://127.0.0.1:1".into()),
            cluster: Some("c1".into()),
            security: strata_auth::SecurityArgs {
                auth_token_secret_key_file: Some("/nonexistent/key".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = broker(&bad_key).unwrap_err();
        assert!(format!("{e:#}").contains("token key"), "{e:#}");
    }

    #[test]
    fn inline_keys_are_not_printed() {
        let args = StandaloneArgs {
            security: strata_auth::SecurityArgs {
                auth_token_secret_key_file: Some(
                    "data:;base64,c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=".into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        let text = standalone(&args).unwrap();
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(text.contains("[redacted inline key]"), "{text}");
    }

    #[test]
    fn standalone_prints_a_config_file_that_loads_back() {
        let text = standalone(&StandaloneArgs::default()).unwrap();
        let back: StandaloneConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.broker.broker_port, 6650);
    }
}
