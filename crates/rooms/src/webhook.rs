//! Webhooks in LiveKit's form, so receivers written with LiveKit's server SDKs
//! (`WebhookReceiver.receive(body, authHeader)`) take Sluice's events unchanged.
//!
//! LiveKit posts each event as protobuf-JSON (camelCase names, defaults left out, 64-bit
//! integers as strings) under `Content-Type: application/webhook+json`, with an
//! `Authorization` header holding a bare JWT (no `Bearer `) signed by an API key: its `iss`
//! is the key and its `sha256` claim the base64 (standard, padded) SHA-256 of the body. The
//! Node receiver verifies the JWT (signature, `iss`, `exp` required, `nbf`), compares the hash
//! with the body it got, then parses the body with unknown fields ignored.
//!
//! Sending (the HTTP client, retries) is the server's; this module only makes the bytes.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::RoomsError;
use crate::proto;
use crate::token::{Claims, mint};

/// `Content-Type` of a webhook request.
pub const CONTENT_TYPE: &str = "application/webhook+json";
/// Life (seconds) of the token signing one body, as LiveKit's: enough for retries of a
/// delivery, short enough that a captured request cannot be replayed for long.
pub const TOKEN_TTL_S: u64 = 300;

/// `room_started`: a room opened.
pub const ROOM_STARTED: &str = "room_started";
/// `room_finished`: a room closed.
pub const ROOM_FINISHED: &str = "room_finished";
/// `participant_joined`: a participant connected.
pub const PARTICIPANT_JOINED: &str = "participant_joined";
/// `participant_left`: a participant left or was removed.
pub const PARTICIPANT_LEFT: &str = "participant_left";
/// `track_published`: a participant published a track.
pub const TRACK_PUBLISHED: &str = "track_published";
/// `track_unpublished`: a participant unpublished a track (or left).
pub const TRACK_UNPUBLISHED: &str = "track_unpublished";

/// The body of a webhook request: `event` as protobuf-JSON.
///
/// An enum field holding a value the protocol does not define (which only a client's input,
/// e.g. an `AddTrackRequest`'s source, can put in a `TrackInfo`) cannot be written as JSON;
/// the track, then the participant, is then left out of the body rather than the event lost.
pub fn event_body(event: &proto::WebhookEvent) -> Vec<u8> {
    if let Ok(body) = serde_json::to_vec(event) {
        return body;
    }
    let mut e = event.clone();
    e.track = None;
    if let Ok(body) = serde_json::to_vec(&e) {
        return body;
    }
    e.participant = None;
    if let Ok(body) = serde_json::to_vec(&e) {
        return body;
    }
    let bare = proto::WebhookEvent {
        event: e.event,
        id: e.id,
        created_at: e.created_at,
        ..Default::default()
    };
    serde_json::to_vec(&bare).expect("an event of strings and an integer serialises")
}

/// The `Authorization` header value for `body`: a JWT signed with `secret`, issued by
/// `api_key`, valid [`TOKEN_TTL_S`] from `now_s`, whose `sha256` claim is the body's hash.
pub fn authorization(
    body: &[u8],
    api_key: &str,
    secret: &str,
    now_s: u64,
) -> Result<String, RoomsError> {
    let claims = Claims {
        iss: api_key.to_owned(),
        exp: now_s.saturating_add(TOKEN_TTL_S),
        nbf: Some(now_s),
        sha256: Some(body_sha256(body)),
        ..Claims::default()
    };
    mint(&claims, secret)
}

/// The base64 (standard alphabet, padded) SHA-256 of `body`: the `sha256` claim.
pub fn body_sha256(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
}

fn event(
    name: &str,
    id: &str,
    created_at: i64,
    room: &proto::Room,
    participant: Option<&proto::ParticipantInfo>,
    track: Option<&proto::TrackInfo>,
) -> proto::WebhookEvent {
    proto::WebhookEvent {
        event: name.to_owned(),
        room: Some(room.clone()),
        participant: participant.cloned(),
        track: track.cloned(),
        id: id.to_owned(),
        created_at,
        ..Default::default()
    }
}

/// `room_started` for `room`; `id` is the event's unique id, `created_at` seconds since the
/// epoch.
pub fn room_started(id: &str, created_at: i64, room: &proto::Room) -> proto::WebhookEvent {
    event(ROOM_STARTED, id, created_at, room, None, None)
}

/// `room_finished` for `room`.
pub fn room_finished(id: &str, created_at: i64, room: &proto::Room) -> proto::WebhookEvent {
    event(ROOM_FINISHED, id, created_at, room, None, None)
}

/// `participant_joined`: `participant` joined `room`.
pub fn participant_joined(
    id: &str,
    created_at: i64,
    room: &proto::Room,
    participant: &proto::ParticipantInfo,
) -> proto::WebhookEvent {
    event(
        PARTICIPANT_JOINED,
        id,
        created_at,
        room,
        Some(participant),
        None,
    )
}

/// `participant_left`: `participant` left `room`.
pub fn participant_left(
    id: &str,
    created_at: i64,
    room: &proto::Room,
    participant: &proto::ParticipantInfo,
) -> proto::WebhookEvent {
    event(
        PARTICIPANT_LEFT,
        id,
        created_at,
        room,
        Some(participant),
        None,
    )
}

/// `track_published`: `participant` published `track` in `room`.
pub fn track_published(
    id: &str,
    created_at: i64,
    room: &proto::Room,
    participant: &proto::ParticipantInfo,
    track: &proto::TrackInfo,
) -> proto::WebhookEvent {
    event(
        TRACK_PUBLISHED,
        id,
        created_at,
        room,
        Some(participant),
        Some(track),
    )
}

/// `track_unpublished`: `participant` unpublished `track` in `room`.
pub fn track_unpublished(
    id: &str,
    created_at: i64,
    room: &proto::Room,
    participant: &proto::ParticipantInfo,
    track: &proto::TrackInfo,
) -> proto::WebhookEvent {
    event(
        TRACK_UNPUBLISHED,
        id,
        created_at,
        room,
        Some(participant),
        Some(track),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::token::RoomKeys;

    fn room() -> proto::Room {
        proto::Room {
            sid: "RM_abcdefghijkl".into(),
            name: "demo".into(),
            creation_time: 1_765_000_000,
            ..Default::default()
        }
    }

    fn alice() -> proto::ParticipantInfo {
        proto::ParticipantInfo {
            sid: "PA_abcdefghijkl".into(),
            identity: "alice".into(),
            state: proto::participant_info::State::Active as i32,
            joined_at: 1_765_000_001,
            ..Default::default()
        }
    }

    fn camera() -> proto::TrackInfo {
        proto::TrackInfo {
            sid: "TR_abcdefghijkl".into(),
            r#type: proto::TrackType::Video as i32,
            source: proto::TrackSource::Camera as i32,
            width: 1280,
            height: 720,
            ..Default::default()
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn events_are_protobuf_json_as_livekit_sends_them() {
        let e = track_published("EV_1", 1_765_000_002, &room(), &alice(), &camera());
        let v: serde_json::Value = serde_json::from_slice(&event_body(&e)).unwrap();
        assert_eq!(v["event"], "track_published");
        assert_eq!(v["id"], "EV_1");
        // int64 as a string, camelCase names, enums by name.
        assert_eq!(v["createdAt"], "1765000002");
        assert_eq!(v["room"]["creationTime"], "1765000000");
        assert_eq!(v["participant"]["joinedAt"], "1765000001");
        assert_eq!(v["participant"]["state"], "ACTIVE");
        assert_eq!(v["track"]["type"], "VIDEO");
        assert_eq!(v["track"]["source"], "CAMERA");
        // And it reads back as the same event.
        let back: proto::WebhookEvent = serde_json::from_slice(&event_body(&e)).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn each_helper_names_its_event_and_carries_its_parts() {
        let (r, p, t) = (room(), alice(), camera());
        let cases = [
            (room_started("1", 5, &r), ROOM_STARTED, false, false),
            (room_finished("1", 5, &r), ROOM_FINISHED, false, false),
            (
                participant_joined("1", 5, &r, &p),
                PARTICIPANT_JOINED,
                true,
                false,
            ),
            (
                participant_left("1", 5, &r, &p),
                PARTICIPANT_LEFT,
                true,
                false,
            ),
            (
                track_published("1", 5, &r, &p, &t),
                TRACK_PUBLISHED,
                true,
                true,
            ),
            (
                track_unpublished("1", 5, &r, &p, &t),
                TRACK_UNPUBLISHED,
                true,
                true,
            ),
        ];
        for (e, name, has_p, has_t) in cases {
            assert_eq!(e.event, name);
            assert_eq!((e.id.as_str(), e.created_at), ("1", 5));
            assert_eq!(e.room.as_ref(), Some(&r));
            assert_eq!(e.participant.is_some(), has_p, "{name}");
            assert_eq!(e.track.is_some(), has_t, "{name}");
        }
    }

    #[test]
    fn an_undefined_enum_drops_the_part_not_the_event() {
        let mut t = camera();
        t.source = 99;
        let e = track_published("EV_2", 7, &room(), &alice(), &t);
        let v: serde_json::Value = serde_json::from_slice(&event_body(&e)).unwrap();
        assert_eq!(v["event"], "track_published");
        assert!(v.get("track").is_none());
        assert_eq!(v["participant"]["identity"], "alice");
    }

    #[test]
    fn authorization_signs_the_body_hash() {
        let body = event_body(&room_started("EV_3", 9, &room()));
        let now = now();
        let jwt = authorization(&body, "devkey", "secret", now).unwrap();
        assert!(!jwt.starts_with("Bearer"));
        let keys = RoomKeys::new(&BTreeMap::from([("devkey".into(), "secret".into())]));
        let c = keys.verify(&jwt).unwrap();
        assert_eq!(c.iss, "devkey");
        assert_eq!((c.exp, c.nbf), (now + TOKEN_TTL_S, Some(now)));
        // The SHA-256 of the body, base64 (standard, padded), as the receivers compute it.
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        assert_eq!(c.sha256.as_deref(), Some(expected.as_str()));
        assert_eq!(expected.len(), 44);
        assert!(expected.ends_with('='));
        // A known vector: SHA-256 of "abc".
        assert_eq!(
            body_sha256(b"abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    /// Writes a signed webhook for the manual check with livekit-server-sdk
    /// (`fixtures/check-webhook.cjs`):
    /// `SLUICE_WRITE_WEBHOOK=/tmp/wh cargo test -p rooms write_webhook_sample`.
    #[test]
    fn write_webhook_sample() {
        let Some(dir) = std::env::var_os("SLUICE_WRITE_WEBHOOK") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let e = track_published("EV_sample", now() as i64, &room(), &alice(), &camera());
        let body = event_body(&e);
        let auth = authorization(&body, "devkey", "secret", now()).unwrap();
        std::fs::write(dir.join("body.json"), &body).unwrap();
        std::fs::write(dir.join("authorization"), auth).unwrap();
    }
}
