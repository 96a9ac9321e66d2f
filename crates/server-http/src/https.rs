//! The HTTPS/WSS listener: the same router as the plain HTTP listener, over TLS, with HTTP/2
//! or HTTP/1.1 as the client chose by ALPN; and the optional redirect of plain HTTP to it.
//!
//! Served by hand with tokio-rustls and `hyper_util::server::conn::auto` rather than with
//! `axum-server`: the handshake is bounded by `limits.handshake_timeout_ms` and counted per
//! listener, the certificate comes from our reloadable store, connections are tracked by the
//! server's `TaskTracker`, and graceful shutdown uses the server's `CancellationToken`, all
//! with the crates we already build (hyper, hyper-util, tower), and no extra dependency.

use std::net::SocketAddr;
use std::pin::pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use control::ListenerKind;
use control::limits::ConnectionPermit;
use control::tls::{self, Listener, TlsService};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::Shared;
use crate::conn::{self, ConnState, Expired, InFlight, TimedBody, Timeouts, TrackedBody, Watched};

pub use control::tls::HTTPS_ALPN;

/// Time an HTTPS connection gets to finish its responses after shutdown begins (the server's
/// own grace bounds the whole shutdown too).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts HTTPS connections until shutdown; each runs in its own tracked task.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    app: Router,
    tls: Arc<TlsService>,
) {
    // Connection limits come before the TLS handshake (the cheapest point to refuse).
    while let Some((sock, peer, permit)) =
        control::limits::accept(&shared.ctl, &listener, ListenerKind::Https).await
    {
        let (shared, tls, app) = (shared.clone(), tls.clone(), app.clone());
        let tracker = shared.ctl.tracker.clone();
        tracker.spawn(async move {
            let handshake =
                tls::handshake(&shared.ctl, &tls, &tls.https, sock, peer, Listener::Https);
            let Some(stream) = handshake.await else {
                return;
            };
            connection(&shared, stream, peer, app, Some(permit)).await;
        });
    }
}

/// Serves one connection (TLS, or plain HTTP from `listener::serve`) with HTTP/1.1 (with
/// upgrades, for WebSocket-FLV) or HTTP/2, within `limits.http_max_header_bytes` (431
/// beyond) and the time limits of every phase (`crate::conn`). `permit` (the connection's
/// slot of `[limits]`) lives as long as the socket, upgraded or not.
pub(crate) async fn connection<S>(
    shared: &Shared,
    io: S,
    peer: SocketAddr,
    app: Router,
    permit: Option<ConnectionPermit>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = &shared.ctl.config.limits;
    let timeouts = Timeouts::new(limits);
    let state = ConnState::new();
    let io = TokioIo::new(Watched::new(io, Arc::clone(&state), permit));
    let svc_state = Arc::clone(&state);
    let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        let request = InFlight::start(&svc_state, req.version() == Version::HTTP_2);
        // What `into_make_service_with_connect_info` gives the handlers on plain HTTP.
        req.extensions_mut().insert(ConnectInfo(peer));
        let req = req.map(|b| Body::new(TimedBody::new(b, &timeouts)));
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await?;
            Ok::<_, Infallible>(resp.map(|b| Body::new(TrackedBody::new(b, request))))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer enables HTTP/2 keep-alive. HTTP/1's own header timeout is off: it would also
    // cut idle keep-alive connections at the header timeout; `conn::watch` times heads.
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    builder
        .http1()
        .max_buf_size(limits.http_max_header_bytes)
        .header_read_timeout(None);
    builder
        .http2()
        .max_header_list_size(u32::try_from(limits.http_max_header_bytes).unwrap_or(u32::MAX));
    if limits.http2_keepalive_interval_ms > 0 {
        builder
            .http2()
            .keep_alive_interval(Duration::from_millis(limits.http2_keepalive_interval_ms))
            .keep_alive_timeout(Duration::from_millis(limits.http2_keepalive_timeout_ms));
    }
    let mut conn = pin!(builder.serve_connection_with_upgrades(io, svc));
    let result = tokio::select! {
        r = conn.as_mut() => r,
        why = conn::watch(&state, &timeouts) => {
            tracing::debug!(%peer, reason = why.as_str(), "http connection closed");
            if why == Expired::SendStalled {
                return;
            }
            // An idle HTTP/2 connection gets a GOAWAY; an HTTP/1 one simply closes.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(conn::CLOSE_GRACE, conn.as_mut()).await;
            return;
        }
        _ = shared.ctl.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "http connection ended: {e}");
    }
}

/// The plain-HTTP router when `tls.redirect_http` is on: every request but `/metrics` gets a
/// 308 to the same path and query on the HTTPS listener (at `https_port`).
pub(crate) fn redirecting(router: Router, https_port: u16) -> Router {
    router.layer(axum::middleware::from_fn_with_state(https_port, redirect))
}

async fn redirect(State(https_port): State<u16>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/metrics" {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| Authority::from_str(h).ok());
    let Some(host) = host else {
        return (
            StatusCode::BAD_REQUEST,
            "a Host header is needed to redirect to HTTPS",
        )
            .into_response();
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = https_location(host.host(), https_port, path);
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad Host header").into_response(),
    }
}

/// `https://host[:port]/path?query` (the port left out when it is 443).
fn https_location(host: &str, port: u16, path_and_query: &str) -> String {
    if port == 443 {
        format!("https://{host}{path_and_query}")
    } else {
        format!("https://{host}:{port}{path_and_query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_keeps_host_path_and_query_and_takes_the_https_port() {
        let host = Authority::from_str("example.com:8080").expect("authority");
        assert_eq!(
            https_location(host.host(), 8443, "/live/a.flv?token=x"),
            "https://example.com:8443/live/a.flv?token=x"
        );
        let v6 = Authority::from_str("[::1]:8080").expect("authority");
        assert_eq!(https_location(v6.host(), 443, "/"), "https://[::1]/");
    }
}
