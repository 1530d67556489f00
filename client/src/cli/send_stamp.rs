//! Send times written into `strata perf` payloads, so that `perf consume` measures end-to-end
//! latency in microseconds: a message's publish time has whole milliseconds only, too coarse
//! for a latency of about a millisecond.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use strata_common::clock::now_us;

/// Marks a stamped payload (its first bytes), before the send time.
const MAGIC: [u8; 8] = *b"strataT1";
/// Bytes a stamp takes at the start of a payload: the mark and the send time (µs, big-endian).
pub(super) const LEN: usize = 16;

/// A copy of `payload` with the current time in its first [`LEN`] bytes; `payload` itself when
/// it is shorter than that.
pub(super) fn stamp(payload: &Bytes) -> Bytes {
    if payload.len() < LEN {
        return payload.clone();
    }
    let mut b = BytesMut::with_capacity(payload.len());
    b.put_slice(&MAGIC);
    b.put_u64(now_us());
    b.put_slice(&payload[LEN..]);
    b.freeze()
}

/// The time since the send time `payload` carries, if it carries one (a send time in the future,
/// from a clock stepped back, counts as zero).
pub(super) fn elapsed(payload: &[u8]) -> Option<Duration> {
    let (mark, rest) = payload.split_first_chunk::<8>()?;
    let (sent, _) = rest.split_first_chunk::<8>()?;
    (*mark == MAGIC)
        .then(|| Duration::from_micros(now_us().saturating_sub(u64::from_be_bytes(*sent))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_payload_keeps_its_size_and_tells_its_age() {
        let p = Bytes::from(vec![b'x'; 1024]);
        let s = stamp(&p);
        assert_eq!(s.len(), p.len());
        assert_eq!(&s[LEN..], &p[LEN..]);
        let age = elapsed(&s).unwrap();
        assert!(age < Duration::from_secs(5), "{age:?}");
    }

    #[test]
    fn other_payloads_carry_no_send_time() {
        assert_eq!(elapsed(&[b'x'; 1024]), None);
        assert_eq!(elapsed(b"strataT1"), None, "a mark without a time");
        let short = Bytes::from_static(b"short");
        assert_eq!(stamp(&short), short);
    }
}
