//! A participant's signalling requests: offers and answers, trickle, AddTrack ->
//! TrackPublished, Mute, UpdateSubscription, UpdateTrackSettings, Leave, pings; and data
//! packets relayed to the room.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::WebSocket;
use rooms::ids;
use rooms::proto::{self, signal_request::Message as Req, signal_response::Message as Resp};

use super::publisher::{DataOut, MAX_TRACKS, PubPc, PubTrack};
use super::session::{Conns, Me, reconcile, sd, send, track_stream};
use crate::{Shared, WebRtc, peer};

/// Most explicit (un)subscriptions a participant's session keeps.
pub const MAX_SUBSCRIPTION_CHOICES: usize = 4096;
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

/// A data packet the client sent on its publisher connection, relayed to the room.
pub(super) fn relay_data(shared: &Shared, me: &Me, d: DataOut) {
    if !me.claims.video.publish_data() {
        return;
    }
    let Some((bytes, to)) = super::publisher::stamp_data(&d.bytes, &me.info) else {
        tracing::debug!(identity = %me.info.identity, "room data packet malformed: dropped");
        return;
    };
    let to = if d.to.is_empty() { to } else { d.to };
    shared
        .rooms
        .data(&me.room, &me.info.sid, &to, bytes, d.reliable);
}

/// Handles one signalling request; false ends the session.
pub(super) async fn request(
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
                            if let Some(updated) =
                                shared.rooms.update(&me.room, &me.info.sid, |p| {
                                    p.tracks.retain(|t| !sids.contains(&t.sid));
                                    p.is_publisher = !p.tracks.is_empty();
                                })
                            {
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
        Req::Ping(t) => {
            send(ws, Resp::Pong(t)).await && {
                me.last_ping = Instant::now();
                true
            }
        }
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
pub(super) fn subscription(
    shared: &Shared,
    me: &mut Me,
    conn: &mut Conns,
    sids: Vec<String>,
    subscribe: bool,
) {
    for sid in sids.into_iter().take(super::subscriber::MAX_SUBSCRIBED) {
        // The choices kept are bounded whatever a client sends (sids of tracks that never
        // existed included).
        if me.wanted.len() + me.unwanted.len() >= MAX_SUBSCRIPTION_CHOICES
            && !me.wanted.contains(&sid)
            && !me.unwanted.contains(&sid)
        {
            break;
        }
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

pub(super) fn kick_of(conn: &Conns) -> tokio_util::sync::CancellationToken {
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
                layers: if c.layers.is_empty() {
                    a.layers.clone()
                } else {
                    c.layers.clone()
                },
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
pub(super) fn attach_sinks(me: &mut Me, p: &mut PubPc) {
    p.tracks.append(&mut me.pending);
    let keys: Vec<String> = p.tracks.iter().map(|t| t.stream.clone()).collect();
    for key in keys {
        p.open_sink(&key);
    }
}

/// Mutes or unmutes one of my tracks; everyone hears of it.
pub(super) fn set_muted(shared: &Shared, me: &mut Me, conn: &mut Conns, sid: &str, muted: bool) {
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
