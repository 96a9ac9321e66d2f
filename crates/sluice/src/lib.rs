//! Sluice: the wiring of the servers. The only crate that knows every other one.
//!
//! [`start`] binds every listener, builds the control plane, starts each server with the
//! handles it needs, composes the HTTP router from the servers' routes, and returns a
//! [`RunningServer`] that knows its bound addresses (tests bind port 0) and shuts everything
//! down in bounded time (one cancellation token, one task tracker).
#![forbid(unsafe_code)]

mod demo;
pub mod log;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use control::tls::{TlsService, TlsStats};
use control::{Control, ListenerAddrs};
use hub::{Hub, HubConfig, Transform, TransformError};
use media::{Codec, Frame};
use server_http::HttpServer;
use server_srt::SrtServer;
use server_webrtc::WebRtcServer;
use tokio::net::TcpListener;

pub use config::{self as configuration, Config};
pub use control::api::{API_ROUTES, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, OPENAPI_JSON};
pub use control::counters::{PerProtocol, StreamCounters, StreamRegistry, ViewerProtocol};
pub use control::limits::{
    LOG_BURST, LOG_WINDOW, LimitReason, LimitRefusal, ListenerKind, MAX_RATE_TRACKED_ADDRESSES,
    RATE_SWEEP_MIN_INTERVAL, UPKEEP_INTERVAL,
};
pub use control::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;
pub use control::sessions::{
    SessionEntry, SessionGuard, SessionInfo, SessionKind, SessionRegistry,
};
pub use control::tls::MAX_PEM_BYTES;
pub use control::webhooks::{
    EventKind, MAX_WEBHOOK_ATTEMPTS, MAX_WEBHOOK_BACKOFF_MS, MAX_WEBHOOK_QUEUE,
    MAX_WEBHOOK_RESPONSE_BYTES, MAX_WEBHOOK_TIMEOUT_MS, MAX_WEBHOOK_URLS, WEBHOOK_SHUTDOWN_GRACE,
    WebhookEvent, WebhookStats, Webhooks, WebhooksConfig, backoff_delay, sign as webhook_signature,
};
pub use control::{ServerStats, http_error::LIMIT_CODE};
pub use demo::{DEMO_FLV, DEMO_KEY};
pub use server_http::{CONSOLE_ASSETS, CONSOLE_CSP, ConsoleAsset, HTTPS_ALPN, console_asset};
pub use server_webrtc::WebRtcStats;

/// Errors of starting the server.
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
    /// The control plane could not be built (access control keys, TLS files).
    #[error(transparent)]
    Control(#[from] control::ControlError),
    /// The HTTP server could not start (the VOD directory).
    #[error(transparent)]
    Http(#[from] server_http::HttpError),
    /// The WebRTC server could not start.
    #[error(transparent)]
    WebRtc(#[from] server_webrtc::WebRtcError),
    /// The SRT server could not start.
    #[error(transparent)]
    Srt(#[from] server_srt::SrtError),
    /// The cluster could not start (its Redis URL).
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    /// The demo clip could not be published.
    #[error("demo: {0}")]
    Demo(String),
}

impl From<config::ConfigError> for ServerError {
    fn from(e: config::ConfigError) -> Self {
        Self::Config(e.0)
    }
}

/// A started server: its bound addresses and a handle to stop it.
pub struct RunningServer {
    ctl: Arc<Control>,
    metrics_addr: Option<SocketAddr>,
    tls: Option<Arc<TlsService>>,
    webrtc: Option<WebRtcServer>,
    srt: Option<SrtServer>,
    http: HttpServer,
    cluster: Option<Arc<cluster::Cluster>>,
}

/// The hub's settings from `[hub]` and `[limits]`.
fn hub_config(config: &Config) -> HubConfig {
    HubConfig {
        gop_max_frames: config.hub.gop_max_frames,
        gop_max_bytes: config.hub.gop_max_bytes,
        gop_max_duration_ms: config.hub.gop_max_duration_ms,
        ring_capacity: config.hub.ring_capacity,
        publisher_grace_ms: config.hub.publisher_grace_ms,
        max_streams: config.limits.max_streams,
    }
}

/// Registers the hub's derived audio tracks: AAC to Opus (for WebRTC viewers of an RTMP
/// publisher's stream) and Opus to AAC (for the RTMP, FLV and HLS players and the recordings
/// of a WHIP publisher's stream). Each runs once per stream while someone wants it; the
/// engines and their frame adapters are `transcode`'s, the closures only bridge its error
/// type to the hub's.
fn register_transforms(hub: &Hub) {
    hub.register_transform(Codec::Aac, Codec::Opus, |header: Option<&Frame>| {
        let mut engine = transcode::AacToOpusFrames::new(header)?;
        let push = move |f: &Frame, out: &mut Vec<Frame>| -> Result<(), TransformError> {
            Ok(engine.push(f, out)?)
        };
        Ok(Box::new(push) as Box<dyn Transform>)
    });
    hub.register_transform(Codec::Opus, Codec::Aac, |header: Option<&Frame>| {
        let mut engine = transcode::OpusToAacFrames::new(header)?;
        let push = move |f: &Frame, out: &mut Vec<Frame>| -> Result<(), TransformError> {
            Ok(engine.push(f, out)?)
        };
        Ok(Box::new(push) as Box<dyn Transform>)
    });
}

/// Binds the listeners described by `config` and starts serving.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    config.validate()?;
    for key in config.limits.deprecated_keys() {
        tracing::warn!("deprecated configuration key ignored: {key}");
    }
    let rtmp_listener = bind("rtmp", config.rtmp.listen).await?;
    let http_listener = bind("http", config.http.listen).await?;
    let metrics_listener = match config.http.metrics_listen {
        Some(addr) => Some((bind("metrics", addr).await?, addr)),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some((l, addr)) => Some(local_addr("metrics", l, *addr)?),
        None => None,
    };
    let addrs = ListenerAddrs {
        rtmp: local_addr("rtmp", &rtmp_listener, config.rtmp.listen)?,
        http: local_addr("http", &http_listener, config.http.listen)?,
    };
    let tls_listeners = bind_tls(&config).await?;
    let hub = Hub::new(hub_config(&config));
    register_transforms(&hub);
    let ctl = Arc::new(Control::new(config, hub, addrs)?);
    let tls = tls_listeners.as_ref().map(|t| t.0.clone());
    if let Some(t) = &tls {
        ctl.add_source(t.clone());
    }
    let http = HttpServer::new(&ctl, tls.as_ref().map(|t| t.https_addr))?;
    let recorder = record::Recorder::new(&ctl);
    let webrtc = if ctl.config.webrtc.enabled {
        Some(WebRtcServer::start(&ctl).await?)
    } else {
        None
    };
    let srt = if ctl.config.srt.enabled {
        Some(SrtServer::start(&ctl).await?)
    } else {
        None
    };
    let cluster = cluster::Cluster::start(&ctl)?;
    let app = router(&ctl, &http, &recorder, webrtc.as_ref(), cluster.as_ref());
    let tracker = ctl.tracker.clone();
    if let Some((tls, rtmps_listener, https_listener)) = tls_listeners {
        tracker.spawn(server_rtmp::run_tls(
            ctl.clone(),
            rtmps_listener,
            tls.clone(),
        ));
        tracker.spawn(
            http.clone()
                .serve_tls(https_listener, app.clone(), tls.clone()),
        );
        tracker.spawn(control::tls::watch(
            tls.clone(),
            ctl.config.tls.reload_check_ms,
            ctl.shutdown.clone(),
        ));
        tracing::info!(rtmps_addr = %tls.rtmps_addr, https_addr = %tls.https_addr, "tls listening");
    }
    tracker.spawn(server_rtmp::run(ctl.clone(), rtmp_listener));
    tracker.spawn(http.clone().serve(http_listener, app));
    if let (Some((l, _)), Some(addr)) = (metrics_listener, metrics_addr) {
        tracker.spawn(http.clone().serve_metrics(l));
        tracing::info!(%addr, "metrics listening");
    }
    // The ABR ladder follows publishes of the `[transcode]` apps (nothing when none).
    ladder::start(&ctl);
    ctl.spawn_upkeep();
    tracing::info!(rtmp_addr = %addrs.rtmp, "rtmp listening");
    tracing::info!(http_addr = %addrs.http, "http listening");
    Ok(RunningServer {
        ctl,
        metrics_addr,
        tls,
        webrtc,
        srt,
        http,
        cluster,
    })
}

/// Every HTTP route: the HTTP server's media routes, the WebRTC signalling routes and pages,
/// the REST API (the control plane's, the recorder's and VOD's) behind one guard, the
/// cluster's relay (its own authentication) and the probes `/healthz` and `/readyz`.
fn router(
    ctl: &Arc<Control>,
    http: &HttpServer,
    recorder: &Arc<record::Recorder>,
    webrtc: Option<&WebRtcServer>,
    cluster: Option<&Arc<cluster::Cluster>>,
) -> Router {
    let (media, vod_api) = http.routes();
    let api = control::api::routes(Arc::clone(ctl))
        .merge(recorder.routes())
        .merge(vod_api)
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(ctl),
            control::api_guard::guard,
        ));
    let mut app = api.merge(media);
    if let Some(w) = webrtc {
        app = app.merge(w.routes());
    }
    if let Some(c) = cluster {
        app = app.merge(c.routes());
    }
    app.merge(probes(ctl, cluster))
}

/// `GET /healthz`: 200 while the process serves (liveness). `GET /readyz`: 200 when this
/// node should get new sessions: not shutting down and, in a cluster, registered in Redis
/// (else 503, so a load balancer sends new sessions elsewhere; existing ones carry on).
fn probes(ctl: &Arc<Control>, cluster: Option<&Arc<cluster::Cluster>>) -> Router {
    use axum::http::StatusCode;
    let ctl = Arc::clone(ctl);
    let cluster = cluster.cloned();
    Router::new()
        .route(
            "/healthz",
            axum::routing::get(|| async { (StatusCode::OK, "ok\n") }),
        )
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready =
                    !ctl.shutdown.is_cancelled() && cluster.as_ref().is_none_or(|c| c.registered());
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
}

/// Loads the certificate (a bad file is a startup error naming it) and binds the RTMPS and
/// HTTPS listeners, when `[tls]` is configured.
async fn bind_tls(
    config: &Config,
) -> Result<Option<(Arc<TlsService>, TcpListener, TcpListener)>, ServerError> {
    let c = &config.tls;
    if !c.enabled() {
        return Ok(None);
    }
    let rtmps = bind("rtmps", c.rtmps_listen).await?;
    let https = bind("https", c.https_listen).await?;
    let rtmps_addr = local_addr("rtmps", &rtmps, c.rtmps_listen)?;
    let https_addr = local_addr("https", &https, c.https_listen)?;
    let service = TlsService::new(c, rtmps_addr, https_addr)?;
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
        self.ctl.addrs.rtmp
    }

    /// The address the HTTP listener is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.ctl.addrs.http
    }

    /// The bound address of the separate `/metrics` listener (`http.metrics_listen`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The address the RTMPS listener is bound to (`None` when TLS is off).
    pub fn rtmps_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.rtmps_addr)
    }

    /// The address the HTTPS/WSS listener is bound to (`None` when TLS is off).
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.https_addr)
    }

    /// TLS counters: handshake errors per listener, certificate reloads (`None` when TLS is
    /// off).
    pub fn tls_stats(&self) -> Option<&TlsStats> {
        self.tls.as_ref().map(|t| &t.stats)
    }

    /// The UDP address of the SRT listener (`None` when `srt.enabled` is false).
    pub fn srt_addr(&self) -> Option<SocketAddr> {
        self.srt.as_ref().map(SrtServer::local_addr)
    }

    /// The SRT server's counters (`None` when `srt.enabled` is false).
    pub fn srt_stats(&self) -> Option<&server_srt::SrtStats> {
        self.srt.as_ref().map(SrtServer::stats)
    }

    /// The UDP address WebRTC peers use (`None` when `webrtc.enabled` is false).
    pub fn webrtc_addr(&self) -> Option<SocketAddr> {
        self.webrtc.as_ref().map(WebRtcServer::local_addr)
    }

    /// WebRTC sessions alive now (WHEP and WHIP resources not yet ended or timed out).
    pub fn webrtc_sessions(&self) -> usize {
        self.webrtc.as_ref().map_or(0, WebRtcServer::sessions)
    }

    /// WebRTC peers whose offer was answered and whose ICE and DTLS have not completed yet.
    pub fn webrtc_pending_peers(&self) -> usize {
        self.webrtc.as_ref().map_or(0, WebRtcServer::pending)
    }

    /// WebRTC counters (`None` when `webrtc.enabled` is false).
    pub fn webrtc_stats(&self) -> Option<&WebRtcStats> {
        self.webrtc.as_ref().map(WebRtcServer::stats)
    }

    /// Audio transcoders running now for WebRTC's codec: the hub's derived tracks from or to
    /// Opus (AAC to Opus for WHEP viewers of RTMP streams, Opus to AAC for the other players
    /// of WHIP streams), at most one per stream and direction; each lingers
    /// [`hub::DERIVED_LINGER`] after its last viewer left.
    pub fn webrtc_transcoders(&self) -> usize {
        self.webrtc.as_ref().map_or(0, WebRtcServer::transcoders)
    }

    /// HLS muxers running now.
    pub fn hls_muxers(&self) -> usize {
        self.http.hls_muxers()
    }

    /// TCP connections open now on `listener` (admitted by `[limits]`, not yet closed).
    pub fn open_connections(&self, listener: ListenerKind) -> usize {
        self.ctl.limits.connections.open(listener)
    }

    /// The cluster membership, when `[cluster]` is on.
    pub fn cluster(&self) -> Option<&Arc<cluster::Cluster>> {
        self.cluster.as_ref()
    }

    /// The stream hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.ctl.hub
    }

    /// The control plane (admission, registries, counters).
    pub fn control(&self) -> &Arc<Control> {
        &self.ctl
    }

    /// Server-wide counters.
    pub fn stats(&self) -> &ServerStats {
        &self.ctl.stats
    }

    /// The server's per-stream counters (viewers and egress by protocol, codec details).
    pub fn stream_counters(&self) -> &StreamRegistry {
        &self.ctl.streams
    }

    /// Every running publisher and viewer session (what `GET /api/v1/sessions` lists).
    pub fn sessions(&self) -> &Arc<SessionRegistry> {
        &self.ctl.sessions
    }

    /// Webhook delivery, when `[webhooks] urls` is set: [`Webhooks::emit`] queues an event
    /// (e.g. [`WebhookEvent::record_segment`]) without waiting.
    pub fn webhooks(&self) -> Option<&Webhooks> {
        self.ctl.webhooks.as_ref()
    }

    /// The Prometheus exposition text `GET /metrics` serves.
    pub fn metrics_text(&self) -> String {
        control::metrics::render(&self.ctl)
    }

    /// Publishes the bundled looping demo clip at [`DEMO_KEY`] until shutdown.
    pub fn start_demo(&self) -> Result<(), ServerError> {
        let counters = self.ctl.streams.get_or_create(DEMO_KEY);
        let task = demo::DemoPublisher::new(&self.ctl.hub, DEMO_KEY, counters)?;
        self.ctl.tracker.spawn(task.run(self.ctl.shutdown.clone()));
        Ok(())
    }

    /// Stops accepting, tells publishers and players the server is going away, and waits up to
    /// `grace` for every connection to finish. Returns true when all finished in time.
    /// Then pending webhook deliveries get [`WEBHOOK_SHUTDOWN_GRACE`] and the rest is dropped.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.ctl.shutdown.cancel();
        self.ctl.hub.shutdown();
        self.ctl.tracker.close();
        let done = tokio::time::timeout(grace, self.ctl.tracker.wait())
            .await
            .is_ok();
        if let Some(w) = &self.ctl.webhooks {
            // The delivery tasks stop by themselves after the grace; a little slack on top.
            w.shutdown(WEBHOOK_SHUTDOWN_GRACE + Duration::from_millis(500))
                .await;
        }
        done
    }
}
