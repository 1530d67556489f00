//! This process's resource use, read from Linux's `/proc/self` (the numbers of Prometheus'
//! standard `process_*` metrics and of the broker's load report). Elsewhere, or when `/proc`
//! cannot be read, [`ProcessStats::read`] answers `None`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Resource use of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Threads.
    pub threads: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Clock ticks per second of `/proc` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS: f64 = 100.0;
/// Page size of `/proc/self/statm` (4 KiB on the platforms Strata runs on).
const PAGE: u64 = 4096;

impl ProcessStats {
    /// Reads the numbers now.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        // Numbering of proc(5) minus 3: state is field 3.
        let (utime, stime) = (num(11)?, num(12)?);
        let threads = num(17)?;
        let start_ticks = num(19)?;
        let vsize = num(20)?;
        let rss_pages = num(21)?;
        let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
        let uptime: f64 = uptime.split_whitespace().next()?.parse().ok()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        Some(ProcessStats {
            cpu_seconds: (utime + stime) as f64 / TICKS,
            resident_bytes: rss_pages * PAGE,
            virtual_bytes: vsize,
            open_fds,
            threads,
            start_time_seconds: now - uptime + start_ticks as f64 / TICKS,
        })
    }
}

/// Total memory of the machine in bytes (`/proc/meminfo`), if known.
pub fn total_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sane_numbers_on_linux() {
        let Some(s) = ProcessStats::read() else {
            return;
        };
        assert!(s.resident_bytes > 0, "{s:?}");
        assert!(s.threads >= 1, "{s:?}");
        assert!(s.open_fds >= 1, "{s:?}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86400.0 * 365.0);
        assert!(total_memory_bytes().unwrap_or(1) > 0);
    }
}
