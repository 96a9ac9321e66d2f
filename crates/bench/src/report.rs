//! The end-of-run report: JSON (serde) and a human summary.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::stats::percentile_sorted;

/// p50 / p95 / p99 / max of a distribution (None when there are no samples).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Percentiles {
    /// From unsorted values (nearest rank).
    pub fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Self {
            p50: percentile_sorted(&v, 50.0),
            p95: percentile_sorted(&v, 95.0),
            p99: percentile_sorted(&v, 99.0),
            max: v.last().copied(),
        }
    }
}

/// Delivery latency, publisher send to player receive.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencyReport {
    /// Median (ms; upper edge of a log bucket, ~12% wide).
    pub p50: Option<f64>,
    /// 95th percentile (ms).
    pub p95: Option<f64>,
    /// 99th percentile (ms).
    pub p99: Option<f64>,
    /// Largest (ms, exact).
    pub max: Option<f64>,
    /// Samples taken.
    pub samples: u64,
    /// How frames were matched: "payload-fingerprint", or why latency was not measured.
    pub matching: String,
    /// Which frames were sampled.
    pub sampling: String,
    /// Video frames of the file left out because their fingerprint is not unique.
    pub ambiguous_frames: usize,
}

/// Per connected player: what each received (means over connected players; the bitrate
/// minimum finds the starved ones).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PerPlayer {
    /// Mean received bitrate over the measured window (kbit/s, protocol overhead included).
    pub kbit_per_s_mean: f64,
    /// Lowest received bitrate of one connected player over the window (kbit/s).
    pub kbit_per_s_min: Option<f64>,
    /// Mean video frames received over the whole run.
    pub video_frames_mean: f64,
    /// Fewest video frames one connected player received.
    pub video_frames_min: Option<u64>,
    /// Mean audio frames (FLV) / packets (RTP) received over the whole run.
    pub audio_packets_mean: f64,
    /// Mean codec payload bytes received over the whole run.
    pub media_bytes_mean: f64,
    #[serde(skip)]
    sums: (u64, u64, u64, u64),
    #[serde(skip)]
    min_window_bytes: Option<u64>,
}

impl PerPlayer {
    /// Adds one connected player.
    pub fn add(&mut self, st: &crate::stats::PlayerStats) {
        self.sums.0 += st.window_bytes;
        self.sums.1 += st.video_frames;
        self.sums.2 += st.audio_packets;
        self.sums.3 += st.media_bytes;
        self.min_window_bytes = Some(
            self.min_window_bytes
                .map_or(st.window_bytes, |m| m.min(st.window_bytes)),
        );
        self.video_frames_min = Some(
            self.video_frames_min
                .map_or(st.video_frames, |m| m.min(st.video_frames)),
        );
    }

    /// Turns the sums into means over `connected` players and a window of `secs`.
    pub fn finish(&mut self, connected: usize, secs: f64) {
        let kbit = |bytes: u64| bytes as f64 * 8.0 / secs.max(1e-9) / 1e3;
        if connected > 0 {
            let n = connected as f64;
            self.kbit_per_s_mean = kbit(self.sums.0) / n;
            self.video_frames_mean = self.sums.1 as f64 / n;
            self.audio_packets_mean = self.sums.2 as f64 / n;
            self.media_bytes_mean = self.sums.3 as f64 / n;
        }
        self.kbit_per_s_min = self.min_window_bytes.map(kbit);
    }
}

/// The measured server process.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerReport {
    /// Its pid.
    pub pid: u32,
    /// CPU over the window, % of one core.
    pub cpu_percent_of_one_core: f64,
    /// CPU seconds over the window.
    pub cpu_seconds: f64,
    /// Largest RSS sampled in the window (bytes).
    pub rss_max_bytes: u64,
    /// Mean RSS sampled in the window (bytes).
    pub rss_mean_bytes: u64,
    /// RSS sampled before any player connected (bytes).
    pub rss_before_players_bytes: u64,
    /// (rss_max - rss_before_players) / players connected.
    pub rss_per_player_bytes: Option<u64>,
    /// CPU seconds per 10^9 bytes delivered to players in the window.
    pub cpu_seconds_per_gb_delivered: Option<f64>,
}

/// The tool's own cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToolReport {
    /// CPU over the window, % of one core.
    pub cpu_percent_of_one_core: f64,
    /// CPU seconds over the window.
    pub cpu_seconds: f64,
    /// RSS at the end of the window (bytes).
    pub rss_bytes: u64,
    /// Tokio worker threads.
    pub threads: usize,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// `--label`.
    pub label: String,
    /// "rtmp", "http-flv", "ws-flv", or None without players.
    pub protocol: Option<String>,
    /// `--play` URL.
    pub url: Option<String>,
    /// `--publish` URL (None in attach mode).
    pub publish_url: Option<String>,
    /// Streams published.
    pub publishers: usize,
    /// Publishers that stopped with an error before the end.
    pub publishers_failed: usize,
    /// `--idle`.
    pub idle: bool,
    /// `--players`.
    pub players_requested: usize,
    /// Players that connected.
    pub players_connected: usize,
    /// Players that failed (connect error, refusal, protocol error, closed early).
    pub players_failed: usize,
    /// Connected players that received video and never stalled.
    pub players_without_stalls: usize,
    /// Failures by kind.
    pub errors: BTreeMap<String, usize>,
    /// Length of the measured window (s).
    pub measured_secs: f64,
    /// Bytes received by all players in the window.
    pub bytes_total: u64,
    /// `bytes_total` as Mbit/s.
    pub mbit_per_s: f64,
    /// Mean media duration received per connected player over the whole run (s).
    pub media_secs_per_player: f64,
    /// Transitions into the stalled state, all players, whole run.
    pub stalls_total: u64,
    /// Players stalled when the run ended.
    pub stalled_at_end: usize,
    /// Player start to connected (ms).
    pub connect_ms: Percentiles,
    /// Player start to first video frame (ms).
    pub first_frame_ms: Percentiles,
    /// Publisher send to player receive (ms).
    pub latency_ms: LatencyReport,
    /// What each connected player received.
    pub per_player: PerPlayer,
    /// Players one core of the server carries: connected / (server CPU s / window s).
    pub players_per_core: Option<f64>,
    /// WHEP: resources DELETEd (2xx) when the players stopped.
    pub resources_deleted: usize,
    /// /proc/loadavg (1, 5, 15 min) at the end of the run: the machine may be shared.
    pub load_average: Option<[f64; 3]>,
    /// The `--server-pid` process over the window.
    pub server: Option<ServerReport>,
    /// This tool over the window.
    pub tool: ToolReport,
}

impl Report {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of numbers, strings and maps with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

fn pct(p: &Percentiles) -> String {
    format!(
        "p50 {} / p95 {} / p99 {} / max {}",
        opt(p.p50),
        opt(p.p95),
        opt(p.p99),
        opt(p.max)
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== sluice-bench {} {} {}",
            self.label,
            self.protocol.as_deref().unwrap_or("(no players)"),
            self.url.as_deref().unwrap_or("")
        )?;
        writeln!(
            f,
            "players: {} requested, {} connected, {} failed {:?}, {} without stalls{}",
            self.players_requested,
            self.players_connected,
            self.players_failed,
            self.errors,
            self.players_without_stalls,
            if self.idle { " (idle)" } else { "" }
        )?;
        writeln!(
            f,
            "window {:.1} s: {} bytes, {:.2} Mbit/s; media {:.1} s/player; {} stalls, {} stalled at end",
            self.measured_secs,
            self.bytes_total,
            self.mbit_per_s,
            self.media_secs_per_player,
            self.stalls_total,
            self.stalled_at_end
        )?;
        writeln!(f, "connect ms:     {}", pct(&self.connect_ms))?;
        writeln!(f, "first frame ms: {}", pct(&self.first_frame_ms))?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "latency ms:     p50 {} / p95 {} / p99 {} / max {} ({} samples, {})",
            opt(l.p50),
            opt(l.p95),
            opt(l.p99),
            opt(l.max),
            l.samples,
            l.matching
        )?;
        let p = &self.per_player;
        writeln!(
            f,
            "per player: {:.1} kbit/s mean, {} min; {:.0} video frames (min {}), {:.0} audio, {:.0} KB media",
            p.kbit_per_s_mean,
            opt(p.kbit_per_s_min),
            p.video_frames_mean,
            p.video_frames_min
                .map_or_else(|| "-".to_owned(), |v| v.to_string()),
            p.audio_packets_mean,
            p.media_bytes_mean / 1e3
        )?;
        if let Some(s) = &self.server {
            writeln!(
                f,
                "server pid {}: cpu {:.1}% of a core ({:.2} s, {} s/GB), rss max {:.1} MB mean {:.1} MB, {} B/player",
                s.pid,
                s.cpu_percent_of_one_core,
                s.cpu_seconds,
                opt(s.cpu_seconds_per_gb_delivered),
                s.rss_max_bytes as f64 / 1e6,
                s.rss_mean_bytes as f64 / 1e6,
                s.rss_per_player_bytes
                    .map_or_else(|| "-".to_owned(), |v| v.to_string())
            )?;
        }
        if let Some(v) = self.players_per_core {
            writeln!(f, "players per core (server): {v:.0}")?;
        }
        if self.protocol.as_deref() == Some("whep") {
            writeln!(f, "WHEP resources deleted: {}", self.resources_deleted)?;
        }
        if let Some([a, b, c]) = self.load_average {
            writeln!(f, "load average: {a:.2} {b:.2} {c:.2}")?;
        }
        write!(
            f,
            "tool: cpu {:.1}% of a core ({} thread(s)), rss {:.1} MB",
            self.tool.cpu_percent_of_one_core,
            self.tool.threads,
            self.tool.rss_bytes as f64 / 1e6
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_values() {
        let p = Percentiles::of(vec![3.0, 1.0, 2.0, 4.0]);
        assert_eq!((p.p50, p.p99, p.max), (Some(2.0), Some(4.0), Some(4.0)));
        assert_eq!(Percentiles::of(vec![]), Percentiles::default());
    }

    #[test]
    fn json_has_the_documented_fields() {
        let r = Report {
            label: "x".into(),
            server: Some(ServerReport::default()),
            ..Report::default()
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        for k in [
            "label",
            "players_connected",
            "players_without_stalls",
            "mbit_per_s",
            "first_frame_ms",
            "latency_ms",
            "server",
            "tool",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v["latency_ms"].get("matching").is_some());
        assert!(v["server"].get("rss_per_player_bytes").is_some());
        assert!(r.to_string().contains("players: 0 requested"));
        assert!(v["per_player"].get("kbit_per_s_min").is_some());
        assert!(v.get("players_per_core").is_some());
    }

    #[test]
    fn per_player_means_and_minimum() {
        let mut p = PerPlayer::default();
        for (bytes, frames) in [(30_000u64, 100u64), (10_000, 40)] {
            let mut st = crate::stats::PlayerStats::new(0);
            st.window_bytes = bytes;
            st.video_frames = frames;
            st.audio_packets = 5;
            st.media_bytes = 1000;
            p.add(&st);
        }
        p.finish(2, 2.0);
        // 40 000 bytes over 2 players and 2 s = 80 kbit/s each; the slower one got 40.
        assert_eq!(p.kbit_per_s_mean, 80.0);
        assert_eq!(p.kbit_per_s_min, Some(40.0));
        assert_eq!((p.video_frames_mean, p.video_frames_min), (70.0, Some(40)));
        assert_eq!((p.audio_packets_mean, p.media_bytes_mean), (5.0, 1000.0));
        let mut none = PerPlayer::default();
        none.finish(0, 1.0);
        assert_eq!(none, PerPlayer::default());
    }
}
