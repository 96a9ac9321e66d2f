//! Thin wrappers that expose the crate-private parsers of hostile input to the cargo-fuzz
//! targets in `fuzz/` (and nothing else): WHEP offer checks, the STUN username routing of the
//! shared UDP socket, and the auth parsers (queries, signed URLs, CIDRs, rule patterns, JWTs).
//! (WHIP's per-codec video parsers are sans-IO in `rtp` and `media`: the webrtc_video target
//! calls them directly.)
//! Not a stable API: hidden from the docs, it changes with the code it wraps.

use std::net::{IpAddr, SocketAddr};

use tokio::sync::mpsc;

use crate::auth::cidr::Cidr;
use crate::auth::jwt::JwtKeys;
use crate::auth::rules::Rules;
use crate::auth::{Action, AuthConfig, AuthMode, AuthRule};
use crate::webrtc::{Datagram, PeerRoute, WebRtc, WebRtcConfig};

/// The ICE ufrag [`UdpRouter`] registers a peer under.
pub const FUZZ_UFRAG: &str = "fuzzfrag";
/// Queue depth of the router's one peer (full queues drop, as in the server).
pub const FUZZ_PEER_QUEUE: usize = 8;

/// `webrtc::sdp::check_offer` and `whep::remote_ufrag` on one offer: whether the offer is
/// usable, and its ufrag.
pub fn whep_offer(sdp: &str) -> (bool, String) {
    let usable = crate::webrtc::sdp::check_offer(sdp).is_ok();
    (usable, crate::webrtc::whep::remote_ufrag(sdp))
}

/// A WHEP/WHIP `PATCH` body (trickle or ICE restart, RFC 8840 fragment) as the resource
/// handler takes it: parsed, checked as restart credentials against the current remote
/// ufrag `current`, and, when it is a usable restart, answered. Returns the answer
/// fragment (empty for trickle or a refused restart) and the candidates taken.
pub fn whep_sdpfrag(body: &str, current: &str) -> (String, usize) {
    use crate::webrtc::restart::{answer_fragment, parse_fragment, restart_creds};
    let f = parse_fragment(body);
    let answer = match restart_creds(&f, current) {
        Ok(Some(_remote)) => {
            let local = str0m::IceCreds::new();
            answer_fragment(
                &local,
                &f,
                &["candidate:1 1 udp 1 127.0.0.1 9 typ host".into()],
            )
        }
        Ok(None) | Err(_) => String::new(),
    };
    (answer, f.candidates.len())
}

/// The shared UDP socket's router (`webrtc::udp::route`) with one registered peer
/// ([`FUZZ_UFRAG`]), on a loopback socket of its own.
pub struct UdpRouter {
    rtc: WebRtc,
    rx: mpsc::Receiver<Datagram>,
    _runtime: tokio::runtime::Runtime,
}

impl UdpRouter {
    /// Binds a loopback UDP socket and registers the peer. Panics if the socket cannot be
    /// bound (fuzzing setup, not input).
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime for the fuzz router");
        let cfg = WebRtcConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Default::default()
        };
        let rtc = runtime
            .block_on(WebRtc::bind(&cfg))
            .expect("a loopback UDP socket for the fuzz router");
        let (tx, rx) = mpsc::channel(FUZZ_PEER_QUEUE);
        rtc.tables()
            .by_ufrag
            .insert(FUZZ_UFRAG.to_owned(), PeerRoute { id: 1, tx });
        Self {
            rtc,
            rx,
            _runtime: runtime,
        }
    }

    /// Routes one datagram from `127.0.0.1:port`; true when it reached the peer's queue.
    /// Drains the queue when full so routing keeps being exercised.
    pub fn route(&mut self, port: u16, data: &[u8]) -> bool {
        let source = SocketAddr::from(([127, 0, 0, 1], port));
        let routed = crate::webrtc::udp::route(&self.rtc, source, data);
        if !routed {
            while self.rx.try_recv().is_ok() {}
        }
        routed
    }
}

impl Default for UdpRouter {
    fn default() -> Self {
        Self::new()
    }
}

/// The auth parsers of a request's query: the `token`/`expires`/`sign` credentials (raw and
/// percent-decoded), the RTMP connect query (from `app` or `tcUrl`) and their merge.
pub fn auth_query(query: &str, tc_url: &str) -> usize {
    let merged = crate::auth::merge_queries(
        Some(query),
        crate::auth::rtmp_connect_query(None, Some(tc_url)).as_deref(),
    );
    let q = crate::auth::QueryCredentials::parse(merged.as_deref().unwrap_or(""));
    q.token.map_or(0, |t| t.1.len())
        + q.expires.map_or(0, |t| t.1.len())
        + q.sign.map_or(0, |t| t.1.len())
}

/// `auth::signed_url::verify` of `expires`/`sign` for `key` at `now_s` under `secret`.
pub fn signed_url(secret: &[u8], key: &str, expires: &str, sign: &str, now_s: u64) -> bool {
    crate::auth::signed_url::verify(secret, key, expires, sign, now_s).is_ok()
}

/// Parses `cidr` (`auth` allow/deny lists) and tests `ip` against it; `None` if invalid.
pub fn cidr(cidr: &str, ip: IpAddr) -> Option<bool> {
    cidr.parse::<Cidr>().ok().map(|c| c.contains(ip))
}

/// Whether the rule `pattern` (`app/stream` with `*`) matches `key`, and the mode a one-rule
/// configuration with that pattern and `allow` list gives `ip` for `play`.
pub fn rule(pattern: &str, allow: &str, key: &str, ip: IpAddr) -> (bool, bool) {
    let matches = crate::record::pattern_matches(pattern, key);
    let cfg = AuthConfig {
        rules: vec![AuthRule {
            pattern: pattern.to_owned(),
            publish: AuthMode::Token,
            play: AuthMode::Open,
            allow_ips: vec![allow.to_owned()],
            deny_ips: Vec::new(),
        }],
        ..Default::default()
    };
    let admitted = Rules::new(&cfg).decide(Action::Play, key, Some(ip)).is_ok();
    (matches, admitted)
}

/// JWT verification paths we own (header and claims handling) under an HS256 `secret`: the
/// token for `action` (publish if true) on `key` by `ip`.
pub fn jwt(secret: &str, token: &str, publish: bool, key: &str, ip: IpAddr) -> bool {
    let cfg = AuthConfig {
        jwt_secret: secret.to_owned(),
        ..Default::default()
    };
    let Ok(keys) = JwtKeys::load(&cfg) else {
        return false;
    };
    let action = if publish {
        Action::Publish
    } else {
        Action::Play
    };
    keys.verify(token, action, key, Some(ip)).is_ok()
}

/// The secret [`jwt_signed`] signs and verifies with.
pub const FUZZ_JWT_SECRET: &str = "fuzz-secret";

/// Builds an HS256 token over raw `header` and `claims` bytes (JSON or not) signed with
/// [`FUZZ_JWT_SECRET`], so arbitrary headers and claims get past the signature check and
/// into the header and claims handling, then verifies it as [`jwt`] does.
pub fn jwt_signed(header: &[u8], claims: &[u8], publish: bool, key: &str, ip: IpAddr) -> bool {
    use hmac::{Hmac, Mac};
    let mut token = b64url(header);
    token.push('.');
    token.push_str(&b64url(claims));
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(FUZZ_JWT_SECRET.as_bytes()) else {
        return false;
    };
    mac.update(token.as_bytes());
    let sig = mac.finalize().into_bytes();
    token.push('.');
    token.push_str(&b64url(&sig));
    jwt(FUZZ_JWT_SECRET, &token, publish, key, ip)
}

/// Base64url without padding (RFC 4648 §5), as JWTs use.
fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let idx = (n >> (18 - 6 * i)) & 0x3F;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        assert_eq!(b64url(b""), "");
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(b"foob"), "Zm9vYg");
        assert_eq!(b64url(&[0xFB, 0xFF]), "-_8");
    }

    #[test]
    fn whep_sdpfrag_answers_restarts_only() {
        let restart = "a=ice-ufrag:newU\r\na=ice-pwd:abcdefghijklmnopqrstuv12\r\n\
                       m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                       a=candidate:1 1 udp 1 192.0.2.1 5 typ host\r\n";
        let (answer, n) = whep_sdpfrag(restart, "curr");
        assert_eq!(n, 1);
        assert!(answer.contains("a=ice-ufrag:"), "{answer}");
        assert!(answer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"));
        assert!(answer.ends_with("a=end-of-candidates\r\n"));
        // The current ufrag again is trickle; a short pwd is refused: no answer either way.
        assert_eq!(whep_sdpfrag(&restart.replace("newU", "curr"), "curr").0, "");
        assert_eq!(
            whep_sdpfrag(&restart.replace("abcdefghijkl", ""), "curr").0,
            ""
        );
    }

    #[test]
    fn webrtc_video_survives_mutated_frames() {
        // Seeds of every codec, each bit-flipped and truncated deterministically: no panic.
        let seeds: [&[u8]; 4] = [
            &[
                4, 0x50, 0x42, 0x02, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0xAA,
            ],
            &[
                3, 0x82, 0x49, 0x83, 0x42, 0x40, 0x04, 0xFF, 0x02, 0xCF, 0x80,
            ],
            &[
                2, 0x12, 0x00, 0x0A, 0x0B, 0, 0, 0, 0x10, 0x4A, 0x7F, 0x8E, 0x00, 0x4C, 0x07, 0x0B,
            ],
            &[
                1, 0, 0, 0, 1, 0x40, 0x01, 0x0C, 0, 0, 0, 1, 0x42, 0x01, 0x01, 0x01, 0x60, 0, 0, 3,
            ],
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for seed in seeds {
            for _ in 0..500 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut d = seed.to_vec();
                let at = 1 + (x as usize) % (d.len() - 1);
                d[at] ^= 1 << ((x >> 32) % 8);
                d.truncate(1 + (x >> 40) as usize % d.len());
                webrtc_video(&d);
            }
        }
    }

    #[test]
    fn wrappers_reach_the_parsers() {
        let far_future = br#"{"exp":4102444800,"action":"publish","stream":"live/*"}"#;
        let header = br#"{"alg":"HS256","typ":"JWT"}"#;
        assert!(jwt_signed(header, far_future, true, "live/x", LOOPBACK));
        assert!(!jwt_signed(header, far_future, false, "live/x", LOOPBACK));
        assert!(!jwt_signed(header, b"not json", true, "live/x", LOOPBACK));
        assert_eq!(cidr("127.0.0.0/8", LOOPBACK), Some(true));
        assert_eq!(cidr("127.0.0.0/33", LOOPBACK), None);
        assert_eq!(
            rule("live/*", "10.0.0.0/8", "live/x", LOOPBACK),
            (true, false)
        );
        assert_eq!(auth_query("token=a%20b", "rtmp://h/live?sign=00"), 5);
        let offer = "v=0\r\na=ice-ufrag:abc\r\n";
        assert_eq!(whep_offer(offer).1, "abc");
        assert!(!signed_url(b"s", "live/x", "1", "zz", 0));
        let mut r = UdpRouter::new();
        assert!(!r.route(5000, &[0x80, 0, 0, 0]));
        // VP8 (4): a key frame header for 640x360 makes a sequence start and a frame.
        let vp8 = [
            4, 0x50, 0x42, 0x02, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0xAA,
        ];
        assert!(webrtc_video(&vp8) > 20);
        assert_eq!(webrtc_video(&[]), 0);
    }
}
