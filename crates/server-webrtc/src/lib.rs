//! WebRTC playback (WHEP) of every stream, with str0m doing ICE-lite, DTLS, SRTP, RTP
//! packetization, RTCP (Sender Reports, NACK answered from the send buffer) behind our IO:
//!
//! - [`udp`]: the UDP port shared by every peer: `webrtc.udp_sockets` sockets bound to it
//!   with SO_REUSEPORT (the kernel hashes each remote address to one of them), one reader
//!   task each, demultiplexing datagrams in O(1) (known remote address, else the local ufrag
//!   in a STUN USERNAME) into each peer's bounded queue through one shared routing table.
//! - [`tcp`]: ICE-TCP (RFC 6544 passive candidate, RFC 4571 framing) for viewers without
//!   UDP: each connection is routed by the ufrag of its first STUN request, then by itself.
//! - [`peer`]: one task per peer owns its `Rtc` (no lock around it), feeds it datagrams,
//!   timeouts and media, and sends its transmits on the shared socket.
//! - [`whep`]: the HTTP resource model (POST offer, PATCH trickle, DELETE, OPTIONS/CORS).
//! - [`restart`]: ICE restarts (PATCH with a new ufrag/pwd) of WHEP and WHIP sessions.
//! - [`player`]: the player page at `GET /{app}/{stream}/`.
//! - [`whip`] and [`ingest`]: WHIP publishing (H.264, H.265, AV1, VP9 or VP8 and Opus in,
//!   both into the hub as they came) and the publish page.
//! - [`codecs`]: which codecs a peer's `Rtc` enables and accepts.
//!
//! The media conversions (hub frames to RTP payloads and back, per codec) and the SDP a
//! client sends are the sans-IO `rtp` crate's; this crate is the IO around them.
//!
//! Audio: a WHEP viewer subscribes to the hub wanting Opus. A WHIP publisher's Opus is in the
//! hub as it came, so viewers get its packets byte for byte; an RTMP publisher's AAC reaches
//! them through the hub's derived Opus track (one transcode per stream, shared by every
//! WebRTC viewer, registered by the binary). [`WebRtcServer::transcoders`] counts those.
//!
//! Pending peers: an answered offer holds a slot until ICE and DTLS complete or
//! `webrtc.ice_timeout_ms` passes; `webrtc.max_pending_peers` (in all) and
//! `webrtc.max_pending_peers_per_ip` bound them, apart from connected peers, so offers that
//! never connect cannot take the slots of everyone else. The session (API entry, webhook)
//! starts when the peer connects.
//!
//! Timing: video RTP time is the hub's pts (dts + cts) at 90 kHz, audio the Opus packet's dts
//! at 48 kHz; both come from the same hub timeline, and the wallclock given to str0m (which it
//! puts in Sender Reports) is one per-peer instant plus that same timeline, so players line
//! audio and video up. Streams with B-frames play with pts as the RTP time (RTP carries
//! presentation time; the decoder reorders).

#![forbid(unsafe_code)]

pub(crate) mod codecs;
pub(crate) mod ingest;
pub(crate) mod metrics;
pub(crate) mod payloads;
pub(crate) mod peer;
pub(crate) mod player;
pub(crate) mod quality;
pub(crate) mod restart;
pub(crate) mod rooms;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod whep;
pub(crate) mod whip;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::WebRtcConfig;
use control::Control;

/// Errors of starting the WebRTC server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebRtcError {
    /// A UDP socket or the ICE-TCP listener could not be bound.
    #[error("cannot listen on {addr} (webrtc): {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The state every handler and task of this server shares: the control plane and the
/// WebRTC side (sockets, routing tables).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) ctl: Arc<Control>,
    pub(crate) rtc: Arc<WebRtc>,
    /// The rooms (LiveKit-protocol SFU).
    pub(crate) rooms: Arc<rooms::Rooms>,
}

/// A running WebRTC server (WHEP and WHIP): what the binary wires and tests inspect.
#[derive(Debug, Clone)]
pub struct WebRtcServer {
    shared: Arc<Shared>,
}

impl WebRtcServer {
    /// Binds the UDP sockets and the ICE-TCP listener of `webrtc` config, starts their IO
    /// tasks, and adds the WebRTC figures to `/metrics` and `/api/v1/server`.
    pub async fn start(ctl: &Arc<Control>) -> Result<Self, WebRtcError> {
        let rtc = Arc::new(WebRtc::bind(&ctl.config.webrtc).await?);
        rtc.spawn_io(&ctl.shutdown, &ctl.tracker);
        let shared = Arc::new(Shared {
            ctl: Arc::clone(ctl),
            rtc,
            rooms: Arc::new(rooms::Rooms::new(
                &ctl.config.rooms,
                rooms::hooks::Hooks::start(&ctl.config, Arc::clone(&ctl.stats.webhooks)),
            )),
        });
        rooms::spawn_reaper(&shared);
        ctl.add_source(Arc::new(metrics::Source(Arc::clone(&shared))));
        Ok(Self { shared })
    }

    /// The WHEP and WHIP routes, the player page at `/{app}/{stream}/` and the publish page.
    pub fn routes(&self) -> axum::Router {
        let mut r = whep::routes().merge(whip::routes());
        if self.shared.ctl.config.rooms.enabled {
            r = r.merge(rooms::routes(&self.shared.ctl));
        }
        r.with_state(Arc::clone(&self.shared))
    }

    /// Participants in rooms now.
    pub fn room_participants(&self) -> usize {
        self.shared.rooms.participants()
    }

    /// The UDP address peers use.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.rtc.local
    }

    /// WebRTC sessions alive now (WHEP and WHIP resources not yet ended or timed out).
    pub fn sessions(&self) -> usize {
        self.shared.rtc.live()
    }

    /// The counters.
    pub fn stats(&self) -> &WebRtcStats {
        &self.shared.rtc.stats
    }

    /// Audio transcoders running now for WebRTC's codec: the hub's derived tracks from or to
    /// Opus (AAC to Opus for the WHEP viewers of an RTMP stream, Opus to AAC for the other
    /// players, HLS and recordings of a WHIP stream), at most one per stream and direction.
    /// A track lingers `hub::DERIVED_LINGER` after its last viewer left.
    pub fn transcoders(&self) -> usize {
        transcoders(&self.shared.ctl.hub)
    }

    /// WebRTC peers pending now: offer answered, ICE and DTLS not connected yet.
    pub fn pending(&self) -> usize {
        self.shared.rtc.tables().pending
    }
}

/// Datagrams queued for one peer; beyond it datagrams are dropped (and counted), as the
/// network would.
pub const PEER_QUEUE: usize = 256;
/// Largest datagram read from the socket (bigger ones are truncated by the OS and dropped).
pub const MAX_DATAGRAM: usize = 2048;
/// Remote addresses one peer may be known by (ICE candidates that reached us).
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Latency samples kept for [`WebRtcStats::latency_median_us`].
pub const MAX_LATENCY_SAMPLES: usize = 4096;

/// One datagram (or RFC 4571 frame) for a peer.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) source: SocketAddr,
    /// Our candidate address it arrived on (what str0m matches against its local candidates).
    pub(crate) destination: SocketAddr,
    /// UDP, or TCP for ICE-TCP frames.
    pub(crate) proto: Protocol,
    pub(crate) data: Vec<u8>,
    pub(crate) at: std::time::Instant,
}

/// Commands to a peer task from the HTTP side.
#[derive(Debug)]
pub(crate) enum PeerCmd {
    /// Trickle ICE: a remote candidate line (`candidate:...`).
    AddCandidate(String),
    /// An ICE restart: new credentials on both sides ([`restart`]).
    IceRestart(restart::Restart),
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
    /// RTP payloads built for WHEP viewers in RTP mode: once per stream, not per viewer.
    pub payloads_built: AtomicU64,
    /// RTP payloads written to WHEP viewers in RTP mode (each viewer's, counted per viewer).
    pub payloads_written: AtomicU64,
    /// WHEP offers refused because `max_peers` / `max_peers_per_stream` was reached.
    /// (Refusals for `max_pending_peers` and `max_pending_peers_per_ip` are counted with the
    /// other limits, `sluice_connections_refused_total{protocol="webrtc",reason=...}`.)
    pub refused: AtomicU64,
    /// ICE-TCP connections accepted.
    pub tcp_accepted: AtomicU64,
    /// ICE-TCP connections closed at accept because `max_tcp_connections` were open.
    pub tcp_refused: AtomicU64,
    /// ICE-TCP connections closed for bad input: a frame length of 0 or above
    /// [`tcp::MAX_TCP_FRAME`], a first frame that is not a STUN request for a live peer, or
    /// no complete valid frame within `webrtc.ice_timeout_ms`.
    pub tcp_invalid: AtomicU64,
    /// RFC 4571 frames received and routed to a peer.
    pub tcp_frames_in: AtomicU64,
    /// TCP transmits dropped: the connection's write queue was full or it had closed.
    pub tcp_send_dropped: AtomicU64,
    /// Per-viewer quality (NACKs, retransmissions, RTT and estimate histograms).
    pub(crate) quality: quality::QualityTotals,
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
    /// Our local ufrags routed to this peer, oldest first (more than one after an ICE
    /// restart; at most [`restart::MAX_UFRAGS_PER_PEER`]).
    pub(crate) local_ufrags: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) by_addr: HashMap<SocketAddr, PeerRoute>,
    pub(crate) by_ufrag: HashMap<String, PeerRoute>,
    /// Addresses registered per peer id (bounded by [`MAX_ADDRS_PER_PEER`]).
    pub(crate) addrs: HashMap<u64, Vec<SocketAddr>>,
    pub(crate) resources: HashMap<String, Resource>,
    pub(crate) per_stream: HashMap<String, usize>,
    /// Peers answered and not connected yet, in all and per client address (only addresses
    /// with at least one: the map is bounded by the total).
    pub(crate) pending: usize,
    pub(crate) pending_by_ip: HashMap<IpAddr, usize>,
}

impl Tables {
    /// One pending peer of `ip` connected or ended.
    pub(crate) fn unpend(&mut self, ip: Option<IpAddr>) {
        self.pending = self.pending.saturating_sub(1);
        if let Some(ip) = ip
            && let Some(n) = self.pending_by_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending_by_ip.remove(&ip);
            }
        }
    }
}

/// The WebRTC side of a server: the UDP sockets, the ICE-TCP listener and the routing tables.
#[derive(Debug)]
pub(crate) struct WebRtc {
    /// The UDP sockets, all bound to `local` (SO_REUSEPORT when more than one).
    pub(crate) sockets: Vec<Arc<UdpSocket>>,
    /// The bound UDP address.
    pub(crate) local: SocketAddr,
    /// The addresses offered as UDP host candidates.
    pub(crate) candidates: Vec<SocketAddr>,
    /// The ICE-TCP listener and its connections (`None`: `webrtc.tcp_listen` is empty).
    pub(crate) tcp: Option<tcp::TcpSide>,
    /// The addresses offered as passive TCP host candidates.
    pub(crate) tcp_candidates: Vec<SocketAddr>,
    pub(crate) stats: WebRtcStats,
    /// Each watched stream's Annex B conversions, shared by its viewers.
    pub(crate) annexb: rtp::h264::AnnexBCaches,
    /// Each watched stream's Opus packets as str0m takes them, shared by its viewers.
    pub(crate) opus: rtp::h264::AnnexBCaches,
    /// Each watched H.264 stream's RTP payloads, built once and shared by its viewers.
    pub(crate) payloads: payloads::PayloadCaches,
    /// The DTLS certificate every peer presents, made once at start: a self-signed
    /// certificate per peer cost about a tenth of a join's CPU (its fingerprint is public
    /// in every answer anyway; the key never leaves the process). `None` if the crypto
    /// provider cannot make one (each peer then makes its own).
    pub(crate) dtls_cert: Option<str0m::config::DtlsCert>,
    tables: Mutex<Tables>,
    next_id: AtomicU64,
}

impl WebRtc {
    /// Binds the UDP sockets and the ICE-TCP listener and works out the candidates to offer.
    async fn bind(cfg: &WebRtcConfig) -> Result<Self, WebRtcError> {
        let bind_err = |addr: SocketAddr| move |source| WebRtcError::Bind { addr, source };
        let n = cfg.udp_socket_count();
        let (sockets, local) = udp::bind_sockets(cfg.listen, n, cfg.socket_buffer_bytes)
            .map_err(bind_err(cfg.listen))?;
        let tcp_addr = cfg.tcp_addr().ok().flatten();
        let tcp = match tcp_addr {
            Some(addr) => Some(
                tcp::TcpSide::bind(
                    addr,
                    cfg.max_tcp_connections,
                    std::time::Duration::from_millis(cfg.ice_timeout_ms),
                )
                .await
                .map_err(bind_err(addr))?,
            ),
            None => None,
        };
        let candidates = candidate_addrs(&cfg.announce, local).await;
        let tcp_candidates = match &tcp {
            Some(t) => candidate_addrs(&cfg.announce, t.local).await,
            None => Vec::new(),
        };
        tracing::info!(
            %local,
            udp_sockets = sockets.len(),
            tcp_listen = ?tcp.as_ref().map(|t| t.local),
            udp_candidates = ?candidates,
            tcp_candidates = ?tcp_candidates,
            "webrtc listening (WHEP), candidates offered"
        );
        Ok(Self {
            sockets: sockets.into_iter().map(Arc::new).collect(),
            local,
            candidates,
            tcp,
            tcp_candidates,
            stats: WebRtcStats::default(),
            annexb: rtp::h264::AnnexBCaches::default(),
            opus: rtp::h264::AnnexBCaches::default(),
            payloads: payloads::PayloadCaches::default(),
            dtls_cert: str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate(),
            tables: Mutex::new(Tables::default()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Spawns the IO tasks: one reader per UDP socket and the ICE-TCP acceptor.
    pub(crate) fn spawn_io(self: &Arc<Self>, shutdown: &CancellationToken, tracker: &TaskTracker) {
        for i in 0..self.sockets.len() {
            tracker.spawn(udp::run(Arc::clone(self), i, shutdown.clone()));
        }
        if self.tcp.is_some() {
            tracker.spawn(tcp::run(
                Arc::clone(self),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
    }

    /// The candidate address UDP datagrams are reported to str0m as arriving on.
    pub(crate) fn udp_destination(&self) -> SocketAddr {
        self.candidates.first().copied().unwrap_or(self.local)
    }

    /// The candidate address ICE-TCP frames are reported to str0m as arriving on.
    pub(crate) fn tcp_destination(&self) -> Option<SocketAddr> {
        let t = self.tcp.as_ref()?;
        Some(self.tcp_candidates.first().copied().unwrap_or(t.local))
    }

    pub(crate) fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends one of str0m's transmits without waiting; returns the bytes sent, or `None`
    /// when dropped, as a congested network would drop the packet. UDP goes out on the socket
    /// chosen by hashing the destination (all share one local address), counted in
    /// `send_dropped` when it would block or failed; TCP goes to that connection's write
    /// queue, counted in `tcp_send_dropped` when full or gone.
    pub(crate) fn send(&self, t: &str0m::net::Transmit) -> Option<usize> {
        if t.proto == Protocol::Tcp {
            let queued = self
                .tcp
                .as_ref()
                .is_some_and(|tcp| tcp.send(t.destination, &t.contents));
            if !queued {
                self.stats.tcp_send_dropped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let n = t.contents.len();
            self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            return Some(n);
        }
        let Some(socket) = self.socket_for(t.destination) else {
            self.stats.send_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        match socket.try_send_to(&t.contents, t.destination) {
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

    /// The UDP socket that sends to `dest`: a hash of the address, so one peer's packets
    /// leave in order through one socket (any of them has the same local address).
    fn socket_for(&self, dest: SocketAddr) -> Option<&Arc<UdpSocket>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        dest.hash(&mut h);
        let n = self.sockets.len().max(1) as u64;
        self.sockets.get((h.finish() % n) as usize)
    }

    /// Live peers (what tests poll to see cleanup).
    pub(crate) fn live(&self) -> usize {
        self.tables().resources.len()
    }
}

/// Removes every trace of peer `id` from the locked tables (once, when its task ends): its
/// learnt addresses, its ufrag and those an ICE restart added, its resource and its count
/// on the stream.
pub(crate) fn forget_in(t: &mut Tables, id: u64, ufrag: &str, resource: &str, stream: &str) {
    for a in t.addrs.remove(&id).unwrap_or_default() {
        if t.by_addr.get(&a).is_some_and(|r| r.id == id) {
            t.by_addr.remove(&a);
        }
    }
    t.by_ufrag.remove(ufrag);
    if let Some(res) = t.resources.remove(resource) {
        for u in &res.local_ufrags {
            if t.by_ufrag.get(u).is_some_and(|r| r.id == id) {
                t.by_ufrag.remove(u);
            }
        }
    }
    if let Some(n) = t.per_stream.get_mut(stream) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            t.per_stream.remove(stream);
        }
    }
}

/// The hub's derived audio tracks from or to Opus, over every stream.
pub(crate) fn transcoders(hub: &hub::Hub) -> usize {
    hub.streams()
        .iter()
        .flat_map(|s| &s.derived_tracks)
        .filter(|d| d.from == media::Codec::Opus || d.codec == media::Codec::Opus)
        .count()
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
