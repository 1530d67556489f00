//! Tiered storage calls of the admin client: trigger and watch a topic's offload, the
//! namespace offload policies.

use http::Method;
use serde_json::{Value, json};

use super::{AdminClient, AdminResult, NamespaceRef, TopicRef};

impl AdminClient {
    /// `PUT .../{topic}/offload`: offload the closed ledgers before `(ledger_id, entry_id)`.
    pub async fn offload(&self, t: &TopicRef, ledger_id: i64, entry_id: i64) -> AdminResult<()> {
        let body = json!({ "ledgerId": ledger_id, "entryId": entry_id, "partitionIndex": -1 });
        self.send(Method::PUT, &format!("{}/offload", t.path()), &body)
            .await
    }

    /// `GET .../{topic}/offload`: `{"status","lastError","firstUnoffloadedMessage"}`.
    pub async fn offload_status(&self, t: &TopicRef) -> AdminResult<Value> {
        self.get_value(&format!("{}/offload", t.path())).await
    }

    /// `PUT .../offloadThresholdInSeconds` (`-1` disables).
    pub async fn set_offload_threshold_in_seconds(
        &self,
        ns: &NamespaceRef,
        secs: i64,
    ) -> AdminResult<()> {
        self.send(
            Method::PUT,
            &format!("{}/offloadThresholdInSeconds", ns.path()),
            &secs,
        )
        .await
    }

    /// `PUT .../offloadDeletionLagMs`.
    pub async fn set_offload_deletion_lag(&self, ns: &NamespaceRef, ms: i64) -> AdminResult<()> {
        self.send(
            Method::PUT,
            &format!("{}/offloadDeletionLagMs", ns.path()),
            &ms,
        )
        .await
    }
}
