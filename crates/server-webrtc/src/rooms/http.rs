//! The rooms' HTTP API: LiveKit's Twirp `RoomService` at `/twirp/livekit.RoomService/*`
//! (what LiveKit's server SDKs call; the dispatch is `rooms::twirp`); `POST /api/join`,
//! which hands a browser a `{serverUrl, participantToken}` pair for a room and identity,
//! guarded by `[auth]` like a publish of `{rooms.app}/{room}`; and Sluice's own
//! `/api/v1/rooms` (behind the API guard, as the rest of `/api/v1`): the rooms, their
//! participants and tracks with the hub stream each plays as, a stream brought into a room,
//! a participant removed.

use std::sync::Arc;

use access::Action;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use control::Caller;
use rooms::twirp::{self, ErrorCode, TwirpReply};

use crate::Shared;

/// Token lifetime of `POST /api/join` (seconds).
pub const JOIN_TOKEN_TTL_S: u64 = 6 * 3600;
/// Largest `POST /api/join` body (bytes).
pub const MAX_JOIN_BODY: usize = 4096;

fn reply(r: TwirpReply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, r.content_type)], r.body).into_response()
}

async fn body_bytes(body: Body, max: usize) -> Option<Bytes> {
    axum::body::to_bytes(body, max).await.ok()
}

/// `POST /twirp/livekit.RoomService/{method}`.
pub(crate) async fn twirp_call(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(body) = body_bytes(body, twirp::MAX_TWIRP_BODY).await else {
        return reply(TwirpReply::error(
            ErrorCode::Malformed,
            "request body too large or unreadable",
        ));
    };
    let text = |h| headers.get(h).and_then(|v| v.to_str().ok());
    let r = twirp::handle(
        &method,
        text(header::AUTHORIZATION),
        text(header::CONTENT_TYPE),
        &body,
        &shared.rooms.keys,
        &*shared.rooms,
    );
    reply(r)
}

/// Any other method on a Twirp path.
pub(crate) async fn twirp_not_post() -> Response {
    reply(TwirpReply::error(
        ErrorCode::BadRoute,
        "Twirp methods are called with POST",
    ))
}

/// `POST /api/join` with `{"room", "identity", "name"?}`: a join token for that room and
/// identity, if `[auth]` lets the caller publish `{rooms.app}/{room}`.
pub(crate) async fn join(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bad = |status: StatusCode, msg: String| {
        (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
    };
    let Some(body) = body_bytes(body, MAX_JOIN_BODY).await else {
        return bad(StatusCode::PAYLOAD_TOO_LARGE, "body too large".into());
    };
    let req: rooms::join::JoinRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")),
    };
    if let Err(e) = rooms::names::check("room", &req.room) {
        return bad(StatusCode::BAD_REQUEST, e.to_string());
    }
    let name = match access::StreamName::new(&shared.ctl.config.rooms.app, &req.room) {
        Ok(n) => n,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let ip = control::http_error::client_ip(&extensions);
    let caller = Caller {
        query: query.as_deref(),
        bearer: control::http_error::bearer(&headers),
        ..Caller::new("webrtc", ip)
    };
    if let Err(r) = shared.ctl.authorize(Action::Publish, name, &caller).await {
        return r.http();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token = match rooms::join::join_token(
        &shared.ctl.config.rooms.keys,
        &req.room,
        &req.identity,
        req.name.as_deref(),
        JOIN_TOKEN_TTL_S,
        now,
    ) {
        Ok(t) => t,
        Err(rooms::RoomsError::Denied(m)) => return bad(StatusCode::SERVICE_UNAVAILABLE, m),
        Err(e) => return bad(StatusCode::BAD_REQUEST, e.to_string()),
    };
    // The URL the client reached us at, as a WebSocket URL.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ']))
        .unwrap_or("localhost");
    // Behind a TLS-terminating proxy, or on the HTTPS listener (its port in Host).
    let https_port = shared.ctl.config.tls.https_listen.port();
    let tls = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
        || (shared.ctl.config.tls.enabled()
            && host
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse() == Ok(https_port)));
    let reply = rooms::join::JoinReply {
        server_url: format!("{}://{host}", if tls { "wss" } else { "ws" }),
        participant_token: token,
    };
    super::any_origin(axum::Json(reply).into_response())
}

/// `/api/v1/rooms...`, behind the API guard.
pub(crate) fn api_routes(ctl: &Arc<control::Control>) -> axum::Router<Arc<Shared>> {
    axum::Router::new()
        .route("/api/v1/rooms", axum::routing::get(list))
        .route(
            "/api/v1/rooms/{room}/streams",
            axum::routing::post(add_stream),
        )
        .route(
            "/api/v1/rooms/{room}/participants/{identity}",
            axum::routing::delete(remove),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(ctl),
            control::api_guard::guard,
        ))
}

fn api_error(e: &rooms::RoomsError) -> Response {
    let (status, code) = match e {
        rooms::RoomsError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        rooms::RoomsError::Limit(_) => (StatusCode::SERVICE_UNAVAILABLE, "limit"),
        _ => (StatusCode::BAD_REQUEST, "bad_request"),
    };
    control::http_error::json_error(status, code, e.to_string())
}

/// `GET /api/v1/rooms`: every room, its participants and their tracks, each track with the
/// hub stream it plays as.
async fn list(State(shared): State<Arc<Shared>>) -> Response {
    use rooms::directory::RoomDirectory;
    let app = &shared.ctl.config.rooms.app;
    let items: Vec<serde_json::Value> = shared
        .rooms
        .list_rooms(&[])
        .into_iter()
        .map(|r| {
            let people = shared.rooms.list_participants(&r.name).unwrap_or_default();
            let participants: Vec<serde_json::Value> = people
                .iter()
                .map(|p| {
                    let tracks: Vec<serde_json::Value> = p
                        .tracks
                        .iter()
                        .map(|t| {
                            let source = rooms::proto::TrackSource::try_from(t.source)
                                .unwrap_or(rooms::proto::TrackSource::Unknown);
                            let stream = shared.rooms.stream_of(&r.name, &t.sid).unwrap_or_else(|| {
                                format!("{app}/{}", rooms::names::stream_part(&r.name, &p.identity, source))
                            });
                            serde_json::json!({
                                "sid": t.sid,
                                "kind": if t.r#type == rooms::proto::TrackType::Video as i32 { "video" } else { "audio" },
                                "source": source.as_str_name(),
                                "muted": t.muted,
                                "mime_type": t.mime_type,
                                "stream": stream,
                            })
                        })
                        .collect();
                    serde_json::json!({
                        "sid": p.sid,
                        "identity": p.identity,
                        "name": p.name,
                        "kind": rooms::proto::participant_info::Kind::try_from(p.kind)
                            .map_or("STANDARD", |k| k.as_str_name()),
                        "joined_at": p.joined_at,
                        "tracks": tracks,
                    })
                })
                .collect();
            serde_json::json!({
                "sid": r.sid,
                "name": r.name,
                "created_at": r.creation_time,
                "metadata": r.metadata,
                "participants": participants,
            })
        })
        .collect();
    let total = items.len();
    axum::Json(serde_json::json!({ "items": items, "total": total })).into_response()
}

/// The body of `POST /api/v1/rooms/{room}/streams`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddStream {
    /// The hub stream (`live/cam`).
    stream: String,
    /// The participant's identity (default: the stream's name with `/` as `-`).
    #[serde(default)]
    identity: Option<String>,
}

/// `POST /api/v1/rooms/{room}/streams` `{"stream": "live/cam", "identity"?}`: brings a live
/// stream into the room as a participant.
async fn add_stream(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    body: Body,
) -> Response {
    let Some(body) = body_bytes(body, MAX_JOIN_BODY).await else {
        return api_error(&rooms::RoomsError::BadRequest("body too large".into()));
    };
    let req: AddStream = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return api_error(&rooms::RoomsError::BadRequest(format!("bad JSON: {e}"))),
    };
    let Some((app, stream)) = req.stream.split_once('/') else {
        return api_error(&rooms::RoomsError::BadRequest(
            "stream must be app/stream".into(),
        ));
    };
    let name = match access::StreamName::new(app, stream) {
        Ok(n) => n,
        Err(e) => return api_error(&rooms::RoomsError::BadRequest(e.to_string())),
    };
    let identity = req
        .identity
        .unwrap_or_else(|| name.key().replace(['/', '\\', '~'], "-"));
    match shared
        .rooms
        .add_stream(&shared.ctl, &room, name.key(), &identity)
    {
        Ok(p) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({ "sid": p.sid, "identity": p.identity })),
        )
            .into_response(),
        Err(e) => api_error(&e),
    }
}

/// `DELETE /api/v1/rooms/{room}/participants/{identity}`.
async fn remove(
    State(shared): State<Arc<Shared>>,
    Path((room, identity)): Path<(String, String)>,
) -> Response {
    use rooms::directory::RoomDirectory;
    match shared.rooms.remove_participant(&room, &identity) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => api_error(&e),
    }
}
