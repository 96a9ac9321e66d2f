//! WHEP (draft-ietf-wish-whep) over axum: `POST /{app}/{stream}/whep` with an SDP offer
//! creates a session resource at `/{app}/{stream}/whep/{id}`; `PATCH` on it takes trickle
//! candidates and ICE restarts (`application/trickle-ice-sdpfrag`; a new ufrag/pwd is a
//! restart, answered 200 with our new ufrag/pwd and a new ETag: see [`super::restart`]);
//! `DELETE` ends it; `OPTIONS` answers CORS preflights.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::Rng as _;
use str0m::change::SdpOffer;
use str0m::{Candidate, IceCreds, Rtc, RtcConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use access::{Action, StreamName};
use control::admission::Authorized;
use control::http_error::HttpError;
use control::limits::{LimitReason, LimitRefusal};
use control::{Caller, Control, Refusal, ViewerProtocol};

use super::peer::{self, Peer};
use super::{PEER_QUEUE, PeerRoute, Resource, WebRtc};
use crate::Shared;

/// Trickle commands queued per peer (PATCH beyond it gets 503).
pub const PEER_CMD_QUEUE: usize = 32;
/// Candidates taken from one PATCH body.
pub const MAX_TRICKLE_CANDIDATES: usize = 32;

pub(super) const METHODS_COLLECTION: &str = "POST, OPTIONS";
pub(super) const METHODS_RESOURCE: &str = "PATCH, DELETE, OPTIONS";

/// The WHEP routes (static `whep` segment: wins over the HLS `/{app}/{stream}/{file}`) and
/// the player page (`/{app}/{stream}/`, an empty last segment that `{file}` never matches).
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/{app}/{stream}/", axum::routing::get(super::player::page))
        .route(
            "/{app}/{stream}/whep",
            post(offer).options(preflight_collection),
        )
        .route(
            "/{app}/{stream}/whep/{id}",
            axum::routing::delete(delete)
                .patch(patch)
                .options(preflight_resource),
        )
}

pub(super) fn cors(shared: &Shared, h: &mut HeaderMap, methods: &'static str) {
    let origin = &shared.ctl.config.http.cors_allow_origin;
    if origin.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link"),
    );
}

pub(super) fn with_cors(shared: &Shared, methods: &'static str, mut r: Response) -> Response {
    cors(shared, r.headers_mut(), methods);
    r
}

pub(super) async fn preflight_collection(State(shared): State<Arc<Shared>>) -> Response {
    preflight(&shared, METHODS_COLLECTION)
}

pub(super) async fn preflight_resource(State(shared): State<Arc<Shared>>) -> Response {
    preflight(&shared, METHODS_RESOURCE)
}

pub(super) fn preflight(shared: &Shared, methods: &'static str) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(methods) {
        h.insert(header::ALLOW, v);
    }
    h.insert("accept-post", HeaderValue::from_static("application/sdp"));
    cors(shared, h, methods);
    r
}

pub(super) fn err(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Response {
    HttpError::new(status, code, msg).into_response()
}

/// Reads a body of at most `max` bytes; `Err` is the 413 (or 400) response.
pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<String, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_big = || {
        err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than webrtc.max_sdp_bytes ({max})"),
        )
    };
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|e| control::http_error::body_error_or(&e, too_big))?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| err(StatusCode::BAD_REQUEST, "bad_sdp", "the body is not UTF-8"))
}

pub(super) fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

pub(super) fn disabled() -> Response {
    err(
        StatusCode::NOT_FOUND,
        "webrtc_disabled",
        "WebRTC is disabled (webrtc.enabled = false)",
    )
}

/// What an offer's access check looks at (WHEP and WHIP alike).
pub(super) struct Offer<'a> {
    pub(super) app: &'a str,
    pub(super) stream: &'a str,
    pub(super) query: Option<&'a str>,
    pub(super) extensions: &'a Extensions,
    pub(super) headers: &'a HeaderMap,
}

/// The access check of an offer, through the control plane's admission: playing over WHEP
/// or publishing over WHIP needs what the same action needs over any protocol (`[auth]`): a
/// token as `Authorization: Bearer` (the WHIP/WHEP way) or `?token=`, a signed URL, the
/// webhook. Returns the proof and the client's address, or the refusal (with CORS headers)
/// to send.
pub(super) async fn authorize(
    shared: &Arc<Shared>,
    action: Action,
    offer: &Offer<'_>,
    methods: &'static str,
) -> Result<(Authorized, Option<SocketAddr>), Response> {
    let remote = control::http_error::client_addr(offer.extensions);
    let refused = |r: Refusal| with_cors(shared, methods, r.http());
    // The router decoded the path segments once; this is the name the hub will see.
    let name = StreamName::new(offer.app, offer.stream).map_err(|e| refused(e.into()))?;
    let caller = Caller {
        query: offer.query,
        bearer: control::http_error::bearer(offer.headers),
        ..Caller::new("webrtc", remote.map(|a| a.ip()))
    };
    let auth = shared
        .ctl
        .authorize(action, name, &caller)
        .await
        .map_err(refused)?;
    Ok((auth, remote))
}

/// `POST /{app}/{stream}/whep`.
async fn offer(
    State(shared): State<Arc<Shared>>,
    Path((app, stream)): Path<(String, String)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let offer = Offer {
        app: &app,
        stream: &stream,
        query: query.as_deref(),
        extensions: &extensions,
        headers: &headers,
    };
    let (auth, remote) = match authorize(&shared, Action::Play, &offer, METHODS_COLLECTION).await {
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
    let (wr, sdp) = read_offer(shared, headers, body).await?;
    let key = auth.name().key().to_owned();
    // The stream's video codec (H.264 until one is known), passed through: the offer must
    // have it.
    let Some(live) = shared.ctl.hub.stream(&key) else {
        return Err(Refusal::NotFound(key).http());
    };
    let video = live.video_codec.unwrap_or(media::Codec::H264);
    let media = rtp::sdp::check_offer(&sdp)
        .map_err(|why| err(StatusCode::BAD_REQUEST, "bad_offer", why))?;
    // Viewers report stats every second. A broadcast viewer gets one layer passed through:
    // no bandwidth estimate would drive any decision, so no BWE (no pacer, no padding
    // probes) and no transport-cc (no feedback packets from every viewer): its loss and RTT
    // come from its receiver reports.
    let config = RtcConfig::new().set_stats_interval(Some(super::quality::STATS_INTERVAL));
    // H.264 (what RTMP brings, nearly always): RTP mode, the payloads built once per stream
    // (`payloads.rs`); the other codecs are packetized by str0m per viewer.
    let rtp_mode = video == media::Codec::H264;
    let config = config.set_rtp_mode(rtp_mode);
    if media.has_video && !media.has(video) {
        let name = rtp::sdp::codec_name(video);
        return Err(err(
            StatusCode::BAD_REQUEST,
            "codec",
            format!("stream {key} is {name} video and the offer has no {name}"),
        ));
    }
    // The peer slot first (cheap to refuse: no DTLS state made yet).
    let creds = IceCreds::new();
    let slot = reserve(&shared.ctl, &wr, &key, remote, &sdp, &creds, "viewers")?;
    let (rtc, answer) = negotiate(&wr, &sdp, config, video, creds, true)?;
    // Subscribes (wanting Opus when the offer takes it: the stream's Opus as published, or
    // its derived Opus track, one per stream), checks `limits.max_viewers_per_stream`
    // (across protocols; 503 {"code":"limit"}) and counts the viewer. The session is listed
    // (and its `play` webhook fired) when the peer connects.
    let want = if media.opus {
        ViewerProtocol::WebRtc.want()
    } else {
        hub::Want::AS_PUBLISHED
    };
    let remote = remote.map(|c| c.to_string()).unwrap_or_default();
    let playing = shared
        .ctl
        .play_pending(
            auth,
            ViewerProtocol::WebRtc,
            want,
            remote,
            slot.kick.clone(),
        )
        .map_err(Refusal::http)?;
    let location = format!(
        "/{}/{}/whep/{}",
        playing.name.app(),
        playing.name.stream(),
        slot.cleanup.resource
    );
    let etag = slot.etag.clone();
    let payloads = rtp_mode.then(|| wr.payloads.get(&key));
    let p = Peer {
        cleanup: slot.cleanup,
        rtc,
        stream: key,
        sub: playing.subscriber,
        rx: slot.rx,
        cmd: slot.cmd,
        kick: slot.kick,
        viewer: playing.viewer,
        session: playing.session.into(),
        payloads,
    };
    shared
        .ctl
        .tracker
        .spawn(peer::run(Arc::clone(shared), wr, p));
    Ok(created(
        &shared.ctl.config.webrtc,
        &location,
        &etag,
        &answer,
    ))
}

/// `config` (its codecs enabled) for a broadcast (one layer, pass-through) viewer:
/// str0m's standard RTP header extensions except transport-wide sequence numbers and
/// abs-send-time, and no transport-cc or REMB feedback on any payload type (the inputs of
/// bandwidth estimation), BWE left off. The viewer then sends no transport-cc feedback
/// (about 20 RTCP packets a second each, before) nor REMB, and the server runs no
/// estimator, pacer or padding probes per viewer. NACK, PLI and FIR stay.
pub(super) fn broadcast_config(mut config: RtcConfig) -> RtcConfig {
    use str0m::rtp::Extension;
    let params: Vec<_> = config
        .codec_config()
        .params()
        .iter()
        .map(|p| {
            let mut p = *p;
            p.set_fb_transport_cc(false);
            p.set_fb_remb(false);
            p
        })
        .collect();
    *config.codec_config() = str0m::format::CodecConfig::new_from_payload_params(params);
    config
        .clear_extension_map()
        .set_extension(1, Extension::AudioLevel)
        .set_extension(4, Extension::RtpMid)
        .set_extension(10, Extension::RtpStreamId)
        .set_extension(11, Extension::RepairedRtpStreamId)
        .set_extension(13, Extension::VideoOrientation)
}

/// The checks every offer POST shares: WebRTC enabled, `application/sdp`, the body within
/// `webrtc.max_sdp_bytes`.
pub(super) async fn read_offer(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Arc<WebRtc>, String), Response> {
    let wr = Arc::clone(Some(&shared.rtc).ok_or_else(disabled)?);
    if !content_type_is(headers, "application/sdp") {
        return Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_content_type",
            "the offer must be sent as Content-Type: application/sdp",
        ));
    }
    let sdp = read_body(headers, body, shared.ctl.config.webrtc.max_sdp_bytes).await?;
    Ok((wr, sdp))
}

/// Parses the offer, builds the peer's ICE-lite `Rtc` (the `video` codec and Opus only) from
/// `config` with our candidates and ICE credentials `creds` (a `broadcast` viewer's without
/// bandwidth estimation: [`broadcast_config`]), and accepts the offer: the `Rtc` and the
/// answer.
// The error is the HTTP response axum sends as it is: boxing it gains nothing.
#[allow(clippy::result_large_err)]
pub(super) fn negotiate(
    wr: &WebRtc,
    sdp: &str,
    config: RtcConfig,
    video: media::Codec,
    creds: IceCreds,
    broadcast: bool,
) -> Result<(Rtc, String), Response> {
    // str0m parses hostile text: a panic in it is a 400 here, not a dead handler.
    let parsed = catch_unwind(AssertUnwindSafe(|| SdpOffer::from_sdp_string(sdp)))
        .map_err(|_| err(StatusCode::BAD_REQUEST, "bad_offer", "malformed SDP offer"))?;
    let offer = parsed.map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "bad_offer",
            format!("malformed SDP offer: {e}"),
        )
    })?;
    let mut config = crate::codecs::enable(config, video);
    if broadcast {
        config = broadcast_config(config);
    }
    let mut rtc = ice_lite_rtc(wr, config, creds);
    let accepted =
        catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_offer(offer))).map_err(|_| {
            err(
                StatusCode::BAD_REQUEST,
                "bad_offer",
                "cannot use this offer",
            )
        })?;
    let answer = accepted.map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "bad_offer",
            format!("cannot use this offer: {e}"),
        )
    })?;
    Ok((rtc, answer.to_sdp_string()))
}

/// An ICE-lite `Rtc` from `config` with our ICE credentials `creds`, the server's DTLS
/// certificate and our UDP and ICE-TCP host candidates.
pub(crate) fn ice_lite_rtc(wr: &WebRtc, mut config: RtcConfig, creds: IceCreds) -> Rtc {
    if let Some(cert) = &wr.dtls_cert {
        config = config.set_dtls_cert(cert.clone());
    }
    let mut rtc = config
        .set_ice_lite(true)
        .set_local_ice_credentials(creds)
        .build(std::time::Instant::now());
    for addr in &wr.candidates {
        match Candidate::host(*addr, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => tracing::warn!(%addr, "webrtc: candidate refused: {e}"),
        }
    }
    // ICE-TCP (RFC 6544): a passive candidate, the peer connects to it.
    for addr in &wr.tcp_candidates {
        let c = Candidate::builder()
            .tcp()
            .host(*addr)
            .tcptype(str0m::net::TcpType::Passive)
            .build();
        match c {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => tracing::warn!(%addr, "webrtc: tcp candidate refused: {e}"),
        }
    }
    rtc
}

/// A peer's reserved place: its resource, routes and counted slot (freed by `cleanup`'s
/// drop), and the ends of its queues.
pub(crate) struct Slot {
    pub(crate) cleanup: peer::Cleanup,
    pub(crate) etag: String,
    pub(crate) kick: CancellationToken,
    pub(crate) rx: mpsc::Receiver<super::Datagram>,
    pub(crate) cmd: mpsc::Receiver<super::PeerCmd>,
}

/// Reserves a peer slot under the routing lock, pending until the peer connects: the
/// client address's and the server's pending peers (`max_pending_peers_per_ip`,
/// `max_pending_peers`), then `max_peers` and `max_peers_per_stream`; registers its resource
/// and ufrag route. 503 `{"code":"limit"}` with `Retry-After` when a limit is reached
/// (pending refusals counted and logged with the other limits).
// The error is the HTTP response axum sends as it is: boxing it gains nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn reserve(
    ctl: &Control,
    wr: &Arc<WebRtc>,
    key: &str,
    remote: Option<SocketAddr>,
    sdp: &str,
    creds: &IceCreds,
    what: &str,
) -> Result<Slot, Response> {
    let cfg = &ctl.config.webrtc;
    // Counted per address as the connection limits count (IPv6 by its /64); `limits.exempt`
    // addresses (a local reverse proxy, by default loopback) only count in the total.
    let ip = remote.and_then(|a| ctl.limits.connections.limited_key(a.ip()));
    let id = wr.next_id();
    let resource: String = {
        let mut rng = rand::rng();
        (0..16)
            .map(|_| format!("{:02x}", rng.random::<u8>()))
            .collect()
    };
    let etag = new_etag(id);
    let kick = CancellationToken::new();
    let (tx, rx) = mpsc::channel(PEER_QUEUE);
    let (cmd_tx, cmd_rx) = mpsc::channel(PEER_CMD_QUEUE);
    {
        let mut t = wr.tables();
        let of_ip = ip
            .and_then(|ip| t.pending_by_ip.get(&ip).copied())
            .unwrap_or(0);
        let pending = if of_ip >= cfg.max_pending_peers_per_ip {
            Some(LimitReason::PendingPeersPerIp)
        } else if t.pending >= cfg.max_pending_peers {
            Some(LimitReason::PendingPeers)
        } else {
            None
        };
        if let Some(reason) = pending {
            drop(t);
            let refusal = LimitRefusal {
                reason,
                message: format!(
                    "too many WebRTC {what} connecting at once{}; retry when they have connected or timed out",
                    if reason == LimitReason::PendingPeersPerIp {
                        " from this address"
                    } else {
                        ""
                    }
                ),
            };
            control::limits::refused(ctl, "webrtc", &refusal);
            return Err(control::http_error::limit_refusal(refusal));
        }
        let on_stream = t.per_stream.get(key).copied().unwrap_or(0);
        if t.resources.len() >= cfg.max_peers || on_stream >= cfg.max_peers_per_stream {
            drop(t);
            wr.stats.refused.fetch_add(1, Ordering::Relaxed);
            if matches!(
                ctl.limits.refusals.decide(std::time::Instant::now()),
                control::limits::LogDecision::Log { .. }
            ) {
                tracing::warn!(%key, "webrtc refused: webrtc.max_peers or max_peers_per_stream reached");
            }
            let mut r = err(
                StatusCode::SERVICE_UNAVAILABLE,
                "limit",
                format!("too many WebRTC {what}"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return Err(r);
        }
        t.pending += 1;
        if let Some(ip) = ip {
            *t.pending_by_ip.entry(ip).or_default() += 1;
        }
        *t.per_stream.entry(key.to_owned()).or_default() += 1;
        t.resources.insert(
            resource.clone(),
            Resource {
                stream: key.to_owned(),
                etag: etag.clone(),
                kick: kick.clone(),
                cmd: cmd_tx,
                remote_ufrag: rtp::sdp::remote_ufrag(sdp),
                local_ufrags: vec![creds.ufrag.clone()],
            },
        );
        t.by_ufrag.insert(creds.ufrag.clone(), PeerRoute { id, tx });
    }
    wr.stats.peers.fetch_add(1, Ordering::Relaxed);
    Ok(Slot {
        cleanup: peer::Cleanup {
            wr: Arc::clone(wr),
            id,
            ufrag: creds.ufrag.clone(),
            resource,
            stream: key.to_owned(),
            pending: (true, ip),
        },
        etag,
        kick,
        rx,
        cmd: cmd_rx,
    })
}

/// A fresh ETag of peer `id` (a new one per ICE session: at POST and at each restart).
pub(super) fn new_etag(id: u64) -> String {
    let tag: u32 = rand::rng().random();
    format!("\"{id:x}-{tag:08x}\"")
}

/// `201 Created` with the answer, `Location` and `ETag`.
pub(super) fn created(
    cfg: &super::WebRtcConfig,
    location: &str,
    etag: &str,
    answer: &str,
) -> Response {
    let mut r = (StatusCode::CREATED, answer.to_owned()).into_response();
    let h = r.headers_mut();
    // `webrtc.ice_servers`, validated at start, so every value is a valid header.
    for s in &cfg.ice_servers {
        if let Ok(v) = HeaderValue::from_str(&s.link()) {
            h.append(header::LINK, v);
        }
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    r
}

/// `DELETE /{app}/{stream}/whep/{id}`.
pub(super) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((app, stream, id)): Path<(String, String, String)>,
) -> Response {
    let r = match Some(&shared.rtc) {
        None => disabled(),
        Some(wr) => {
            let key = format!("{app}/{stream}");
            let t = wr.tables();
            match t.resources.get(&id).filter(|r| r.stream == key) {
                Some(res) => {
                    res.kick.cancel();
                    StatusCode::OK.into_response()
                }
                None => err(StatusCode::NOT_FOUND, "not_found", "no such WebRTC session"),
            }
        }
    };
    with_cors(&shared, METHODS_RESOURCE, r)
}

/// `PATCH /{app}/{stream}/whep/{id}`: trickle ICE candidates, or an ICE restart.
pub(super) async fn patch(
    State(shared): State<Arc<Shared>>,
    Path((app, stream, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = match trickle(&shared, &app, &stream, &id, &headers, body).await {
        Ok(r) | Err(r) => r,
    };
    with_cors(&shared, METHODS_RESOURCE, r)
}

async fn trickle(
    shared: &Shared,
    app: &str,
    stream: &str,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let wr = Some(&shared.rtc).ok_or_else(disabled)?;
    let key = format!("{app}/{stream}");
    let (cmd, etag, remote_ufrag) = {
        let t = wr.tables();
        let res = t
            .resources
            .get(id)
            .filter(|r| r.stream == key)
            .ok_or_else(|| err(StatusCode::NOT_FOUND, "not_found", "no such WebRTC session"))?;
        (res.cmd.clone(), res.etag.clone(), res.remote_ufrag.clone())
    };
    let if_match = headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or_default().trim().to_owned());
    if let Some(m) = &if_match
        && m != "*"
        && *m != etag
    {
        return Err(err(
            StatusCode::PRECONDITION_FAILED,
            "etag_mismatch",
            "If-Match does not match the session's ETag",
        ));
    }
    if !content_type_is(headers, "application/trickle-ice-sdpfrag") {
        return Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_content_type",
            "trickle ICE must be sent as application/trickle-ice-sdpfrag",
        ));
    }
    let text = read_body(headers, body, shared.ctl.config.webrtc.max_sdp_bytes).await?;
    let frag = rtp::sdpfrag::parse_fragment(&text);
    let restart = rtp::sdpfrag::restart_creds(&frag, &remote_ufrag)
        .map_err(|why| err(StatusCode::UNPROCESSABLE_ENTITY, "bad_ice_restart", why))?;
    if let Some(remote) = restart {
        if if_match.is_none() {
            return Err(err(
                StatusCode::PRECONDITION_REQUIRED,
                "if_match_required",
                "an ICE restart must be sent with If-Match: * (RFC 9725)",
            ));
        }
        return super::restart::restart(wr, id, &key, &cmd, remote, &frag).await;
    }
    for line in frag.candidates.into_iter().take(MAX_TRICKLE_CANDIDATES) {
        if cmd.try_send(super::PeerCmd::AddCandidate(line)).is_err() {
            return Err(err(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the session cannot take more candidates now",
            ));
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use str0m::media::{Direction, MediaKind};

    use super::*;

    /// A browser-like recvonly offer (str0m's standard extensions, transport-cc included).
    fn offer() -> (Rtc, str0m::change::SdpPendingOffer, SdpOffer) {
        let mut viewer = Rtc::new(Instant::now());
        let mut api = viewer.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        (viewer, pending, offer)
    }

    #[test]
    fn broadcast_viewers_negotiate_no_transport_cc() {
        let (_viewer, _pending, offer) = offer();
        let text = offer.to_sdp_string();
        assert!(
            text.contains("transport-wide-cc"),
            "the offer has it: {text}"
        );
        let mut rtc = broadcast_config(crate::codecs::enable(RtcConfig::new(), media::Codec::H264))
            .set_ice_lite(true)
            .build(Instant::now());
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("accepted")
            .to_sdp_string();
        assert!(!answer.contains("transport-wide-cc"), "{answer}");
        assert!(!answer.contains("abs-send-time"), "{answer}");
        assert!(!answer.contains("goog-remb"), "{answer}");
        assert!(
            answer.contains("sdes:mid"),
            "the mid extension stays: {answer}"
        );
        assert!(answer.contains("nack pli"), "NACK and PLI stay: {answer}");
        assert!(answer.contains("H264"), "{answer}");
    }
}
