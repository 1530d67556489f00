//! Where the object-storage mode runs (`BENCH_OBJSTORE_PIN`): by default (`split`) the bench
//! process (bookie + load generator) is pinned to one half of the CPUs it may use and the S3 server
//! process to the other half (2 CPUs: bench on CPU 0, server on CPU 1), in every phase, local ones
//! included, so the local and the object-storage phases give the bookie the same CPUs and the
//! store's CPU (HTTP, md5 ETags, tmpfs copies) is not taken from them, as a store on other hosts
//! is not. `none`: no pinning (both share every CPU; the store runs at a lower priority, see
//! `server.rs`). `A:B` (e.g. `0:1`, `0,1:2,3`): explicit CPU lists for the bench and the server.
//!
//! Not separated by pinning: the machine's memory bandwidth and caches, and the kernel's loopback
//! TCP receive processing of the uploads, which runs in softirq on the sending CPU (the bench's),
//! about what a sender pays for its NIC's transmit path.

use std::io;

/// CPU lists of the bench process and of the server process.
pub struct Placement {
    pub bench: Vec<usize>,
    pub server: Vec<usize>,
}

impl Placement {
    /// From `BENCH_OBJSTORE_PIN`; `None`: no pinning (also when fewer than 2 CPUs are usable).
    pub fn from_env() -> Option<Self> {
        let v = std::env::var("BENCH_OBJSTORE_PIN").unwrap_or_else(|_| "split".into());
        if v == "none" {
            return None;
        }
        if let Some((a, b)) = v.split_once(':') {
            let list = |s: &str| -> Vec<usize> {
                s.split(',').filter_map(|c| c.trim().parse().ok()).collect()
            };
            let p = Self {
                bench: list(a),
                server: list(b),
            };
            assert!(
                !p.bench.is_empty() && !p.server.is_empty(),
                "BENCH_OBJSTORE_PIN={v}: want A:B CPU lists"
            );
            return Some(p);
        }
        assert_eq!(v, "split", "BENCH_OBJSTORE_PIN is split, none or A:B");
        let cpus = allowed().ok()?;
        if cpus.len() < 2 {
            return None;
        }
        let half = cpus.len().div_ceil(2);
        Some(Self {
            bench: cpus[..half].to_vec(),
            server: cpus[half..].to_vec(),
        })
    }
}

/// The CPUs this process may run on.
#[allow(unsafe_code)] // libc's CPU-set calls; rustix is built without its `thread` feature
pub fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: `set` is a plain bitmask owned by this frame; the kernel writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// Pins the calling thread (and every thread or process it starts later) to `cpus`.
#[allow(unsafe_code)] // as `allowed`
pub fn pin_self(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: as in `allowed`; CPU_SET ignores nothing we pass beyond CPU_SETSIZE (checked).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            if c >= libc::CPU_SETSIZE as usize {
                return Err(io::Error::other(format!("cpu {c} out of range")));
            }
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `0,1` for a CPU list.
pub fn show(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Per-CPU (busy, total) jiffies from `/proc/stat`, indexed by CPU number (busy = all but idle
/// and iowait).
pub fn cpu_times() -> Vec<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut out = vec![];
    for l in s.lines() {
        // `cpuN v v v ...`; not the `cpu  v v v` total line
        let Some((n, vals)) = l.strip_prefix("cpu").and_then(|r| r.split_once(' ')) else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else {
            continue;
        };
        if n >= 4096 {
            continue;
        }
        let v: Vec<u64> = vals
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        if out.len() <= n {
            out.resize(n + 1, (0, 0));
        }
        out[n] = (total - idle, total);
    }
    out
}

/// How busy each CPU was between two [`cpu_times`] samples: `cpu0 93%, cpu1 41%`.
pub fn busy_between(a: &[(u64, u64)], b: &[(u64, u64)]) -> String {
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| {
            let total = y.1.saturating_sub(x.1).max(1);
            format!(
                "cpu{i} {:.0}%",
                100.0 * y.0.saturating_sub(x.0) as f64 / total as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
