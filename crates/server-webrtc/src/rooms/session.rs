//! One participant: the WebSocket upgrade (token checked first: a refused join is an HTTP
//! 401/403 with the reason, which clients read from `/rtc/validate`), then one task that
//! owns the WebSocket and both `Rtc`s and serves, in one `select!`: signalling requests,
//! the room's notices, datagrams of both connections, subscribed frames, str0m's timers and
//! the ping timeout.
//!
//! Signalling handled: offer (publisher), answer (subscriber), trickle (both), AddTrack ->
//! TrackPublished, Mute, UpdateSubscription, UpdateTrackSettings (accepted; layers are not
//! chosen per subscriber yet), Leave, Ping/PingReq -> Pong/PongResp; data packets relayed.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use rooms::proto::{self, signal_request::Message as Req, signal_response::Message as Resp};
use rooms::token::Claims;
use rooms::{RoomsError, ids};
use str0m::Input;

use super::publisher::{DataOut, MAX_TRACKS, PubPc, PubTrack};
use super::subscriber::SubPc;
use super::{Joined, Notice};
use crate::{Shared, WebRtc, peer};

use rooms::signal::MAX_SIGNAL_MESSAGE;
/// Longest a signalling message may take to write to the client.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// The server version announced in the join response: the LiveKit server release whose
/// client-visible behaviour this follows (clients gate features on it).
pub const COMPATIBLE_SERVER_VERSION: &str = "1.9.0";
/// The signalling protocol version announced (what LiveKit's clients check).
pub const PROTOCOL_VERSION: i32 = 16;
/// The oldest client protocol served. Clients announce theirs in `protocol`; those older
/// than this (SDKs from before 2022) were never tried against this server and are refused
/// at the upgrade with the reason rather than half-served. Clients tested: 17
/// (livekit-client 2.23).
pub const MIN_PROTOCOL: i32 = 8;

/// Most simulcast layers (and codecs) kept per published track.
pub const MAX_LAYERS: usize = 4;
/// Longest track name, stream name, cid or codec name kept (bytes).
pub const MAX_TRACK_TEXT: usize = 256;

/// Cuts `s` to at most `max` bytes at a character boundary.
fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// Query parameters of `/rtc`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct RtcQuery {
    access_token: Option<String>,
    auto_subscribe: Option<String>,
    protocol: Option<String>,
    /// `1` when the client tries to resume a session (after a network change).
    reconnect: Option<String>,
}

fn refusal(e: &RoomsError) -> Response {
    let status = match e {
        RoomsError::Token(_) => StatusCode::UNAUTHORIZED,
        RoomsError::Denied(_) => StatusCode::FORBIDDEN,
        RoomsError::Limit(_) => StatusCode::SERVICE_UNAVAILABLE,
        RoomsError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, e.to_string()).into_response()
}

/// `GET /rtc/validate`: 200 when the token would join, else the refusal with its reason.
pub(crate) async fn validate(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<RtcQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    super::any_origin(
        match shared.rooms.check_token(token(&q, &headers)) {
            Ok(_) => (StatusCode::OK, "success").into_response(),
            Err(e) => refusal(&e),
        },
    )
}

/// The join token: the `access_token` query parameter (browsers cannot set headers on a
/// WebSocket) or an `Authorization: Bearer` header (LiveKit's Go SDK sends only that).
fn token<'a>(q: &'a RtcQuery, headers: &'a axum::http::HeaderMap) -> &'a str {
    q.access_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .or_else(|| control::http_error::bearer(headers))
        .unwrap_or_default()
}

/// `GET /rtc`: checks the token, then upgrades to the participant's WebSocket.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<RtcQuery>,
    extensions: Extensions,
    headers: axum::http::HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let claims = match shared.rooms.check_token(token(&q, &headers)) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!("room join refused: {e}");
            return refusal(&e);
        }
    };
    let Ok(ws) = ws else {
        return (StatusCode::BAD_REQUEST, "a WebSocket upgrade is expected").into_response();
    };
    // A client that announces no version is served as a current one; one that announces
    // an old one is refused.
    let protocol: i32 = match q.protocol.as_deref() {
        None | Some("") => PROTOCOL_VERSION,
        Some(p) => p.parse().unwrap_or(0),
    };
    if protocol < MIN_PROTOCOL {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "signalling protocol {protocol} is not supported: this server serves clients of protocol {MIN_PROTOCOL} and later"
            ),
        )
            .into_response();
    }
    let remote = control::http_error::client_addr(&extensions);
    let auto_subscribe = q.auto_subscribe.as_deref() != Some("0");
    let resume = q.reconnect.as_deref() == Some("1");
    ws.max_message_size(MAX_SIGNAL_MESSAGE)
        .max_frame_size(MAX_SIGNAL_MESSAGE)
        .on_upgrade(move |mut socket| async move {
            if resume {
                // Resuming keeps no state here: the client is told to reconnect in full
                // (a new join, its tracks published again), which its SDK does at once.
                let _ = send(
                    &mut socket,
                    Resp::Leave(proto::LeaveRequest {
                        can_reconnect: true,
                        reason: proto::DisconnectReason::StateMismatch as i32,
                        action: proto::leave_request::Action::Reconnect as i32,
                        ..Default::default()
                    }),
                )
                .await;
                return;
            }
            run(shared, socket, claims, remote, auto_subscribe, protocol).await;
        })
}

/// Encodes and sends one response; false when the client is gone or too slow.
async fn send(ws: &mut WebSocket, m: Resp) -> bool {
    let bytes = rooms::signal::encode_response(&proto::SignalResponse { message: Some(m) });
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::Binary(bytes.into()))).await,
        Ok(Ok(()))
    )
}


/// The participant's state besides its connections.
struct Me {
    room: String,
    info: proto::ParticipantInfo,
    claims: Claims,
    auto_subscribe: bool,
    /// Tracks asked for explicitly (UpdateSubscription), when not auto-subscribing.
    wanted: HashSet<String>,
    /// Tracks asked to be left out (UpdateSubscription with subscribe=false).
    unwanted: HashSet<String>,
    /// Other participants as last told: sid -> info.
    others: HashMap<String, proto::ParticipantInfo>,
    last_ping: Instant,
    /// Tracks announced (AddTrack) before the publisher connection existed.
    pending: Vec<PubTrack>,
}

async fn run(
    shared: Arc<Shared>,
    mut ws: WebSocket,
    claims: Claims,
    remote: Option<SocketAddr>,
    auto_subscribe: bool,
    protocol: i32,
) {
    let rooms = Arc::clone(&shared.rooms);
    let Joined {
        room,
        me: info,
        others,
        mut inbox,
        kick,
    } = match rooms.join(&claims, protocol) {
        Ok(j) => j,
        Err(e) => {
            tracing::info!("room join refused: {e}");
            let _ = send(
                &mut ws,
                Resp::Leave(proto::LeaveRequest {
                    reason: proto::DisconnectReason::JoinFailure as i32,
                    ..Default::default()
                }),
            )
            .await;
            return;
        }
    };
    let cfg = &shared.ctl.config;
    let wr = Arc::clone(&shared.rtc);
    let join = proto::JoinResponse {
        room: Some(room.clone()),
        participant: Some(info.clone()),
        other_participants: others.clone(),
        server_version: COMPATIBLE_SERVER_VERSION.to_owned(),
        server_region: String::new(),
        subscriber_primary: false,
        ping_timeout: i32::try_from(cfg.rooms.ping_timeout_s).unwrap_or(i32::MAX),
        ping_interval: i32::try_from(cfg.rooms.ping_interval_s).unwrap_or(i32::MAX),
        server_info: Some(proto::ServerInfo {
            edition: proto::server_info::Edition::Standard as i32,
            version: COMPATIBLE_SERVER_VERSION.to_owned(),
            protocol: PROTOCOL_VERSION,
            node_id: format!("sluice-{}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        }),
        sif_trailer: Vec::new(),
        ..Default::default()
    };
    let mut me = Me {
        room: room.name.clone(),
        info,
        claims,
        auto_subscribe,
        wanted: HashSet::new(),
        unwanted: HashSet::new(),
        others: others.into_iter().map(|p| (p.sid.clone(), p)).collect(),
        last_ping: Instant::now(),
        pending: Vec::new(),
    };
    let mut conn = Conns {
        publ: None,
        sub: None,
    };
    // The subscriber connection's slot is taken before the join is answered: a server at
    // `webrtc.max_pending_peers` refuses the join with a reason rather than answering it
    // and then dropping the participant.
    let ok = match SubPc::create(&shared, &wr, &format!("rooms:{}", me.room), remote) {
        Ok((sub, offer)) => {
            conn.sub = Some(sub);
            send(&mut ws, Resp::Join(join)).await
                && start_subscriber(&shared, &wr, &mut ws, &mut me, &mut conn, offer).await
        }
        Err(e) => {
            tracing::warn!(identity = %me.info.identity, "room join refused: {e}");
            let _ = send(
                &mut ws,
                Resp::Leave(proto::LeaveRequest {
                    can_reconnect: true,
                    reason: proto::DisconnectReason::JoinFailure as i32,
                    action: proto::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                }),
            )
            .await;
            false
        }
    };
    if ok {
        serve(&shared, &wr, &mut ws, &mut me, &mut conn, &mut inbox, &kick, remote).await;
    }
    // Leaving: the room hears of it, the hub streams end now (no publisher grace for a
    // participant that left), the connections close.
    rooms.leave(&me.room, &me.info.sid);
    if let Some(mut p) = conn.publ.take() {
        p.rtc.disconnect();
        p.drain(&wr, &mut Vec::new());
        for key in p.sinks.keys() {
            shared.ctl.hub.end_stream(key);
        }
    }
    if let Some(mut s) = conn.sub.take() {
        s.close();
        s.drain(&wr);
    }
    let _ = ws.send(Message::Close(None)).await;
}

/// Both connections (each made when first needed).
struct Conns {
    publ: Option<PubPc>,
    sub: Option<SubPc>,
}

/// The subscriber connection, made at join (its data channels carry data to the client), is
/// offered at once, with every track already published.
async fn start_subscriber(
    shared: &Arc<Shared>,
    wr: &Arc<WebRtc>,
    ws: &mut WebSocket,
    me: &mut Me,
    conn: &mut Conns,
    offer: String,
) -> bool {
    if let Some(sub) = conn.sub.as_mut() {
        sub.drain(wr);
    }
    let others: Vec<_> = me.others.values().cloned().collect();
    for p in &others {
        reconcile(shared, me, conn, p);
    }
    if !send(ws, Resp::Offer(sd("offer", offer))).await {
        return false;
    }
    true
}

fn sd(kind: &str, sdp: String) -> proto::SessionDescription {
    proto::SessionDescription {
        r#type: kind.to_owned(),
        sdp,
        ..Default::default()
    }
}

/// Subscribes to what participant `p` publishes (auto-subscribe, or asked for) and drops
/// what it no longer publishes.
fn reconcile(shared: &Shared, me: &Me, conn: &mut Conns, p: &proto::ParticipantInfo) {
    let Some(sub) = conn.sub.as_mut() else { return };
    let gone = p.state == proto::participant_info::State::Disconnected as i32;
    let can = me.claims.video.subscribe();
    let have: Vec<String> = p.tracks.iter().map(|t| t.sid.clone()).collect();
    for t in &p.tracks {
        let want = !gone
            && can
            && !me.unwanted.contains(&t.sid)
            && (me.auto_subscribe || me.wanted.contains(&t.sid));
        if want {
            let Some(stream) = shared
                .rooms
                .stream_of(&me.room, &t.sid)
                .or_else(|| track_stream(shared, &me.room, &p.identity, t.source))
            else {
                continue;
            };
            if sub.subscribe(&p.sid, t, &stream) {
                shared.rooms.want_keyframe(&me.room, &p.sid);
            }
        } else {
            sub.unsubscribe(&t.sid);
        }
    }
    // Tracks of this participant that are no longer published.
    let stale: Vec<String> = sub
        .subscribed()
        .filter(|sid| me.others.get(&p.sid).is_some_and(|o| o.tracks.iter().any(|t| &t.sid == *sid)))
        .filter(|sid| !have.contains(sid) || gone)
        .cloned()
        .collect();
    for sid in stale {
        sub.unsubscribe(&sid);
    }
}

/// The hub stream key of a track of `identity` from `source`.
fn track_stream(shared: &Shared, room: &str, identity: &str, source: i32) -> Option<String> {
    let source = proto::TrackSource::try_from(source).unwrap_or(proto::TrackSource::Unknown);
    let part = rooms::names::stream_part(room, identity, source);
    access::StreamName::new(&shared.ctl.config.rooms.app, &part)
        .ok()
        .map(|n| n.key().to_owned())
}

async fn recv_opt<T>(rx: Option<&mut tokio::sync::mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What woke the participant's loop.
enum Wake {
    Kicked,
    Shutdown,
    Ws(Option<Result<Message, axum::Error>>),
    Notice(Option<Notice>),
    PubDatagram(Option<crate::Datagram>),
    /// A command for the publisher connection (false: its queue closed).
    PubCmd(bool),
    SubDatagram(Option<crate::Datagram>),
    Frame(Option<(Arc<str>, Arc<media::Frame>)>),
    Timer,
}

/// The participant's loop; returns when it leaves or is disconnected.
#[allow(clippy::too_many_arguments)]
async fn serve(
    shared: &Arc<Shared>,
    wr: &Arc<WebRtc>,
    ws: &mut WebSocket,
    me: &mut Me,
    conn: &mut Conns,
    inbox: &mut tokio::sync::mpsc::Receiver<Notice>,
    kick: &tokio_util::sync::CancellationToken,
    remote: Option<SocketAddr>,
) {
    let ping_timeout = Duration::from_secs(u64::from(shared.ctl.config.rooms.ping_timeout_s));
    let key_interval = Duration::from_millis(shared.ctl.config.webrtc.whip_keyframe_interval_ms);
    let ping_interval = Duration::from_secs(u64::from(shared.ctl.config.rooms.ping_interval_s));
    let mut next_ws_ping = Instant::now() + ping_interval;
    let mut data = Vec::new();
    loop {
        let mut wake = (me.last_ping + ping_timeout).min(next_ws_ping);
        if let Some(p) = &conn.publ {
            wake = wake.min(p.next);
            if !p.connected {
                wake = wake.min(p.connect_by);
            }
        }
        if let Some(s) = &conn.sub {
            wake = wake.min(s.next);
            if !s.connected {
                wake = wake.min(s.connect_by);
            }
        }
        let wake_up = {
            let (pub_rx, pub_cmd) = match conn.publ.as_mut() {
                Some(p) => (Some(&mut p.slot.rx), Some(&mut p.slot.cmd)),
                None => (None, None),
            };
            let (sub_rx, frames) = match conn.sub.as_mut() {
                Some(s) => (Some(&mut s.slot.rx), Some(&mut s.frames)),
                None => (None, None),
            };
            tokio::select! {
                biased;
                () = kick.cancelled() => Wake::Kicked,
                () = shared.ctl.shutdown.cancelled() => Wake::Shutdown,
                m = ws.recv() => Wake::Ws(m),
                n = inbox.recv() => Wake::Notice(n),
                d = recv_opt(pub_rx) => Wake::PubDatagram(d),
                c = recv_opt(pub_cmd) => Wake::PubCmd(c.is_some()),
                d = recv_opt(sub_rx) => Wake::SubDatagram(d),
                f = recv_opt(frames) => Wake::Frame(f),
                () = tokio::time::sleep_until(wake.into()) => Wake::Timer,
            }
        };
        match wake_up {
            Wake::Kicked => {
                let _ = send(ws, Resp::Leave(proto::LeaveRequest {
                    reason: proto::DisconnectReason::ParticipantRemoved as i32,
                    ..Default::default()
                })).await;
                return;
            }
            Wake::Shutdown => {
                let _ = send(ws, Resp::Leave(proto::LeaveRequest {
                    reason: proto::DisconnectReason::ServerShutdown as i32,
                    ..Default::default()
                })).await;
                return;
            }
            Wake::Ws(m) => {
                // Anything from the client shows it is there: SDKs that send no signalling
                // ping (LiveKit's Go SDK) answer the WebSocket pings below.
                me.last_ping = Instant::now();
                let bytes = match m {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Text(_))) => {
                        tracing::info!(identity = %me.info.identity, "room signalling: text (JSON) messages are not supported");
                        return;
                    }
                    _ => return,
                };
                let req = match rooms::signal::decode_request(bytes.as_ref()) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::info!(identity = %me.info.identity, "room signalling: malformed request: {e}");
                        return;
                    }
                };
                if !request(shared, wr, ws, me, conn, req, remote).await {
                    return;
                }
            }
            Wake::Notice(n) => {
                let Some(n) = n else { return };
                let (n, then) = coalesce(n, inbox);
                if !notice(shared, ws, me, conn, n).await {
                    return;
                }
                if let Some(n) = then
                    && !notice(shared, ws, me, conn, n).await
                {
                    return;
                }
            }
            Wake::PubDatagram(d) => match (d, conn.publ.as_mut()) {
                (Some(d), Some(p)) => peer::receive(&mut p.rtc, wr, d),
                _ => return,
            },
            Wake::PubCmd(alive) => {
                if !alive {
                    return;
                }
            }
            Wake::SubDatagram(d) => match (d, conn.sub.as_mut()) {
                (Some(d), Some(s)) => peer::receive(&mut s.rtc, wr, d),
                _ => return,
            },
            Wake::Frame(f) => {
                if let (Some((key, f)), Some(s)) = (f, conn.sub.as_mut()) {
                    s.write(&key, &f);
                    for _ in 0..peer::MAX_BATCH {
                        let Ok((key, f)) = s.frames.try_recv() else { break };
                        s.write(&key, &f);
                    }
                    let _ = s.rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
            Wake::Timer => {
                let now = Instant::now();
                if now >= me.last_ping + ping_timeout {
                    tracing::info!(identity = %me.info.identity, "room participant timed out (nothing from it for ping_timeout_s)");
                    return;
                }
                if now >= next_ws_ping {
                    next_ws_ping = now + ping_interval;
                    if tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::Ping(Default::default())))
                        .await
                        .map_or(true, |r| r.is_err())
                    {
                        return;
                    }
                }
                if let Some(p) = conn.publ.as_mut() {
                    if p.keyframe_due(key_interval) {
                        p.want_keyframe();
                    }
                    let _ = p.rtc.handle_input(Input::Timeout(now));
                }
                if let Some(s) = conn.sub.as_mut() {
                    let _ = s.rtc.handle_input(Input::Timeout(now));
                }
            }
        }
        // Connections that failed, or never connected within the ICE timeout, end the
        // participant (the client reconnects from scratch).
        if let Some(p) = conn.publ.as_mut() {
            p.drain(wr, &mut data);
            if p.failed || (!p.connected && Instant::now() >= p.connect_by) {
                tracing::info!(identity = %me.info.identity, "room publisher connection lost");
                return;
            }
        }
        if let Some(s) = conn.sub.as_mut() {
            s.drain(wr);
            s.start_feeds(shared);
            if s.failed || (!s.connected && Instant::now() >= s.connect_by) {
                tracing::info!(identity = %me.info.identity, "room subscriber connection lost");
                return;
            }
            for p in s.keyframes.drain(..) {
                shared.rooms.want_keyframe(&me.room, &p);
            }
            if let Some(offer) = s.offer() {
                s.drain(wr);
                if !send(ws, Resp::Offer(sd("offer", offer))).await {
                    return;
                }
            }
        }
        for d in data.drain(..) {
            relay_data(shared, me, d);
        }
        if let Some(p) = conn.publ.as_mut()
            && let Some(level) = p.meter.take(Instant::now())
        {
            shared.rooms.speaking(&me.room, &me.info.sid, level);
        }
    }
}

/// A data packet the client sent on its publisher connection, relayed to the room.
fn relay_data(shared: &Shared, me: &Me, d: DataOut) {
    if !me.claims.video.publish_data() {
        return;
    }
    let Some((bytes, to)) = super::publisher::stamp_data(&d.bytes, &me.info) else {
        tracing::debug!(identity = %me.info.identity, "room data packet malformed: dropped");
        return;
    };
    let to = if d.to.is_empty() { to } else { d.to };
    shared.rooms.data(&me.room, &me.info.sid, &to, bytes, d.reliable);
}

/// Handles one signalling request; false ends the session.
async fn request(
    shared: &Arc<Shared>,
    wr: &Arc<WebRtc>,
    ws: &mut WebSocket,
    me: &mut Me,
    conn: &mut Conns,
    req: proto::SignalRequest,
    remote: Option<SocketAddr>,
) -> bool {
    let Some(m) = req.message else { return true };
    match m {
        Req::Offer(o) => {
            let answer = match conn.publ.as_mut() {
                Some(p) => p.accept(&o.sdp),
                None => {
                    let key = format!("rooms:{}", me.room);
                    let owner = (me.info.identity.clone(), kick_of(conn));
                    match PubPc::create(shared, wr, &key, remote, &o.sdp, owner) {
                        Ok((mut p, a)) => {
                            // Tracks announced before the connection existed.
                            attach_sinks(me, &mut p);
                            conn.publ = Some(p);
                            Ok(a)
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match answer {
                Ok(a) => {
                    if let Some(p) = conn.publ.as_mut() {
                        p.drain(wr, &mut Vec::new());
                        let gone = p.take_unpublished(&shared.ctl.hub);
                        if !gone.is_empty() {
                            let sids: Vec<String> = gone.iter().map(|t| t.sid.clone()).collect();
                            tracing::info!(identity = %me.info.identity, tracks = ?sids, "room tracks unpublished");
                            if let Some(updated) = shared.rooms.update(&me.room, &me.info.sid, |p| {
                                p.tracks.retain(|t| !sids.contains(&t.sid));
                                p.is_publisher = !p.tracks.is_empty();
                            }) {
                                me.info = updated;
                            }
                        }
                    }
                    let mut d = sd("answer", a);
                    d.id = o.id;
                    send(ws, Resp::Answer(d)).await
                }
                Err(e) => {
                    tracing::info!(identity = %me.info.identity, "room publisher offer refused: {e}");
                    false
                }
            }
        }
        Req::Answer(a) => match conn.sub.as_mut() {
            Some(s) => match s.answer(&a.sdp) {
                Ok(()) => true,
                Err(e) => {
                    tracing::info!(identity = %me.info.identity, "room subscriber answer refused: {e}");
                    false
                }
            },
            None => true,
        },
        Req::Trickle(t) => {
            let Ok(init) = serde_json::from_str::<serde_json::Value>(&t.candidate_init) else {
                return true;
            };
            let Some(line) = init.get("candidate").and_then(|c| c.as_str()) else {
                return true;
            };
            if line.is_empty() {
                return true;
            }
            let rtc = if t.target == proto::SignalTarget::Subscriber as i32 {
                conn.sub.as_mut().map(|s| &mut s.rtc)
            } else {
                conn.publ.as_mut().map(|p| &mut p.rtc)
            };
            if let Some(rtc) = rtc {
                peer::add_candidate(rtc, line);
            }
            true
        }
        Req::AddTrack(a) => add_track(shared, ws, me, conn, a).await,
        Req::Mute(m) => {
            set_muted(shared, me, conn, &m.sid, m.muted);
            true
        }
        Req::Subscription(s) => {
            let mut sids: Vec<String> = s.track_sids;
            sids.extend(s.participant_tracks.into_iter().flat_map(|p| p.track_sids));
            subscription(shared, me, conn, sids, s.subscribe);
            true
        }
        Req::TrackSetting(ts) => {
            track_settings(shared, me, conn, &ts);
            true
        }
        Req::Leave(_) => false,
        Req::Ping(t) => send(ws, Resp::Pong(t)).await && {
            me.last_ping = Instant::now();
            true
        },
        Req::PingReq(p) => {
            me.last_ping = Instant::now();
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            send(
                ws,
                Resp::PongResp(proto::Pong {
                    last_ping_timestamp: p.timestamp,
                    timestamp: now_ms,
                }),
            )
            .await
        }
        // Accepted and not acted on yet: per-subscriber layer choice, metadata updates,
        // subscription permissions, sync state, simulated scenarios.
        _ => true,
    }
}

/// UpdateTrackSettings: each video track moves to the simulcast layer that fits the size
/// (or quality) asked, at that layer's next keyframe; `disabled` pauses it.
fn track_settings(shared: &Shared, me: &Me, conn: &mut Conns, ts: &proto::UpdateTrackSettings) {
    let Some(sub) = conn.sub.as_mut() else { return };
    for sid in ts.track_sids.iter().take(super::subscriber::MAX_SUBSCRIBED) {
        let Some((p, t)) = me
            .others
            .values()
            .find_map(|p| p.tracks.iter().find(|t| &t.sid == sid).map(|t| (p, t)))
        else {
            continue;
        };
        let Some(main) = shared
            .rooms
            .stream_of(&me.room, sid)
            .or_else(|| track_stream(shared, &me.room, &p.identity, t.source))
        else {
            continue;
        };
        let stream = match super::publisher::pick_layer(t, ts.width, ts.height, ts.quality) {
            Some(rid) => super::publisher::layer_stream(&main, &rid),
            None => main.clone(),
        };
        if !sub.settings(shared, sid, &stream, ts.disabled) {
            // That layer is not flowing: the track stays where it is.
            let _ = sub.settings(shared, sid, &main, ts.disabled);
        }
        shared.rooms.want_keyframe(&me.room, &p.sid);
    }
}

/// (Un)subscribes to tracks by sid, asked by the client or the room API.
fn subscription(shared: &Shared, me: &mut Me, conn: &mut Conns, sids: Vec<String>, subscribe: bool) {
    for sid in sids.into_iter().take(super::subscriber::MAX_SUBSCRIBED) {
        if subscribe {
            me.unwanted.remove(&sid);
            me.wanted.insert(sid);
        } else {
            me.wanted.remove(&sid);
            me.unwanted.insert(sid);
        }
    }
    let others: Vec<_> = me.others.values().cloned().collect();
    for p in &others {
        reconcile(shared, me, conn, p);
    }
}

fn kick_of(conn: &Conns) -> tokio_util::sync::CancellationToken {
    conn.sub
        .as_ref()
        .map(|s| s.slot.kick.clone())
        .unwrap_or_default()
}

/// AddTrack: a track id, the hub stream of its source opened (admitted as a publish), and
/// TrackPublished; the others hear of it in a participant update.
async fn add_track(
    shared: &Arc<Shared>,
    ws: &mut WebSocket,
    me: &mut Me,
    conn: &mut Conns,
    mut a: proto::AddTrackRequest,
) -> bool {
    // What is copied into the participant's info (sent to everyone at every update) is
    // bounded, whatever the client sent.
    a.layers.truncate(MAX_LAYERS);
    a.simulcast_codecs.truncate(MAX_LAYERS);
    for c in &mut a.simulcast_codecs {
        c.layers.truncate(MAX_LAYERS);
        truncate_utf8(&mut c.codec, MAX_TRACK_TEXT);
        truncate_utf8(&mut c.cid, MAX_TRACK_TEXT);
    }
    truncate_utf8(&mut a.name, MAX_TRACK_TEXT);
    truncate_utf8(&mut a.stream, MAX_TRACK_TEXT);
    truncate_utf8(&mut a.cid, MAX_TRACK_TEXT);
    let grant = &me.claims.video;
    let source = proto::TrackSource::try_from(a.source).unwrap_or(proto::TrackSource::Unknown);
    let allowed = grant.publish()
        && (grant.can_publish_sources.is_empty()
            || grant
                .can_publish_sources
                .iter()
                .any(|s| s.eq_ignore_ascii_case(source.as_str_name()) || source_name(source) == s));
    let count = me.info.tracks.len();
    if !allowed || count >= MAX_TRACKS {
        tracing::info!(identity = %me.info.identity, ?source, "room track refused (grant or limit)");
        // The client learns of it by the absence of TrackPublished (it times out).
        return true;
    }
    // `simulcast` and `layers` are deprecated in favour of `codecs`, which older clients do
    // not read: both are filled.
    #[allow(deprecated)]
    let info = proto::TrackInfo {
        simulcast: a.layers.len() > 1 || a.simulcast_codecs.iter().any(|c| c.layers.len() > 1),
        layers: a.layers.clone(),
        codecs: a
            .simulcast_codecs
            .iter()
            .map(|c| proto::SimulcastCodecInfo {
                mime_type: mime(&c.codec, a.r#type),
                cid: c.cid.clone(),
                layers: if c.layers.is_empty() { a.layers.clone() } else { c.layers.clone() },
                ..Default::default()
            })
            .collect(),
        sid: ids::new_id(ids::TRACK),
        r#type: a.r#type,
        name: a.name.clone(),
        muted: a.muted,
        width: a.width,
        height: a.height,
        source: a.source,
        mime_type: a
            .simulcast_codecs
            .first()
            .map(|c| mime(&c.codec, a.r#type))
            .unwrap_or_default(),
        stream: a.stream.clone(),
        ..Default::default()
    };
    let Some(stream) = track_stream(shared, &me.room, &me.info.identity, a.source) else {
        return true;
    };
    let track = PubTrack {
        cid: a.cid.clone(),
        info: info.clone(),
        stream,
        mid: None,
    };
    if let Some(p) = conn.publ.as_mut() {
        p.tracks.push(track);
        attach_sinks(me, p);
    } else {
        me.pending.push(track);
    }
    let ok = send(
        ws,
        Resp::TrackPublished(proto::TrackPublishedResponse {
            cid: a.cid,
            track: Some(info.clone()),
        }),
    )
    .await;
    if let Some(updated) = shared.rooms.update(&me.room, &me.info.sid, |p| {
        p.tracks.push(info);
        p.is_publisher = true;
    }) {
        me.info = updated;
    }
    ok
}

fn source_name(s: proto::TrackSource) -> &'static str {
    match s {
        proto::TrackSource::Camera => "camera",
        proto::TrackSource::Microphone => "microphone",
        proto::TrackSource::ScreenShare => "screen_share",
        proto::TrackSource::ScreenShareAudio => "screen_share_audio",
        proto::TrackSource::Unknown => "unknown",
    }
}

fn mime(codec: &str, kind: i32) -> String {
    if codec.is_empty() {
        return String::new();
    }
    let k = if kind == proto::TrackType::Video as i32 {
        "video"
    } else {
        "audio"
    };
    format!("{k}/{codec}")
}

/// Opens the hub stream of every published track that has none.
fn attach_sinks(me: &mut Me, p: &mut PubPc) {
    p.tracks.append(&mut me.pending);
    let keys: Vec<String> = p.tracks.iter().map(|t| t.stream.clone()).collect();
    for key in keys {
        p.open_sink(&key);
    }
}

/// Mutes or unmutes one of my tracks; everyone hears of it.
fn set_muted(shared: &Shared, me: &mut Me, conn: &mut Conns, sid: &str, muted: bool) {
    if let Some(p) = conn.publ.as_mut()
        && let Some(t) = p.tracks.iter_mut().find(|t| t.info.sid == sid)
    {
        t.info.muted = muted;
        if !muted {
            p.want_keyframe();
        }
    }
    if let Some(updated) = shared.rooms.update(&me.room, &me.info.sid, |p| {
        for t in p.tracks.iter_mut().filter(|t| t.sid == sid) {
            t.muted = muted;
        }
    }) {
        me.info = updated;
    }
}

const DISCONNECTED: i32 = proto::participant_info::State::Disconnected as i32;

/// Most participant updates merged into one message.
pub const MAX_COALESCED: usize = 64;

/// Participant updates queued together go out as one `ParticipantUpdate` (a burst of joins
/// would otherwise send each member one message per joiner), the latest info of each
/// participant kept; returns it and the next notice of another kind, if one was taken.
fn coalesce(first: Notice, inbox: &mut tokio::sync::mpsc::Receiver<Notice>) -> (Notice, Option<Notice>) {
    let Notice::Participants(mut list) = first else {
        return (first, None);
    };
    for _ in 0..MAX_COALESCED {
        match inbox.try_recv() {
            Ok(Notice::Participants(more)) => {
                for p in more {
                    match list.iter_mut().find(|q| q.sid == p.sid) {
                        Some(q) => {
                            // A leave is final whatever the versions say.
                            if p.version >= q.version || p.state == DISCONNECTED {
                                *q = p;
                            }
                        }
                        None => list.push(p),
                    }
                }
            }
            Ok(other) => return (Notice::Participants(list), Some(other)),
            Err(_) => break,
        }
    }
    (Notice::Participants(list), None)
}

/// Handles one notice from the room; false ends the session.
async fn notice(
    shared: &Arc<Shared>,
    ws: &mut WebSocket,
    me: &mut Me,
    conn: &mut Conns,
    n: Notice,
) -> bool {
    match n {
        Notice::Participants(list) => {
            for p in &list {
                if p.sid == me.info.sid {
                    if p.version >= me.info.version {
                        me.info = p.clone();
                    }
                    continue;
                }
                reconcile(shared, me, conn, p);
                if p.state == proto::participant_info::State::Disconnected as i32 {
                    me.others.remove(&p.sid);
                } else {
                    me.others.insert(p.sid.clone(), p.clone());
                }
            }
            send(
                ws,
                Resp::Update(proto::ParticipantUpdate { participants: list }),
            )
            .await
        }
        Notice::Data { bytes, reliable } => {
            if let Some(s) = conn.sub.as_mut() {
                s.data(&bytes, reliable);
            }
            true
        }
        Notice::KeyframeWanted => {
            if let Some(p) = conn.publ.as_mut() {
                p.want_keyframe();
            }
            true
        }
        Notice::Mute { track_sid, muted } => {
            set_muted(shared, me, conn, &track_sid, muted);
            send(
                ws,
                Resp::Mute(proto::MuteTrackRequest {
                    sid: track_sid,
                    muted,
                }),
            )
            .await
        }
        Notice::Subscribe {
            track_sids,
            subscribe,
        } => {
            subscription(shared, me, conn, track_sids, subscribe);
            true
        }
        Notice::Room(room) => {
            send(
                ws,
                Resp::RoomUpdate(proto::RoomUpdate { room: Some(room) }),
            )
            .await
        }
        Notice::Speakers(speakers) => {
            send(
                ws,
                Resp::SpeakersChanged(proto::SpeakersChanged { speakers }),
            )
            .await
        }
        Notice::Leave(reason) => {
            let _ = send(
                ws,
                Resp::Leave(proto::LeaveRequest {
                    reason: reason as i32,
                    ..Default::default()
                }),
            )
            .await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sid: &str, version: u32) -> proto::ParticipantInfo {
        proto::ParticipantInfo {
            sid: sid.into(),
            version,
            ..Default::default()
        }
    }

    #[test]
    fn participant_updates_are_merged_latest_first() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        tx.try_send(Notice::Participants(vec![info("PA_b", 1)])).unwrap();
        tx.try_send(Notice::Participants(vec![info("PA_a", 3)])).unwrap();
        tx.try_send(Notice::KeyframeWanted).unwrap();
        tx.try_send(Notice::Participants(vec![info("PA_c", 1)])).unwrap();
        let (n, then) = coalesce(Notice::Participants(vec![info("PA_a", 2)]), &mut rx);
        let Notice::Participants(list) = n else {
            panic!("not participants")
        };
        let got: Vec<_> = list.iter().map(|p| (p.sid.as_str(), p.version)).collect();
        assert_eq!(got, [("PA_a", 3), ("PA_b", 1)]);
        assert!(matches!(then, Some(Notice::KeyframeWanted)));
        // What followed the other notice stays queued, in order.
        assert!(matches!(rx.try_recv(), Ok(Notice::Participants(l)) if l[0].sid == "PA_c"));
    }
}
