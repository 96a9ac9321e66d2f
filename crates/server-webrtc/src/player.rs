//! The WebRTC player page at `GET /{app}/{stream}/`: plain JavaScript with the browser's own
//! `RTCPeerConnection`, talking WHEP to `/{app}/{stream}/whep` (relative to the page, so it
//! works behind any prefix-free proxy). The page is static: the stream comes from its URL.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page.
pub const PLAYER_HTML: &str = include_str!("player.html");

/// Content-Security-Policy of the page: only its own inline script and style, requests to
/// this origin, and media from the peer connection.
pub const PLAYER_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; media-src 'self' blob:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// `GET /{app}/{stream}/`.
pub(crate) async fn page() -> Response {
    html(PLAYER_HTML)
}

/// A static page of ours with [`PLAYER_CSP`] and no caching.
pub(crate) fn html(page: &'static str) -> Response {
    let mut r = page.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PLAYER_CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
