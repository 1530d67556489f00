//! The offloader's periodic work over the broker's loaded topics: namespace thresholds and
//! deletion lags, and the janitor's sweep.

use std::collections::HashMap;

use strata_meta::model::Policies;
use tracing::warn;

use crate::service::BrokerService;

/// One pass of the offload policies over every loaded topic.
pub async fn enforce_all(s: &BrokerService) {
    let Some(o) = s.offloader() else { return };
    let mut cache: HashMap<(String, String), Option<Policies>> = HashMap::new();
    for t in s.loaded_topics().await {
        let key = (t.name().tenant.clone(), t.name().namespace.clone());
        if !cache.contains_key(&key) {
            let p = s.policies(&key.0, &key.1).await.unwrap_or_else(|e| {
                warn!(tenant = %key.0, namespace = %key.1, error = %e, "read policies failed");
                None
            });
            cache.insert(key.clone(), p);
        }
        let p = cache.get(&key).cloned().flatten().unwrap_or_default();
        if t.ledger().is_fenced() {
            continue;
        }
        o.apply_policies(t.ledger(), &p).await;
    }
}

/// One janitor sweep.
pub async fn sweep(s: &BrokerService) {
    let Some(o) = s.offloader() else { return };
    if o.is_stopped() {
        return;
    }
    if let Err(e) = o.sweep(s.metadata()).await {
        warn!(error = %e, "offload janitor sweep failed");
    }
}
