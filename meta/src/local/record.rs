//! On-disk encoding of one key's record in the embedded store's redb table.
//!
//! Layout (little endian): `tag: u8 = 1`, `version: u64`, `create_revision: u64`,
//! `mod_revision: u64`, `session: i64` (0 = persistent), then the value bytes. The tag lets the
//! layout evolve; an unknown tag or a short record decodes to an error, never a panic.

use bytes::Bytes;

use crate::store::{Stat, Versioned};

const TAG_V1: u8 = 1;
const HEADER: usize = 1 + 8 * 4;

/// Encodes a record.
pub(crate) fn encode(stat: &Stat, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.len());
    out.push(TAG_V1);
    out.extend_from_slice(&stat.version.to_le_bytes());
    out.extend_from_slice(&stat.create_revision.to_le_bytes());
    out.extend_from_slice(&stat.mod_revision.to_le_bytes());
    out.extend_from_slice(&stat.session.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = buf.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Decodes a record; `None` if it is not a valid record.
pub(crate) fn decode(buf: &[u8]) -> Option<Versioned> {
    if buf.first() != Some(&TAG_V1) {
        return None;
    }
    let version = u64_at(buf, 1)?;
    let create_revision = u64_at(buf, 9)?;
    let mod_revision = u64_at(buf, 17)?;
    let session = u64_at(buf, 25)? as i64;
    let value = Bytes::copy_from_slice(buf.get(HEADER..)?);
    Some(Versioned {
        value,
        stat: Stat {
            version,
            create_revision,
            mod_revision,
            session: (session != 0).then_some(session),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(version: u64, c: u64, m: u64, s: i64, value: Vec<u8>) {
            let stat = Stat { version, create_revision: c, mod_revision: m, session: (s != 0).then_some(s) };
            let rec = encode(&stat, &value);
            let back = decode(&rec).unwrap();
            prop_assert_eq!(back.stat, stat);
            prop_assert_eq!(&back.value[..], &value[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(buf: Vec<u8>) {
            let _ = decode(&buf);
        }
    }

    /// A record written by format 1 (golden bytes) still decodes.
    #[test]
    fn golden_v1() {
        let mut rec = vec![1u8];
        rec.extend_from_slice(&3u64.to_le_bytes());
        rec.extend_from_slice(&7u64.to_le_bytes());
        rec.extend_from_slice(&9u64.to_le_bytes());
        rec.extend_from_slice(&0i64.to_le_bytes());
        rec.extend_from_slice(b"hello");
        let v = decode(&rec).unwrap();
        assert_eq!(
            v.stat,
            Stat {
                version: 3,
                create_revision: 7,
                mod_revision: 9,
                session: None
            }
        );
        assert_eq!(&v.value[..], b"hello");
        assert!(decode(&rec[..10]).is_none());
        rec[0] = 2;
        assert!(decode(&rec).is_none());
    }
}
