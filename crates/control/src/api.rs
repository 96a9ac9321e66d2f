//! The REST API under `/api/v1` (JSON), described by `openapi.json` served at
//! `/api/v1/openapi.json`.
//!
//! Responses are built from the same snapshots as `/metrics`: the hub's
//! [`hub::StreamSnapshot`]s plus the server's [`crate::StreamCounters`]. Errors are JSON
//! objects with a stable `code` and a human `message`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use hub::StreamSnapshot;
use media::Codec;
use serde::Serialize;

use crate::Control;
use crate::counters::{StreamCounters, ViewerProtocol};
use crate::http_error::{HttpError, json_body};
use crate::sessions::SessionEntry;

/// Page size of lists when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// Largest accepted `limit`.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// Every route the API serves, the recording, VOD and rooms ones served by their own crates
/// (the OpenAPI document must describe each; a test checks it).
pub const API_ROUTES: [&str; 13] = [
    "/api/v1/server",
    "/api/v1/streams",
    "/api/v1/streams/{app}/{stream}",
    "/api/v1/openapi.json",
    "/api/v1/sessions",
    "/api/v1/sessions/{id}",
    "/api/v1/recordings",
    "/api/v1/streams/{app}/{stream}/recording",
    "/api/v1/vod",
    "/api/v1/vod/{name}",
    "/api/v1/rooms",
    "/api/v1/rooms/{room}/streams",
    "/api/v1/rooms/{room}/participants/{identity}",
];

/// The OpenAPI 3.1 document of the API.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// The control plane's API routes (server, streams, sessions, the OpenAPI document, and the
/// JSON 404 of unknown API paths). The recording and VOD routes come from their own crates;
/// the binary merges them all and puts [`crate::api_guard::guard`] in front.
pub fn routes(ctl: Arc<Control>) -> Router {
    let [
        server_path,
        streams_path,
        stream_path,
        openapi_path,
        sessions_path,
        session_path,
        ..,
    ] = API_ROUTES;
    Router::new()
        .route(server_path, get(server))
        .route(streams_path, get(list_streams))
        .route(stream_path, get(stream_detail).delete(stop_stream))
        .route(openapi_path, get(openapi))
        .route(sessions_path, get(list_sessions))
        .route(session_path, delete(kick_session))
        .route("/api/v1/{*rest}", get(unknown))
        .with_state(ctl)
}

/// `GET /api/v1/server`.
#[derive(Debug, Serialize)]
struct ServerInfo {
    version: &'static str,
    uptime_seconds: f64,
    listeners: Listeners,
    streams: usize,
    /// TCP connections open now per listener (`[limits]`).
    connections: crate::limits::OpenConnections,
    config: ConfigSummary,
    webhooks: WebhookSummary,
    /// Sections of the servers that have one (`webrtc` when enabled, ...).
    #[serde(flatten)]
    sources: serde_json::Map<String, serde_json::Value>,
}

/// Webhook counters in `GET /api/v1/server`.
#[derive(Debug, Serialize)]
struct WebhookSummary {
    urls: usize,
    events: u64,
    delivered: u64,
    failed: u64,
    dropped: u64,
    retries: u64,
}

impl WebhookSummary {
    fn of(ctl: &Control) -> Self {
        let w = &ctl.stats.webhooks;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Self {
            urls: ctl.config.webhooks.urls.len(),
            events: crate::webhooks::EventKind::ALL
                .iter()
                .map(|k| w.events(*k))
                .sum(),
            delivered: load(&w.delivered),
            failed: load(&w.failed),
            dropped: load(&w.dropped),
            retries: load(&w.retries),
        }
    }
}

#[derive(Debug, Serialize)]
struct Listeners {
    rtmp: String,
    http: String,
}

#[derive(Debug, Serialize)]
struct ConfigSummary {
    chunk_size: u32,
    gop: GopLimits,
    batching: Batching,
    publisher_grace_ms: u64,
    limits: Limits,
}

#[derive(Debug, Serialize)]
struct GopLimits {
    max_frames: usize,
    max_bytes: usize,
    max_duration_ms: u64,
}

#[derive(Debug, Serialize)]
struct Batching {
    viewer_batch_ms: u64,
    audio_coalesce_ms: u64,
    viewer_max_queued_bytes: usize,
}

#[derive(Debug, Serialize)]
struct Limits {
    max_connections: usize,
    max_viewers_per_stream: usize,
    max_streams: usize,
    handshake_timeout_ms: u64,
    idle_timeout_ms: u64,
    max_message_len: u32,
}

async fn server(State(ctl): State<Arc<Control>>) -> Response {
    let c = &ctl.config;
    json_body(&ServerInfo {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: ctl.started.elapsed().as_secs_f64(),
        listeners: Listeners {
            rtmp: ctl.addrs.rtmp.to_string(),
            http: ctl.addrs.http.to_string(),
        },
        streams: ctl.hub.streams().len(),
        connections: crate::limits::OpenConnections::of(&ctl),
        config: ConfigSummary {
            chunk_size: c.rtmp.chunk_size,
            gop: GopLimits {
                max_frames: c.hub.gop_max_frames,
                max_bytes: c.hub.gop_max_bytes,
                max_duration_ms: c.hub.gop_max_duration_ms,
            },
            batching: Batching {
                viewer_batch_ms: c.hub.viewer_batch_ms,
                audio_coalesce_ms: c.hub.audio_coalesce_ms,
                viewer_max_queued_bytes: c.hub.viewer_max_queued_bytes,
            },
            publisher_grace_ms: c.hub.publisher_grace_ms,
            limits: Limits {
                max_connections: c.limits.max_connections,
                max_viewers_per_stream: c.limits.max_viewers_per_stream,
                max_streams: c.limits.max_streams,
                handshake_timeout_ms: c.limits.handshake_timeout_ms,
                idle_timeout_ms: c.limits.idle_timeout_ms,
                max_message_len: c.limits.max_message_len,
            },
        },
        webhooks: WebhookSummary::of(&ctl),
        sources: ctl
            .sources()
            .iter()
            .filter_map(|s| s.server_info())
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    })
}

/// One stream, as listed and as detailed.
#[derive(Debug, Serialize)]
struct StreamInfo {
    key: String,
    live: bool,
    publisher: Option<Publisher>,
    video: Option<Video>,
    audio: Option<Audio>,
    ingest: Ingest,
    viewers: PerProtocol,
    egress_bytes: PerProtocol,
    dropped_frames: u64,
    gop: Gop,
    keyframe_interval_ms: Option<u64>,
    publisher_connects: u64,
    /// The latest sampled delivery latency of the slowest viewer protocol (ms).
    latency_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Publisher {
    protocol: &'static str,
    remote: String,
}

#[derive(Debug, Serialize)]
struct Video {
    codec: String,
    width: Option<u32>,
    height: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Audio {
    codec: String,
    sample_rate: Option<u32>,
    channels: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Ingest {
    bytes: u64,
    frames: u64,
}

#[derive(Debug, Serialize)]
struct PerProtocol {
    rtmp: u64,
    #[serde(rename = "http-flv")]
    http_flv: u64,
    #[serde(rename = "ws-flv")]
    ws_flv: u64,
    hls: u64,
    webrtc: u64,
    srt: u64,
}

impl PerProtocol {
    fn of(p: &crate::counters::PerProtocol) -> Self {
        Self {
            rtmp: p.get(ViewerProtocol::Rtmp),
            http_flv: p.get(ViewerProtocol::HttpFlv),
            ws_flv: p.get(ViewerProtocol::WsFlv),
            hls: p.get(ViewerProtocol::Hls),
            webrtc: p.get(ViewerProtocol::WebRtc),
            srt: p.get(ViewerProtocol::Srt),
        }
    }
}

#[derive(Debug, Serialize)]
struct Gop {
    frames: usize,
    bytes: usize,
}

fn stream_info(snap: StreamSnapshot, c: &StreamCounters) -> StreamInfo {
    StreamInfo {
        live: snap.is_live,
        publisher: snap.publisher.map(|p| Publisher {
            protocol: p.protocol,
            remote: p.remote,
        }),
        video: snap.video_codec.map(|codec| Video {
            codec: codec_name(codec),
            width: StreamCounters::known(&c.width),
            height: StreamCounters::known(&c.height),
        }),
        audio: snap.audio_codec.map(|codec| Audio {
            codec: codec_name(codec),
            sample_rate: StreamCounters::known(&c.sample_rate),
            channels: StreamCounters::known(&c.channels),
        }),
        ingest: Ingest {
            bytes: snap.bytes_in,
            frames: snap.frames_in,
        },
        viewers: PerProtocol::of(&c.viewers),
        egress_bytes: PerProtocol::of(&c.egress_bytes),
        dropped_frames: snap.dropped_frames,
        gop: Gop {
            frames: snap.gop_frames,
            bytes: snap.gop_bytes,
        },
        keyframe_interval_ms: snap.keyframe_interval_ms,
        publisher_connects: snap.publisher_connects,
        latency_ms: c.latency_ms(),
        key: snap.key,
    }
}

/// A page of a list.
#[derive(Debug, Serialize)]
struct Page<T> {
    items: Vec<T>,
    total: usize,
    offset: usize,
    limit: usize,
}

/// `offset` and `limit` of a list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    /// Items skipped.
    pub offset: usize,
    /// Items returned at most.
    pub limit: usize,
}

impl Pagination {
    /// Parses `offset=&limit=` from a query string (other parameters are ignored).
    pub fn parse(query: Option<&str>) -> Result<Self, HttpError> {
        let mut p = Pagination {
            offset: 0,
            limit: DEFAULT_PAGE_LIMIT,
        };
        let bad = |message: String| HttpError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_pagination",
            message,
        };
        for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "offset" => {
                    p.offset = v.parse().map_err(|_| {
                        bad(format!("offset must be a non-negative integer, got {v:?}"))
                    })?;
                }
                "limit" => {
                    let limit: usize = v.parse().map_err(|_| {
                        bad(format!(
                            "limit must be an integer in 1..={MAX_PAGE_LIMIT}, got {v:?}"
                        ))
                    })?;
                    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
                        return Err(bad(format!(
                            "limit must be in 1..={MAX_PAGE_LIMIT}, got {limit}"
                        )));
                    }
                    p.limit = limit;
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// The index range of this page in a list of `total` items.
    pub fn range(self, total: usize) -> std::ops::Range<usize> {
        let start = self.offset.min(total);
        start..start.saturating_add(self.limit).min(total)
    }
}

async fn list_streams(State(ctl): State<Arc<Control>>, RawQuery(q): RawQuery) -> Response {
    let page = match Pagination::parse(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut snaps = ctl.hub.streams();
    ctl.streams
        .retain_streams(snaps.iter().map(|s| s.key.as_str()));
    snaps.sort_by(|a, b| a.key.cmp(&b.key));
    let total = snaps.len();
    let range = page.range(total);
    let items = snaps
        .into_iter()
        .skip(range.start)
        .take(range.len())
        .map(|s| {
            let c = ctl.streams.get(&s.key).unwrap_or_default();
            stream_info(s, &c)
        })
        .collect();
    json_body(&Page {
        items,
        total,
        offset: page.offset,
        limit: page.limit,
    })
}

async fn stream_detail(
    State(ctl): State<Arc<Control>>,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    let key = format!("{app}/{stream}");
    match ctl.hub.stream(&key) {
        Some(snap) => {
            let c = ctl.streams.get(&key).unwrap_or_default();
            json_body(&stream_info(snap, &c))
        }
        None => HttpError {
            status: StatusCode::NOT_FOUND,
            code: "stream_not_found",
            message: format!("no stream {key:?}"),
        }
        .into_response(),
    }
}

/// `DELETE /api/v1/streams/{app}/{stream}`: kicks the stream's publisher and ends the stream
/// now (its viewers are told it ended), without waiting for the publisher grace.
async fn stop_stream(
    State(ctl): State<Arc<Control>>,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    let key = format!("{app}/{stream}");
    if ctl.hub.stream(&key).is_none() {
        return HttpError {
            status: StatusCode::NOT_FOUND,
            code: "stream_not_found",
            message: format!("no stream {key:?}"),
        }
        .into_response();
    }
    let kicked = ctl.sessions.kick_publishers(&key);
    ctl.hub.end_stream(&key);
    tracing::info!(key = %access::escape_for_log(&key), kicked, "stream stopped by the API");
    StatusCode::NO_CONTENT.into_response()
}

/// One session, as listed.
#[derive(Debug, Serialize)]
struct SessionInfo {
    id: String,
    kind: &'static str,
    protocol: &'static str,
    stream: String,
    remote: String,
    started_at: String,
    duration_seconds: f64,
    bytes: u64,
    dropped_frames: u64,
    /// A WebRTC viewer's quality (absent for other protocols and before the first stats).
    #[serde(skip_serializing_if = "Option::is_none")]
    webrtc: Option<serde_json::Value>,
}

impl SessionInfo {
    fn of(e: &SessionEntry) -> Self {
        Self {
            id: e.id.to_string(),
            kind: e.kind.as_str(),
            protocol: e.protocol,
            stream: e.stream.clone(),
            remote: e.remote.clone(),
            started_at: e.started_at.clone(),
            duration_seconds: e.started.elapsed().as_secs_f64(),
            bytes: e.bytes.load(Ordering::Relaxed),
            dropped_frames: e.dropped_frames.load(Ordering::Relaxed),
            webrtc: (e.protocol == ViewerProtocol::WebRtc.as_str())
                .then(|| e.detail())
                .flatten(),
        }
    }
}

/// The `stream=` filter of a query string, percent-decoded (`live%2Fx` is `live/x`).
fn stream_filter(query: Option<&str>) -> Option<String> {
    access::query_value(query?, "stream")
}

/// `GET /api/v1/sessions?offset=&limit=&stream=app/name`, sorted by id.
async fn list_sessions(State(ctl): State<Arc<Control>>, RawQuery(q): RawQuery) -> Response {
    let page = match Pagination::parse(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let filter = stream_filter(q.as_deref());
    let mut all = ctl.sessions.list();
    if let Some(f) = &filter {
        all.retain(|e| &e.stream == f);
    }
    let total = all.len();
    let range = page.range(total);
    let items = all
        .iter()
        .skip(range.start)
        .take(range.len())
        .map(|e| SessionInfo::of(e))
        .collect();
    json_body(&Page {
        items,
        total,
        offset: page.offset,
        limit: page.limit,
    })
}

/// `DELETE /api/v1/sessions/{id}`: kicks one session.
async fn kick_session(State(ctl): State<Arc<Control>>, Path(id): Path<String>) -> Response {
    if id.parse().is_ok_and(|id| ctl.sessions.kick(id)) {
        return StatusCode::NO_CONTENT.into_response();
    }
    HttpError {
        status: StatusCode::NOT_FOUND,
        code: "session_not_found",
        message: format!("no session {id:?}"),
    }
    .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

async fn unknown(Path(rest): Path<String>) -> Response {
    HttpError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: format!("no API resource /api/v1/{rest}"),
    }
    .into_response()
}

/// The lower-case codec name used by metrics labels and the API (`h264`, `aac`, ...).
pub fn codec_name(c: Codec) -> String {
    match c {
        Codec::H264 => "h264".into(),
        Codec::H265 => "h265".into(),
        Codec::Av1 => "av1".into(),
        Codec::Vp9 => "vp9".into(),
        Codec::Vp8 => "vp8".into(),
        Codec::Aac => "aac".into(),
        Codec::Mp3 => "mp3".into(),
        Codec::Opus => "opus".into(),
        Codec::Script => "script".into(),
        Codec::Other(id) => format!("other-{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_defaults_and_bounds() {
        assert_eq!(
            Pagination::parse(None).unwrap(),
            Pagination {
                offset: 0,
                limit: DEFAULT_PAGE_LIMIT
            }
        );
        assert_eq!(
            Pagination::parse(Some("limit=2&offset=5&x=y")).unwrap(),
            Pagination {
                offset: 5,
                limit: 2
            }
        );
        for q in ["limit=0", "limit=1001", "limit=-1", "offset=x", "limit="] {
            let e = Pagination::parse(Some(q)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{q}");
            assert_eq!(e.code, "invalid_pagination");
        }
        assert!(Pagination::parse(Some("limit=1000")).is_ok());
    }

    #[test]
    fn page_ranges() {
        let p = |offset, limit| Pagination { offset, limit };
        assert_eq!(p(0, 2).range(3), 0..2);
        assert_eq!(p(2, 2).range(3), 2..3);
        assert_eq!(p(3, 2).range(3), 3..3);
        assert_eq!(p(usize::MAX, 1000).range(3), 3..3);
        assert_eq!(p(1, 1000).range(0), 0..0);
    }

    #[test]
    fn openapi_document_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for r in API_ROUTES {
            let p = &doc["paths"][r];
            assert!(
                p["get"].is_object() || p["delete"].is_object() || p["post"].is_object(),
                "{r} undocumented"
            );
        }
        for r in ["/api/v1/sessions/{id}", "/api/v1/streams/{app}/{stream}"] {
            let d = &doc["paths"][r]["delete"]["responses"];
            assert!(d["204"].is_object() && d["404"].is_object(), "{r} delete");
        }
        assert_eq!(doc["paths"].as_object().unwrap().len(), API_ROUTES.len());
    }

    #[test]
    fn session_stream_filter() {
        assert_eq!(stream_filter(None), None);
        assert_eq!(stream_filter(Some("limit=2")), None);
        assert_eq!(
            stream_filter(Some("limit=2&stream=live/x")).as_deref(),
            Some("live/x")
        );
        assert_eq!(
            stream_filter(Some("stream=live%2Fx%2")).as_deref(),
            Some("live/x%2")
        );
    }

    #[test]
    fn codec_names() {
        assert_eq!(codec_name(Codec::H264), "h264");
        assert_eq!(codec_name(Codec::Other(12)), "other-12");
    }
}
