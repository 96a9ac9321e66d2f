//! Connection limits and fairness (`[limits]`): how many TCP connections the server holds,
//! how many one client address may hold or open per second, how many viewers one stream and
//! how many publishers one app may have, and how big and slow an HTTP request head may be.
//!
//! - Connections are checked right after `accept`, before any TLS or RTMP handshake (the
//!   cheapest point): a refused connection is simply closed.
//! - Viewers and publishers are checked where each protocol admits them; the client is told
//!   why (`NetStream.Play.Failed`, `NetStream.Publish.Rejected`, or HTTP 503 with
//!   `{"code":"limit","message":...}`).
//! - Every refusal is counted in `sluice_connections_refused_total{protocol,reason}` (labels
//!   from fixed sets) and logged, at most [`LOG_BURST`] lines per [`LOG_WINDOW`]; the rest are
//!   summed up in one line per window, so a flood cannot flood the log.

mod connections;
mod refusals;
mod streams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use connections::ConnectionPermit;
pub use refusals::LogDecision;
pub use streams::StreamSlot;

use crate::counters::ViewerProtocol;
use crate::{Control, ControlError};
use config::LimitsConfig;

/// Client addresses whose connection rate is tracked at most. Beyond it (after dropping the
/// addresses whose bucket is full again) new connections are refused with `ip_table_full`:
/// an attacker with many source addresses cannot grow the table (about 64 bytes each).
pub const MAX_RATE_TRACKED_ADDRESSES: usize = 65_536;
/// Shortest time between two sweeps of the rate table when it is full, so a flood of new
/// addresses cannot make every accept pay for a sweep.
pub const RATE_SWEEP_MIN_INTERVAL: Duration = Duration::from_millis(100);
/// How often the upkeep task sweeps the rate table and writes the summary of unlogged
/// refusals.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Refusal lines logged per [`LOG_WINDOW`] at most; further refusals are counted and summed
/// up in one line.
pub const LOG_BURST: u32 = 10;
/// Window of the refusal log budget.
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

/// Which TCP listener a connection came in on (the `listener`/`protocol` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// RTMP.
    Rtmp,
    /// RTMP over TLS.
    Rtmps,
    /// Plain HTTP (HTTP-FLV, WebSocket-FLV, HLS, WHEP, API, console).
    Http,
    /// HTTPS and WSS.
    Https,
    /// SRT callers (UDP, but each caller is a connection: it counts like one).
    Srt,
}

impl ListenerKind {
    /// Every listener, in label order.
    pub const ALL: [ListenerKind; 5] =
        [Self::Rtmp, Self::Rtmps, Self::Http, Self::Https, Self::Srt];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rtmp => "rtmp",
            Self::Rtmps => "rtmps",
            Self::Http => "http",
            Self::Https => "https",
            Self::Srt => "srt",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Self::Rtmp => 0,
            Self::Rtmps => 1,
            Self::Http => 2,
            Self::Https => 3,
            Self::Srt => 4,
        }
    }
}

/// Why a connection, viewer or publisher was refused: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LimitReason {
    /// `limits.max_connections` connections are open, or as many as this listener may hold
    /// (its reserve and the shared slots, `limits.listener_reserve_percent`).
    MaxConnections,
    /// The client address holds `limits.max_connections_per_ip` connections.
    PerIpConnections,
    /// The client address opens connections faster than
    /// `limits.connections_per_ip_per_second` (after its burst).
    PerIpRate,
    /// The rate table holds [`MAX_RATE_TRACKED_ADDRESSES`] recently active addresses.
    IpTableFull,
    /// The stream has `limits.max_viewers_per_stream` viewers.
    ViewersPerStream,
    /// The app has `limits.max_publishers_per_app` publishers.
    PublishersPerApp,
    /// `webrtc.max_pending_peers` WebRTC peers are answered but not connected yet.
    PendingPeers,
    /// The client address has `webrtc.max_pending_peers_per_ip` WebRTC peers answered but
    /// not connected yet.
    PendingPeersPerIp,
}

impl LimitReason {
    /// Every reason, in label order.
    pub const ALL: [LimitReason; 8] = [
        Self::MaxConnections,
        Self::PerIpConnections,
        Self::PerIpRate,
        Self::IpTableFull,
        Self::ViewersPerStream,
        Self::PublishersPerApp,
        Self::PendingPeers,
        Self::PendingPeersPerIp,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::PerIpConnections => "per_ip_connections",
            Self::PerIpRate => "per_ip_rate",
            Self::IpTableFull => "ip_table_full",
            Self::ViewersPerStream => "viewers_per_stream",
            Self::PublishersPerApp => "publishers_per_app",
            Self::PendingPeers => "pending_peers",
            Self::PendingPeersPerIp => "pending_peers_per_ip",
        }
    }

    /// The configuration key behind the reason (named in messages and logs).
    pub fn key(self) -> &'static str {
        match self {
            Self::MaxConnections => "limits.max_connections",
            Self::PerIpConnections => "limits.max_connections_per_ip",
            Self::PerIpRate => "limits.connections_per_ip_per_second",
            Self::IpTableFull => "MAX_RATE_TRACKED_ADDRESSES",
            Self::ViewersPerStream => "limits.max_viewers_per_stream",
            Self::PublishersPerApp => "limits.max_publishers_per_app",
            Self::PendingPeers => "webrtc.max_pending_peers",
            Self::PendingPeersPerIp => "webrtc.max_pending_peers_per_ip",
        }
    }
}

/// A refused viewer or publisher: the reason and the message the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRefusal {
    /// The fixed reason.
    pub reason: LimitReason,
    /// What the client is told (and what is logged).
    pub message: String,
}

impl std::fmt::Display for LimitRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.reason.key())
    }
}

/// Every limit's state: connection counts, the per-address tables, per-stream and per-app
/// counts, refusal counters and the refusal log budget.
pub struct Limits {
    /// TCP connections: totals, per address, rates.
    pub connections: connections::ConnectionTable,
    /// Viewers per stream and publishers per app.
    pub streams: streams::SlotTable,
    /// Refusal counters and the refusal log budget.
    pub refusals: refusals::Refusals,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

impl Limits {
    /// The state for `cfg` (validated: the exempt blocks parse), with `running` the TCP
    /// listeners that exist (each keeps `limits.listener_reserve_percent` of the connections).
    pub fn new(cfg: &LimitsConfig, running: &[ListenerKind]) -> Result<Arc<Self>, ControlError> {
        Ok(Arc::new(Self {
            connections: connections::ConnectionTable::new(cfg, running)?,
            streams: streams::SlotTable::new(cfg),
            refusals: refusals::Refusals::default(),
        }))
    }
}

/// Waits for the next connection on `listener` (of kind `kind`) that the connection limits
/// admit, with its permit; `None` at shutdown. Refused connections are closed at once, before
/// any handshake; accept errors (out of descriptors, say) back off briefly rather than spin.
/// Every TCP listener accepts through this.
pub async fn accept(
    ctl: &Control,
    listener: &tokio::net::TcpListener,
    kind: ListenerKind,
) -> Option<(tokio::net::TcpStream, SocketAddr, ConnectionPermit)> {
    loop {
        let accepted = tokio::select! {
            _ = ctl.shutdown.cancelled() => return None,
            a = listener.accept() => a,
        };
        let (sock, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, listener = kind.as_str(), "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        match on_accept(ctl, kind, peer) {
            Some(permit) => {
                let _ = sock.set_nodelay(true);
                return Some((sock, peer, permit));
            }
            None => drop(sock),
        }
    }
}

/// Pause after a failed `accept` (out of descriptors and the like) before the next one.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Admits a new connection on `listener` (TCP, or an SRT caller) from `peer`, or counts and logs the refusal
/// (the caller then drops the socket: closed before any handshake).
pub fn on_accept(
    ctl: &Control,
    listener: ListenerKind,
    peer: SocketAddr,
) -> Option<ConnectionPermit> {
    let now = Instant::now();
    match ctl
        .limits
        .connections
        .admit(&ctl.limits, listener, peer.ip(), now)
    {
        Ok(p) => Some(p),
        Err(reason) => {
            let refusal = LimitRefusal {
                reason,
                message: format!(
                    "{} connection from {} refused",
                    listener.as_str(),
                    peer.ip()
                ),
            };
            ctl.limits.refusals.refuse(listener.as_str(), &refusal, now);
            None
        }
    }
}

/// Admits a viewer of `key` over `protocol` (counting every protocol's viewers of the
/// stream, HLS included), or counts and logs the refusal.
pub(crate) fn admit_viewer(
    ctl: &Control,
    key: &str,
    protocol: ViewerProtocol,
) -> Result<StreamSlot, LimitRefusal> {
    let hls = ctl
        .streams
        .get(key)
        .map_or(0, |c| c.viewers.get(ViewerProtocol::Hls));
    let hls = usize::try_from(hls).unwrap_or(usize::MAX);
    let result = ctl.limits.streams.admit_viewer(&ctl.limits, key, hls);
    if let Err(r) = &result {
        ctl.limits
            .refusals
            .refuse(protocol.as_str(), r, Instant::now());
    }
    result
}

/// Counts and logs (within the log budget) a refusal made by a protocol server's own limit
/// (e.g. WebRTC's pending peers), like the refusals of the limits above.
pub fn refused(ctl: &Control, protocol: &'static str, refusal: &LimitRefusal) {
    ctl.limits
        .refusals
        .refuse(protocol, refusal, Instant::now());
}

/// Admits a publisher in `app` over `protocol` (a fixed label such as `rtmp`), or counts and
/// logs the refusal.
pub(crate) fn admit_publisher(
    ctl: &Control,
    app: &str,
    protocol: &'static str,
) -> Result<StreamSlot, LimitRefusal> {
    let result = ctl.limits.streams.admit_publisher(&ctl.limits, app);
    if let Err(r) = &result {
        ctl.limits.refusals.refuse(protocol, r, Instant::now());
    }
    result
}

/// TCP connections open now per listener, in `GET /api/v1/server`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct OpenConnections {
    rtmp: usize,
    rtmps: usize,
    http: usize,
    https: usize,
    srt: usize,
}

impl OpenConnections {
    /// The counts now.
    pub fn of(ctl: &Control) -> Self {
        let c = &ctl.limits.connections;
        Self {
            rtmp: c.open(ListenerKind::Rtmp),
            rtmps: c.open(ListenerKind::Rtmps),
            http: c.open(ListenerKind::Http),
            https: c.open(ListenerKind::Https),
            srt: c.open(ListenerKind::Srt),
        }
    }
}

/// Sweeps the rate table and writes the summary of unlogged refusals, until shutdown.
pub async fn upkeep(ctl: Arc<Control>) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = ctl.shutdown.cancelled() => return,
            _ = tick.tick() => {
                ctl.limits.connections.sweep();
                ctl.limits.refusals.flush(Instant::now());
            }
        }
    }
}

/// Registers the limit series on the scrape's recorder: open connections per listener,
/// tracked addresses, and refusals by protocol and reason.
pub fn metrics(ctl: &Control) {
    metrics::describe_gauge!(
        "sluice_connections_open",
        "TCP connections open now, by listener (rtmp, rtmps, http, https); their sum is \
         bounded by limits.max_connections."
    );
    metrics::describe_gauge!(
        "sluice_limits_tracked_addresses",
        "Client addresses in the per-address connection rate table."
    );
    let c = &ctl.limits.connections;
    for l in ListenerKind::ALL {
        metrics::gauge!("sluice_connections_open", "listener" => l.as_str()).set(c.open(l) as f64);
    }
    metrics::gauge!("sluice_limits_tracked_addresses").set(c.tracked_addresses() as f64);
    for ((protocol, reason), n) in ctl.limits.refusals.counts() {
        metrics::counter!("sluice_connections_refused_total", "protocol" => protocol,
            "reason" => reason.as_str())
        .absolute(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_labels_are_unique() {
        let mut labels: Vec<&str> = LimitReason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), LimitReason::ALL.len());
    }
}
