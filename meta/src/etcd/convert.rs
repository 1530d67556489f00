//! Between etcd-client's types and the store's: errors, key-values, ranges, compare-and-set
//! conditions.

use bytes::Bytes;
use etcd_client::{Compare, CompareOp, TxnOpResponse, TxnResponse};

use crate::error::{MetaError, Result};
use crate::store::{Expected, Stat, Versioned};

/// Whether retrying the same request (possibly on another member) may succeed.
pub(super) fn etcd_retryable(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::Cancelled
                | Code::Aborted
                | Code::ResourceExhausted
        ),
        etcd_client::Error::TransportError(_)
        | etcd_client::Error::IoError(_)
        | etcd_client::Error::EndpointError(_)
        | etcd_client::Error::WatchError(_)
        | etcd_client::Error::LeaseKeepAliveError(_) => true,
        _ => false,
    }
}

pub(super) fn lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            s.code() == tonic::Code::NotFound && s.message().contains("lease not found")
        }
        etcd_client::Error::LeaseKeepAliveError(m) => m.contains("lease not found"),
        _ => false,
    }
}

pub(super) fn map_err(e: etcd_client::Error) -> MetaError {
    if etcd_retryable(&e) {
        MetaError::Unavailable(e.to_string())
    } else if let etcd_client::Error::GRpcStatus(s) = &e
        && s.code() == tonic::Code::OutOfRange
        && s.message().contains("compacted")
    {
        MetaError::Compacted {
            requested: 0,
            oldest: 0,
        }
    } else {
        MetaError::Etcd(e.to_string())
    }
}

pub(super) fn stat_of(kv: &etcd_client::KeyValue) -> Stat {
    Stat {
        version: kv.version().max(0) as u64,
        create_revision: kv.create_revision().max(0) as u64,
        mod_revision: kv.mod_revision().max(0) as u64,
        session: (kv.lease() != 0).then_some(kv.lease()),
    }
}

pub(super) fn versioned_of(kv: &etcd_client::KeyValue) -> Versioned {
    Versioned {
        value: Bytes::copy_from_slice(kv.value()),
        stat: stat_of(kv),
    }
}

pub(super) fn key_of(kv: &etcd_client::KeyValue) -> Result<String> {
    kv.key_str()
        .map(str::to_owned)
        .map_err(|_| MetaError::Decode {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            reason: "key is not UTF-8".into(),
        })
}

/// The end of the key range holding every key that starts with `prefix` (etcd's convention).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

pub(super) fn compare_for(key: &str, expected: Expected) -> Vec<Compare> {
    match expected {
        Expected::Any => vec![],
        Expected::Absent => vec![Compare::version(key, CompareOp::Equal, 0)],
        Expected::Version(v) => vec![Compare::version(
            key,
            CompareOp::Equal,
            i64::try_from(v).unwrap_or(i64::MAX),
        )],
    }
}

/// The key-value of the `Get` at `index` of a transaction's responses.
pub(super) fn txn_get(resp: &TxnResponse, index: usize) -> Option<etcd_client::KeyValue> {
    match resp.op_responses().into_iter().nth(index) {
        Some(TxnOpResponse::Get(g)) => g.kvs().first().cloned(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_matches_etcd() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
