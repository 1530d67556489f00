//! Parsing of command-line values: sizes, durations, retention, persistence, grant actions.

use crate::admin::types::{AUTH_ACTIONS, PersistencePolicies, RetentionPolicies};

/// Parses a size: `-1`, bytes, or a number with K/M/G/T (binary units, case-insensitive).
pub fn parse_size(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let (num, mult) = match s.chars().last() {
        Some(c @ ('k' | 'K' | 'm' | 'M' | 'g' | 'G' | 't' | 'T')) => {
            let shift = match c.to_ascii_lowercase() {
                'k' => 10,
                'm' => 20,
                'g' => 30,
                _ => 40,
            };
            (&s[..s.len() - 1], 1i64 << shift)
        }
        _ => (s, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (e.g. 10M, 1G, -1)"))?;
    if n < 0 {
        return Err(format!("invalid size {s:?}: only -1 may be negative"));
    }
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses a duration to seconds: `-1`, seconds, or a number with s/m/h/d/w.
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let (num, mult) = match s.chars().last() {
        Some(c @ ('s' | 'm' | 'h' | 'd' | 'w')) => (
            &s[..s.len() - 1],
            match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => 604_800,
            },
        ),
        _ => (s, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid time {s:?} (e.g. 30s, 10m, 3h, 2d, 1w, -1)"))?;
    if n < 0 {
        return Err(format!("invalid time {s:?}: only -1 may be negative"));
    }
    n.checked_mul(mult)
        .ok_or_else(|| format!("time {s:?} is too large"))
}

/// `--size`/`--time` of `set-retention` → `RetentionPolicies` (MB and minutes, -1 kept).
pub fn retention_from_args(size: &str, time: &str) -> Result<RetentionPolicies, String> {
    let bytes = parse_size(size)?;
    let secs = parse_duration_secs(time)?;
    let mb = if bytes < 0 {
        -1
    } else {
        // Round up: a limit below 1 MB must not become "no retention".
        (bytes + (1 << 20) - 1) >> 20
    };
    let minutes = if secs < 0 { -1 } else { (secs + 59) / 60 };
    Ok(RetentionPolicies {
        retention_time_in_minutes: minutes,
        retention_size_in_mb: mb,
    })
}

/// Checks E ≥ Qw ≥ Qa ≥ 1.
pub fn persistence_from_args(
    e: u32,
    w: u32,
    a: u32,
    rate: f64,
) -> Result<PersistencePolicies, String> {
    if !(e >= w && w >= a && a >= 1) {
        return Err(format!(
            "invalid persistence: need ensemble >= write quorum >= ack quorum >= 1, got {e}/{w}/{a}"
        ));
    }
    Ok(PersistencePolicies {
        bookkeeper_ensemble: e,
        bookkeeper_write_quorum: w,
        bookkeeper_ack_quorum: a,
        managed_ledger_max_mark_delete_rate: rate,
    })
}

/// Normalizes and checks grant actions.
pub fn check_actions(actions: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for a in actions {
        let a = a.trim().to_ascii_lowercase();
        if a.is_empty() {
            continue;
        }
        if !AUTH_ACTIONS.contains(&a.as_str()) {
            return Err(format!(
                "unknown action {a:?} (expected {})",
                AUTH_ACTIONS.join(", ")
            ));
        }
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err("no action given (e.g. --actions produce,consume)".into());
    }
    Ok(out)
}
