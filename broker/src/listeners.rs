//! Advertised listeners (Pulsar's `advertisedListeners` and `internalListenerName`): a broker
//! may be reached under several names (an internal network, an external load balancer, ...).
//! Each listener has a `pulsar://` URL, a `pulsar+ssl://` URL, or both. A LOOKUP carrying
//! `advertised_listener_name` is answered with that listener's URLs (the owner's, for a
//! redirect); a name the broker does not have gets `ServiceNotReady`, as in Pulsar. Without a
//! name, the internal listener's URLs (the first listener's when `internal_listener_name` is not
//! set) are this broker's URLs: for clients, other brokers and the registration.
//!
//! Syntax: `name:pulsar://host:port,name:pulsar+ssl://host:port,other:pulsar://host:port`.
//! The broker does not bind extra ports for them: the URLs name addresses that reach its
//! listening ports (through a proxy, NAT or another interface).

use std::collections::BTreeMap;

use strata_meta::model::ListenerUrls;

/// A broken `advertised_listeners` / `internal_listener_name` setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    /// An entry is not `name:scheme://host:port`.
    #[error(
        "advertised listener `{0}` is not name:pulsar://host:port or name:pulsar+ssl://host:port"
    )]
    Malformed(String),
    /// A listener has two URLs of one scheme.
    #[error("advertised listener `{0}` has more than one {1} URL")]
    Duplicate(String, &'static str),
    /// `internal_listener_name` names no listener.
    #[error("internal_listener_name `{0}` is not one of the advertised listeners")]
    UnknownInternal(String),
}

/// Parsed advertised listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvertisedListeners {
    listeners: BTreeMap<String, ListenerUrls>,
    internal: Option<String>,
}

impl AdvertisedListeners {
    /// Parses the setting; `internal` must name one of the listeners (default: the first).
    pub fn parse(spec: &str, internal: Option<&str>) -> Result<Self, ListenerError> {
        let mut listeners: BTreeMap<String, ListenerUrls> = BTreeMap::new();
        let mut first = None;
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, url) = entry
                .split_once(':')
                .filter(|(n, u)| !n.is_empty() && u.contains("://"))
                .ok_or_else(|| ListenerError::Malformed(entry.to_owned()))?;
            let (scheme, rest) = url
                .split_once("://")
                .ok_or_else(|| ListenerError::Malformed(entry.to_owned()))?;
            let host_port_ok = rest
                .trim_end_matches('/')
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !host_port_ok {
                return Err(ListenerError::Malformed(entry.to_owned()));
            }
            let urls = listeners.entry(name.to_owned()).or_default();
            let slot = match scheme {
                "pulsar" => &mut urls.pulsar_url,
                "pulsar+ssl" => &mut urls.pulsar_url_tls,
                _ => return Err(ListenerError::Malformed(entry.to_owned())),
            };
            if slot.is_some() {
                return Err(ListenerError::Duplicate(
                    name.to_owned(),
                    if scheme == "pulsar" {
                        "pulsar://"
                    } else {
                        "pulsar+ssl://"
                    },
                ));
            }
            *slot = Some(url.trim_end_matches('/').to_owned());
            first.get_or_insert_with(|| name.to_owned());
        }
        let internal = match internal.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) if listeners.contains_key(n) => Some(n.to_owned()),
            Some(n) => return Err(ListenerError::UnknownInternal(n.to_owned())),
            None => first,
        };
        Ok(Self {
            listeners,
            internal,
        })
    }

    /// Whether no listener is configured.
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// The URLs of listener `name`.
    pub fn get(&self, name: &str) -> Option<&ListenerUrls> {
        self.listeners.get(name)
    }

    /// The internal listener's URLs (this broker's default URLs), if listeners are configured.
    pub fn internal(&self) -> Option<&ListenerUrls> {
        self.internal.as_deref().and_then(|n| self.listeners.get(n))
    }

    /// Every listener, for the broker registration.
    pub fn all(&self) -> &BTreeMap<String, ListenerUrls> {
        &self.listeners
    }
}

/// The error text of a LOOKUP for a listener the broker does not have: Pulsar's exact wording,
/// which clients match on (the C++ client turns it into a connect error instead of retrying).
pub fn unknown_listener(name: &str) -> String {
    format!("the broker do not have {name} listener")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pulsar_syntax() {
        let l = AdvertisedListeners::parse(
            "internal:pulsar://10.0.0.1:6650, internal:pulsar+ssl://10.0.0.1:6651,external:pulsar://lb.example.com:16650/",
            Some("internal"),
        )
        .unwrap();
        let i = l.internal().unwrap();
        assert_eq!(i.pulsar_url.as_deref(), Some("pulsar://10.0.0.1:6650"));
        assert_eq!(
            i.pulsar_url_tls.as_deref(),
            Some("pulsar+ssl://10.0.0.1:6651")
        );
        let e = l.get("external").unwrap();
        assert_eq!(
            e.pulsar_url.as_deref(),
            Some("pulsar://lb.example.com:16650")
        );
        assert_eq!(e.pulsar_url_tls, None);
        assert!(l.get("other").is_none());
        // the first listener is the internal one by default
        let d = AdvertisedListeners::parse("b:pulsar://h:1,a:pulsar://h:2", None).unwrap();
        assert_eq!(
            d.internal().unwrap().pulsar_url.as_deref(),
            Some("pulsar://h:1")
        );
        assert!(AdvertisedListeners::parse("", None).unwrap().is_empty());
    }

    #[test]
    fn refuses_broken_settings() {
        for bad in [
            "pulsar://h:1",
            "a:http://h:1",
            "a:pulsar://h",
            "a:pulsar://:1",
            ":pulsar://h:1",
        ] {
            assert!(
                matches!(
                    AdvertisedListeners::parse(bad, None),
                    Err(ListenerError::Malformed(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            AdvertisedListeners::parse("a:pulsar://h:1,a:pulsar://h:2", None),
            Err(ListenerError::Duplicate(..))
        ));
        assert!(matches!(
            AdvertisedListeners::parse("a:pulsar://h:1", Some("b")),
            Err(ListenerError::UnknownInternal(_))
        ));
    }

    #[test]
    fn unknown_listener_text_is_pulsars() {
        // The C++ client looks for exactly this text to stop retrying the lookup.
        assert_eq!(
            unknown_listener("test"),
            "the broker do not have test listener"
        );
    }
}
