//! Sluice's control plane: everything every protocol server shares and none of them owns.
//!
//! The crate's rule: protocol servers (`server-rtmp`, `server-http`, `server-webrtc`) and
//! other hub consumers (`record`) depend on this crate and never on each other. What one of
//! them needs from the rest reaches it through [`Control`]: the one admission path
//! ([`admission`]: access control, then limits, then the hub, then the session registry),
//! the registries (sessions, per-stream counters, limits), webhooks, the TLS certificate
//! service, and [`StatusSource`]s, through which each server adds its figures to
//! `GET /metrics` and `GET /api/v1/server` without the API knowing the server.
//!
//! A new protocol adds an adapter that asks [`Control::authorize`] and then
//! [`Control::publish`] or [`Control::play`], and maps [`admission::Refusal`] to its own wire
//! error; it does not copy the chain.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod api_guard;
pub mod auth;
mod auth_webhook;
pub mod counters;
pub mod http_error;
pub mod latency;
pub mod limits;
pub mod metrics;
pub mod procfs;
pub mod sessions;
pub mod time;
pub mod tls;
pub mod viewer;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use config::Config;
use hub::Hub;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use admission::{Caller, Playing, Publishing, Refusal};
pub use counters::{PerProtocol, StreamCounters, StreamRegistry, ViewerProtocol};
pub use limits::{LimitReason, LimitRefusal, ListenerKind};
pub use sessions::{
    PendingSession, Session, SessionEntry, SessionGuard, SessionInfo, SessionKind, SessionRegistry,
};
pub use viewer::ViewerGuard;
pub use webhooks::{EventKind, WebhookEvent, WebhookStats, Webhooks};

/// Errors of building the control plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The configuration is unusable; the message names the key.
    #[error("configuration: {0}")]
    Config(String),
    /// A TLS certificate or key file could not be loaded.
    #[error("tls: {}: {reason}", file.display())]
    Tls {
        /// The file at fault (`tls.cert_file` or `tls.key_file`).
        file: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<config::ConfigError> for ControlError {
    fn from(e: config::ConfigError) -> Self {
        Self::Config(e.0)
    }
}

impl From<access::AccessError> for ControlError {
    fn from(e: access::AccessError) -> Self {
        match e {
            access::AccessError::Config(m) => Self::Config(m),
        }
    }
}

/// Server-wide counters (relaxed atomics, read by tests and by the metrics endpoint).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// RTMP connections accepted.
    pub rtmp_connections: AtomicU64,
    /// RTMP clients that used the digest (Flash Player 9) handshake.
    pub rtmp_digest_handshakes: AtomicU64,
    /// RTMP connections closed for a protocol error, bad media or a timeout.
    pub rtmp_errors: AtomicU64,
    /// HTTP-FLV and WebSocket-FLV viewers accepted.
    pub flv_viewers: AtomicU64,
    /// Socket writes (RTMP) and body chunks or messages (HTTP-FLV, WS-FLV) sent to viewers:
    /// the figure that batching (`hub.viewer_batch_ms`) brings down.
    pub viewer_writes: AtomicU64,
    /// Bytes read from RTMP connections (publishers' media and every client's commands).
    pub rtmp_bytes_in: AtomicU64,
    /// Bytes RTMP connections hold now in incomplete messages, with what they reserved for the
    /// read being decoded (bounded by `limits.max_rtmp_partial_bytes`).
    pub rtmp_partial_bytes: AtomicU64,
    /// RTMP connections closed because their incomplete messages would have grown past
    /// `limits.max_rtmp_partial_bytes` (also counted in `rtmp_errors`).
    pub rtmp_partial_refused: AtomicU64,
    /// Bytes sent to viewers, by protocol.
    pub bytes_out: PerProtocol,
    /// Viewers attached now, by protocol.
    pub viewers: PerProtocol,
    /// Webhook events and deliveries.
    pub webhooks: Arc<WebhookStats>,
    /// Bytes of file bodies sent by `/vod` (metrics: `sluice_egress_bytes_total{protocol="vod"}`).
    pub vod_bytes_out: AtomicU64,
}

/// The addresses the main listeners are bound to (what `GET /api/v1/server` reports).
#[derive(Debug, Clone, Copy)]
pub struct ListenerAddrs {
    /// RTMP.
    pub rtmp: SocketAddr,
    /// HTTP.
    pub http: SocketAddr,
}

/// What a component adds to `GET /metrics` and `GET /api/v1/server`. Registered once at
/// start ([`Control::add_source`]); called on every scrape or request.
pub trait StatusSource: Send + Sync + 'static {
    /// Describes and sets this component's series (called inside the scrape's recorder, so
    /// the `metrics` macros reach it).
    fn metrics(&self) {}
    /// Exposition text appended after the recorder's (hand-rendered histograms).
    fn metrics_text(&self) -> String {
        String::new()
    }
    /// This component's section of `GET /api/v1/server`: its key and value.
    fn server_info(&self) -> Option<(&'static str, serde_json::Value)> {
        None
    }
}

/// The state every server shares: configuration, the hub, the admission chain's parts and
/// the registries. Built once by the binary, handed to each server as `Arc<Control>`.
pub struct Control {
    /// The validated configuration.
    pub config: Config,
    /// The stream hub.
    pub hub: Arc<Hub>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Every spawned task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Server-wide counters.
    pub stats: ServerStats,
    /// Per-stream counters (viewers and egress by protocol, codec details).
    pub streams: StreamRegistry,
    /// Every running publisher and viewer session.
    pub sessions: Arc<SessionRegistry>,
    /// Webhook delivery (`None` when no URL is configured).
    pub webhooks: Option<Webhooks>,
    /// When the server started.
    pub started: Instant,
    /// The main listeners' addresses.
    pub addrs: ListenerAddrs,
    /// Delivery latency histograms.
    pub latency: latency::LatencyMetrics,
    /// Access control (`[auth]`).
    pub auth: auth::AuthState,
    /// Connection, viewer and publisher limits (`[limits]`).
    pub limits: Arc<limits::Limits>,
    sources: Mutex<Vec<Arc<dyn StatusSource>>>,
    remote: std::sync::OnceLock<Arc<dyn RemoteStreams>>,
}

/// Longest time a play waits for [`RemoteStreams::fetch`] to bring a stream the local hub
/// does not have: an upstream that takes longer is as good as absent for a player (which
/// retries), and the request holds a connection meanwhile.
pub const REMOTE_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a play finds a stream the local hub does not have (the cluster: another node owns
/// it, and this node pulls it into its hub). Registered once at start
/// ([`Control::set_remote`]); [`Control::authorize`] consults it for every allowed play of a
/// missing stream, so every protocol's players get it without knowing about it.
pub trait RemoteStreams: Send + Sync {
    /// Brings `key` into the local hub if another node has it (joining a pull already under
    /// way: one upstream per stream per node). Resolves `true` once the stream is in the
    /// hub, `false` when no node has it or it could not be pulled.
    fn fetch(&self, key: &str) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'static>>;

    /// Lets go of `key` before a publisher here takes it (an encoder that reconnects to a
    /// node pulling its stream): stops the pull, so the local publish takes the stream over
    /// in its grace period and its viewers stay. Resolves once the pulled publisher is gone
    /// (or at once when `key` is not pulled).
    fn release(&self, key: &str) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Control {
    /// The control plane for `config` (validated here) over `hub`, with the listeners at
    /// `addrs`. Starts webhook delivery when URLs are configured.
    pub fn new(config: Config, hub: Arc<Hub>, addrs: ListenerAddrs) -> Result<Self, ControlError> {
        config.validate()?;
        let auth = auth::AuthState::new(&config.auth, addrs.http)?;
        let mut running = vec![ListenerKind::Rtmp, ListenerKind::Http];
        if config.tls.enabled() {
            running.extend([ListenerKind::Rtmps, ListenerKind::Https]);
        }
        if config.srt.enabled {
            running.push(ListenerKind::Srt);
        }
        let limits = limits::Limits::new(&config.limits, &running)?;
        let stats = ServerStats::default();
        let webhooks = Webhooks::start(&config.webhooks, Arc::clone(&stats.webhooks));
        Ok(Self {
            sessions: Arc::new(SessionRegistry::with_webhooks(webhooks.clone())),
            webhooks,
            config,
            hub,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            stats,
            streams: StreamRegistry::default(),
            started: Instant::now(),
            addrs,
            latency: latency::LatencyMetrics::default(),
            auth,
            limits,
            sources: Mutex::new(Vec::new()),
            remote: std::sync::OnceLock::new(),
        })
    }

    /// Adds a component's figures to `GET /metrics` and `GET /api/v1/server`.
    pub fn add_source(&self, source: Arc<dyn StatusSource>) {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
    }

    /// Registers where plays of streams the local hub lacks look next (the cluster). Only
    /// the first registration counts; returns false for a later one.
    pub fn set_remote(&self, remote: Arc<dyn RemoteStreams>) -> bool {
        self.remote.set(remote).is_ok()
    }

    /// Makes sure `key` is in the local hub before a play subscribes: a no-op when it is
    /// there or no [`RemoteStreams`] is registered; else waits (at most
    /// [`REMOTE_FETCH_TIMEOUT`]) for the remote source to bring it.
    pub(crate) async fn locate(&self, key: &str) {
        let Some(remote) = self.remote.get() else {
            return;
        };
        if self.hub.contains(key) {
            return;
        }
        let found = tokio::time::timeout(REMOTE_FETCH_TIMEOUT, remote.fetch(key)).await;
        tracing::debug!(key, found = ?found, "remote stream lookup");
    }

    /// Before a publish: when `key` is pulled from another node, stops the pull (bounded by
    /// [`REMOTE_FETCH_TIMEOUT`]) so the publisher here can take the stream over.
    pub(crate) async fn release_remote(&self, key: &str) {
        let Some(remote) = self.remote.get() else {
            return;
        };
        if !self.hub.contains(key) {
            return;
        }
        let _ = tokio::time::timeout(REMOTE_FETCH_TIMEOUT, remote.release(key)).await;
    }

    /// The registered status sources.
    pub fn sources(&self) -> Vec<Arc<dyn StatusSource>> {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Calls `f` with the key of every newly published stream, whatever its ingest, from a
    /// task that follows the hub's lifecycle events until shutdown (the HLS muxer service
    /// starts `always_on` muxers so, the recorder its automatic recordings). When the task
    /// falls behind the events it calls `f` for every live stream instead, so `f` must do
    /// nothing for a stream it already handles.
    pub fn on_publish(self: &Arc<Self>, what: &'static str, f: impl Fn(&str) + Send + 'static) {
        let mut events = self.hub.events();
        let ctl = Arc::clone(self);
        self.tracker.spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = ctl.shutdown.cancelled() => return,
                    e = events.recv() => e,
                };
                match event {
                    Ok(hub::HubEvent::Published {
                        key,
                        resumed: false,
                        ..
                    }) => f(&key),
                    Ok(_) => {}
                    Err(hub::RecvError::Lagged(n)) => {
                        tracing::warn!(what, missed = n, "hub events: resynchronising");
                        for s in ctl.hub.streams() {
                            if s.is_live {
                                f(&s.key);
                            }
                        }
                    }
                    Err(hub::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Runs the periodic upkeep (limits tables, refusal log summaries, latency buckets)
    /// until shutdown.
    pub fn spawn_upkeep(self: &Arc<Self>) {
        self.tracker.spawn(limits::upkeep(Arc::clone(self)));
        self.tracker.spawn(latency::upkeep(Arc::clone(self)));
    }
}
