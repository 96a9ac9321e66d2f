//! WHIP (RFC 9725) over axum: `POST /{app}/{stream}/whip` with an SDP offer makes the
//! sender the stream's publisher and creates a session resource at
//! `/{app}/{stream}/whip/{id}`; `PATCH` (trickle ICE, ICE restarts) and `DELETE` (ends the
//! publish and the stream) on it, and `OPTIONS`, are WHEP's handlers: the resource model is
//! the same. The publish page is at `GET /{app}/{stream}/publish`.

use std::net::SocketAddr;
use std::sync::Arc;

use access::Action;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use control::admission::Authorized;
use control::{Refusal, ViewerProtocol};
use str0m::RtcConfig;

use super::ingest::{self, Ingest, REORDER_AUDIO_PACKETS, REORDER_VIDEO_PACKETS};
use super::whep::{self, METHODS_COLLECTION, err, with_cors};
use crate::Shared;

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
    let (auth, remote) =
        match whep::authorize(&shared, Action::Publish, &offer, METHODS_COLLECTION).await {
            Ok(a) => a,
            Err(r) => return r,
        };
    let r = match create(&shared, auth, remote, &headers, body).await {
        Ok(r) | Err(r) => r,
    };
    with_cors(&shared, METHODS_COLLECTION, r)
}

async fn create(
    shared: &Arc<Shared>,
    auth: Authorized,
    remote: Option<SocketAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let (wr, sdp) = whep::read_offer(shared, headers, body).await?;
    let key = auth.name().key().to_owned();
    let media = rtp::sdp::check_offer(&sdp)
        .map_err(|why| err(StatusCode::BAD_REQUEST, "bad_offer", why))?;
    // One video codec, the best the offer has (`sdp::VIDEO_PREFERENCE`); an audio-only
    // offer gets H.264 enabled, which it has no m-line for.
    let video = media.pick_video().unwrap_or(media::Codec::H264);
    let config = RtcConfig::new()
        .set_reordering_size_video(REORDER_VIDEO_PACKETS)
        .set_reordering_size_audio(REORDER_AUDIO_PACKETS);
    // The peer slot first (cheap to refuse: no DTLS state made yet); a publish refused after
    // it (limits, a live publisher) frees it, and a publish is never left in its grace
    // period by a refused peer.
    let creds = str0m::IceCreds::new();
    let slot = whep::reserve(&shared.ctl, &wr, &key, remote, &sdp, &creds, "peers")?;
    let (rtc, answer) = whep::negotiate(&wr, &sdp, config, video, creds, false)?;
    // `limits.max_publishers_per_app` (503 {"code":"limit"}) and the hub (409 when the
    // stream has a publisher). The session is listed (and its `publish` webhook fired) when
    // the peer connects.
    let remote = remote.map(|c| c.to_string()).unwrap_or_default();
    let admitted = shared
        .ctl
        .publish_pending(
            auth,
            ViewerProtocol::WebRtc.as_str(),
            remote,
            slot.kick.clone(),
        )
        .map_err(Refusal::http)?
        .map_session(control::Session::from);
    let location = format!(
        "/{}/{}/whip/{}",
        admitted.name.app(),
        admitted.name.stream(),
        slot.cleanup.resource
    );
    let etag = slot.etag.clone();
    let p = Ingest {
        cleanup: slot.cleanup,
        rtc,
        sink: ingest::HubSink::new(key, admitted),
        rx: slot.rx,
        cmd: slot.cmd,
        kick: slot.kick,
    };
    shared
        .ctl
        .tracker
        .spawn(ingest::run(Arc::clone(shared), wr, p));
    Ok(whep::created(
        &shared.ctl.config.webrtc,
        &location,
        &etag,
        &answer,
    ))
}
