//! `[webrtc]`: the WebRTC (WHEP playback, WHIP ingest) UDP listener and its limits.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ServerError;

/// Longest SDP offer accepted by any configuration (`webrtc.max_sdp_bytes` is capped here).
pub const MAX_SDP_BYTES_CEILING: usize = 1024 * 1024;
/// Most announced addresses (each becomes one ICE candidate in every answer).
pub const MAX_ANNOUNCE: usize = 16;

/// `[webrtc]`: WHEP playback over one shared UDP port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebRtcConfig {
    /// Serve WHEP (`POST /{app}/{stream}/whep`) and bind the UDP port.
    pub enabled: bool,
    /// UDP address every peer's media uses (one socket shared by all peers).
    pub listen: SocketAddr,
    /// IPs or hostnames offered as ICE host candidates (NAT 1:1, cloud). Empty: the listen
    /// IP when it is a specific address, else the host's primary interface address.
    pub announce: Vec<String>,
    /// Most WebRTC peers on the server (each holds DTLS/SRTP state and a send buffer).
    pub max_peers: usize,
    /// Most WebRTC peers of one stream (each stream's audio transcoder is shared).
    pub max_peers_per_stream: usize,
    /// A peer that has not connected within this long, or that has sent nothing (no
    /// consent check, no RTCP) for this long, is closed and freed.
    pub ice_timeout_ms: u64,
    /// Largest SDP offer (or trickle fragment) accepted; bigger bodies get 413.
    pub max_sdp_bytes: usize,
    /// WHIP ingest: a keyframe is requested (PLI) from the publisher when none came for this
    /// long. Browsers send keyframes only on request, and HLS segments and the GOP cache need
    /// one every couple of seconds.
    pub whip_keyframe_interval_ms: u64,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8189)),
            announce: Vec::new(),
            max_peers: 1000,
            max_peers_per_stream: 500,
            ice_timeout_ms: 15_000,
            max_sdp_bytes: 32 * 1024,
            whip_keyframe_interval_ms: 2000,
        }
    }
}

impl WebRtcConfig {
    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |key: &str, why: &str| Err(ServerError::Config(format!("{key}: {why}")));
        if self.max_peers == 0 {
            return bad("webrtc.max_peers", "must be positive");
        }
        if self.max_peers_per_stream == 0 {
            return bad("webrtc.max_peers_per_stream", "must be positive");
        }
        if !(1000..=300_000).contains(&self.ice_timeout_ms) {
            return bad("webrtc.ice_timeout_ms", "must be between 1000 and 300000");
        }
        if !(1024..=MAX_SDP_BYTES_CEILING).contains(&self.max_sdp_bytes) {
            return bad("webrtc.max_sdp_bytes", "must be between 1024 and 1048576");
        }
        if !(500..=60_000).contains(&self.whip_keyframe_interval_ms) {
            return bad(
                "webrtc.whip_keyframe_interval_ms",
                "must be between 500 and 60000",
            );
        }
        if self.announce.len() > MAX_ANNOUNCE {
            return bad("webrtc.announce", "at most 16 addresses");
        }
        if self.announce.iter().any(|a| a.trim().is_empty()) {
            return bad("webrtc.announce", "entries must not be empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_the_key() {
        WebRtcConfig::default().validate().unwrap();
        let c = WebRtcConfig {
            max_sdp_bytes: 10,
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("webrtc.max_sdp_bytes"), "{e}");
        let c = WebRtcConfig {
            max_peers: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("max_peers"));
        let c = WebRtcConfig {
            whip_keyframe_interval_ms: 10,
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("webrtc.whip_keyframe_interval_ms"), "{e}");
    }
}
