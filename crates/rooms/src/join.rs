//! `POST /api/join`: Sluice hands a browser a LiveKit token for a room, so a page can join
//! without a token server of its own. The route (in the server) decides who may call it;
//! this is its body: check the names, mint the token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::RoomsError;
use crate::names;
use crate::token::{Claims, VideoGrant, mint};

/// Longest display name (bytes) put in a token; it is shown to every other participant.
pub const MAX_DISPLAY_NAME_BYTES: usize = 256;
/// Longest token life (seconds) `join_token` mints: a day. The token is needed only to
/// connect and to reconnect, so a long one only widens what a leaked one allows.
pub const MAX_TTL_S: u64 = 24 * 3600;

/// The body of `POST /api/join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The room to join (opened on first join).
    pub room: String,
    /// The participant's identity, unique in the room (a second join with it replaces the
    /// first, as in LiveKit).
    pub identity: String,
    /// Display name (absent: none; clients show the identity).
    #[serde(default)]
    pub name: Option<String>,
}

/// The reply of `POST /api/join`, as LiveKit's token servers answer
/// (`serverUrl`, `participantToken`: what `livekit-client`'s `TokenSource` reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinReply {
    /// The `ws(s)://` URL to give `Room.connect`.
    pub server_url: String,
    /// The token to give `Room.connect`.
    pub participant_token: String,
}

/// Mints a join token for `identity` in `room`, signed with the first key of `[rooms.keys]`
/// (in key order), valid `ttl_s` seconds (at most [`MAX_TTL_S`]) from `now_s`: it may join,
/// publish, subscribe and send data in that room only.
pub fn join_token(
    keys: &BTreeMap<String, String>,
    room: &str,
    identity: &str,
    name: Option<&str>,
    ttl_s: u64,
    now_s: u64,
) -> Result<String, RoomsError> {
    names::check("room", room)?;
    names::check("identity", identity)?;
    let name = name.unwrap_or_default();
    if name.len() > MAX_DISPLAY_NAME_BYTES {
        return Err(RoomsError::BadRequest(format!(
            "name is longer than {MAX_DISPLAY_NAME_BYTES} bytes"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(RoomsError::BadRequest(
            "name has a control character".to_owned(),
        ));
    }
    if ttl_s == 0 || ttl_s > MAX_TTL_S {
        return Err(RoomsError::BadRequest(format!(
            "token life must be 1 to {MAX_TTL_S} seconds"
        )));
    }
    let (key, secret) = keys
        .iter()
        .next()
        .ok_or_else(|| RoomsError::Denied("no key in [rooms.keys]".to_owned()))?;
    let claims = Claims {
        iss: key.clone(),
        sub: identity.to_owned(),
        exp: now_s.saturating_add(ttl_s),
        nbf: Some(now_s),
        name: name.to_owned(),
        video: VideoGrant {
            room_join: true,
            room: room.to_owned(),
            can_publish: Some(true),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            ..VideoGrant::default()
        },
        ..Claims::default()
    };
    mint(&claims, secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::RoomKeys;

    fn keys() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("b-key".to_owned(), "second".to_owned()),
            ("a-key".to_owned(), "first".to_owned()),
        ])
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn token_joins_one_room_with_the_first_key() {
        let now = now();
        let t = join_token(&keys(), "demo", "alice", Some("Alice"), 600, now).unwrap();
        let c = RoomKeys::new(&keys()).verify(&t).unwrap();
        assert_eq!(c.iss, "a-key");
        assert_eq!((c.sub.as_str(), c.name.as_str()), ("alice", "Alice"));
        assert_eq!((c.exp, c.nbf), (now + 600, Some(now)));
        let v = &c.video;
        assert!(v.room_join && v.publish() && v.subscribe() && v.publish_data());
        assert!(!v.room_admin && !v.room_create && !v.room_list);
        assert_eq!(v.room, "demo");
        // Signed with the first key's secret only.
        let only_b = BTreeMap::from([("a-key".to_owned(), "second".to_owned())]);
        assert!(RoomKeys::new(&only_b).verify(&t).is_err());
    }

    #[test]
    fn names_and_limits_are_checked() {
        let k = keys();
        let ok = |room: &str, id: &str, name: Option<&str>, ttl| {
            join_token(&k, room, id, name, ttl, 1_700_000_000)
        };
        assert!(ok("demo", "alice", None, 60).is_ok());
        for (room, id, name, ttl) in [
            ("", "alice", None, 60),
            ("demo", "", None, 60),
            ("de\nmo", "alice", None, 60),
            ("demo", "al\u{0}ice", None, 60),
            ("demo", "a~b", None, 60),
            ("a/b", "alice", None, 60),
            ("demo", "alice", Some("x\r\ny"), 60),
            ("demo", "alice", None, 0),
            ("demo", "alice", None, MAX_TTL_S + 1),
        ] {
            assert!(
                matches!(ok(room, id, name, ttl), Err(RoomsError::BadRequest(_))),
                "{room:?} {id:?} {name:?} {ttl}"
            );
        }
        let long = "x".repeat(names::MAX_NAME_BYTES + 1);
        assert!(ok(&long, "alice", None, 60).is_err());
        assert!(ok("demo", &long, None, 60).is_err());
        let long_name = "n".repeat(MAX_DISPLAY_NAME_BYTES + 1);
        assert!(ok("demo", "alice", Some(&long_name), 60).is_err());
        assert_eq!(
            join_token(&BTreeMap::new(), "demo", "alice", None, 60, 0),
            Err(RoomsError::Denied("no key in [rooms.keys]".to_owned()))
        );
    }

    #[test]
    fn request_and_reply_json() {
        let req: JoinRequest =
            serde_json::from_str(r#"{"room":"demo","identity":"alice"}"#).unwrap();
        assert_eq!(req.name, None);
        assert!(
            serde_json::from_str::<JoinRequest>(r#"{"room":"d","identity":"a","x":1}"#).is_err()
        );
        let reply = JoinReply {
            server_url: "wss://sluice.example".into(),
            participant_token: "t".into(),
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"serverUrl":"wss://sluice.example","participantToken":"t"}"#
        );
    }
}
