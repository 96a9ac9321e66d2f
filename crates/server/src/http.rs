//! The HTTP listener: HTTP-FLV (chunked) and WebSocket-FLV on `/{app}/{stream}.flv`, HLS on
//! `/{app}/{stream}/index.m3u8`, files on `/vod/...`, Prometheus metrics on `/metrics`, the
//! REST API under `/api/v1` and the web console at `/`. HTTP/1.1 and HTTP/2 (prior
//! knowledge, and ALPN once TLS exists).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hub::{Subscriber, TryRecv};
use tokio::net::TcpListener;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::counters::{ViewerGuard, ViewerProtocol};
use crate::egress::{FlvEgress, MAX_BATCH_FRAMES};
use crate::sessions::{SessionGuard, SessionInfo, SessionKind};

/// Bytes of FLV gathered into one HTTP chunk / WebSocket message at most.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Time allowed to send the Close frame to a kicked WebSocket viewer.
const KICK_CLOSE: Duration = Duration::from_secs(2);

/// Serves HTTP until shutdown.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let app = if shared.config.tls.redirect_http {
        crate::https::redirecting(router(shared.clone()), shared.clone())
    } else {
        router(shared.clone())
    };
    // Served by hand (like HTTPS) so every connection passes the connection limits and gets
    // the request-head size and time limits.
    crate::limits::serve_http(shared, listener, app).await;
}

/// Serves `/metrics` alone on `http.metrics_listen` until shutdown.
pub(crate) async fn serve_metrics(shared: Arc<Shared>, listener: TcpListener) {
    let shutdown = shared.shutdown.clone();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(shared);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!("metrics listener stopped: {e}");
    }
}

/// The HTTP routes (a function so tests can call it without a socket).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    // `/metrics` has one segment and the API paths three or more, so the two-segment media
    // route below never shadows them. With a listener of its own, `/metrics` is only there.
    let mut r = Router::new();
    if shared.config.http.metrics_listen.is_none() {
        r = r.route("/metrics", get(metrics));
    }
    r.merge(
        crate::api::routes().route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            crate::auth::api::guard,
        )),
    )
    // Static segment: wins over `/{app}/{file}` (so `vod` is not an HTTP-FLV app name).
    .route("/vod/{*path}", get(crate::vod::serve::serve))
    // The web console. Static segments win over `/{app}/{file}` in the router, so
    // `/console/{file}` falls back to HTTP-FLV for an app that happens to be named
    // "console".
    .route("/", get(crate::console::index))
    .route("/console/{file}", get(console_file))
    .merge(crate::webrtc::whep::routes())
    .merge(crate::webrtc::whip::routes())
    .route("/{app}/{file}", get(flv))
    .route("/{app}/{stream}/{file}", get(hls_file))
    // Access control of the media routes (matched by route, so the API, metrics and
    // console assets pass through).
    .route_layer(axum::middleware::from_fn_with_state(
        shared.clone(),
        crate::auth::guard::media,
    ))
    .with_state(shared)
}

async fn hls_file(
    State(shared): State<Arc<Shared>>,
    Path((app, stream, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    extensions: Extensions,
) -> Response {
    let remote = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let carry = extensions
        .get::<crate::auth::Grant>()
        .and_then(|g| g.carry.clone());
    crate::hls_http::serve(shared, app, stream, file, query, remote, carry).await
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = crate::metrics::render(&shared);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// `GET /console/{file}`: a console asset, else the FLV stream `console/{file}`.
async fn console_file(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    headers: axum::http::HeaderMap,
    extensions: Extensions,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Some(resp) = crate::console::serve(&file, &headers) {
        return resp;
    }
    flv(
        State(shared),
        Path(("console".to_owned(), file)),
        extensions,
        ws,
    )
    .await
}

fn error(status: StatusCode, msg: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

async fn flv(
    State(shared): State<Arc<Shared>>,
    Path((app, file)): Path<(String, String)>,
    extensions: Extensions,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Present when served by `serve` (not when the router is driven without a socket).
    let remote = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let Some(name) = file.strip_suffix(".flv") else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no such resource: /{app}/{file}"),
        );
    };
    let key = format!("{app}/{name}");
    let Ok(permit) = shared.http_viewer_slots.clone().try_acquire_owned() else {
        tracing::warn!(%key, "flv viewer refused: limits.max_http_viewers reached");
        shared.stats.http_refused.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many viewers".to_owned(),
        );
    };
    let sub = match shared.hub.subscribe(&key) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::NOT_FOUND, format!("stream {key}: {e}")),
    };
    let protocol = if ws.is_ok() {
        ViewerProtocol::WsFlv
    } else {
        ViewerProtocol::HttpFlv
    };
    let slot = match crate::limits::admit_viewer(&shared, &key, protocol) {
        Ok(s) => s,
        Err(refusal) => return refusal.into_http(),
    };
    shared.stats.flv_viewers.fetch_add(1, Ordering::Relaxed);
    let cors = shared.config.http.cors_allow_origin.clone();
    if let Ok(ws) = ws {
        tracing::info!(%key, "ws-flv play");
        let timing = Timing::new(&shared);
        let counter = shared.clone();
        return ws.on_upgrade(move |socket| async move {
            let guard = ViewerGuard::new(&counter, &key, ViewerProtocol::WsFlv).holding(slot);
            let kick = CancellationToken::new();
            let api = register(&counter, ViewerProtocol::WsFlv, key, remote, &kick);
            ws_flv(socket, sub, permit, timing, counter, (guard, api, kick)).await;
        });
    }
    tracing::info!(%key, "http-flv play");
    let timing = Timing::new(&shared);
    let guard = ViewerGuard::new(&shared, &key, ViewerProtocol::HttpFlv).holding(slot);
    let kick = CancellationToken::new();
    let api = register(&shared, ViewerProtocol::HttpFlv, key, remote, &kick);
    // One kick future for the body's life, polled alongside each batch.
    let kicked = Box::pin(kick.cancelled_owned());
    // The guards live in the body stream: dropped (viewer count decremented, session
    // deregistered) when the body ends or the client goes away.
    let state = (
        sub,
        FlvEgress::new(),
        (permit, shared.clone(), guard, api, kicked),
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
                _ = &mut held.4 => return None,
            };
            held.3.dropped(sub.dropped());
            let chunk = egress.take();
            if chunk.is_empty() {
                return None;
            }
            held.1.stats.viewer_writes.fetch_add(1, Ordering::Relaxed);
            // Handed to hyper: it asks for the next chunk once this one is written.
            if let Some(d) = egress.probe.written(std::time::Instant::now()) {
                held.2.latency(d);
            }
            held.2.sent(chunk.len());
            held.3.bytes(chunk.len());
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
    if let Ok(v) = HeaderValue::from_str(&cors)
        && !cors.is_empty()
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    resp
}

/// Lists an FLV viewer in the API until the returned guard is dropped.
fn register(
    shared: &Shared,
    protocol: ViewerProtocol,
    stream: String,
    remote: String,
    kick: &CancellationToken,
) -> SessionGuard {
    let info = SessionInfo {
        kind: SessionKind::Viewer,
        protocol: protocol.as_str(),
        stream,
        remote,
    };
    shared.sessions.register(info, kick.clone())
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
        Self {
            batch: Duration::from_millis(shared.config.hub.viewer_batch_ms),
            audio_hold: Duration::from_millis(shared.config.hub.audio_coalesce_ms),
        }
    }
}

async fn ws_flv(
    mut socket: WebSocket,
    mut sub: Subscriber,
    permit: OwnedSemaphorePermit,
    timing: Timing,
    counter: Arc<Shared>,
    (guard, api, kick): (ViewerGuard, SessionGuard, CancellationToken),
) {
    let mut egress = FlvEgress::new();
    let mut kicked = std::pin::pin!(kick.cancelled());
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
                    counter.stats.viewer_writes.fetch_add(1, Ordering::Relaxed);
                    let n = chunk.len();
                    if socket.send(Message::Binary(chunk)).await.is_err() {
                        break;
                    }
                    if let Some(d) = egress.probe.written(std::time::Instant::now()) {
                        guard.latency(d);
                    }
                    guard.sent(n);
                    api.bytes(n);
                }
                if !more {
                    let _ = socket.send(Message::Close(None)).await;
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
    drop(permit);
}
