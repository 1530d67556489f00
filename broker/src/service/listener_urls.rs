//! The URLs of an advertised listener of a topic's owner (or of the broker that assigns it),
//! for LOOKUP over the binary protocol and `/lookup/v2` over HTTP.

use strata_meta::model::ListenerUrls;

use super::{BrokerService, Owner};
use crate::error::{BrokerError, Result};

impl BrokerService {
    /// Listener `name` of the broker `owner` designates: this broker's own, or the one another
    /// broker registered (found by its `pulsar://` URL). `None`: that broker has no such listener.
    pub async fn listener_urls(&self, owner: &Owner, name: &str) -> Result<Option<ListenerUrls>> {
        let target = match owner {
            Owner::Local => return Ok(self.listeners().get(name).cloned()),
            Owner::Remote { broker_url, .. } | Owner::Leader { broker_url, .. } => broker_url,
        };
        let brokers = self.metadata().brokers().await.map_err(BrokerError::from)?;
        Ok(brokers
            .into_iter()
            .find(|b| b.pulsar_url == *target)
            .and_then(|b| b.listeners.get(name).cloned()))
    }
}
