//! CPU time and RSS of a process, from /proc (Linux).

/// Clock ticks per second of /proc/PID/stat times. `getconf CLK_TCK` is 100 on every
/// mainstream Linux architecture; assumed rather than read (no libc dependency).
pub const CLK_TCK: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// User + system CPU time, seconds.
    pub cpu_secs: f64,
    /// Resident set size, bytes (0 if unknown).
    pub rss_bytes: u64,
}

/// utime + stime (seconds) from the text of /proc/PID/stat. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_cpu(text: &str) -> Option<f64> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ")": field 3 (state) is index 0, so utime (14) is index 11, stime (15) is 12.
    let mut it = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = it.next()?.parse().ok()?;
    let stime: u64 = it.next()?.parse().ok()?;
    Some((utime + stime) as f64 / CLK_TCK)
}

/// VmRSS (bytes) from the text of /proc/PID/status.
pub fn parse_status_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut it = line["VmRSS:".len()..].split_ascii_whitespace();
    let kb: u64 = it.next()?.parse().ok()?;
    Some(kb * 1024)
}

/// The 1, 5 and 15 minute load averages from the text of /proc/loadavg.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_ascii_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The machine's load averages (None off Linux), read when the report is made: on a
/// shared machine they say how much of the CPU the measured processes could have had.
pub fn load_average() -> Option<[f64; 3]> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// Reads `pid` (None = this process). None if the process is gone.
pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_owned(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    Some(ProcSample {
        cpu_secs: parse_stat_cpu(&stat)?,
        rss_bytes: parse_status_rss(&status).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let s = "1234 (my (odd) srv) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 4 0 \
                 100 123456 789 18446744073709551615";
        assert_eq!(parse_stat_cpu(s), Some(3.25));
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_status_rss() {
        let s = "Name:\tsluice\nVmPeak:\t  9999 kB\nVmRSS:\t   2048 kB\nThreads:\t2\n";
        assert_eq!(parse_status_rss(s), Some(2 * 1024 * 1024));
        assert_eq!(parse_status_rss("Name: x\n"), None);
    }

    #[test]
    fn parses_loadavg() {
        assert_eq!(
            parse_loadavg("0.52 1.25 2.00 3/812 12345\n"),
            Some([0.52, 1.25, 2.0])
        );
        assert_eq!(parse_loadavg("0.5 x 1"), None);
        assert_eq!(parse_loadavg(""), None);
        assert!(load_average().is_some());
    }

    #[test]
    fn reads_self() {
        let s = sample(None).expect("/proc/self readable");
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_secs >= 0.0);
        assert_eq!(sample(Some(u32::MAX)), None);
    }
}
