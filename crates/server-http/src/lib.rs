//! Sluice's HTTP server: the listener (HTTP/1.1 and HTTP/2, plain and TLS, with the
//! connection limits and request-head bounds), and the media it serves: HTTP-FLV (chunked)
//! and WebSocket-FLV on `/{app}/{stream}.flv`, HLS on `/{app}/{stream}/index.m3u8`, files on
//! `/vod/...` (and their API under `/api/v1/vod`), Prometheus metrics on `/metrics` and the
//! web console at `/`.
//!
//! The crate's rule: a thin adapter that never imports another server. Every media route
//! checks access and limits through the control plane's one admission path, with the stream
//! name the handler then looks up ([`access::StreamName`], decoded once by the router). Other
//! servers' routes (WHEP/WHIP, the recording API) are merged into [`HttpServer::routes`] by
//! the binary; [`router`] is a function, so tests call it without a socket.
#![forbid(unsafe_code)]

mod conn;
mod console;
mod flv_egress;
mod hls;
mod https;
mod listener;
mod vod;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use access::{Action, StreamName};
use axum::Router;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use control::http_error::{add_cors, bearer, client_addr};
use control::tls::TlsService;
use control::{Caller, Control, Refusal, ViewerProtocol};
use hub::viewer::MAX_BATCH_FRAMES;
use hub::{Subscriber, TryRecv};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use console::{CONSOLE_ASSETS, CONSOLE_CSP, ConsoleAsset, console_asset};
use flv_egress::FlvEgress;
pub use https::HTTPS_ALPN;

/// Errors of starting the HTTP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The VOD directory (`vod.dir`) could not be created or resolved.
    #[error("vod.dir {dir:?}: {source}")]
    VodDir {
        /// The directory configured.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The state of this server's handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) ctl: Arc<Control>,
    /// Every HLS muxer.
    pub(crate) hls: hls::HlsService,
    /// `vod.dir`, canonicalized at start (served paths must stay under it).
    pub(crate) vod_root: PathBuf,
    /// `record.dir`, canonicalized at start: files under it are recordings, served under
    /// their stream's play rule (`record.access`).
    pub(crate) record_root: Option<PathBuf>,
    /// The HTTPS listener's address, for `tls.redirect_http` (`None` without TLS).
    pub(crate) https_addr: Option<SocketAddr>,
}

/// The HTTP server's state: what the binary wires and tests inspect.
#[derive(Debug, Clone)]
pub struct HttpServer {
    shared: Arc<Shared>,
}

impl HttpServer {
    /// Prepares `vod.dir`, starts the HLS muxer service (`hls.always_on` muxers start when a
    /// stream is published) and adds the HTTP figures to `/metrics`. `https_addr` is the
    /// HTTPS listener's address when TLS is on (where plain HTTP redirects to).
    pub fn new(ctl: &Arc<Control>, https_addr: Option<SocketAddr>) -> Result<Self, HttpError> {
        let vod_root = vod::prepare_dir(&ctl.config.vod.dir)?;
        // Made now (the recorder would make it at its first file) so its real path is known
        // before any file under it is served.
        let record_root = vod::prepare_dir(std::path::Path::new(&ctl.config.record.dir)).ok();
        let shared = Arc::new(Shared {
            ctl: Arc::clone(ctl),
            hls: hls::HlsService::default(),
            vod_root,
            record_root,
            https_addr,
        });
        if ctl.config.hls.enabled && ctl.config.hls.mux_always() {
            let weak = Arc::downgrade(&shared);
            ctl.on_publish("hls", move |key| {
                if let Some(s) = weak.upgrade() {
                    hls::on_publish(&s, key);
                }
            });
        }
        ctl.add_source(Arc::new(hls::Source(Arc::clone(&shared))));
        Ok(Self { shared })
    }

    /// The media routes (HTTP-FLV, WS-FLV, HLS, VOD files, the console, `/metrics` unless it
    /// has a listener of its own) and the VOD API routes (without the API guard: the binary
    /// puts one guard in front of every `/api/v1` route).
    pub fn routes(&self) -> (Router, Router) {
        (
            router(Arc::clone(&self.shared)),
            vod::api::routes(Arc::clone(&self.shared)),
        )
    }

    /// Serves plain HTTP on `listener` with `app` until shutdown (every connection passes
    /// the connection limits and gets the request-head size and time limits). With
    /// `tls.redirect_http`, everything but `/metrics` is redirected to HTTPS.
    pub async fn serve(self, listener: TcpListener, app: Router) {
        let app = match self.shared.https_addr {
            Some(addr) if self.shared.ctl.config.tls.redirect_http => {
                https::redirecting(app, addr.port())
            }
            _ => app,
        };
        listener::serve(self.shared, listener, app).await;
    }

    /// Serves HTTPS/WSS on `listener` with `app` until shutdown.
    pub async fn serve_tls(self, listener: TcpListener, app: Router, tls: Arc<TlsService>) {
        https::serve(self.shared, listener, app, tls).await;
    }

    /// Serves `/metrics` alone on `listener` (`http.metrics_listen`) until shutdown, with the
    /// same connection limits (counted as `http`) and time limits as the main listener.
    pub async fn serve_metrics(self, listener: TcpListener) {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(Arc::clone(&self.shared));
        listener::serve(self.shared, listener, app).await;
    }

    /// HLS muxers running now.
    pub fn hls_muxers(&self) -> usize {
        self.shared.hls.len()
    }
}

/// Bytes of FLV gathered into one HTTP chunk / WebSocket message at most.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Time allowed to send the Close frame to a kicked (or ended) WebSocket viewer.
const KICK_CLOSE: Duration = Duration::from_secs(2);

/// The media routes (a function so tests can call it without a socket).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    // `/metrics` has one segment and the API paths three or more, so the two-segment media
    // route below never shadows them. With a listener of its own, `/metrics` is only there.
    let mut r = Router::new();
    if shared.ctl.config.http.metrics_listen.is_none() {
        r = r.route("/metrics", get(metrics));
    }
    // Static segment: wins over `/{app}/{file}` (so `vod` is not an HTTP-FLV app name).
    r.route("/vod/{*path}", get(vod::serve::serve))
        // The web console. Static segments win over `/{app}/{file}` in the router, so
        // `/console/{file}` falls back to HTTP-FLV for an app that happens to be named
        // "console".
        .route("/", get(console::index))
        .route("/console/{file}", get(console_file))
        .route("/{app}/{file}", get(flv))
        .route("/{app}/{stream}/{file}", get(hls_file))
        .with_state(shared)
}

async fn hls_file(
    State(shared): State<Arc<Shared>>,
    Path((app, stream, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let remote = client_addr(&extensions).map(|a| a.ip());
    let playlist = file == hls::MULTIVARIANT_NAME || file == hls::MEDIA_PLAYLIST_NAME;
    let caller = Caller {
        query: query.as_deref(),
        bearer: bearer(&headers),
        hls_playlist: playlist,
        hls_segment: !playlist,
        ..Caller::new("hls", remote)
    };
    let auth = match admit(&shared, &app, &stream, &caller).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let carry = auth.carry().map(str::to_owned);
    hls::serve(shared, auth.name().clone(), file, query, remote, carry).await
}

/// Access control of a play over HTTP, on the name the handler then serves: the router
/// decoded the path segments once (RFC 3986: `+` stays `+`), and that is the only decoding.
/// A refusal is the JSON answer (with CORS when configured).
async fn admit(
    shared: &Shared,
    app: &str,
    stream: &str,
    caller: &Caller<'_>,
) -> Result<control::admission::Authorized, Response> {
    let refused = |r: Refusal| {
        let mut resp = r.http();
        add_cors(
            resp.headers_mut(),
            &shared.ctl.config.http.cors_allow_origin,
        );
        resp
    };
    let name = StreamName::new(app, stream).map_err(|e| refused(e.into()))?;
    shared
        .ctl
        .authorize(Action::Play, name, caller)
        .await
        .map_err(refused)
}

/// `GET /metrics`: with `auth.api_token` or `auth.metrics_token` set, only for a bearer of
/// either (the series name every stream).
async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = control::api_guard::metrics_guard(&shared.ctl, &headers) {
        return refused;
    }
    let text = control::metrics::render(&shared.ctl);
    (
        [(header::CONTENT_TYPE, control::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

/// `GET /console/{file}`: a console asset, else the FLV stream `console/{file}`.
async fn console_file(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    extensions: Extensions,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Some(resp) = console::serve(&file, &headers) {
        return resp;
    }
    flv(
        State(shared),
        Path(("console".to_owned(), file)),
        RawQuery(query),
        headers,
        extensions,
        ws,
    )
    .await
}

/// `GET /{app}/{stream}.flv`: HTTP-FLV, or WebSocket-FLV on an upgrade request.
async fn flv(
    State(shared): State<Arc<Shared>>,
    Path((app, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    extensions: Extensions,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(stream) = file.strip_suffix(".flv") else {
        return control::http_error::json_error(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("no such resource: /{app}/{file}"),
        );
    };
    let addr = client_addr(&extensions);
    let protocol = if ws.is_ok() {
        ViewerProtocol::WsFlv
    } else {
        ViewerProtocol::HttpFlv
    };
    let caller = Caller {
        query: query.as_deref(),
        bearer: bearer(&headers),
        ..Caller::new(protocol.as_str(), addr.map(|a| a.ip()))
    };
    let auth = match admit(&shared, &app, stream, &caller).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    // Present when served by the listener (not when the router is driven without a socket).
    let remote = addr.map(|a| a.to_string()).unwrap_or_default();
    let kick = CancellationToken::new();
    let cors = shared.ctl.config.http.cors_allow_origin.clone();
    let playing = match shared.ctl.play(auth, protocol, remote, kick.clone()) {
        Ok(p) => p,
        Err(r) => {
            let mut resp = r.http();
            add_cors(resp.headers_mut(), &cors);
            return resp;
        }
    };
    shared.ctl.stats.flv_viewers.fetch_add(1, Ordering::Relaxed);
    let timing = Timing::new(&shared);
    if let Ok(ws) = ws {
        let ctl = Arc::clone(&shared.ctl);
        return ws.on_upgrade(move |socket| async move {
            ws_flv(socket, playing, timing, ctl, kick).await;
        });
    }
    let control::Playing {
        subscriber: sub,
        viewer: guard,
        session: api,
        ..
    } = playing;
    // One kick future for the body's life, polled alongside each batch.
    let kicked = Box::pin(kick.cancelled_owned());
    // The guards live in the body stream: dropped (viewer count decremented, session
    // deregistered) when the body ends or the client goes away.
    let state = (
        sub,
        FlvEgress::new(),
        (Arc::clone(&shared.ctl), guard, api, kicked),
        false,
    );
    let body = futures_util::stream::unfold(
        state,
        move |(mut sub, mut egress, mut held, ended)| async move {
            if ended {
                return None;
            }
            let ended = tokio::select! {
                more = fill_batch(&mut sub, &mut egress, timing) => !more,
                // Kicked by the API: the body ends now.
                _ = &mut held.3 => return None,
            };
            held.2.dropped(sub.dropped());
            let chunk = egress.take();
            if chunk.is_empty() {
                return None;
            }
            held.0.stats.viewer_writes.fetch_add(1, Ordering::Relaxed);
            // Handed to hyper: it asks for the next chunk once this one is written.
            if let Some(d) = egress.probe.written(std::time::Instant::now()) {
                held.1.latency(d);
            }
            held.1.sent(chunk.len());
            held.2.bytes(chunk.len());
            Some((Ok::<Bytes, Infallible>(chunk), (sub, egress, held, ended)))
        },
    );
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("video/x-flv"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    add_cors(h, &cors);
    resp
}

/// Waits for at least one frame, then takes whatever else is ready (bounded), and lets
/// trailing audio wait up to `audio_hold` for the next video frame. Returns false when the
/// stream has ended (after anything pending was encoded).
async fn fill_batch(sub: &mut Subscriber, egress: &mut FlvEgress, timing: Timing) -> bool {
    let Some(first) = sub.recv().await else {
        return false;
    };
    egress.push(&first);
    if !timing.batch.is_zero() {
        // Let the frames of the window gather in the ring: one wake-up and one write for all.
        tokio::time::sleep(timing.batch).await;
    }
    for _ in 1..MAX_BATCH_FRAMES {
        if egress.pending() >= MAX_BATCH_BYTES {
            break;
        }
        match sub.try_recv() {
            TryRecv::Frame(f) => egress.push(&f),
            TryRecv::Empty => break,
            TryRecv::Ended => return false,
        }
    }
    if timing.audio_hold.is_zero() || !egress.hold.should_hold() {
        return true;
    }
    let until = tokio::time::Instant::now() + timing.audio_hold;
    while egress.hold.should_hold() && egress.pending() < MAX_BATCH_BYTES {
        match tokio::time::timeout_at(until, sub.recv()).await {
            Ok(Some(f)) => egress.push(&f),
            Ok(None) => return false,
            Err(_) => break,
        }
    }
    true
}

/// A viewer's write timing, from `[hub]`.
#[derive(Debug, Clone, Copy)]
struct Timing {
    batch: Duration,
    audio_hold: Duration,
}

impl Timing {
    fn new(shared: &Shared) -> Self {
        let hub = &shared.ctl.config.hub;
        Self {
            batch: Duration::from_millis(hub.viewer_batch_ms),
            audio_hold: Duration::from_millis(hub.audio_coalesce_ms),
        }
    }
}

async fn ws_flv(
    mut socket: WebSocket,
    playing: control::Playing,
    timing: Timing,
    ctl: Arc<Control>,
    kick: CancellationToken,
) {
    let control::Playing {
        subscriber: mut sub,
        viewer: guard,
        session: api,
        ..
    } = playing;
    let mut egress = FlvEgress::new();
    let mut kicked = std::pin::pin!(kick.cancelled());
    let send_timeout = Duration::from_millis(ctl.config.limits.http_send_timeout_ms);
    loop {
        tokio::select! {
            _ = &mut kicked => {
                // Bounded: a client that stops reading does not hold the task.
                let _ = tokio::time::timeout(KICK_CLOSE, socket.send(Message::Close(None))).await;
                break;
            }
            more = fill_batch(&mut sub, &mut egress, timing) => {
                api.dropped(sub.dropped());
                let chunk = egress.take();
                if !chunk.is_empty() {
                    ctl.stats.viewer_writes.fetch_add(1, Ordering::Relaxed);
                    let n = chunk.len();
                    // Bounded: a client that stops reading is closed after the send timeout.
                    let sent = tokio::time::timeout(send_timeout, socket.send(Message::Binary(chunk)));
                    if !matches!(sent.await, Ok(Ok(()))) {
                        break;
                    }
                    if let Some(d) = egress.probe.written(std::time::Instant::now()) {
                        guard.latency(d);
                    }
                    guard.sent(n);
                    api.bytes(n);
                }
                if !more {
                    let _ = tokio::time::timeout(KICK_CLOSE, socket.send(Message::Close(None))).await;
                    break;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    drop(api);
    drop(guard);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Request, StatusCode};
    use config::{AuthMode, AuthRule, Config};
    use tower::ServiceExt;

    /// A control plane and this server's routes with no socket bound anywhere.
    fn routes(cfg: Config) -> (Arc<Control>, Router) {
        let addrs = control::ListenerAddrs {
            rtmp: "127.0.0.1:1935".parse().unwrap(),
            http: "127.0.0.1:8080".parse().unwrap(),
        };
        let hub = hub::Hub::new(Default::default());
        let ctl = Arc::new(Control::new(cfg, hub, addrs).unwrap());
        let http = HttpServer::new(&ctl, None).unwrap();
        (ctl, http.routes().0)
    }

    fn config() -> Config {
        let mut cfg = Config::default();
        let dir = std::env::temp_dir().join(format!("sluice-http-unit-{}", std::process::id()));
        cfg.record.dir = dir.join("recordings").to_string_lossy().into_owned();
        cfg.vod.dir = dir;
        cfg
    }

    async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
        let req = Request::get(uri).body(Body::empty()).unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_router_answers_without_a_socket() {
        let (ctl, app) = routes(config());
        let (status, body) = get(&app, "/live/nothing.flv").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains(r#""code":"not_found""#), "{body}");
        let (status, body) = get(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("sluice_streams"), "{body}");
        let (status, _) = get(&app, "/live/cam%0d%0aX/index.m3u8").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        ctl.shutdown.cancel();
    }

    /// The name access control decides on is the name served: `+` is a plus in a path (the
    /// guard once decoded it as a space, so a deny rule for `pub/x+y` let `/pub/x+y.flv` play).
    #[tokio::test]
    async fn plus_in_a_path_is_decided_as_a_plus() {
        let mut cfg = config();
        cfg.auth.rules = vec![
            AuthRule {
                pattern: "pub/x+y".into(),
                play: AuthMode::Deny,
                ..AuthRule::default()
            },
            AuthRule {
                pattern: "pub/*".into(),
                ..AuthRule::default()
            },
        ];
        let (ctl, app) = routes(cfg);
        for uri in ["/pub/x+y.flv", "/pub/x%2By.flv", "/pub/x+y/index.m3u8"] {
            let (status, body) = get(&app, uri).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
        }
        // The space is another stream, which the rule does not cover (and is not live).
        let (status, _) = get(&app, "/pub/x%20y.flv").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        ctl.shutdown.cancel();
    }
}
