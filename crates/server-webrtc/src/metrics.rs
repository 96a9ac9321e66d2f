//! WebRTC series for `GET /metrics` (rendered per scrape from [`super::WebRtcStats`]).
//! Viewers and egress bytes are in the shared per-protocol series (`protocol="webrtc"`).

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{counter, describe_counter, describe_gauge, gauge};

use std::sync::Arc;

use crate::Shared;

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Describes and sets the WebRTC series (call inside the scrape's local recorder).
fn render(shared: &Shared) {
    let w = &shared.rtc;
    describe_gauge!("sluice_webrtc_peers", "WebRTC (WHEP) peers alive now.");
    describe_gauge!(
        "sluice_webrtc_transcoders",
        "Audio transcoders running now for WebRTC: the hub's derived tracks from or to Opus (AAC to Opus for WHEP viewers of RTMP streams, Opus to AAC for the other players of WHIP streams), at most one per stream and direction, lingering 10 s after their last viewer."
    );
    describe_gauge!(
        "sluice_webrtc_pending_peers",
        "WebRTC peers whose offer was answered and whose ICE and DTLS have not completed yet (bounded by webrtc.max_pending_peers)."
    );
    describe_counter!(
        "sluice_webrtc_connected_total",
        "WebRTC peers that completed ICE and DTLS."
    );
    describe_counter!(
        "sluice_webrtc_datagrams_total",
        "UDP datagrams received on the WebRTC port (result=\"dropped\": unknown source, not for a known session, or a full peer queue)."
    );
    describe_counter!(
        "sluice_webrtc_send_dropped_total",
        "Datagrams not sent because the UDP socket would block."
    );
    describe_counter!(
        "sluice_webrtc_nacks_total",
        "NACK feedback messages received from WebRTC viewers."
    );
    describe_counter!(
        "sluice_webrtc_retransmits_total",
        "RTP packets sent again to WebRTC viewers in answer to NACKs."
    );
    describe_counter!(
        "sluice_webrtc_rtp_payloads_total",
        "RTP payloads of WHEP viewers in RTP mode (H.264 video): stage=\"built\" once per stream (shared by its viewers), stage=\"written\" per viewer."
    );
    describe_counter!(
        "sluice_webrtc_low_estimate_total",
        "WebRTC viewers whose bandwidth estimate fell below half the bitrate sent to them."
    );
    describe_counter!(
        "sluice_webrtc_tcp_connections_total",
        "ICE-TCP connections (result=\"accepted\"; \"refused\": max_tcp_connections open; \"invalid\": closed for bad framing, a first frame that is no STUN request for a live peer, or silence)."
    );
    describe_counter!(
        "sluice_webrtc_tcp_frames_total",
        "RFC 4571 frames received over ICE-TCP and routed to a peer."
    );
    describe_counter!(
        "sluice_webrtc_tcp_send_dropped_total",
        "ICE-TCP packets dropped because the connection's write queue was full or it had closed."
    );
    let s = &w.stats;
    for (result, n) in [
        ("accepted", &s.tcp_accepted),
        ("refused", &s.tcp_refused),
        ("invalid", &s.tcp_invalid),
    ] {
        counter!("sluice_webrtc_tcp_connections_total", "result" => result).absolute(load(n));
    }
    counter!("sluice_webrtc_tcp_frames_total").absolute(load(&s.tcp_frames_in));
    counter!("sluice_webrtc_tcp_send_dropped_total").absolute(load(&s.tcp_send_dropped));
    let q = &s.quality;
    counter!("sluice_webrtc_nacks_total").absolute(load(&q.nacks));
    counter!("sluice_webrtc_retransmits_total").absolute(load(&q.retransmits));
    counter!("sluice_webrtc_low_estimate_total").absolute(load(&q.low_estimate));
    counter!("sluice_webrtc_rtp_payloads_total", "stage" => "built")
        .absolute(load(&s.payloads_built));
    counter!("sluice_webrtc_rtp_payloads_total", "stage" => "written")
        .absolute(load(&s.payloads_written));
    gauge!("sluice_webrtc_peers").set(w.live() as f64);
    describe_gauge!("sluice_rooms", "Rooms open now (LiveKit-protocol SFU).");
    describe_gauge!(
        "sluice_room_participants",
        "Participants in rooms now (streams brought into rooms included)."
    );
    let (rooms, participants) = shared.rooms.counts();
    gauge!("sluice_rooms").set(rooms as f64);
    gauge!("sluice_room_participants").set(participants as f64);
    gauge!("sluice_webrtc_transcoders").set(super::transcoders(&shared.ctl.hub) as f64);
    gauge!("sluice_webrtc_pending_peers").set(w.tables().pending as f64);
    counter!("sluice_webrtc_connected_total").absolute(load(&s.connected));
    let (all, dropped) = (load(&s.datagrams_in), load(&s.datagrams_dropped));
    counter!("sluice_webrtc_datagrams_total", "result" => "routed")
        .absolute(all.saturating_sub(dropped));
    counter!("sluice_webrtc_datagrams_total", "result" => "dropped").absolute(dropped);
    counter!("sluice_webrtc_send_dropped_total").absolute(load(&s.send_dropped));
    counter!("sluice_connections_refused_total", "protocol" => "webrtc", "reason" => "limit")
        .absolute(load(&s.refused));
}

/// The WebRTC histograms (one sample per viewer per stats interval, no per-session labels),
/// as exposition text appended after the recorder's output.
fn render_histograms(shared: &Shared) -> String {
    let mut out = String::new();
    let w = &shared.rtc;
    let q = &w.stats.quality;
    q.rtt.render(
        "sluice_webrtc_rtt_seconds",
        "Round-trip time to WebRTC viewers, from their Receiver Reports (one sample per viewer per second).",
        &mut out,
    );
    q.estimate.render(
        "sluice_webrtc_bwe_estimate_bits_per_second",
        "Egress bandwidth estimate (TWCC) of WebRTC viewers that run bandwidth estimation (one sample per viewer per second; broadcast WHEP viewers run none).",
        &mut out,
    );
    out
}

/// The WebRTC server's figures in `/metrics` and `GET /api/v1/server`.
pub(crate) struct Source(pub(crate) Arc<Shared>);

/// The WebRTC port and the ICE candidates offered, in `GET /api/v1/server`.
#[derive(Debug, serde::Serialize)]
struct Summary {
    listen: String,
    candidates: Vec<String>,
    peers: usize,
    /// Peers answered and not connected yet.
    pending_peers: usize,
    /// UDP sockets sharing the port (SO_REUSEPORT).
    udp_sockets: usize,
    /// The ICE-TCP listener (`None`: ICE-TCP disabled).
    tcp_listen: Option<String>,
    /// Addresses offered as passive TCP candidates.
    tcp_candidates: Vec<String>,
    /// ICE-TCP connections open now.
    tcp_connections: usize,
    /// Rooms open now.
    rooms: usize,
    /// Participants in rooms now.
    room_participants: usize,
}

impl control::StatusSource for Source {
    fn metrics(&self) {
        render(&self.0);
    }

    fn metrics_text(&self) -> String {
        render_histograms(&self.0)
    }

    fn server_info(&self) -> Option<(&'static str, serde_json::Value)> {
        let w = &self.0.rtc;
        let (rooms, room_participants) = self.0.rooms.counts();
        let s = Summary {
            listen: w.local.to_string(),
            candidates: w.candidates.iter().map(ToString::to_string).collect(),
            peers: w.live(),
            pending_peers: w.tables().pending,
            udp_sockets: w.sockets.len(),
            tcp_listen: w.tcp.as_ref().map(|t| t.local.to_string()),
            tcp_candidates: w.tcp_candidates.iter().map(ToString::to_string).collect(),
            tcp_connections: w.tcp.as_ref().map_or(0, |t| t.open()),
            rooms,
            room_participants,
        };
        Some(("webrtc", serde_json::to_value(s).ok()?))
    }
}
