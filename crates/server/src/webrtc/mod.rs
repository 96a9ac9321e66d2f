//! WebRTC playback (WHEP) of every stream, with str0m doing ICE-lite, DTLS, SRTP, RTP
//! packetization, RTCP (Sender Reports, NACK answered from the send buffer) behind our IO:
//!
//! - [`udp`]: one UDP socket shared by every peer; a reader task demultiplexes datagrams in
//!   O(1) (known remote address, else the local ufrag in a STUN USERNAME) into each peer's
//!   bounded queue.
//! - [`peer`]: one task per peer owns its `Rtc` (no lock around it), feeds it datagrams,
//!   timeouts and media, and sends its transmits on the shared socket.
//! - [`whep`]: the HTTP resource model (POST offer, PATCH trickle, DELETE, OPTIONS/CORS).
//! - [`h264`]: AVCC to Annex B with SPS/PPS before keyframes.
//! - [`audio`]: one AAC-to-Opus transcoder per stream shared by its WebRTC viewers.
//! - [`player`]: the player page at `GET /{app}/{stream}/`.
//! - [`whip`] and [`ingest`]: WHIP publishing (H.264 and Opus in, AAC made for the hub, the
//!   Opus passed to WebRTC viewers as it came) and the publish page.
//!
//! Timing: video RTP time is the hub's pts (dts + cts) at 90 kHz, audio the Opus packet's dts
//! at 48 kHz; both come from the same hub timeline, and the wallclock given to str0m (which it
//! puts in Sender Reports) is one per-peer instant plus that same timeline, so players line
//! audio and video up. Streams with B-frames play with pts as the RTP time (RTP carries
//! presentation time; the decoder reorders).

pub(crate) mod audio;
pub(crate) mod config;
pub(crate) mod h264;
pub(crate) mod ingest;
pub(crate) mod metrics;
pub(crate) mod peer;
pub(crate) mod player;
pub(crate) mod sdp;
pub(crate) mod udp;
pub(crate) mod whep;
pub(crate) mod whip;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::WebRtcConfig;

/// Datagrams queued for one peer; beyond it datagrams are dropped (and counted), as the
/// network would.
pub const PEER_QUEUE: usize = 256;
/// Largest datagram read from the socket (bigger ones are truncated by the OS and dropped).
pub const MAX_DATAGRAM: usize = 2048;
/// Remote addresses one peer may be known by (ICE candidates that reached us).
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Latency samples kept for [`WebRtcStats::latency_median_us`].
pub const MAX_LATENCY_SAMPLES: usize = 4096;

/// One datagram for a peer.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) source: SocketAddr,
    pub(crate) data: Vec<u8>,
    pub(crate) at: std::time::Instant,
}

/// Commands to a peer task from the HTTP side.
#[derive(Debug)]
pub(crate) enum PeerCmd {
    /// Trickle ICE: a remote candidate line (`candidate:...`).
    AddCandidate(String),
}

/// Counters of the WebRTC side (relaxed atomics).
#[derive(Debug, Default)]
pub struct WebRtcStats {
    /// Peers alive now (from POST until the peer task ends).
    pub peers: AtomicU64,
    /// Peers that reached ICE+DTLS connected.
    pub connected: AtomicU64,
    /// Datagrams received on the UDP socket.
    pub datagrams_in: AtomicU64,
    /// Datagrams dropped: unknown source and not a STUN request for a known ufrag, or
    /// unparseable, or a peer's queue was full.
    pub datagrams_dropped: AtomicU64,
    /// Datagrams not sent because the socket would block (or failed).
    pub send_dropped: AtomicU64,
    /// Bytes sent to peers.
    pub bytes_out: AtomicU64,
    /// WHEP offers refused because `max_peers` / `max_peers_per_stream` was reached.
    pub refused: AtomicU64,
    latency_us: Mutex<Vec<u32>>,
}

impl WebRtcStats {
    /// Records one sample of the time from a video frame leaving the hub to its last RTP
    /// packet handed to the socket.
    pub(crate) fn latency(&self, us: u64) {
        let mut v = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < MAX_LATENCY_SAMPLES {
            v.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }

    /// Median of the latency samples (µs) and their count.
    pub fn latency_median_us(&self) -> Option<(u32, usize)> {
        let mut v = self
            .latency_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        v.sort_unstable();
        let n = v.len();
        v.get(n / 2).map(|m| (*m, n))
    }
}

/// Where a peer's datagrams go.
#[derive(Debug, Clone)]
pub(crate) struct PeerRoute {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::Sender<Datagram>,
}

/// A WHEP resource (one peer), for PATCH and DELETE.
#[derive(Debug)]
pub(crate) struct Resource {
    pub(crate) stream: String,
    pub(crate) etag: String,
    pub(crate) kick: CancellationToken,
    pub(crate) cmd: mpsc::Sender<PeerCmd>,
    /// The viewer's ICE ufrag from its offer (a PATCH with another one is an ICE restart).
    pub(crate) remote_ufrag: String,
}

#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) by_addr: HashMap<SocketAddr, PeerRoute>,
    pub(crate) by_ufrag: HashMap<String, PeerRoute>,
    /// Addresses registered per peer id (bounded by [`MAX_ADDRS_PER_PEER`]).
    pub(crate) addrs: HashMap<u64, Vec<SocketAddr>>,
    pub(crate) resources: HashMap<String, Resource>,
    pub(crate) per_stream: HashMap<String, usize>,
}

/// The WebRTC side of a server: the shared socket and the routing tables.
#[derive(Debug)]
pub(crate) struct WebRtc {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) local: SocketAddr,
    /// The addresses offered as host candidates.
    pub(crate) candidates: Vec<SocketAddr>,
    pub(crate) stats: WebRtcStats,
    pub(crate) audio: audio::AudioHub,
    tables: Mutex<Tables>,
    next_id: AtomicU64,
}

impl WebRtc {
    /// Binds the UDP socket and works out the candidates to offer.
    pub(crate) async fn bind(cfg: &WebRtcConfig) -> Result<Self, crate::ServerError> {
        let socket =
            UdpSocket::bind(cfg.listen)
                .await
                .map_err(|source| crate::ServerError::Bind {
                    what: "webrtc",
                    addr: cfg.listen,
                    source,
                })?;
        let local = socket
            .local_addr()
            .map_err(|source| crate::ServerError::Bind {
                what: "webrtc",
                addr: cfg.listen,
                source,
            })?;
        let candidates = candidate_addrs(&cfg.announce, local).await;
        tracing::info!(%local, ?candidates, "webrtc listening (WHEP), candidates offered");
        Ok(Self {
            socket: Arc::new(socket),
            local,
            candidates,
            stats: WebRtcStats::default(),
            audio: audio::AudioHub::default(),
            tables: Mutex::new(Tables::default()),
            next_id: AtomicU64::new(1),
        })
    }

    pub(crate) fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Removes every trace of peer `id` (called once when its task ends).
    pub(crate) fn forget(&self, id: u64, ufrag: &str, resource: &str, stream: &str) {
        let mut t = self.tables();
        for a in t.addrs.remove(&id).unwrap_or_default() {
            if t.by_addr.get(&a).is_some_and(|r| r.id == id) {
                t.by_addr.remove(&a);
            }
        }
        t.by_ufrag.remove(ufrag);
        t.resources.remove(resource);
        if let Some(n) = t.per_stream.get_mut(stream) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.per_stream.remove(stream);
            }
        }
    }

    /// Sends one of str0m's transmits on the shared socket without waiting; returns the bytes
    /// sent, or `None` (counted in `send_dropped`) when the socket would block or failed, as
    /// a congested network would drop the packet.
    pub(crate) fn send(&self, t: &str0m::net::Transmit) -> Option<usize> {
        match self.socket.try_send_to(&t.contents, t.destination) {
            Ok(n) => {
                self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                Some(n)
            }
            Err(_) => {
                self.stats.send_dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Live peers (what tests poll to see cleanup).
    pub(crate) fn live(&self) -> usize {
        self.tables().resources.len()
    }
}

/// The socket addresses to offer: announced names resolved (with our port), else the listen
/// IP, else (wildcard) the host's primary interface address, found by "connecting" a UDP
/// socket (which sends nothing) towards a documentation address.
async fn candidate_addrs(announce: &[String], local: SocketAddr) -> Vec<SocketAddr> {
    let port = local.port();
    let mut out = Vec::new();
    for name in announce {
        if let Ok(ip) = name.parse::<IpAddr>() {
            out.push(SocketAddr::new(ip, port));
            continue;
        }
        match tokio::net::lookup_host((name.as_str(), port)).await {
            Ok(addrs) => out.extend(addrs.take(4)),
            Err(e) => tracing::warn!(%name, "webrtc.announce: cannot resolve: {e}"),
        }
    }
    if !out.is_empty() || !announce.is_empty() {
        return out;
    }
    if !local.ip().is_unspecified() {
        return vec![local];
    }
    let probe = if local.is_ipv4() {
        ("0.0.0.0:0", "192.0.2.1:9")
    } else {
        ("[::]:0", "[2001:db8::1]:9")
    };
    let found = match std::net::UdpSocket::bind(probe.0) {
        Ok(s) => s
            .connect(probe.1)
            .and_then(|()| s.local_addr())
            .ok()
            .map(|a| a.ip()),
        Err(_) => None,
    };
    match found {
        Some(ip) if !ip.is_loopback() && !ip.is_unspecified() => vec![SocketAddr::new(ip, port)],
        _ => {
            tracing::warn!("webrtc: no interface address found; set webrtc.announce");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn candidates_follow_listen_and_announce() {
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(candidate_addrs(&[], lo).await, vec![lo]);
        let ann = vec!["203.0.113.7".to_owned()];
        assert_eq!(
            candidate_addrs(&ann, lo).await,
            vec!["203.0.113.7:5000".parse::<SocketAddr>().unwrap()]
        );
        let any: SocketAddr = "0.0.0.0:5000".parse().unwrap();
        for a in candidate_addrs(&[], any).await {
            assert!(!a.ip().is_loopback() && !a.ip().is_unspecified());
            assert_eq!(a.port(), 5000);
        }
    }

    #[test]
    fn latency_median() {
        let s = WebRtcStats::default();
        assert_eq!(s.latency_median_us(), None);
        for us in [5, 1, 3] {
            s.latency(us);
        }
        assert_eq!(s.latency_median_us(), Some((3, 3)));
    }
}
