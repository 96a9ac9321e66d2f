//! The HTTP side of access control: a middleware on the media routes (HTTP-FLV, WS-FLV,
//! HLS, VOD) that asks [`super::check`] before the handler runs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{Action, Request, check};
use crate::Shared;
use crate::api::percent_decode;

/// What a media route serves, from its matched route and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) app: String,
    pub(crate) stream: String,
    pub(crate) protocol: &'static str,
    pub(crate) hls_playlist: bool,
    pub(crate) hls_segment: bool,
}

/// Maps a matched route (`/{app}/{file}`, ...) and the request path to what it serves;
/// `None` for routes access control does not cover (console assets, API, metrics).
pub(crate) fn target(route: &str, path: &str, websocket: bool) -> Option<Target> {
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let flv = |app: &str, file: &str| {
        Some(Target {
            app: app.to_owned(),
            stream: file.strip_suffix(".flv")?.to_owned(),
            protocol: if websocket { "ws-flv" } else { "http-flv" },
            hls_playlist: false,
            hls_segment: false,
        })
    };
    match (route, segs.as_slice()) {
        ("/{app}/{file}", [app, file]) => flv(app, file),
        ("/console/{file}", [_, file]) => {
            if crate::console::console_asset(file).is_some() {
                None
            } else {
                flv("console", file)
            }
        }
        ("/{app}/{stream}/{file}", [app, stream, file]) => {
            let playlist = file == hls::MULTIVARIANT_NAME || file == hls::MEDIA_PLAYLIST_NAME;
            Some(Target {
                app: app.clone(),
                stream: stream.clone(),
                protocol: "hls",
                hls_playlist: playlist,
                hls_segment: !playlist,
            })
        }
        ("/vod/{*path}", [_, rest @ ..]) => Some(Target {
            app: "vod".to_owned(),
            stream: rest.join("/"),
            protocol: "vod",
            hls_playlist: false,
            hls_segment: false,
        }),
        _ => None,
    }
}

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The client address of a request served by `http::serve`.
pub(crate) fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Middleware of the media routes: refuses with 401/403 JSON, or runs the handler with the
/// [`super::Grant`] in the request extensions (the HLS handler writes its `carry` into
/// playlists).
pub(crate) async fn media(
    State(shared): State<Arc<Shared>>,
    mut req: HttpRequest,
    next: Next,
) -> Response {
    let Some(route) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    let websocket = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(t) = target(&route, req.uri().path(), websocket) else {
        return next.run(req).await;
    };
    let query = req.uri().query().map(str::to_owned);
    let auth_req = Request {
        action: Action::Play,
        app: &t.app,
        stream: &t.stream,
        query: query.as_deref(),
        ip: client_ip(&req),
        protocol: t.protocol,
        bearer: bearer(req.headers()),
        hls_playlist: t.hls_playlist,
        hls_segment: t.hls_segment,
    };
    match check(&shared, &auth_req).await {
        Ok(grant) => {
            req.extensions_mut().insert(grant);
            next.run(req).await
        }
        Err(refusal) => {
            let mut resp = refusal.into_http();
            let cors = &shared.config.http.cors_allow_origin;
            if !cors.is_empty()
                && let Ok(v) = HeaderValue::from_str(cors)
            {
                resp.headers_mut()
                    .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_targets() {
        let t = target("/{app}/{file}", "/live/cam.flv", false).unwrap();
        assert_eq!(
            (t.app.as_str(), t.stream.as_str(), t.protocol),
            ("live", "cam", "http-flv")
        );
        assert_eq!(
            target("/{app}/{file}", "/live/cam.flv", true)
                .unwrap()
                .protocol,
            "ws-flv"
        );
        assert_eq!(target("/{app}/{file}", "/live/cam.mp4", false), None);
        assert_eq!(target("/console/{file}", "/console/app.js", false), None);
        assert_eq!(
            target("/console/{file}", "/console/s.flv", false)
                .unwrap()
                .app,
            "console"
        );
        let p = target("/{app}/{stream}/{file}", "/live/cam/index.m3u8", false).unwrap();
        assert!(p.hls_playlist && !p.hls_segment);
        let s = target("/{app}/{stream}/{file}", "/live/cam/x-1.m4s", false).unwrap();
        assert!(s.hls_segment && !s.hls_playlist);
        let v = target("/vod/{*path}", "/vod/dir/a%20b.mp4", false).unwrap();
        assert_eq!((v.app.as_str(), v.stream.as_str()), ("vod", "dir/a b.mp4"));
        assert_eq!(target("/metrics", "/metrics", false), None);
        assert_eq!(target("/api/v1/server", "/api/v1/server", false), None);
    }

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(bearer(&h), Some("abc.def"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
