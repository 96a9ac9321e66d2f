//! `[webrtc]`: WebRTC (WHEP playback, WHIP ingest): the UDP sockets, the ICE-TCP listener and
//! their limits.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Longest SDP offer accepted by any configuration (`webrtc.max_sdp_bytes` is capped here).
pub const MAX_SDP_BYTES_CEILING: usize = 1024 * 1024;
/// Most announced addresses (each becomes one ICE candidate in every answer).
pub const MAX_ANNOUNCE: usize = 16;
/// Most UDP sockets sharing the WebRTC port (`webrtc.udp_sockets`, and the per-core default
/// is capped here): beyond this, more readers only add contention on the routing lock.
pub const MAX_UDP_SOCKETS: usize = 16;
/// Largest socket buffer that may be asked for (`webrtc.socket_buffer_bytes`).
pub const MAX_SOCKET_BUFFER_BYTES: usize = 256 * 1024 * 1024;
/// Most STUN/TURN servers announced to clients (`webrtc.ice_servers`, one `Link` header each).
pub const MAX_ICE_SERVERS: usize = 8;
/// Longest URI, username or credential of an announced ICE server.
pub const MAX_ICE_SERVER_FIELD: usize = 512;

/// A STUN or TURN server told to WHEP/WHIP clients in the 201 answer's `Link` headers
/// (`rel="ice-server"`), for clients behind NATs the server's own candidates cannot reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// A `stun:`, `stuns:`, `turn:` or `turns:` URI (RFC 7064, RFC 7065).
    pub urls: String,
    /// TURN username (sent with `credential-type="password"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServer {
    /// The `Link` header value (RFC 8288 with the WHIP/WHEP `ice-server` relation).
    pub fn link(&self) -> String {
        let mut v = format!("<{}>; rel=\"ice-server\"", self.urls);
        if let (Some(u), Some(c)) = (&self.username, &self.credential) {
            v.push_str(&format!(
                "; username=\"{u}\"; credential=\"{c}\"; credential-type=\"password\""
            ));
        }
        v
    }

    fn check(&self) -> Result<(), String> {
        let schemes = ["stun:", "stuns:", "turn:", "turns:"];
        if !schemes.iter().any(|s| self.urls.starts_with(s)) {
            return Err(format!(
                "{}: must start with stun:, stuns:, turn: or turns:",
                self.urls
            ));
        }
        let fields = [
            Some(&self.urls),
            self.username.as_ref(),
            self.credential.as_ref(),
        ];
        for f in fields.into_iter().flatten() {
            // Quotes, angle brackets and control characters would break the header's syntax.
            if f.len() > MAX_ICE_SERVER_FIELD
                || f.chars()
                    .any(|c| c.is_control() || c == '"' || c == '<' || c == '>')
            {
                return Err(format!(
                    "{}: fields must be at most {MAX_ICE_SERVER_FIELD} bytes without quotes, angle brackets or control characters",
                    self.urls
                ));
            }
        }
        if self.username.is_some() != self.credential.is_some() {
            return Err(format!(
                "{}: username and credential go together",
                self.urls
            ));
        }
        Ok(())
    }
}

/// Ceiling of `webrtc.max_tcp_connections` (each connection holds a task and a write queue).
pub const MAX_TCP_CONNECTIONS_CEILING: usize = 1_000_000;

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
    /// Most WebRTC peers of one stream.
    pub max_peers_per_stream: usize,
    /// Most WebRTC peers pending at once (offer answered, ICE and DTLS not connected yet),
    /// over all addresses; they count towards `max_peers` too. Browsers connect within a
    /// second on most paths, so even a burst of viewers keeps few pending; without this cap,
    /// offers that never connect would hold `max_peers` slots for `ice_timeout_ms` each and
    /// refuse everyone else. Beyond it an offer gets 503 `{"code":"limit"}`.
    pub max_pending_peers: usize,
    /// Most pending WebRTC peers of one client address (at most `max_pending_peers`): several
    /// viewers behind one NAT may join at once, but one address holding more handshakes
    /// than this is a flood, which then waits for its own peers to connect or time out while
    /// every other address still gets in. Addresses count as the connection limits count
    /// them (IPv6 by its /64), and `limits.exempt` ones (a reverse proxy in front of WHEP:
    /// by default loopback) only in the total.
    pub max_pending_peers_per_ip: usize,
    /// A peer that has not connected within this long, or that has sent nothing (no
    /// consent check, no RTCP) for this long, is closed and freed.
    pub ice_timeout_ms: u64,
    /// Largest SDP offer (or trickle fragment) accepted; bigger bodies get 413.
    pub max_sdp_bytes: usize,
    /// UDP sockets bound to `listen` with SO_REUSEPORT, one reader task each (the kernel
    /// hashes each remote address to one socket). 0: one per available core, at most
    /// [`MAX_UDP_SOCKETS`]; 1: a single socket without SO_REUSEPORT.
    pub udp_sockets: usize,
    /// Receive and send buffer asked of the kernel for each UDP socket (best effort: the
    /// kernel caps it at net.core.rmem_max / wmem_max, which is logged). 0: the OS default.
    /// 4 MiB holds about 3000 full-size datagrams, a few hundred ms of bursts at 100 Mbit/s.
    pub socket_buffer_bytes: usize,
    /// ICE-TCP (RFC 6544 passive candidate, RFC 4571 framing) listen address, for viewers
    /// whose UDP is blocked. Empty: no TCP candidate.
    pub tcp_listen: String,
    /// Most ICE-TCP connections open at once (further ones are closed at accept and counted).
    pub max_tcp_connections: usize,
    /// WHIP ingest: a keyframe is requested (PLI) from the publisher when none came for this
    /// long. Browsers send keyframes only on request, and HLS segments and the GOP cache need
    /// one every couple of seconds.
    pub whip_keyframe_interval_ms: u64,
    /// STUN/TURN servers announced to WHEP/WHIP clients in `Link` headers (at most
    /// [`MAX_ICE_SERVERS`]). Empty by default: the server is ICE-lite with public candidates
    /// (`announce`), which is enough unless clients sit behind symmetric NATs.
    pub ice_servers: Vec<IceServer>,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8189)),
            announce: Vec::new(),
            max_peers: 1000,
            max_peers_per_stream: 500,
            max_pending_peers: 200,
            max_pending_peers_per_ip: 16,
            ice_timeout_ms: 15_000,
            max_sdp_bytes: 32 * 1024,
            udp_sockets: 0,
            socket_buffer_bytes: 4 * 1024 * 1024,
            tcp_listen: "0.0.0.0:8189".to_owned(),
            max_tcp_connections: 10_000,
            whip_keyframe_interval_ms: 2000,
            ice_servers: Vec::new(),
        }
    }
}

impl WebRtcConfig {
    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if self.max_peers == 0 {
            return bad("webrtc.max_peers", "must be positive");
        }
        if self.ice_servers.len() > MAX_ICE_SERVERS {
            return bad("webrtc.ice_servers", "too many (at most 8)");
        }
        for s in &self.ice_servers {
            if let Err(why) = s.check() {
                return bad("webrtc.ice_servers", &why);
            }
        }
        if self.max_peers_per_stream == 0 {
            return bad("webrtc.max_peers_per_stream", "must be positive");
        }
        if self.max_pending_peers == 0 {
            return bad("webrtc.max_pending_peers", "must be positive");
        }
        if !(1..=self.max_pending_peers).contains(&self.max_pending_peers_per_ip) {
            return bad(
                "webrtc.max_pending_peers_per_ip",
                "must be between 1 and webrtc.max_pending_peers",
            );
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
        if self.udp_sockets > MAX_UDP_SOCKETS {
            return bad("webrtc.udp_sockets", "at most 16 (0 = one per core)");
        }
        if self.socket_buffer_bytes > MAX_SOCKET_BUFFER_BYTES {
            return bad("webrtc.socket_buffer_bytes", "at most 268435456");
        }
        if self.tcp_addr().is_err() {
            return bad(
                "webrtc.tcp_listen",
                "must be an IP:port socket address, or empty to disable ICE-TCP",
            );
        }
        if !(1..=MAX_TCP_CONNECTIONS_CEILING).contains(&self.max_tcp_connections) {
            return bad(
                "webrtc.max_tcp_connections",
                "must be between 1 and 1000000",
            );
        }
        Ok(())
    }

    /// The ICE-TCP listen address (`None` when `tcp_listen` is empty: ICE-TCP disabled).
    pub fn tcp_addr(&self) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        let s = self.tcp_listen.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some)
    }

    /// How many UDP sockets to bind: `udp_sockets`, or one per available core (both capped
    /// at [`MAX_UDP_SOCKETS`]).
    pub fn udp_socket_count(&self) -> usize {
        let n = if self.udp_sockets == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            self.udp_sockets
        };
        n.clamp(1, MAX_UDP_SOCKETS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_become_link_headers_and_are_validated() {
        let stun = IceServer {
            urls: "stun:stun.example.net:3478".into(),
            username: None,
            credential: None,
        };
        assert_eq!(
            stun.link(),
            r#"<stun:stun.example.net:3478>; rel="ice-server""#
        );
        let turn = IceServer {
            urls: "turn:turn.example.net?transport=udp".into(),
            username: Some("user".into()),
            credential: Some("pw".into()),
        };
        assert_eq!(
            turn.link(),
            r#"<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="pw"; credential-type="password""#
        );
        let mut c = WebRtcConfig {
            ice_servers: vec![stun, turn],
            ..WebRtcConfig::default()
        };
        assert!(c.validate().is_ok());
        for bad in [
            IceServer {
                urls: "http://x".into(),
                username: None,
                credential: None,
            },
            IceServer {
                urls: "stun:x\"y".into(),
                username: None,
                credential: None,
            },
            IceServer {
                urls: "turn:x".into(),
                username: Some("u".into()),
                credential: None,
            },
        ] {
            c.ice_servers = vec![bad];
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("webrtc.ice_servers"), "{e}");
        }
    }

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
        for (c, key) in [
            (
                WebRtcConfig {
                    max_pending_peers: 0,
                    ..Default::default()
                },
                "webrtc.max_pending_peers",
            ),
            (
                WebRtcConfig {
                    max_pending_peers: 4,
                    max_pending_peers_per_ip: 5,
                    ..Default::default()
                },
                "webrtc.max_pending_peers_per_ip",
            ),
            (
                WebRtcConfig {
                    max_pending_peers_per_ip: 0,
                    ..Default::default()
                },
                "webrtc.max_pending_peers_per_ip",
            ),
        ] {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn transport_keys_validate() {
        let d = WebRtcConfig::default();
        assert_eq!(d.tcp_addr().unwrap(), Some("0.0.0.0:8189".parse().unwrap()));
        assert!((1..=MAX_UDP_SOCKETS).contains(&d.udp_socket_count()));
        let c = WebRtcConfig {
            tcp_listen: String::new(),
            udp_sockets: 4,
            ..Default::default()
        };
        c.validate().unwrap();
        assert_eq!(c.tcp_addr().unwrap(), None);
        assert_eq!(c.udp_socket_count(), 4);
        for (c, key) in [
            (
                WebRtcConfig {
                    tcp_listen: "nope".into(),
                    ..Default::default()
                },
                "webrtc.tcp_listen",
            ),
            (
                WebRtcConfig {
                    udp_sockets: MAX_UDP_SOCKETS + 1,
                    ..Default::default()
                },
                "webrtc.udp_sockets",
            ),
            (
                WebRtcConfig {
                    max_tcp_connections: 0,
                    ..Default::default()
                },
                "webrtc.max_tcp_connections",
            ),
            (
                WebRtcConfig {
                    socket_buffer_bytes: MAX_SOCKET_BUFFER_BYTES + 1,
                    ..Default::default()
                },
                "webrtc.socket_buffer_bytes",
            ),
        ] {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}
