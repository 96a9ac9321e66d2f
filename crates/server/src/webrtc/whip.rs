//! WHIP (RFC 9725) over axum: `POST /{app}/{stream}/whip` with an SDP offer makes the
//! sender the stream's publisher and creates a session resource at
//! `/{app}/{stream}/whip/{id}`; `PATCH` (trickle ICE, ICE restarts) and `DELETE` (ends the
//! publish and the stream) on it, and `OPTIONS`, are WHEP's handlers: the resource model is
//! the same. The publish page is at `GET /{app}/{stream}/publish`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use hub::{HubError, PublisherInfo};
use str0m::RtcConfig;

use super::ingest::{self, Ingest, REORDER_AUDIO_PACKETS, REORDER_VIDEO_PACKETS};
use super::whep::{self, METHODS_COLLECTION, err, with_cors};
use crate::Shared;
use crate::counters::ViewerProtocol;
use crate::sessions::{SessionInfo, SessionKind};

/// The publish page (camera and microphone to `/{app}/{stream}/whip`).
pub const PUBLISH_HTML: &str = include_str!("publish.html");

/// The WHIP routes (static `whip` and `publish` segments win over HLS's
/// `/{app}/{stream}/{file}`).
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/{app}/{stream}/publish", get(page))
        .route(
            "/{app}/{stream}/whip",
            post(offer).options(whep::preflight_collection),
        )
        .route(
            "/{app}/{stream}/whip/{id}",
            axum::routing::delete(whep::delete)
                .patch(whep::patch)
                .options(whep::preflight_resource),
        )
}

/// `GET /{app}/{stream}/publish`.
async fn page() -> Response {
    super::player::html(PUBLISH_HTML)
}

/// `POST /{app}/{stream}/whip`.
async fn offer(
    State(shared): State<Arc<Shared>>,
    Path((app, stream)): Path<(String, String)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let offer = whep::Offer {
        app: &app,
        stream: &stream,
        query: query.as_deref(),
        extensions: &extensions,
        headers: &headers,
    };
    let action = crate::auth::Action::Publish;
    let remote = match whep::authorize(&shared, action, &offer, METHODS_COLLECTION).await {
        Ok(remote) => remote,
        Err(r) => return r,
    };
    let r = match create(&shared, &app, &stream, remote, &headers, body).await {
        Ok(r) | Err(r) => r,
    };
    with_cors(&shared, METHODS_COLLECTION, r)
}

async fn create(
    shared: &Arc<Shared>,
    app: &str,
    stream: &str,
    remote: Option<SocketAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let (wr, sdp) = whep::read_offer(shared, headers, body).await?;
    let valid = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\\');
    if !valid(app) || !valid(stream) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "bad_stream",
            "invalid app or stream name",
        ));
    }
    let key = format!("{app}/{stream}");
    let media = super::sdp::check_offer(&sdp)
        .map_err(|why| err(StatusCode::BAD_REQUEST, "bad_offer", why))?;
    // One video codec, the best the offer has (`sdp::VIDEO_PREFERENCE`); an audio-only
    // offer gets H.264 enabled, which it has no m-line for.
    let video = media.pick_video().unwrap_or(media::Codec::H264);
    let config = RtcConfig::new()
        .set_reordering_size_video(REORDER_VIDEO_PACKETS)
        .set_reordering_size_audio(REORDER_AUDIO_PACKETS);
    let (rtc, creds, answer) = whep::negotiate(&wr, &sdp, config, video)?;
    // `limits.max_publishers_per_app`: 503 {"code":"limit"}, as for every protocol.
    let limit = crate::limits::admit_publisher(shared, app, "webrtc")
        .map_err(crate::limits::LimitRefusal::into_http)?;
    // The slot first: a refused publish (limits) must not leave a stream in its grace period.
    let slot = whep::reserve(&wr, &shared.config.webrtc, &key, &sdp, creds, "peers")?;
    let remote = remote.map(|c| c.to_string()).unwrap_or_default();
    let info = PublisherInfo {
        protocol: ViewerProtocol::WebRtc.as_str(),
        remote: remote.clone(),
    };
    let publisher = shared.hub.publish(&key, info).map_err(|e| {
        tracing::warn!(%key, "whip publish refused: {e}");
        match e {
            HubError::AlreadyPublishing { .. } => err(
                StatusCode::CONFLICT,
                "already_publishing",
                format!("stream {key} already has a publisher"),
            ),
            HubError::InvalidKey { .. } => {
                err(StatusCode::BAD_REQUEST, "bad_stream", e.to_string())
            }
            _ => err(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
        }
    })?;
    tracing::info!(%key, %remote, "whip publish");
    crate::hls_http::on_publish(shared, &key);
    crate::record::on_publish(shared, &key);
    let session = shared.sessions.register(
        SessionInfo {
            kind: SessionKind::Publisher,
            protocol: ViewerProtocol::WebRtc.as_str(),
            stream: key.clone(),
            remote,
        },
        slot.kick.clone(),
    );
    let location = format!("/{app}/{stream}/whip/{}", slot.cleanup.resource);
    let etag = slot.etag.clone();
    let p = Ingest {
        cleanup: slot.cleanup,
        rtc,
        counters: shared.streams.get_or_create(&key),
        opus: media.opus.then(|| wr.audio.provide(&key)),
        key,
        publisher,
        rx: slot.rx,
        cmd: slot.cmd,
        kick: slot.kick,
        session,
        _limit: limit,
    };
    shared.tracker.spawn(ingest::run(Arc::clone(shared), wr, p));
    Ok(whep::created(
        &shared.config.webrtc,
        &location,
        &etag,
        &answer,
    ))
}
