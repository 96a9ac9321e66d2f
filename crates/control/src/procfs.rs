//! Process figures from Linux `/proc/self`: CPU time, resident memory, open descriptors.
//! On other systems (or if `/proc` is unreadable) each figure is simply absent.

/// Clock ticks per second assumed for `/proc/self/stat` CPU times (`USER_HZ`, 100 on every
/// mainstream Linux architecture).
pub const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// A snapshot of the process's resource use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
}

impl ProcessStats {
    /// Reads `/proc/self`.
    pub fn read() -> Self {
        let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_cpu_seconds(&s));
        let resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| parse_rss_bytes(&s));
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.filter(|e| e.is_ok()).count() as u64);
        Self {
            cpu_seconds,
            resident_bytes,
            open_fds,
        }
    }
}

/// utime + stime (fields 14 and 15 of `/proc/self/stat`) in seconds. The command name (field
/// 2) may contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // After the `)`: field 3 (state) is index 0, so utime (14) is index 11 and stime 12.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime) as f64 / CLOCK_TICKS_PER_SEC)
}

/// `VmRSS` of `/proc/self/status`, in bytes.
pub fn parse_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => value.checked_mul(1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_from_stat_with_awkward_comm() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let stat = "4242 (sl uice) (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 125 0 0 20 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.75));
        assert_eq!(parse_cpu_seconds("4242 (x) S 1 2"), None);
        assert_eq!(parse_cpu_seconds("garbage"), None);
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tsluice\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t4\n";
        assert_eq!(parse_rss_bytes(status), Some(5120 * 1024));
        assert_eq!(parse_rss_bytes("Name:\tx\n"), None);
        assert_eq!(parse_rss_bytes("VmRSS:\tlots kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read();
        assert!(p.resident_bytes.is_some_and(|b| b > 0));
        assert!(p.open_fds.is_some_and(|n| n >= 3));
        assert!(p.cpu_seconds.is_some());
    }
}
