//! Per-viewer quality of WHEP peers, from str0m's stats: RTT, the egress bitrate estimate
//! (only where bandwidth estimation runs: broadcast WHEP viewers negotiate no transport-cc
//! and run no BWE, so theirs stays `null` and they never count in the low-estimate
//! counter, kept for peers whose estimate drives a decision), packets sent, NACKs received, retransmitted packets,
//! the loss the viewer reports in its Receiver Reports and the selected candidate pair.
//!
//! Each peer task owns one [`PeerQuality`] (no lock); it publishes a JSON snapshot to its
//! session (for `GET /api/v1/sessions`) once per [`STATS_INTERVAL`] and adds to the
//! server-wide [`QualityTotals`] (for `/metrics`: counters and histograms without
//! per-session labels).
//!
//! Retransmissions: str0m counts them inside its egress packet count but does not export
//! them, and its bandwidth probing also sends cached packets on the RTX payload type as
//! padding, so counting RTX packets on the wire would count padding too. What is counted
//! instead is `packets` (regular + NACK answers, as str0m reports) minus the regular media
//! packets seen on the wire (media payload type, not SSRC 0, no padding bit).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use str0m::media::Mid;
use str0m::stats::{MediaEgressStats, PeerStats};

/// How often str0m emits stats events for a peer (and the API entry is refreshed).
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// An estimate below this fraction of the rate actually sent is logged (once per peer): we
/// pass video through and cannot re-encode to fit it.
pub const LOW_ESTIMATE_RATIO: f64 = 0.5;
/// Media sections tracked per peer (our answers have two; more are ignored).
pub const MAX_TRACKED_MIDS: usize = 4;
/// Media payload types tracked per peer (one per track in our answers).
pub const MAX_MEDIA_PTS: usize = 4;
/// Upper bounds (seconds) of the RTT histogram buckets.
pub const RTT_BUCKETS_S: [f64; 9] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Upper bounds (bits/s) of the bandwidth-estimate histogram buckets.
pub const ESTIMATE_BUCKETS_BPS: [f64; 8] = [100e3, 250e3, 500e3, 1e6, 2.5e6, 5e6, 10e6, 50e6];

/// A cumulative Prometheus histogram over relaxed atomics (one sample per peer per stats
/// interval).
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket (non-cumulative) counts; the last one is `+Inf`.
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum of the samples, in millionths of the unit.
    sum_micro: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    /// The exposition of the histogram `name`.
    pub(crate) fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {acc}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {acc}");
                }
            }
        }
        let sum = self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

/// Server-wide quality counters of every WebRTC peer (relaxed atomics).
#[derive(Debug)]
pub struct QualityTotals {
    /// NACK feedback messages received from viewers.
    pub nacks: AtomicU64,
    /// RTP packets sent again in answer to NACKs.
    pub retransmits: AtomicU64,
    /// Peers whose bandwidth estimate fell below [`LOW_ESTIMATE_RATIO`] of their send rate.
    pub low_estimate: AtomicU64,
    pub(crate) rtt: Histogram,
    pub(crate) estimate: Histogram,
}

impl Default for QualityTotals {
    fn default() -> Self {
        Self {
            nacks: AtomicU64::new(0),
            retransmits: AtomicU64::new(0),
            low_estimate: AtomicU64::new(0),
            rtt: Histogram::new(&RTT_BUCKETS_S),
            estimate: Histogram::new(&ESTIMATE_BUCKETS_BPS),
        }
    }
}

/// Cumulative counters of one media section, as last reported by str0m.
#[derive(Debug, Clone, Copy)]
struct MidCounters {
    mid: Mid,
    packets: u64,
    nacks: u64,
    lost: u64,
}

/// The selected ICE candidate pair.
#[derive(Debug, Clone, PartialEq)]
struct Pair {
    local: SocketAddr,
    remote: SocketAddr,
    protocol: String,
}

/// One peer's quality, owned by its task.
#[derive(Debug, Default)]
pub(crate) struct PeerQuality {
    media_pts: Vec<u8>,
    wire_media_packets: u64,
    mids: Vec<MidCounters>,
    rtt: Option<Duration>,
    estimate_bps: Option<u64>,
    loss_fraction: Option<f32>,
    pair: Option<Pair>,
    retransmits: u64,
    /// Media bytes sent and when, at the previous peer stats (for the send rate).
    last_tx: Option<(u64, Instant)>,
    send_bps: Option<u64>,
    warned_low: bool,
    /// RTP mode: video payloads this viewer wrote, and the payloads its stream built (for
    /// every viewer) when it last wrote: shared packetization shows as the second not
    /// growing with the viewers.
    payloads: Option<(u64, u64)>,
}

/// Payload type and SSRC of an RTP (not RTCP) packet; SRTP leaves the header in the clear.
fn rtp_header(b: &[u8]) -> Option<(u8, u32, bool)> {
    let (&b0, &b1) = (b.first()?, b.get(1)?);
    if b0 >> 6 != 2 || b.len() < 12 {
        return None;
    }
    let pt = b1 & 0x7f;
    // RTCP packet types 192..=223 show as 64..=95 here (RFC 5761).
    if (64..=95).contains(&pt) {
        return None;
    }
    let ssrc = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
    Some((pt, ssrc, b0 & 0x20 != 0))
}

impl PeerQuality {
    /// Registers a negotiated media payload type (its packets are "regular").
    pub(crate) fn media_pt(&mut self, pt: u8) {
        if self.media_pts.len() < MAX_MEDIA_PTS && !self.media_pts.contains(&pt) {
            self.media_pts.push(pt);
        }
    }

    /// Looks at one datagram sent to the viewer.
    pub(crate) fn on_transmit(&mut self, contents: &[u8]) {
        if let Some((pt, ssrc, padding)) = rtp_header(contents)
            && ssrc != 0
            && !padding
            && self.media_pts.contains(&pt)
        {
            self.wire_media_packets += 1;
        }
    }

    /// Takes str0m's per-peer stats (once per interval).
    pub(crate) fn on_peer(&mut self, s: &PeerStats, totals: &QualityTotals, stream: &str) {
        self.rtt = s.rtt.or(self.rtt);
        self.loss_fraction = s.egress_loss_fraction.or(self.loss_fraction);
        if let Some(b) = s.bwe_tx {
            self.estimate_bps = Some(b.as_u64());
        }
        if let Some(p) = &s.selected_candidate_pair {
            self.pair = Some(Pair {
                local: p.local.addr,
                remote: p.remote.addr,
                protocol: p.protocol.to_string(),
            });
        }
        if let Some((bytes, at)) = self.last_tx {
            let dt = s.timestamp.saturating_duration_since(at).as_secs_f64();
            if dt > 0.0 {
                let bits = s.bytes_tx.saturating_sub(bytes) as f64 * 8.0;
                self.send_bps = Some((bits / dt) as u64);
            }
        }
        self.last_tx = Some((s.bytes_tx, s.timestamp));
        if let Some(rtt) = self.rtt {
            totals.rtt.observe(rtt.as_secs_f64());
        }
        if let Some(e) = self.estimate_bps {
            totals.estimate.observe(e as f64);
        }
        if self.check_low_estimate() {
            totals.low_estimate.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                %stream,
                estimate_bps = self.estimate_bps,
                send_bps = self.send_bps,
                "webrtc viewer's bandwidth estimate is far below the stream's bitrate \
                 (video is passed through, not re-encoded: expect stalls)"
            );
        }
    }

    /// True once, the first time the estimate is below [`LOW_ESTIMATE_RATIO`] of the send
    /// rate.
    fn check_low_estimate(&mut self) -> bool {
        let (Some(e), Some(rate)) = (self.estimate_bps, self.send_bps) else {
            return false;
        };
        if self.warned_low || rate == 0 || (e as f64) >= rate as f64 * LOW_ESTIMATE_RATIO {
            return false;
        }
        self.warned_low = true;
        true
    }

    /// Takes str0m's egress stats of one media section (once per interval).
    pub(crate) fn on_egress(&mut self, s: &MediaEgressStats, totals: &QualityTotals) {
        // RTT (LSR/DLSR) and the loss fraction of the viewer's receiver reports: the peer's
        // own figures come from transport-cc feedback, which broadcast viewers do not send.
        self.rtt = s.rtt.or(self.rtt);
        self.loss_fraction = s.loss.or(self.loss_fraction);
        let lost = s.remote.as_ref().map_or(0, |r| r.packets_lost);
        let i = match self.mids.iter().position(|m| m.mid == s.mid) {
            Some(i) => i,
            None if self.mids.len() < MAX_TRACKED_MIDS => {
                self.mids.push(MidCounters {
                    mid: s.mid,
                    packets: 0,
                    nacks: 0,
                    lost: 0,
                });
                self.mids.len() - 1
            }
            None => return,
        };
        let Some(m) = self.mids.get_mut(i) else {
            return;
        };
        totals
            .nacks
            .fetch_add(s.nacks.saturating_sub(m.nacks), Ordering::Relaxed);
        m.nacks = m.nacks.max(s.nacks);
        m.packets = m.packets.max(s.packets);
        m.lost = m.lost.max(lost);
        let sent: u64 = self.mids.iter().map(|m| m.packets).sum();
        let rtx = sent.saturating_sub(self.wire_media_packets);
        if rtx > self.retransmits {
            totals
                .retransmits
                .fetch_add(rtx - self.retransmits, Ordering::Relaxed);
            self.retransmits = rtx;
        }
    }

    /// `n` more video payloads written in RTP mode; `stream_built`: the payloads the
    /// stream has built so far.
    pub(crate) fn payloads_written(&mut self, n: u64, stream_built: u64) {
        let (written, _) = self.payloads.unwrap_or_default();
        self.payloads = Some((written + n, stream_built));
    }

    /// The latest egress bitrate estimate (bits/s).
    pub(crate) fn set_estimate(&mut self, bps: u64) {
        self.estimate_bps = Some(bps);
    }

    /// The snapshot shown as the session's `webrtc` object.
    pub(crate) fn to_json(&self) -> Value {
        let sum = |f: fn(&MidCounters) -> u64| self.mids.iter().map(f).sum::<u64>();
        json!({
            "rtt_ms": self.rtt.map(|d| d.as_secs_f64() * 1000.0),
            "estimate_bps": self.estimate_bps,
            "send_bps": self.send_bps,
            "packets_sent": sum(|m| m.packets),
            "rtp_payloads_written": self.payloads.map(|p| p.0),
            "stream_rtp_payloads_built": self.payloads.map(|p| p.1),
            "nacks_received": sum(|m| m.nacks),
            "retransmitted_packets": self.retransmits,
            "loss_fraction": self.loss_fraction,
            "packets_lost": sum(|m| m.lost),
            "candidate_pair": self.pair.as_ref().map(|p| json!({
                "local": p.local.to_string(),
                "remote": p.remote.to_string(),
                "protocol": p.protocol,
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, ssrc: u32, padding: bool) -> Vec<u8> {
        let mut b = vec![0x80 | if padding { 0x20 } else { 0 }, pt, 0, 1, 0, 0, 0, 9];
        b.extend_from_slice(&ssrc.to_be_bytes());
        b.extend_from_slice(&[0xAA; 20]);
        b
    }

    #[test]
    fn parses_rtp_headers_and_skips_rtcp_stun_dtls() {
        assert_eq!(rtp_header(&rtp(102, 7, false)), Some((102, 7, false)));
        assert_eq!(rtp_header(&rtp(102, 7, true)), Some((102, 7, true)));
        // RTCP Receiver Report (PT 201) and NACK (205) are not RTP.
        let mut rr = rtp(201, 7, false);
        rr[0] = 0x81;
        assert_eq!(rtp_header(&rr), None);
        assert_eq!(rtp_header(&rtp(205, 7, false)), None);
        // STUN binding request and DTLS handshake records.
        assert_eq!(
            rtp_header(&[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42]),
            None
        );
        assert_eq!(
            rtp_header(&[22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(rtp_header(&[0x80, 96, 0, 1]), None, "truncated");
        assert_eq!(rtp_header(&[]), None);
    }

    #[test]
    fn counts_regular_media_packets_only() {
        let mut q = PeerQuality::default();
        q.media_pt(102);
        q.media_pt(111);
        for _ in 0..MAX_MEDIA_PTS + 3 {
            q.media_pt(1);
        }
        q.on_transmit(&rtp(102, 5, false));
        q.on_transmit(&rtp(111, 6, false));
        q.on_transmit(&rtp(103, 5, false)); // RTX
        q.on_transmit(&rtp(102, 0, false)); // probe
        q.on_transmit(&rtp(102, 5, true)); // padding
        assert_eq!(q.wire_media_packets, 2);
        assert!(q.media_pts.len() <= MAX_MEDIA_PTS);
    }

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = Histogram::new(&RTT_BUCKETS_S);
        for v in [0.0005, 0.02, 0.02, 3.0, f64::NAN] {
            h.observe(v);
        }
        let mut s = String::new();
        h.render("x_seconds", "help", &mut s);
        assert!(s.contains("# TYPE x_seconds histogram"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"0.001\"} 2"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"0.025\"} 4"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"1\"} 4"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"+Inf\"} 5"), "{s}");
        assert!(s.contains("x_seconds_count 5"), "{s}");
        assert!(s.contains("x_seconds_sum 3.0405"), "{s}");
    }

    #[test]
    fn low_estimate_is_reported_once() {
        let mut q = PeerQuality {
            send_bps: Some(1_000_000),
            ..Default::default()
        };
        q.set_estimate(600_000);
        assert!(!q.check_low_estimate(), "60% of the rate is fine");
        q.set_estimate(300_000);
        assert!(q.check_low_estimate());
        assert!(!q.check_low_estimate(), "only once");
    }

    #[test]
    fn json_has_every_field() {
        let mut q = PeerQuality::default();
        q.set_estimate(500_000);
        let v = q.to_json();
        for k in [
            "rtt_ms",
            "estimate_bps",
            "send_bps",
            "packets_sent",
            "rtp_payloads_written",
            "stream_rtp_payloads_built",
            "nacks_received",
            "retransmitted_packets",
            "loss_fraction",
            "packets_lost",
            "candidate_pair",
        ] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
        assert_eq!(v["estimate_bps"], 500_000);
        assert!(v["rtt_ms"].is_null() && v["candidate_pair"].is_null());
    }
}
