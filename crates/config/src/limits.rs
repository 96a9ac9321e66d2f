//! `[limits]`: protective limits, and what values of them make sense.

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::cidr::Cidr;

/// Smallest `limits.http_max_header_bytes` (hyper's minimum read buffer).
pub const MIN_HTTP_HEADER_BYTES: usize = 8192;
/// Largest `limits.http_max_header_bytes` (a request head has no business being bigger).
pub const MAX_HTTP_HEADER_BYTES: usize = 1024 * 1024;

/// Longest HTTP timeout accepted (an hour): beyond it a timeout protects nothing.
pub const MAX_HTTP_TIMEOUT_MS: u64 = 3_600_000;
/// Largest `limits.listener_reserve_percent`: four listeners (RTMP, RTMPS, HTTP, HTTPS) may
/// each keep this share, and together they keep at most the whole of `max_connections`.
pub const MAX_LISTENER_RESERVE_PERCENT: u8 = 25;

/// `[limits]`: protective limits; exceeding one refuses or closes that one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Deprecated and ignored: one connection limit covers every listener now
    /// (`max_connections`). Still accepted so old files load; a warning names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rtmp_connections: Option<usize>,
    /// Deprecated and ignored: viewers are bounded by `max_connections` and, when set,
    /// `max_viewers_per_stream`. Still accepted so old files load; a warning names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_http_viewers: Option<usize>,
    /// Most live streams at once.
    pub max_streams: usize,
    /// Time (ms) a new RTMP connection has to finish the handshake and `connect`.
    pub handshake_timeout_ms: u64,
    /// Time (ms) without a byte read or written after which a connection is closed.
    pub idle_timeout_ms: u64,
    /// Largest RTMP message accepted (a declared length above it closes the connection).
    pub max_message_len: u32,
    /// Most chunk stream ids one RTMP connection may use.
    pub max_chunk_streams: usize,
    /// Most bytes all RTMP connections together may hold in incomplete (partly received)
    /// messages. Each connection has its own budget too (64 KiB until a publish is admitted,
    /// then `max_message_len` + 64 KiB); this one bounds the sum, so many connections cannot
    /// exhaust memory between them. A connection whose growth would exceed it is closed.
    /// 256 MiB holds about 30 maximum-size messages in flight at once, or about a thousand
    /// publishers each midway through a typical (100-200 KB) keyframe. At least
    /// `max_message_len`.
    pub max_rtmp_partial_bytes: usize,
    /// Most open TCP connections across every listener (RTMP, RTMPS, HTTP, HTTPS); beyond it
    /// a new connection is closed right after accept. 10,000 is about what two cores serve
    /// as HTTP-FLV viewers of one SD stream, and stays inside the descriptor limit the
    /// binary raises at start (each connection costs one descriptor and tens of KB).
    pub max_connections: usize,
    /// Most open TCP connections from one client address (IPv6: one /64), so one host cannot
    /// take every slot. 1,000 lets a large office or a carrier NAT watch, while a single
    /// address still holds at most a tenth of `max_connections`.
    pub max_connections_per_ip: usize,
    /// New connections one client address may open per second, on average (0 = no rate
    /// limit): stops connect floods that churn handshakes without ever holding a slot.
    /// 200 per second refills a NAT's audience quickly.
    pub connections_per_ip_per_second: u32,
    /// Connections one client address may open at once before the per-second rate applies:
    /// 1,000 lets one machine start a load test of 1,000 viewers at once.
    pub connections_per_ip_burst: u32,
    /// Client addresses (CIDR blocks such as "10.0.0.0/8" or bare addresses) exempt from the
    /// per-address limits (trusted proxies, monitoring). Loopback by default: a reverse
    /// proxy or a load test on the same host shows every client as 127.0.0.1 or ::1. The
    /// global `max_connections` still applies.
    pub exempt: Vec<String>,
    /// Most publishers at once in one app (`{app}/*`); 0 = unlimited. Unlimited by default:
    /// one app usually carries every stream and `max_streams` already bounds the total.
    pub max_publishers_per_app: usize,
    /// Most viewers of one stream across RTMP, HTTP-FLV, WebSocket-FLV, HLS and WebRTC
    /// (0 = unlimited, the default, as SRS, nginx-rtmp and MediaMTX do: `max_connections`
    /// and `webrtc.max_peers` bound the total). Set it so one popular stream cannot starve
    /// the others of bandwidth.
    pub max_viewers_per_stream: usize,
    /// Largest HTTP request head (request line and headers) in bytes; bigger gets 431. 16 KiB
    /// fits any real browser or player request (at least 8192, hyper's minimum buffer).
    pub http_max_header_bytes: usize,
    /// Time (ms) an HTTP client has to send a whole request head, counted from the accept
    /// (or the end of the TLS handshake) for the first request and from its first byte for
    /// the next ones on a keep-alive connection: a connection that sends nothing, or trickles
    /// a head (slowloris), or an HTTP/2 connection that never makes a request, is closed. 10 s
    /// is ample for any client on a slow network.
    pub http_header_timeout_ms: u64,
    /// Time (ms) an HTTP/1.1 or HTTP/2 connection may stay open with no request in flight
    /// (keep-alive) before it is closed (HTTP/2 with a GOAWAY). 60 s is longer than any HLS
    /// player's reload interval (`hls.target_duration_ms` is at most 30 s), so players keep
    /// their connection, and short enough that idle connections do not pile up in
    /// `max_connections`.
    pub http_idle_timeout_ms: u64,
    /// Longest wait (ms) for the next bytes of a request body (a WHIP/WHEP offer, a
    /// recording request, a VOD upload): a stalled body is answered 408 and its connection
    /// closed (an upload's temporary file is removed). 30 s rides out a mobile network's
    /// stall.
    pub http_body_timeout_ms: u64,
    /// Slowest average rate (bytes per second) of a request body once its first
    /// `http_body_timeout_ms` are over (0 = no minimum): a client that drips a byte just often
    /// enough to dodge `http_body_timeout_ms` is cut all the same. 1 KiB/s is far below any
    /// real uplink.
    pub http_body_min_bytes_per_s: u64,
    /// Longest time (ms) a response may wait for the client to take more bytes (a player that
    /// stopped reading, a dead peer, an HTTP/2 client that never opens its flow-control
    /// window; WebSocket-FLV too): the connection is closed. A response that is only waiting
    /// for media (HTTP-FLV before the next frame, an HLS blocking request) is not affected, so
    /// live streams that run for hours are never cut. 30 s outlasts a player's rebuffering.
    pub http_send_timeout_ms: u64,
    /// How often (ms) an HTTP/2 connection with requests in flight is sent a PING (0 = never);
    /// one not answered within `http2_keepalive_timeout_ms` closes the connection: a dead
    /// peer behind a long HLS blocking request or a paused stream is found. Also keeps NAT
    /// bindings alive. 30 s.
    pub http2_keepalive_interval_ms: u64,
    /// Time (ms) an HTTP/2 PING has to be answered.
    pub http2_keepalive_timeout_ms: u64,
    /// Share of `max_connections` (percent) kept for each listener (RTMP and HTTP, plus RTMPS
    /// and HTTPS when TLS is on) that no other listener can take; the rest is shared, first
    /// come first served. A flood of one listener (thousands of idle HTTP connections) then
    /// leaves RTMP publishers and players, and the other listeners, their own slots. 5% (500
    /// of 10,000) is enough for every publisher a server has while a busy listener can still
    /// use 85-95% of the total. 0: one pool for all.
    pub listener_reserve_percent: u8,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_rtmp_connections: None,
            max_http_viewers: None,
            max_streams: 1024,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
            max_message_len: 8 * 1024 * 1024,
            max_chunk_streams: 64,
            max_rtmp_partial_bytes: 256 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            connections_per_ip_per_second: 200,
            connections_per_ip_burst: 1_000,
            exempt: vec!["127.0.0.0/8".to_owned(), "::1".to_owned()],
            max_publishers_per_app: 0,
            max_viewers_per_stream: 0,
            http_max_header_bytes: 16 * 1024,
            http_header_timeout_ms: 10_000,
            http_idle_timeout_ms: 60_000,
            http_body_timeout_ms: 30_000,
            http_body_min_bytes_per_s: 1024,
            http_send_timeout_ms: 30_000,
            http2_keepalive_interval_ms: 30_000,
            http2_keepalive_timeout_ms: 10_000,
            listener_reserve_percent: 5,
        }
    }
}

impl LimitsConfig {
    /// The deprecated keys this configuration sets (ignored; the binary warns about each).
    pub fn deprecated_keys(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.max_rtmp_connections.is_some() {
            v.push("limits.max_rtmp_connections (use limits.max_connections)");
        }
        if self.max_http_viewers.is_some() {
            v.push("limits.max_http_viewers (use limits.max_connections)");
        }
        v
    }

    /// Checks the connection-limit keys, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("limits.{key}: {why}")));
        if self.max_connections == 0 {
            return bad("max_connections", "must be positive");
        }
        if self.max_connections_per_ip == 0 {
            return bad("max_connections_per_ip", "must be positive");
        }
        if self.connections_per_ip_per_second != 0 && self.connections_per_ip_burst == 0 {
            return bad(
                "connections_per_ip_burst",
                "must be positive when connections_per_ip_per_second is set",
            );
        }
        if !(MIN_HTTP_HEADER_BYTES..=MAX_HTTP_HEADER_BYTES).contains(&self.http_max_header_bytes) {
            return bad("http_max_header_bytes", "must be between 8192 and 1048576");
        }
        let timeouts = [
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("http_idle_timeout_ms", self.http_idle_timeout_ms),
            ("http_body_timeout_ms", self.http_body_timeout_ms),
            ("http_send_timeout_ms", self.http_send_timeout_ms),
            (
                "http2_keepalive_timeout_ms",
                self.http2_keepalive_timeout_ms,
            ),
        ];
        for (key, ms) in timeouts {
            if !(100..=MAX_HTTP_TIMEOUT_MS).contains(&ms) {
                return bad(key, "must be between 100 and 3600000");
            }
        }
        if self.http2_keepalive_interval_ms != 0
            && !(1000..=MAX_HTTP_TIMEOUT_MS).contains(&self.http2_keepalive_interval_ms)
        {
            return bad(
                "http2_keepalive_interval_ms",
                "must be 0 (never) or between 1000 and 3600000",
            );
        }
        if self.listener_reserve_percent > MAX_LISTENER_RESERVE_PERCENT {
            return bad(
                "listener_reserve_percent",
                "must be at most 25 (four listeners may each keep a share)",
            );
        }
        if let Some(b) = self.exempt.iter().find(|b| b.parse::<Cidr>().is_err()) {
            return Err(ConfigError(format!(
                "limits.exempt: {b:?} is not an address or CIDR block"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let ok = LimitsConfig::default();
        assert!(ok.validate().is_ok());
        type Edit = fn(&mut LimitsConfig);
        let cases: [(Edit, &str); 9] = [
            (
                |c| c.http_idle_timeout_ms = 0,
                "limits.http_idle_timeout_ms",
            ),
            (
                |c| c.http_body_timeout_ms = 50,
                "limits.http_body_timeout_ms",
            ),
            (
                |c| c.http2_keepalive_interval_ms = 10,
                "limits.http2_keepalive_interval_ms",
            ),
            (
                |c| c.listener_reserve_percent = 30,
                "limits.listener_reserve_percent",
            ),
            (|c| c.max_connections = 0, "limits.max_connections"),
            (
                |c| c.http_max_header_bytes = 100,
                "limits.http_max_header_bytes",
            ),
            (
                |c| c.http_header_timeout_ms = 1,
                "limits.http_header_timeout_ms",
            ),
            (|c| c.exempt = vec!["10.0.0.0/33".into()], "limits.exempt"),
            (
                |c| c.connections_per_ip_burst = 0,
                "connections_per_ip_burst",
            ),
        ];
        for (edit, key) in cases {
            let mut c = LimitsConfig::default();
            edit(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
