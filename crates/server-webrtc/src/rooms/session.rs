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
use rooms::RoomsError;
use rooms::proto::{self, signal_response::Message as Resp};
use rooms::token::Claims;
use str0m::Input;

use super::notices::{coalesce, notice};
use super::publisher::{PubPc, PubTrack};
use super::requests::{relay_data, request};
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
    super::any_origin(match shared.rooms.check_token(token(&q, &headers)) {
        Ok(_) => (StatusCode::OK, "success").into_response(),
        Err(e) => refusal(&e),
    })
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
pub(super) async fn send(ws: &mut WebSocket, m: Resp) -> bool {
    let bytes = rooms::signal::encode_response(&proto::SignalResponse { message: Some(m) });
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::Binary(bytes.into()))).await,
        Ok(Ok(()))
    )
}

/// The participant's state besides its connections.
pub(super) struct Me {
    pub(super) room: String,
    pub(super) info: proto::ParticipantInfo,
    pub(super) claims: Claims,
    pub(super) auto_subscribe: bool,
    /// Tracks asked for explicitly (UpdateSubscription), when not auto-subscribing.
    pub(super) wanted: HashSet<String>,
    /// Tracks asked to be left out (UpdateSubscription with subscribe=false).
    pub(super) unwanted: HashSet<String>,
    /// Other participants as last told: sid -> info.
    pub(super) others: HashMap<String, proto::ParticipantInfo>,
    pub(super) last_ping: Instant,
    /// Tracks announced (AddTrack) before the publisher connection existed.
    pub(super) pending: Vec<PubTrack>,
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
        serve(
            &shared, &wr, &mut ws, &mut me, &mut conn, &mut inbox, &kick, remote,
        )
        .await;
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
pub(super) struct Conns {
    pub(super) publ: Option<PubPc>,
    pub(super) sub: Option<SubPc>,
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

pub(super) fn sd(kind: &str, sdp: String) -> proto::SessionDescription {
    proto::SessionDescription {
        r#type: kind.to_owned(),
        sdp,
        ..Default::default()
    }
}

/// Subscribes to what participant `p` publishes (auto-subscribe, or asked for) and drops
/// what it no longer publishes.
pub(super) fn reconcile(shared: &Shared, me: &Me, conn: &mut Conns, p: &proto::ParticipantInfo) {
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
        .filter(|sid| {
            me.others
                .get(&p.sid)
                .is_some_and(|o| o.tracks.iter().any(|t| &t.sid == *sid))
        })
        .filter(|sid| !have.contains(sid) || gone)
        .cloned()
        .collect();
    for sid in stale {
        sub.unsubscribe(&sid);
    }
}

/// The hub stream key of a track of `identity` from `source`.
pub(super) fn track_stream(
    shared: &Shared,
    room: &str,
    identity: &str,
    source: i32,
) -> Option<String> {
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

/// How often a participant gets a fresh token (RefreshToken).
pub const TOKEN_REFRESH: Duration = Duration::from_secs(5 * 60);
/// Validity of a refreshed token: two refresh periods, so the one a client holds is always
/// valid to reconnect with.
pub const REFRESHED_TOKEN_TTL_S: u64 = 10 * 60;

/// The participant's token re-signed with its key, same grants, valid
/// [`REFRESHED_TOKEN_TTL_S`] from now (never past what the room's keys allow: a key
/// removed from `[rooms.keys]` gives none).
fn refreshed_token(shared: &Shared, me: &Me) -> Option<String> {
    let secret = shared.ctl.config.rooms.keys.get(&me.claims.iss)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let claims = Claims {
        exp: now + REFRESHED_TOKEN_TTL_S,
        nbf: Some(now.saturating_sub(1)),
        name: me.info.name.clone(),
        metadata: me.info.metadata.clone(),
        ..me.claims.clone()
    };
    rooms::token::mint(&claims, secret).ok()
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
    // A fresh token at join and then every TOKEN_REFRESH, which the client reconnects with.
    let mut next_refresh = Instant::now();
    let mut data = Vec::new();
    loop {
        let mut wake = (me.last_ping + ping_timeout)
            .min(next_ws_ping)
            .min(next_refresh);
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
        // The API's kick of one of the participant's publish sessions ends it too.
        let session_kick = conn
            .sub
            .as_ref()
            .map(|s| s.slot.kick.clone())
            .unwrap_or_default();
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
                () = session_kick.cancelled() => Wake::Kicked,
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
                let _ = send(
                    ws,
                    Resp::Leave(proto::LeaveRequest {
                        reason: proto::DisconnectReason::ParticipantRemoved as i32,
                        ..Default::default()
                    }),
                )
                .await;
                return;
            }
            Wake::Shutdown => {
                let _ = send(
                    ws,
                    Resp::Leave(proto::LeaveRequest {
                        reason: proto::DisconnectReason::ServerShutdown as i32,
                        ..Default::default()
                    }),
                )
                .await;
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
                        let Ok((key, f)) = s.frames.try_recv() else {
                            break;
                        };
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
                if now >= next_refresh {
                    next_refresh = now + TOKEN_REFRESH;
                    if let Some(t) = refreshed_token(shared, me)
                        && !send(ws, Resp::RefreshToken(t)).await
                    {
                        return;
                    }
                }
                if now >= next_ws_ping {
                    next_ws_ping = now + ping_interval;
                    if tokio::time::timeout(
                        SEND_TIMEOUT,
                        ws.send(Message::Ping(Default::default())),
                    )
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
