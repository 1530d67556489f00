//! `strata admin topics offload|offload-status` (Pulsar's `topics offload -s SIZE` and
//! `offload-status [-w]`).

use std::time::Duration;

use serde_json::Value;

use super::out::{Out, arg_err, topic, val};
use super::parse::parse_size;
use crate::admin::types::LedgerInfo;
use crate::admin::{AdminClient, AdminError, AdminResult};

/// The first message to keep on the bookies so that at most `keep` bytes stay there: the first
/// entry of the oldest ledger from which the ledgers up to the newest hold at most `keep` bytes
/// (the newest ledger always stays).
pub(super) fn boundary(ledgers: &[LedgerInfo], keep: i64) -> Option<(i64, i64)> {
    let mut kept = 0i64;
    let mut at = ledgers.last()?.ledger_id;
    for l in ledgers.iter().rev().skip(1) {
        kept += l.size.unwrap_or(0);
        if kept > keep {
            break;
        }
        at = l.ledger_id;
    }
    Some((at, 0))
}

/// `topics offload -s SIZE`.
pub(super) async fn offload(c: &AdminClient, t: &str, size_threshold: &str) -> AdminResult<Out> {
    let t = topic(t)?;
    let keep = parse_size(size_threshold).map_err(arg_err)?;
    let stats = c.internal_stats(&t).await?;
    let ledgers = stats.ledgers.unwrap_or_default();
    let Some((l, e)) = boundary(&ledgers, keep) else {
        return Err(AdminError::InvalidArgument(
            "the topic has no ledgers".into(),
        ));
    };
    c.offload(&t, l, e).await?;
    Ok(Out::Text {
        text: format!(
            "Offload triggered for {} for messages before {l}:{e}",
            t.path()
        ),
        json: serde_json::json!({ "ledgerId": l, "entryId": e }),
    })
}

/// `topics offload-status [-w]`.
pub(super) async fn offload_status(c: &AdminClient, t: &str, wait: bool) -> AdminResult<Out> {
    let t = topic(t)?;
    loop {
        let s: Value = c.offload_status(&t).await?;
        if !wait || s["status"] != "RUNNING" {
            return Ok(val(s));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(id: i64, size: i64) -> LedgerInfo {
        LedgerInfo {
            ledger_id: id,
            size: Some(size),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_at_most_the_threshold_on_bookies() {
        let ls = [l(1, 100), l(2, 100), l(3, 100), l(4, 0)];
        assert_eq!(boundary(&ls, 0), Some((4, 0)));
        assert_eq!(boundary(&ls, 150), Some((3, 0)));
        assert_eq!(boundary(&ls, 1000), Some((1, 0)));
        assert_eq!(boundary(&[], 0), None);
    }
}
