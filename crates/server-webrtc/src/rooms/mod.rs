//! Rooms: a WebRTC SFU that speaks LiveKit's client signalling protocol, so LiveKit's own
//! SDKs join unmodified (`ws://HOST:8080` is the URL they are given).
//!
//! - [`routes`]: `GET /rtc` (the WebSocket), `GET /rtc/validate` (why a join would fail, which
//!   clients ask after a failed upgrade), and 404 on `/rtc/v1` and `/rtc/v1/validate`: the
//!   single-connection path is not served yet, and that 404 is what makes clients fall back
//!   to the two-connection path (a publisher and a subscriber connection).
//! - [`Rooms`]: the registry of rooms and their participants, under one lock taken only for
//!   signalling (joins, leaves, track changes), never per packet. Each participant's task
//!   gets [`Notice`]s through a bounded queue; a participant whose queue is full is
//!   disconnected, so one stalled client never slows a room.
//! - [`session`]: one task per participant owns its WebSocket and both of its `Rtc`s;
//!   [`requests`] handles what its client asks, [`notices`] what the room tells it.
//! - [`publisher`]: what a participant publishes goes into the hub (one stream per
//!   participant for camera and microphone, one for the screen share: `rooms::names`), so
//!   every room track also plays over WHEP, HLS, HTTP-FLV, RTMP and SRT.
//! - [`subscriber`]: each participant's subscriptions are hub subscriptions written to its
//!   subscriber connection.

pub(crate) mod directory;
pub(crate) mod hooks;
pub(crate) mod http;
pub(crate) mod notices;
pub(crate) mod publisher;
pub(crate) mod requests;
pub(crate) mod session;
pub(crate) mod speakers;
pub(crate) mod subscriber;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rooms::proto;
use rooms::token::{Claims, RoomKeys};
use rooms::{RoomsError, ids};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Shared;

/// Notices queued for one participant; beyond it the participant is disconnected (it is not
/// reading its signalling).
pub const NOTICE_QUEUE: usize = 256;
/// How often a stream brought into a room is checked for having ended.
pub const STREAM_PARTICIPANT_POLL: std::time::Duration = std::time::Duration::from_millis(500);
/// Largest data packet relayed between participants (bytes), as LiveKit's reliable limit.
pub const MAX_DATA_PACKET: usize = 64 * 1024;

/// What a participant's task is told by the room.
#[derive(Debug, Clone)]
pub(crate) enum Notice {
    /// Participants changed (joined, published, muted, left): their latest info.
    Participants(Vec<proto::ParticipantInfo>),
    /// A data packet from another participant (encoded `DataPacket`), reliable or lossy.
    Data { bytes: Arc<Vec<u8>>, reliable: bool },
    /// A subscriber wants a keyframe of one of this participant's tracks.
    KeyframeWanted,
    /// The room's API muted one of this participant's tracks.
    Mute { track_sid: String, muted: bool },
    /// Leave the room (removed by the API, the room closed, or a duplicate identity).
    Leave(proto::DisconnectReason),
    /// The room API (un)subscribes this participant to tracks.
    Subscribe {
        track_sids: Vec<String>,
        subscribe: bool,
    },
    /// The room's info changed (metadata).
    Room(proto::Room),
    /// The active speakers changed: those listed (level 0 and inactive: stopped speaking).
    Speakers(Vec<proto::SpeakerInfo>),
}

/// One participant as the room knows it.
#[derive(Debug)]
struct Member {
    info: proto::ParticipantInfo,
    tx: mpsc::Sender<Notice>,
    kick: CancellationToken,
}

/// One room.
#[derive(Debug)]
struct Room {
    info: proto::Room,
    members: BTreeMap<String, Member>,
    /// Since when the room has had nobody in it (it closes `empty_timeout` later).
    empty_since: Option<std::time::Instant>,
    /// The speakers last announced: sid and level.
    speakers: Vec<(String, f32)>,
    /// Someone joined it once (an empty room then closes after `departure_timeout`).
    joined_once: bool,
    /// Hub streams of tracks that are not `{app}/{room}~{identity}`: those of streams brought
    /// in as participants (track sid -> stream key).
    streams: HashMap<String, String>,
}

/// The rooms of this server.
#[derive(Debug)]
pub(crate) struct Rooms {
    pub(crate) keys: RoomKeys,
    pub(crate) cfg: config::RoomsConfig,
    rooms: Mutex<HashMap<String, Room>>,
    /// LiveKit-form webhooks (`rooms.webhook_urls`).
    hooks: Option<hooks::Hooks>,
}

/// A participant admitted to a room: what its task needs.
#[derive(Debug)]
pub(crate) struct Joined {
    pub(crate) room: proto::Room,
    pub(crate) me: proto::ParticipantInfo,
    pub(crate) others: Vec<proto::ParticipantInfo>,
    pub(crate) inbox: mpsc::Receiver<Notice>,
    pub(crate) kick: CancellationToken,
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Rooms {
    pub(crate) fn new(cfg: &config::RoomsConfig, hooks: Option<hooks::Hooks>) -> Self {
        Self {
            keys: RoomKeys::new(&cfg.keys),
            cfg: cfg.clone(),
            rooms: Mutex::new(HashMap::new()),
            hooks,
        }
    }

    /// Opens room `name` in the locked map (room_started) unless open; `None` at
    /// `rooms.max_rooms`.
    fn open<'a>(
        &self,
        rooms: &'a mut HashMap<String, Room>,
        name: &str,
        f: impl FnOnce(&mut proto::Room),
    ) -> Option<&'a mut Room> {
        if !rooms.contains_key(name) {
            if rooms.len() >= self.cfg.max_rooms {
                return None;
            }
            let mut info = proto::Room {
                sid: ids::new_id(ids::ROOM),
                name: name.to_owned(),
                creation_time: now_s(),
                creation_time_ms: now_s().saturating_mul(1000),
                empty_timeout: u32::try_from(self.cfg.empty_timeout_s).unwrap_or(u32::MAX),
                departure_timeout: u32::try_from(self.cfg.departure_timeout_s).unwrap_or(u32::MAX),
                max_participants: u32::try_from(self.cfg.max_participants).unwrap_or(u32::MAX),
                ..Default::default()
            };
            f(&mut info);
            if let Some(h) = &self.hooks {
                h.room_started(&info);
            }
            tracing::info!(room = %name, sid = %info.sid, "room opened");
            rooms.insert(
                name.to_owned(),
                Room {
                    info,
                    members: BTreeMap::new(),
                    empty_since: Some(std::time::Instant::now()),
                    speakers: Vec::new(),
                    joined_once: false,
                    streams: HashMap::new(),
                },
            );
        }
        rooms.get_mut(name)
    }

    /// Closes rooms empty for longer than their timeout (`empty_timeout` for a room nobody
    /// joined yet, `departure_timeout` after the last participant left).
    pub(crate) fn reap(&self) {
        let mut rooms = self.lock();
        let now = std::time::Instant::now();
        let expired: Vec<String> = rooms
            .iter()
            .filter(|(_, r)| {
                let secs = if r.joined_once {
                    r.info.departure_timeout
                } else {
                    r.info.empty_timeout
                };
                r.members.is_empty()
                    && r.empty_since
                        .is_some_and(|t| now.duration_since(t).as_secs() >= u64::from(secs))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in expired {
            self.close_locked(&mut rooms, &name, proto::DisconnectReason::RoomClosed);
        }
    }

    /// Removes room `name` from the locked map, telling everyone in it to leave.
    fn close_locked(
        &self,
        rooms: &mut HashMap<String, Room>,
        name: &str,
        reason: proto::DisconnectReason,
    ) -> bool {
        let Some(r) = rooms.remove(name) else {
            return false;
        };
        for m in r.members.values() {
            let _ = m.tx.try_send(Notice::Leave(reason));
            m.kick.cancel();
        }
        if let Some(h) = &self.hooks {
            h.room_finished(&r.info);
        }
        tracing::info!(room = %name, "room closed");
        true
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks a join token: valid, with `roomJoin` for a named room and an identity.
    pub(crate) fn check_token(&self, token: &str) -> Result<Claims, RoomsError> {
        let claims = self.keys.verify(token)?;
        if !claims.video.room_join {
            return Err(RoomsError::Denied("the token has no roomJoin grant".into()));
        }
        if claims.video.room.is_empty() {
            return Err(RoomsError::Denied("the token names no room".into()));
        }
        if claims.sub.is_empty() {
            return Err(RoomsError::Denied("the token has no identity (sub)".into()));
        }
        rooms::names::check("room", &claims.video.room)?;
        rooms::names::check("identity", &claims.sub)?;
        Ok(claims)
    }

    /// Adds a participant to its token's room (opening the room if needed). A participant
    /// already there with the same identity is replaced (told to leave), as a client that
    /// reconnects from scratch expects.
    pub(crate) fn join(&self, claims: &Claims, protocol: i32) -> Result<Joined, RoomsError> {
        let name = claims.video.room.clone();
        let mut rooms = self.lock();
        let Some(room) = self.open(&mut rooms, &name, |_| {}) else {
            return Err(RoomsError::Limit("rooms.max_rooms".into()));
        };
        room.empty_since = None;
        room.joined_once = true;
        let dup: Vec<String> = room
            .members
            .iter()
            .filter(|(_, m)| m.info.identity == claims.sub)
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in &dup {
            if let Some(m) = room.members.remove(sid) {
                let _ =
                    m.tx.try_send(Notice::Leave(proto::DisconnectReason::DuplicateIdentity));
                m.kick.cancel();
            }
        }
        let cap = match room.info.max_participants {
            0 => self.cfg.max_participants,
            n => (n as usize).min(self.cfg.max_participants),
        };
        if room.members.len() >= cap {
            return Err(RoomsError::Limit("rooms.max_participants".into()));
        }
        let v = &claims.video;
        let sources = v
            .can_publish_sources
            .iter()
            .filter_map(|s| source_from_grant(s))
            .map(|s| s as i32)
            .collect();
        let me = proto::ParticipantInfo {
            sid: ids::new_id(ids::PARTICIPANT),
            identity: claims.sub.clone(),
            name: claims.name.clone(),
            metadata: claims.metadata.clone(),
            attributes: claims.attributes.clone().into_iter().collect(),
            state: proto::participant_info::State::Joined as i32,
            joined_at: now_s(),
            joined_at_ms: now_s().saturating_mul(1000),
            version: 1,
            is_publisher: false,
            permission: Some(proto::ParticipantPermission {
                can_subscribe: v.subscribe(),
                can_publish: v.publish(),
                can_publish_data: v.publish_data(),
                can_publish_sources: sources,
                hidden: v.hidden,
                can_update_metadata: v.can_update_own_metadata.unwrap_or(false),
                ..Default::default()
            }),
            kind: proto::participant_info::Kind::Standard as i32,
            ..Default::default()
        };
        let _ = protocol;
        let (tx, inbox) = mpsc::channel(NOTICE_QUEUE);
        let kick = CancellationToken::new();
        let others: Vec<_> = room
            .members
            .values()
            .filter(|m| !is_hidden(&m.info))
            .map(|m| m.info.clone())
            .collect();
        room.members.insert(
            me.sid.clone(),
            Member {
                info: me.clone(),
                tx,
                kick: kick.clone(),
            },
        );
        room.info.num_participants = u32::try_from(room.members.len()).unwrap_or(u32::MAX);
        let info = room.info.clone();
        if !is_hidden(&me) {
            broadcast(room, &me.sid, Notice::Participants(vec![me.clone()]));
        }
        if let Some(h) = &self.hooks {
            h.participant_joined(&room.info, &me);
        }
        tracing::info!(room = %name, identity = %me.identity, sid = %me.sid, "room participant joined");
        Ok(Joined {
            room: info,
            me,
            others,
            inbox,
            kick,
        })
    }

    /// Changes participant `sid`'s info with `f` (its version bumped) and tells everyone
    /// (itself included: the client applies its own updates too).
    pub(crate) fn update(
        &self,
        room: &str,
        sid: &str,
        f: impl FnOnce(&mut proto::ParticipantInfo),
    ) -> Option<proto::ParticipantInfo> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room)?;
        let m = r.members.get_mut(sid)?;
        let before = m.info.tracks.clone();
        f(&mut m.info);
        m.info.version += 1;
        let info = m.info.clone();
        if let Some(h) = &self.hooks {
            for t in info
                .tracks
                .iter()
                .filter(|t| !before.iter().any(|b| b.sid == t.sid))
            {
                h.track_published(&r.info, &info, t);
            }
            for t in before
                .iter()
                .filter(|b| !info.tracks.iter().any(|t| t.sid == b.sid))
            {
                h.track_unpublished(&r.info, &info, t);
            }
        }
        r.info.num_publishers = u32::try_from(
            r.members
                .values()
                .filter(|m| !m.info.tracks.is_empty())
                .count(),
        )
        .unwrap_or(u32::MAX);
        if !is_hidden(&info) {
            broadcast(r, "", Notice::Participants(vec![info.clone()]));
        }
        Some(info)
    }

    /// Removes participant `sid`; tells the others it left. The room closes when empty.
    pub(crate) fn leave(&self, room: &str, sid: &str) {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else { return };
        let Some(mut m) = r.members.remove(sid) else {
            return;
        };
        m.info.state = proto::participant_info::State::Disconnected as i32;
        m.info.version += 1;
        r.info.num_participants = u32::try_from(r.members.len()).unwrap_or(u32::MAX);
        if !is_hidden(&m.info) {
            broadcast(r, sid, Notice::Participants(vec![m.info.clone()]));
        }
        r.speakers.retain(|(s, _)| s != sid);
        for t in &m.info.tracks {
            r.streams.remove(&t.sid);
        }
        r.info.num_publishers = u32::try_from(
            r.members
                .values()
                .filter(|m| !m.info.tracks.is_empty())
                .count(),
        )
        .unwrap_or(u32::MAX);
        if let Some(h) = &self.hooks {
            for t in &m.info.tracks {
                h.track_unpublished(&r.info, &m.info, t);
            }
            h.participant_left(&r.info, &m.info);
        }
        tracing::info!(room = %room, identity = %m.info.identity, "room participant left");
        if r.members.is_empty() {
            // Kept for `departure_timeout` (a participant reconnecting finds it), then
            // closed by [`Rooms::reap`].
            r.empty_since = Some(std::time::Instant::now());
        }
    }

    /// Relays a data packet to the room's other participants (all, or the identities
    /// listed).
    pub(crate) fn data(
        &self,
        room: &str,
        from: &str,
        to_identities: &[String],
        bytes: Vec<u8>,
        reliable: bool,
    ) {
        let rooms = self.lock();
        let Some(r) = rooms.get(room) else { return };
        let bytes = Arc::new(bytes);
        for (sid, m) in &r.members {
            if sid == from
                || (!to_identities.is_empty() && !to_identities.contains(&m.info.identity))
            {
                continue;
            }
            notify(
                m,
                Notice::Data {
                    bytes: Arc::clone(&bytes),
                    reliable,
                },
            );
        }
    }

    /// Participant `sid`'s speaking level now (0: silent); the room hears of a change.
    pub(crate) fn speaking(&self, room: &str, sid: &str, level: f32) {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else { return };
        let was = r.speakers.iter().position(|(s, _)| s == sid);
        let changed = match (was, level > 0.0) {
            (None, false) => return,
            (None, true) => {
                r.speakers.push((sid.to_owned(), level));
                true
            }
            (Some(i), false) => {
                r.speakers.remove(i);
                true
            }
            (Some(i), true) => {
                let moved = (r.speakers[i].1 - level).abs() >= speakers::LEVEL_STEP;
                if moved {
                    r.speakers[i].1 = level;
                }
                moved
            }
        };
        if changed {
            let info = proto::SpeakerInfo {
                sid: sid.to_owned(),
                level,
                active: level > 0.0,
            };
            broadcast(r, "", Notice::Speakers(vec![info]));
        }
    }

    /// Tells the participant publishing `track_sid` that a subscriber needs a keyframe.
    pub(crate) fn want_keyframe(&self, room: &str, publisher_sid: &str) {
        let rooms = self.lock();
        if let Some(m) = rooms.get(room).and_then(|r| r.members.get(publisher_sid)) {
            notify(m, Notice::KeyframeWanted);
        }
    }

    /// The hub stream of track `track_sid` when it is not the participant's own (a stream
    /// brought in as a participant).
    pub(crate) fn stream_of(&self, room: &str, track_sid: &str) -> Option<String> {
        self.lock().get(room)?.streams.get(track_sid).cloned()
    }

    /// Brings hub stream `key` (RTMP, WHIP, SRT, ...) into `room` as a participant
    /// `identity` of kind INGRESS: its video (as published) and audio (as Opus, transcoded
    /// once per stream by the hub when it is AAC) are tracks the others subscribe to. It
    /// leaves when the stream ends, when removed, or when the room closes.
    pub(crate) fn add_stream(
        self: &Arc<Self>,
        ctl: &Arc<control::Control>,
        room: &str,
        key: &str,
        identity: &str,
    ) -> Result<proto::ParticipantInfo, RoomsError> {
        rooms::names::check("room", room)?;
        rooms::names::check("identity", identity)?;
        let snap = ctl
            .hub
            .stream(key)
            .filter(|s| s.is_live)
            .ok_or_else(|| RoomsError::NotFound(format!("live stream {key:?}")))?;
        let mut tracks = Vec::new();
        if let Some(c) = snap.video_codec {
            tracks.push(proto::TrackInfo {
                sid: ids::new_id(ids::TRACK),
                r#type: proto::TrackType::Video as i32,
                name: "video".to_owned(),
                source: proto::TrackSource::Camera as i32,
                mime_type: video_mime(c).to_owned(),
                stream: key.to_owned(),
                ..Default::default()
            });
        }
        if snap.audio_codec.is_some() {
            tracks.push(proto::TrackInfo {
                sid: ids::new_id(ids::TRACK),
                r#type: proto::TrackType::Audio as i32,
                name: "audio".to_owned(),
                source: proto::TrackSource::Microphone as i32,
                mime_type: "audio/opus".to_owned(),
                stream: key.to_owned(),
                ..Default::default()
            });
        }
        let (tx, mut inbox) = mpsc::channel(NOTICE_QUEUE);
        let kick = CancellationToken::new();
        let info = proto::ParticipantInfo {
            sid: ids::new_id(ids::PARTICIPANT),
            identity: identity.to_owned(),
            name: key.to_owned(),
            state: proto::participant_info::State::Active as i32,
            joined_at: now_s(),
            joined_at_ms: now_s().saturating_mul(1000),
            version: 1,
            is_publisher: true,
            kind: proto::participant_info::Kind::Ingress as i32,
            tracks: tracks.clone(),
            permission: Some(proto::ParticipantPermission {
                can_publish: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        {
            let mut rooms = self.lock();
            let r = self
                .open(&mut rooms, room, |_| {})
                .ok_or_else(|| RoomsError::Limit("rooms.max_rooms".into()))?;
            if r.members.values().any(|m| m.info.identity == identity) {
                return Err(RoomsError::BadRequest(format!(
                    "identity {identity:?} is already in room {room:?}"
                )));
            }
            if r.members.len() >= self.cfg.max_participants {
                return Err(RoomsError::Limit("rooms.max_participants".into()));
            }
            r.empty_since = None;
            r.joined_once = true;
            for t in &tracks {
                r.streams.insert(t.sid.clone(), key.to_owned());
            }
            r.members.insert(
                info.sid.clone(),
                Member {
                    info: info.clone(),
                    tx,
                    kick: kick.clone(),
                },
            );
            r.info.num_participants = u32::try_from(r.members.len()).unwrap_or(u32::MAX);
            r.info.num_publishers += 1;
            broadcast(r, &info.sid, Notice::Participants(vec![info.clone()]));
            if let Some(h) = &self.hooks {
                h.participant_joined(&r.info, &info);
                for t in &tracks {
                    h.track_published(&r.info, &info, t);
                }
            }
        }
        tracing::info!(%room, %identity, stream = %key, "stream brought into room");
        // Its task: drains the notices (nothing to tell an RTMP encoder) and leaves when
        // the stream ends, it is removed, or the server stops.
        let rooms = Arc::clone(self);
        let (room, sid, key, hub) = (
            room.to_owned(),
            info.sid.clone(),
            key.to_owned(),
            Arc::clone(&ctl.hub),
        );
        let stop = ctl.shutdown.clone();
        ctl.tracker.spawn(async move {
            let mut tick = tokio::time::interval(STREAM_PARTICIPANT_POLL);
            loop {
                tokio::select! {
                    () = kick.cancelled() => break,
                    () = stop.cancelled() => break,
                    n = inbox.recv() => match n {
                        None | Some(Notice::Leave(_)) => break,
                        Some(_) => {}
                    },
                    _ = tick.tick() => {
                        if !hub.stream(&key).is_some_and(|s| s.is_live) {
                            break;
                        }
                    }
                }
            }
            rooms.leave(&room, &sid);
        });
        Ok(info)
    }

    /// Participants in rooms now (for the API and tests).
    pub(crate) fn participants(&self) -> usize {
        self.counts().1
    }

    /// Rooms open now and participants in them.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let rooms = self.lock();
        (rooms.len(), rooms.values().map(|r| r.members.len()).sum())
    }
}

/// The WebRTC MIME type of a hub video codec.
fn video_mime(c: media::Codec) -> &'static str {
    match c {
        media::Codec::H265 => "video/H265",
        media::Codec::Vp8 => "video/VP8",
        media::Codec::Vp9 => "video/VP9",
        media::Codec::Av1 => "video/AV1",
        _ => "video/H264",
    }
}

/// Queues `notice` for `m`; a participant whose queue is full is not reading: it is
/// disconnected rather than let the room wait. Data packets may fill only half the queue
/// and are dropped beyond it: one participant flooding data can neither cut the others off
/// nor crowd out their signalling.
fn notify(m: &Member, notice: Notice) {
    if matches!(notice, Notice::Data { .. }) {
        if m.tx.capacity() <= NOTICE_QUEUE / 2 || m.tx.try_send(notice).is_err() {
            tracing::debug!(identity = %m.info.identity, "room data packet dropped: queue half full");
        }
        return;
    }
    if m.tx.try_send(notice).is_err() && !m.kick.is_cancelled() {
        tracing::warn!(identity = %m.info.identity, "room participant not keeping up with signalling: disconnected");
        m.kick.cancel();
    }
}

/// Tells every member but `except` (a sid; empty for nobody).
fn broadcast(r: &Room, except: &str, notice: Notice) {
    for (sid, m) in &r.members {
        if sid != except {
            notify(m, notice.clone());
        }
    }
}

fn is_hidden(p: &proto::ParticipantInfo) -> bool {
    p.permission.as_ref().is_some_and(|p| p.hidden)
}

/// A `canPublishSources` entry as the track source it names.
fn source_from_grant(s: &str) -> Option<proto::TrackSource> {
    Some(match s {
        "camera" => proto::TrackSource::Camera,
        "microphone" => proto::TrackSource::Microphone,
        "screen_share" => proto::TrackSource::ScreenShare,
        "screen_share_audio" => proto::TrackSource::ScreenShareAudio,
        _ => return None,
    })
}

/// How often empty rooms are looked at (closed after their timeout).
pub const REAP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Starts the task that closes rooms empty past their timeout; it ends at shutdown.
pub(crate) fn spawn_reaper(shared: &Arc<Shared>) {
    let s = Arc::clone(shared);
    shared.ctl.tracker.spawn(async move {
        let mut tick = tokio::time::interval(REAP_INTERVAL);
        loop {
            tokio::select! {
                () = s.ctl.shutdown.cancelled() => break,
                _ = tick.tick() => s.rooms.reap(),
            }
        }
    });
}

/// The signalling routes.
pub(crate) fn routes(ctl: &Arc<control::Control>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/rtc", get(session::upgrade))
        .route("/rtc/validate", get(session::validate))
        .route("/rtc/v1", get(single_pc_not_served))
        .route("/rtc/v1/validate", get(single_pc_not_served))
        .route(
            "/twirp/livekit.RoomService/{method}",
            axum::routing::post(http::twirp_call).fallback(http::twirp_not_post),
        )
        .route("/api/join", axum::routing::post(http::join))
        .merge(http::api_routes(ctl))
}

/// 404 on the single-connection path: clients fall back to `/rtc` (two connections). The
/// browser SDK reads it with a cross-origin `fetch`, so it carries
/// `Access-Control-Allow-Origin` (without it the fetch fails and the client gives up
/// instead of falling back).
async fn single_pc_not_served() -> Response {
    any_origin(
        (
            StatusCode::NOT_FOUND,
            "the single peer connection path (/rtc/v1) is not served; use /rtc",
        )
            .into_response(),
    )
}

/// `r` readable by a page of any origin (what `/rtc/validate` answers is no secret: the
/// caller holds the token).
pub(crate) fn any_origin(mut r: Response) -> Response {
    r.headers_mut().insert(
        axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        axum::http::HeaderValue::from_static("*"),
    );
    r
}

#[cfg(test)]
mod tests;
