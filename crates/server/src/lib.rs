//! Sluice's servers: thin IO adapters that connect sockets to the sans-IO protocol codecs
//! (`rtmp`, `flv`) and to the stream hub.
//!
//! [`start`] binds every listener and returns a [`RunningServer`] that knows its bound
//! addresses (tests bind port 0) and shuts everything down in bounded time.
#![forbid(unsafe_code)]

mod api;
pub mod auth;
pub mod config;
mod console;
mod counters;
mod demo;
mod egress;
#[doc(hidden)]
pub mod fuzzing;
mod hls_http;
mod http;
mod https;
mod latency;
mod limits;
mod metrics;
mod procfs;
mod record;
mod rtmp_conn;
mod rtmp_server;
mod sessions;
mod tls;
mod vod;
mod webhooks;
mod webrtc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hub::{Hub, HubConfig};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use api::{API_ROUTES, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, OPENAPI_JSON};
pub use config::Config;
pub use console::{CONSOLE_ASSETS, CONSOLE_CSP, ConsoleAsset, console_asset};
pub use counters::{PerProtocol, StreamCounters, StreamRegistry, ViewerProtocol};
pub use demo::{DEMO_FLV, DEMO_KEY};
pub use limits::{
    LIMIT_CODE, LOG_BURST, LOG_WINDOW, LimitReason, LimitRefusal, ListenerKind,
    MAX_HTTP_HEADER_BYTES, MAX_RATE_TRACKED_ADDRESSES, MIN_HTTP_HEADER_BYTES,
    RATE_SWEEP_MIN_INTERVAL, UPKEEP_INTERVAL,
};
pub use metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;
pub use sessions::{SessionEntry, SessionGuard, SessionInfo, SessionKind, SessionRegistry};
pub use tls::{HTTPS_ALPN, MAX_PEM_BYTES, TlsStats};
pub use webhooks::{
    EventKind, MAX_WEBHOOK_ATTEMPTS, MAX_WEBHOOK_BACKOFF_MS, MAX_WEBHOOK_QUEUE,
    MAX_WEBHOOK_RESPONSE_BYTES, MAX_WEBHOOK_TIMEOUT_MS, MAX_WEBHOOK_URLS, WEBHOOK_SHUTDOWN_GRACE,
    WebhookEvent, WebhookStats, Webhooks, WebhooksConfig, backoff_delay, sign as webhook_signature,
};
pub use webrtc::WebRtcStats;

/// Errors of the server crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid; the message names the key.
    #[error("configuration: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The demo clip could not be published.
    #[error("demo: {0}")]
    Demo(String),
    /// The VOD directory (`vod.dir`) could not be created or resolved.
    #[error("vod.dir {dir:?}: {source}")]
    VodDir {
        /// The directory configured.
        dir: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS certificate or key file could not be loaded.
    #[error("tls: {}: {reason}", file.display())]
    Tls {
        /// The file at fault (`tls.cert_file` or `tls.key_file`).
        file: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reasons a connection or viewer is refused: the fixed label set of
/// `sluice_connections_refused_total{reason}`.
pub const REFUSE_REASONS: [&str; 1] = ["limit"];

/// Server-wide counters (atomics, read by tests and by the metrics endpoint).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// RTMP connections accepted.
    pub rtmp_connections: AtomicU64,
    /// RTMP connections refused by `limits.max_rtmp_connections`.
    pub rtmp_refused: AtomicU64,
    /// RTMP clients that used the digest (Flash Player 9) handshake.
    pub rtmp_digest_handshakes: AtomicU64,
    /// RTMP connections closed for a protocol error, bad media or a timeout.
    pub rtmp_errors: AtomicU64,
    /// HTTP-FLV and WebSocket-FLV viewers accepted.
    pub flv_viewers: AtomicU64,
    /// Socket writes (RTMP) and body chunks or messages (HTTP-FLV, WS-FLV) sent to viewers:
    /// the figure that batching (`hub.viewer_batch_ms`) brings down.
    pub viewer_writes: AtomicU64,
    /// HTTP-FLV and WebSocket-FLV viewers refused by `limits.max_http_viewers` (reason
    /// `limit`).
    pub http_refused: AtomicU64,
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

/// State shared by every connection of one server.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) hub: Arc<Hub>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) rtmp_slots: Arc<Semaphore>,
    pub(crate) http_viewer_slots: Arc<Semaphore>,
    pub(crate) stats: ServerStats,
    pub(crate) streams: StreamRegistry,
    pub(crate) sessions: Arc<SessionRegistry>,
    /// Webhook delivery (`None` when no URL is configured).
    pub(crate) webhooks: Option<Webhooks>,
    pub(crate) started: std::time::Instant,
    pub(crate) rtmp_addr: SocketAddr,
    pub(crate) http_addr: SocketAddr,
    /// Every HLS muxer.
    pub(crate) hls: hls_http::HlsService,
    /// Recordings in progress.
    pub(crate) recorder: record::Recorder,
    /// Delivery latency histograms.
    pub(crate) latency: latency::LatencyMetrics,
    /// Tracks every spawned task, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// `vod.dir`, canonicalized at start (served paths must stay under it).
    pub(crate) vod_root: std::path::PathBuf,
    /// RTMPS and HTTPS (`None` when `[tls]` has no certificate).
    pub(crate) tls: Option<Arc<tls::TlsService>>,
    /// Access control (`[auth]`).
    pub(crate) auth: auth::AuthState,
    /// WebRTC (WHEP) peers and their UDP socket (`None` when `webrtc.enabled` is false).
    pub(crate) webrtc: Option<Arc<webrtc::WebRtc>>,
    /// Connection, viewer and publisher limits (`[limits]`).
    pub(crate) limits: Arc<limits::Limits>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("rtmp_addr", &self.rtmp_addr)
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

/// A started server: its bound addresses and a handle to stop it.
pub struct RunningServer {
    rtmp_addr: SocketAddr,
    http_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    tracker: TaskTracker,
}

/// Binds the listeners described by `config` and starts serving.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    config.validate()?;
    let hub = Hub::new(HubConfig {
        gop_max_frames: config.hub.gop_max_frames,
        gop_max_bytes: config.hub.gop_max_bytes,
        gop_max_duration_ms: config.hub.gop_max_duration_ms,
        ring_capacity: config.hub.ring_capacity,
        publisher_grace_ms: config.hub.publisher_grace_ms,
        max_streams: config.limits.max_streams,
    });
    let vod_root = vod::prepare_dir(&config.vod.dir)?;
    let rtmp_listener = bind("rtmp", config.rtmp.listen).await?;
    let http_listener = bind("http", config.http.listen).await?;
    let metrics_listener = match config.http.metrics_listen {
        Some(addr) => Some(bind("metrics", addr).await?),
        None => None,
    };
    let metrics_addr = match (&metrics_listener, config.http.metrics_listen) {
        (Some(l), Some(addr)) => Some(local_addr("metrics", l, addr)?),
        _ => None,
    };
    let rtmp_addr = local_addr("rtmp", &rtmp_listener, config.rtmp.listen)?;
    let http_addr = local_addr("http", &http_listener, config.http.listen)?;
    let tls_listeners = bind_tls(&config).await?;
    let auth = auth::AuthState::new(&config.auth, http_addr)?;
    let webrtc = if config.webrtc.enabled {
        Some(Arc::new(webrtc::WebRtc::bind(&config.webrtc).await?))
    } else {
        None
    };
    let limits = limits::Limits::new(&config.limits)?;
    let tracker = TaskTracker::new();
    let stats = ServerStats::default();
    let webhooks = Webhooks::start(&config.webhooks, Arc::clone(&stats.webhooks));
    let shared = Arc::new(Shared {
        rtmp_slots: Arc::new(Semaphore::new(config.limits.max_rtmp_connections)),
        http_viewer_slots: Arc::new(Semaphore::new(config.limits.max_http_viewers)),
        config,
        hub,
        shutdown: CancellationToken::new(),
        stats,
        streams: StreamRegistry::default(),
        sessions: Arc::new(SessionRegistry::with_webhooks(webhooks.clone())),
        webhooks,
        started: std::time::Instant::now(),
        rtmp_addr,
        http_addr,
        hls: hls_http::HlsService::default(),
        recorder: record::Recorder::default(),
        latency: latency::LatencyMetrics::default(),
        tracker: tracker.clone(),
        vod_root,
        tls: tls_listeners.as_ref().map(|t| t.0.clone()),
        auth,
        webrtc,
        limits,
    });
    if let Some((tls, rtmps_listener, https_listener)) = tls_listeners {
        tracker.spawn(rtmp_server::run_tls(
            shared.clone(),
            rtmps_listener,
            tracker.clone(),
            tls.rtmps.clone(),
        ));
        tracker.spawn(https::serve(
            shared.clone(),
            https_listener,
            tracker.clone(),
            tls.https.clone(),
        ));
        tracker.spawn(tls::watch(
            tls.clone(),
            shared.config.tls.reload_check_ms,
            shared.shutdown.clone(),
        ));
        tracing::info!(rtmps_addr = %tls.rtmps_addr, https_addr = %tls.https_addr, "tls listening");
    }
    tracker.spawn(rtmp_server::run(
        shared.clone(),
        rtmp_listener,
        tracker.clone(),
    ));
    tracker.spawn(http::serve(shared.clone(), http_listener));
    if let (Some(l), Some(addr)) = (metrics_listener, metrics_addr) {
        tracker.spawn(http::serve_metrics(shared.clone(), l));
        tracing::info!(%addr, "metrics listening");
    }
    tracker.spawn(latency_upkeep(Arc::clone(&shared)));
    tracker.spawn(limits::upkeep(Arc::clone(&shared)));
    if let Some(w) = &shared.webrtc {
        w.spawn_io(&shared.shutdown, &tracker);
    }
    tracing::info!(%rtmp_addr, "rtmp listening");
    tracing::info!(%http_addr, "http listening");
    Ok(RunningServer {
        rtmp_addr,
        http_addr,
        metrics_addr,
        shared,
        tracker,
    })
}

/// Folds latency samples into buckets periodically, so they never pile up unscraped.
async fn latency_upkeep(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(latency::UPKEEP);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tick.tick() => shared.latency.upkeep(),
        }
    }
}

/// Loads the certificate (a bad file is a startup error naming it) and binds the RTMPS and
/// HTTPS listeners, when `[tls]` is configured.
async fn bind_tls(
    config: &Config,
) -> Result<Option<(Arc<tls::TlsService>, TcpListener, TcpListener)>, ServerError> {
    let c = &config.tls;
    if !c.enabled() {
        return Ok(None);
    }
    let rtmps = bind("rtmps", c.rtmps_listen).await?;
    let https = bind("https", c.https_listen).await?;
    let rtmps_addr = local_addr("rtmps", &rtmps, c.rtmps_listen)?;
    let https_addr = local_addr("https", &https, c.https_listen)?;
    let service = tls::TlsService::new(c, rtmps_addr, https_addr)?;
    Ok(Some((Arc::new(service), rtmps, https)))
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

fn local_addr(
    what: &'static str,
    l: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, ServerError> {
    l.local_addr()
        .map_err(|source| ServerError::Bind { what, addr, source })
}

impl RunningServer {
    /// The address the RTMP listener is bound to.
    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp_addr
    }

    /// The address the HTTP listener is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound address of the separate `/metrics` listener (`http.metrics_listen`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The address the RTMPS listener is bound to (`None` when TLS is off).
    pub fn rtmps_addr(&self) -> Option<SocketAddr> {
        self.shared.tls.as_ref().map(|t| t.rtmps_addr)
    }

    /// The address the HTTPS/WSS listener is bound to (`None` when TLS is off).
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.shared.tls.as_ref().map(|t| t.https_addr)
    }

    /// TLS counters: handshake errors per listener, certificate reloads (`None` when TLS is
    /// off).
    pub fn tls_stats(&self) -> Option<&TlsStats> {
        self.shared.tls.as_ref().map(|t| &t.stats)
    }

    /// The UDP address WebRTC peers use (`None` when `webrtc.enabled` is false).
    pub fn webrtc_addr(&self) -> Option<SocketAddr> {
        self.shared.webrtc.as_ref().map(|w| w.local)
    }

    /// WebRTC sessions alive now (WHEP resources not yet ended or timed out).
    pub fn webrtc_sessions(&self) -> usize {
        self.shared.webrtc.as_ref().map_or(0, |w| w.live())
    }

    /// WebRTC counters (`None` when `webrtc.enabled` is false).
    pub fn webrtc_stats(&self) -> Option<&WebRtcStats> {
        self.shared.webrtc.as_ref().map(|w| &w.stats)
    }

    /// AAC-to-Opus transcoders running now (one per stream with WebRTC viewers).
    pub fn webrtc_transcoders(&self) -> usize {
        self.shared.webrtc.as_ref().map_or(0, |w| w.audio.running())
    }

    /// TCP connections open now on `listener` (admitted by `[limits]`, not yet closed).
    pub fn open_connections(&self, listener: ListenerKind) -> usize {
        self.shared.limits.connections.open(listener)
    }

    /// The stream hub (for inspection in tests and, later, the API).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.shared.hub
    }

    /// Server-wide counters.
    pub fn stats(&self) -> &ServerStats {
        &self.shared.stats
    }

    /// The server's per-stream counters (viewers and egress by protocol, codec details).
    pub fn stream_counters(&self) -> &StreamRegistry {
        &self.shared.streams
    }

    /// Every running publisher and viewer session (what `GET /api/v1/sessions` lists).
    pub fn sessions(&self) -> &Arc<SessionRegistry> {
        &self.shared.sessions
    }

    /// Webhook delivery, when `[webhooks] urls` is set: [`Webhooks::emit`] queues an event
    /// (e.g. [`WebhookEvent::record_segment`]) without waiting.
    pub fn webhooks(&self) -> Option<&Webhooks> {
        self.shared.webhooks.as_ref()
    }

    /// The Prometheus exposition text `GET /metrics` serves.
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.shared)
    }

    /// Publishes the bundled looping demo clip at [`DEMO_KEY`] until shutdown.
    pub fn start_demo(&self) -> Result<(), ServerError> {
        let counters = self.shared.streams.get_or_create(DEMO_KEY);
        let task = demo::DemoPublisher::new(&self.shared.hub, DEMO_KEY, counters)?;
        self.tracker.spawn(task.run(self.shared.shutdown.clone()));
        Ok(())
    }

    /// Stops accepting, tells publishers and players the server is going away, and waits up to
    /// `grace` for every connection to finish. Returns true when all finished in time.
    /// Then pending webhook deliveries get [`WEBHOOK_SHUTDOWN_GRACE`] and the rest is dropped.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.shared.shutdown.cancel();
        self.shared.hub.shutdown();
        self.tracker.close();
        let done = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if let Some(w) = &self.shared.webhooks {
            // The delivery tasks stop by themselves after the grace; a little slack on top.
            w.shutdown(WEBHOOK_SHUTDOWN_GRACE + Duration::from_millis(500))
                .await;
        }
        done
    }
}
