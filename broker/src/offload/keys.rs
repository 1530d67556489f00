//! Object keys of offloaded ledgers: `{topic dir}/{ledger:020}-{offload id}/index` and
//! `.../data-{part:05}`. The topic dir has one segment per name part (tenant, namespace,
//! domain, topic), each `s-NAME` when NAME is plain (`[A-Za-z0-9._-]`) or `h-HEX` otherwise, so
//! keys are safe in any object store and map back to the topic.

/// The keys of one offload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffloadKeys {
    dir: String,
}

impl OffloadKeys {
    /// Keys of `offload_id` of `ledger` of the managed ledger `ml_name`.
    pub fn new(ml_name: &str, ledger: u64, offload_id: &str) -> Self {
        Self {
            dir: format!("{}/{ledger:020}-{offload_id}", topic_dir(ml_name)),
        }
    }

    /// The index object.
    pub fn index(&self) -> String {
        format!("{}/index", self.dir)
    }

    /// Data object `part`.
    pub fn data(&self, part: u32) -> String {
        format!("{}/data-{part:05}", self.dir)
    }

    /// The attempt's directory (every object of it starts with this and a `/`).
    pub fn dir(&self) -> &str {
        &self.dir
    }
}

fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The directory of a managed ledger's objects.
pub fn topic_dir(ml_name: &str) -> String {
    ml_name
        .splitn(4, '/')
        .map(|seg| {
            if plain(seg) {
                format!("s-{seg}")
            } else {
                let hex: String = seg.bytes().map(|b| format!("{b:02x}")).collect();
                format!("h-{hex}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The managed-ledger name of a topic dir.
pub fn ml_name_of(dir: &str) -> Option<String> {
    let segs: Vec<&str> = dir.split('/').collect();
    if segs.len() != 4 {
        return None;
    }
    let mut out = Vec::with_capacity(4);
    for s in segs {
        if let Some(p) = s.strip_prefix("s-") {
            out.push(p.to_string());
        } else {
            let h = s.strip_prefix("h-")?;
            let bytes = (0..h.len())
                .step_by(2)
                .map(|i| h.get(i..i + 2).and_then(|x| u8::from_str_radix(x, 16).ok()))
                .collect::<Option<Vec<u8>>>()?;
            out.push(String::from_utf8(bytes).ok()?);
        }
    }
    Some(out.join("/"))
}

/// Splits an object key into (topic dir, ledger, offload id).
pub fn parse(key: &str) -> Option<(String, u64, String)> {
    let mut parts: Vec<&str> = key.rsplitn(3, '/').collect();
    parts.reverse();
    let [dir, attempt, _file] = parts[..] else {
        return None;
    };
    let (ledger, id) = attempt.split_once('-')?;
    Some((dir.to_string(), ledger.parse().ok()?, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for name in ["public/default/persistent/t1", "a b/ns/persistent/x%y?z"] {
            let k = OffloadKeys::new(name, 42, "abc123");
            let (dir, ledger, id) = parse(&k.data(3)).unwrap();
            assert_eq!((ledger, id.as_str()), (42, "abc123"));
            assert_eq!(ml_name_of(&dir).unwrap(), name);
            assert_eq!(parse(&k.index()).unwrap().0, dir);
        }
        assert!(parse("junk").is_none());
    }
}
