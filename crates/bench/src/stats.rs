//! Per-player measurements, the shared run state, histograms and percentile maths.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::fingerprint::{FrameIndex, fingerprint};

/// A player is stalled when its media position falls this far behind its wall-clock
/// position (both since its first frame).
pub const STALL_THRESHOLD_MS: u64 = 1000;
/// Latency histogram: smallest bucket edge (ns) = 0.1 ms.
pub const HIST_MIN_NS: u64 = 100_000;
/// Latency histogram: buckets per decade (0.1 ms .. 10 s is five decades).
pub const HIST_PER_DECADE: usize = 20;
/// Latency histogram: buckets between the edges, plus one underflow and one overflow.
pub const HIST_BUCKETS: usize = 5 * HIST_PER_DECADE + 2;

/// Run phase, as seen by players.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Players are being started.
    Ramp = 0,
    /// All players up; not measured yet.
    Warmup = 1,
    /// The measured window.
    Measuring = 2,
    /// After the window.
    Done = 3,
}

/// State shared by the publisher, every player and the reporter.
#[derive(Debug)]
pub struct Shared {
    start: Instant,
    phase: AtomicU8,
    /// Bytes received by all players.
    pub bytes: AtomicU64,
    /// Players connected (RTMP play started / connect done when idle; HTTP 200; WS open).
    pub connected: AtomicU64,
    /// Players that failed (connect error, refusal, protocol error, closed early).
    pub failed: AtomicU64,
    /// Players currently stalled.
    pub stalled_now: AtomicI64,
    /// Fingerprint index of the published file (None in attach mode).
    pub index: Option<Arc<FrameIndex>>,
    /// Cancelled when the run ends: players and publishers stop.
    pub stop: CancellationToken,
}

impl Shared {
    /// Fresh state; `index` enables latency measurement.
    pub fn new(index: Option<Arc<FrameIndex>>) -> Self {
        Self {
            start: Instant::now(),
            phase: AtomicU8::new(Phase::Ramp as u8),
            bytes: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            stalled_now: AtomicI64::new(0),
            index,
            stop: CancellationToken::new(),
        }
    }

    /// Nanoseconds since the tool started (the one clock everything uses).
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The tool's start instant.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Ramp,
            1 => Phase::Warmup,
            2 => Phase::Measuring,
            _ => Phase::Done,
        }
    }

    /// Moves to `p`.
    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }
}

/// Fixed-size log histogram of latencies (0.1 ms .. 10 s, [`HIST_PER_DECADE`] per decade).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: [u32; HIST_BUCKETS],
    total: u64,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: [0; HIST_BUCKETS],
            total: 0,
            max_ns: 0,
        }
    }
}

impl Histogram {
    fn bucket(ns: u64) -> usize {
        if ns < HIST_MIN_NS {
            return 0;
        }
        let x = (ns as f64 / HIST_MIN_NS as f64).log10() * HIST_PER_DECADE as f64;
        (x as usize + 1).min(HIST_BUCKETS - 1)
    }

    /// Upper edge (ns) of bucket `i` (the last bucket has no edge; `max` is used).
    fn upper_ns(&self, i: usize) -> u64 {
        if i + 1 >= HIST_BUCKETS {
            return self.max_ns;
        }
        let e = HIST_MIN_NS as f64 * 10f64.powf(i as f64 / HIST_PER_DECADE as f64);
        (e as u64).min(self.max_ns)
    }

    /// Adds one sample.
    pub fn record(&mut self, ns: u64) {
        let b = Self::bucket(ns);
        if let Some(c) = self.counts.get_mut(b) {
            *c = c.saturating_add(1);
        }
        self.total += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest sample (ns).
    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// The `p`-th percentile (0..=100) as the upper edge of its bucket (at most the max),
    /// so it overstates by at most one bucket width (~12%). None when empty.
    pub fn percentile_ns(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(self.upper_ns(i));
            }
        }
        Some(self.max_ns)
    }
}

/// Nearest-rank percentile of already sorted values. None when empty.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Why a player ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlayerError {
    /// TCP connect failed (refused, unreachable, timeout).
    ConnectFailed,
    /// The server refused the request (RTMP _error / onStatus error, HTTP status != 200).
    Refused,
    /// The server closed the connection before the run ended.
    ClosedEarly,
    /// The server sent something the player could not parse.
    Protocol,
}

/// What one player measured.
#[derive(Debug, Clone, Default)]
pub struct PlayerStats {
    /// Time from starting the player to being connected (ns).
    pub connect_ns: Option<u64>,
    /// Time from starting the player to its first video frame (ns).
    pub first_frame_ns: Option<u64>,
    /// Bytes received (protocol overhead included).
    pub bytes: u64,
    /// Video frames received.
    pub video_frames: u64,
    /// Audio frames (FLV tags) or packets (RTP) received.
    pub audio_packets: u64,
    /// Bytes received in the measured window (protocol overhead included).
    pub window_bytes: u64,
    /// Codec payload bytes of audio and video frames (FLV tag bodies, depacketized RTP).
    pub media_bytes: u64,
    /// WHEP: the resource was deleted (DELETE answered 2xx) when the player stopped.
    pub resource_deleted: bool,
    /// Media position: largest timestamp distance from the first media timestamp (ms).
    pub media_ms: u64,
    /// Times the player went into the stalled state.
    pub stalls: u32,
    /// Times it came back out of it.
    pub recoveries: u32,
    /// Stalled right now.
    pub stalled: bool,
    /// Latency samples taken in the measured window.
    pub latency: Histogram,
    /// Why it ended, if badly.
    pub error: Option<PlayerError>,
    started_ns: u64,
    first_media_at_ns: Option<u64>,
    first_ts: u32,
}

impl PlayerStats {
    /// A player started at `started_ns` (ns since tool start).
    pub fn new(started_ns: u64) -> Self {
        Self {
            started_ns,
            ..Self::default()
        }
    }

    /// The player is connected.
    pub fn connected(&mut self, shared: &Shared, now_ns: u64) {
        if self.connect_ns.is_none() {
            self.connect_ns = Some(now_ns.saturating_sub(self.started_ns));
            shared.connected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `n` bytes arrived.
    pub fn received(&mut self, shared: &Shared, n: usize) {
        self.bytes += n as u64;
        if shared.phase() == Phase::Measuring {
            self.window_bytes += n as u64;
        }
        shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// One audio (8) / video (9) / data tag arrived; `prefix` is at least the first
    /// [`crate::fingerprint::FINGERPRINT_PREFIX`] bytes of a video payload of `len` bytes.
    pub fn media(
        &mut self,
        shared: &Shared,
        now_ns: u64,
        tag_type: u8,
        timestamp: u32,
        len: usize,
        prefix: &[u8],
    ) {
        if tag_type != flv::TAG_AUDIO && tag_type != flv::TAG_VIDEO {
            return;
        }
        // Sequence headers are not media: the first frame, the media clock and stalls count
        // from the first coded frame (a server without a GOP cache sends headers at once and
        // the first picture only at the next keyframe).
        if crate::publish::is_config_tag(tag_type, prefix) {
            return;
        }
        self.media_bytes += len as u64;
        if tag_type == flv::TAG_AUDIO {
            self.audio_packets += 1;
        }
        if tag_type == flv::TAG_VIDEO {
            self.video_frames += 1;
            if self.first_frame_ns.is_none() {
                self.first_frame_ns = Some(now_ns.saturating_sub(self.started_ns));
            }
            if let Some(index) = &shared.index
                && shared.phase() == Phase::Measuring
                && let Some(l) = index.latency_ns(fingerprint(len, prefix), now_ns)
            {
                self.latency.record(l);
            }
        }
        self.advance(shared, now_ns, timestamp);
    }

    /// One depacketized WebRTC frame of `len` bytes arrived. Only video moves the media
    /// position (`video_ms`: its RTP time in ms), since audio and video RTP clocks have
    /// unrelated random origins.
    pub fn rtp_media(
        &mut self,
        shared: &Shared,
        now_ns: u64,
        video: bool,
        video_ms: u64,
        len: usize,
    ) {
        self.media_bytes += len as u64;
        if !video {
            self.audio_packets += 1;
            return;
        }
        self.video_frames += 1;
        if self.first_frame_ns.is_none() {
            self.first_frame_ns = Some(now_ns.saturating_sub(self.started_ns));
        }
        // Wrapping to 32 bits is harmless: positions are wrapping differences.
        self.advance(shared, now_ns, video_ms as u32);
    }

    /// Moves the media position to `timestamp` (ms) and re-checks the stall state.
    fn advance(&mut self, shared: &Shared, now_ns: u64, timestamp: u32) {
        match self.first_media_at_ns {
            None => {
                self.first_media_at_ns = Some(now_ns);
                self.first_ts = timestamp;
            }
            Some(_) => {
                let pos = u64::from(timestamp.wrapping_sub(self.first_ts));
                // A timestamp slightly before the first one (audio/video interleave) would
                // wrap to a huge offset: ignore offsets over 2^31 ms.
                if pos < 1 << 31 {
                    self.media_ms = self.media_ms.max(pos);
                }
            }
        }
        self.check_stall(shared, now_ns);
    }

    /// Updates the stalled state at `now_ns` (also called with no new media).
    pub fn check_stall(&mut self, shared: &Shared, now_ns: u64) {
        let Some(first) = self.first_media_at_ns else {
            return;
        };
        let wall_ms = now_ns.saturating_sub(first) / 1_000_000;
        let behind = wall_ms.saturating_sub(self.media_ms);
        if behind > STALL_THRESHOLD_MS {
            if !self.stalled {
                self.stalled = true;
                self.stalls += 1;
                shared.stalled_now.fetch_add(1, Ordering::Relaxed);
            }
        } else if self.stalled {
            self.stalled = false;
            self.recoveries += 1;
            shared.stalled_now.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The player ended with `e` (first error wins).
    pub fn fail(&mut self, shared: &Shared, e: PlayerError) {
        if self.error.is_none() {
            self.error = Some(e);
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Leaves the stalled count when the player ends.
    pub fn finish(&mut self, shared: &Shared) {
        if self.stalled {
            shared.stalled_now.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(50.0));
        assert_eq!(percentile_sorted(&v, 95.0), Some(95.0));
        assert_eq!(percentile_sorted(&v, 99.0), Some(99.0));
        assert_eq!(percentile_sorted(&v, 100.0), Some(100.0));
        assert_eq!(percentile_sorted(&v, 0.0), Some(1.0));
        assert_eq!(percentile_sorted(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile_sorted(&[], 50.0), None);
    }

    #[test]
    fn histogram_percentiles_within_a_bucket() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile_ns(50.0), None);
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000);
        }
        let p50 = h.percentile_ns(50.0).unwrap() as f64 / 1e6;
        assert!((50.0..=50.0 * 1.13).contains(&p50), "p50 {p50}");
        let p99 = h.percentile_ns(99.0).unwrap() as f64 / 1e6;
        assert!((99.0..=100.0).contains(&p99), "p99 {p99}");
        assert_eq!(h.percentile_ns(100.0), Some(100_000_000));
        let mut g = Histogram::default();
        g.record(5); // underflow
        g.record(60_000_000_000); // overflow
        h.merge(&g);
        assert_eq!((h.count(), h.max_ns()), (102, 60_000_000_000));
        assert_eq!(h.percentile_ns(100.0), Some(60_000_000_000));
        assert!(h.percentile_ns(0.5).unwrap() <= HIST_MIN_NS);
    }

    #[test]
    fn stalls_counted_on_transitions() {
        let shared = Shared::new(None);
        let mut p = PlayerStats::new(0);
        let ms = 1_000_000u64;
        p.media(&shared, 100 * ms, 9, 1000, 10, &[0x17]);
        assert_eq!(p.first_frame_ns, Some(100 * ms));
        p.media(&shared, 1100 * ms, 9, 2000, 10, &[0x27]);
        assert!(!p.stalled);
        p.check_stall(&shared, 3200 * ms); // 3.1 s wall, 1 s media
        assert!(p.stalled);
        p.check_stall(&shared, 3300 * ms);
        assert_eq!(p.stalls, 1, "one transition");
        assert_eq!(shared.stalled_now.load(Ordering::Relaxed), 1);
        p.media(&shared, 3400 * ms, 9, 4500, 10, &[0x27]); // caught up (3.5 s media)
        assert!(!p.stalled);
        assert_eq!((p.stalls, p.recoveries, p.media_ms), (1, 1, 3500));
        assert_eq!(shared.stalled_now.load(Ordering::Relaxed), 0);
        p.media(&shared, 3500 * ms, 8, 900, 10, &[]); // earlier audio: ignored for position
        assert_eq!(p.media_ms, 3500);
        assert_eq!((p.audio_packets, p.video_frames, p.media_bytes), (1, 3, 40));
    }

    #[test]
    fn rtp_media_counts_and_positions_from_video_only() {
        let shared = Shared::new(None);
        let mut p = PlayerStats::new(0);
        let ms = 1_000_000u64;
        p.rtp_media(&shared, 10 * ms, false, 0, 100); // audio before any video
        assert_eq!((p.audio_packets, p.first_frame_ns), (1, None));
        // A video RTP clock near the 32-bit wrap still yields positions from the first frame.
        let base = u64::from(u32::MAX) - 20;
        p.rtp_media(&shared, 20 * ms, true, base, 1000);
        p.rtp_media(&shared, 60 * ms, true, base + 40, 500);
        assert_eq!(p.first_frame_ns, Some(20 * ms));
        assert_eq!((p.video_frames, p.media_ms, p.media_bytes), (2, 40, 1600));
        p.received(&shared, 10);
        shared.set_phase(Phase::Measuring);
        p.received(&shared, 7);
        assert_eq!((p.bytes, p.window_bytes), (17, 7));
    }

    #[test]
    fn latency_sampled_only_in_window() {
        let frames = [vec![0x17u8, 1, 2, 3], vec![0x27u8, 4, 5, 6]];
        let idx = Arc::new(FrameIndex::new(frames.iter().map(|f| f.as_slice())));
        idx.record_send(1, 1_000_000);
        let shared = Shared::new(Some(idx));
        let mut p = PlayerStats::new(0);
        p.media(&shared, 3_000_000, 9, 0, 4, &frames[1]);
        assert_eq!(p.latency.count(), 0);
        shared.set_phase(Phase::Measuring);
        p.media(&shared, 3_000_000, 9, 40, 4, &frames[1]);
        p.media(&shared, 3_000_000, 9, 80, 4, &frames[0]); // never sent: no sample
        assert_eq!((p.latency.count(), p.latency.max_ns()), (1, 2_000_000));
    }
}
