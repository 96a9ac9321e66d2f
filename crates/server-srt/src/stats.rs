//! SRT counters, and their series in `GET /metrics` and section in `GET /api/v1/server`.
//! Viewers and egress bytes are in the shared per-protocol series (`protocol="srt"`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{counter, describe_counter, describe_gauge, gauge};

/// The SRT server's counters (relaxed atomics).
#[derive(Debug, Default)]
pub struct SrtStats {
    /// The bound address (set once at start).
    pub(crate) listen: OnceLock<SocketAddr>,
    /// SRT connections open now.
    pub open: AtomicU64,
    /// Callers accepted (handshake answered).
    pub accepted: AtomicU64,
    /// Callers rejected (stream id, access, limits).
    pub rejected: AtomicU64,
    /// MPEG-TS packets lost or reordered on publishers' streams (continuity counter jumps).
    pub continuity_errors: AtomicU64,
    /// PES packets publishers sent that were dropped (damaged, oversized, no timestamp).
    pub pes_dropped: AtomicU64,
    /// Times a publisher's stream lost MPEG-TS sync.
    pub sync_losses: AtomicU64,
    /// Publishers closed for sending no usable media within the start timeout.
    pub no_media: AtomicU64,
    /// Data packets publishers' SRT connections found missing (before retransmission).
    pub packets_lost: AtomicU64,
    /// Retransmitted data packets received from publishers.
    pub packets_retransmitted: AtomicU64,
    /// Data packets dropped by publishers' SRT receivers (too late: lost for good).
    pub packets_dropped: AtomicU64,
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Registers the series and the API section ([`control::StatusSource`]).
pub(crate) struct Source(pub(crate) Arc<SrtStats>);

impl control::StatusSource for Source {
    fn metrics(&self) {
        let s = &self.0;
        describe_gauge!("sluice_srt_connections", "SRT connections open now.");
        gauge!("sluice_srt_connections").set(load(&s.open) as f64);
        describe_counter!(
            "sluice_srt_callers_total",
            "SRT callers (result=\"accepted\", or \"rejected\": bad stream id, access control, limits)."
        );
        counter!("sluice_srt_callers_total", "result" => "accepted").absolute(load(&s.accepted));
        counter!("sluice_srt_callers_total", "result" => "rejected").absolute(load(&s.rejected));
        describe_counter!(
            "sluice_srt_ts_errors_total",
            "Damage in SRT publishers' MPEG-TS (kind=\"continuity\": packets lost past SRT's recovery; \"pes_dropped\": PES packets dropped; \"sync\": sync lost)."
        );
        describe_counter!(
            "sluice_srt_packets_total",
            "SRT data packets of publishers' connections (kind=\"lost\": found missing, \"retransmitted\": received again, \"dropped\": too late, lost for good)."
        );
        for (kind, v) in [
            ("lost", &s.packets_lost),
            ("retransmitted", &s.packets_retransmitted),
            ("dropped", &s.packets_dropped),
        ] {
            counter!("sluice_srt_packets_total", "kind" => kind).absolute(load(v));
        }
        for (kind, v) in [
            ("continuity", &s.continuity_errors),
            ("pes_dropped", &s.pes_dropped),
            ("sync", &s.sync_losses),
        ] {
            counter!("sluice_srt_ts_errors_total", "kind" => kind).absolute(load(v));
        }
    }

    fn server_info(&self) -> Option<(&'static str, serde_json::Value)> {
        let s = &self.0;
        Some((
            "srt",
            serde_json::json!({
                "listen": s.listen.get().map(ToString::to_string),
                "connections": load(&s.open),
                "accepted": load(&s.accepted),
                "rejected": load(&s.rejected),
            }),
        ))
    }
}
