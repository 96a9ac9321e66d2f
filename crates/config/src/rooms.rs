//! `[rooms]`: real-time rooms (a WebRTC SFU speaking LiveKit's client protocol at `/rtc`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Most participants one room may be configured to hold.
pub const MAX_PARTICIPANTS_CEILING: usize = 10_000;

/// `[rooms]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Serve `/rtc` (LiveKit's signalling) and the room API. Without keys no token verifies,
    /// so rooms are reachable only once `keys` has an entry.
    pub enabled: bool,
    /// API key = secret, as LiveKit's `keys:`: tokens are HS256 JWTs whose `iss` is the API
    /// key and whose signature is made with its secret.
    /// `SLUICE_ROOMS_KEYS='{ devkey = "secret" }'` sets it from the environment.
    pub keys: BTreeMap<String, String>,
    /// The hub app room tracks are published under: a participant's camera and microphone
    /// are the stream `{app}/{room}~{identity}`, its screen share `{app}/{room}~{identity}~screen`,
    /// playable over every protocol.
    pub app: String,
    /// Most participants in one room; a join beyond it is refused.
    pub max_participants: usize,
    /// Most rooms at once; a join that would open one more is refused.
    pub max_rooms: usize,
    /// Seconds a room nobody has joined yet (opened by the API's CreateRoom) is kept before
    /// it closes (LiveKit's default: 5 minutes).
    pub empty_timeout_s: u64,
    /// Seconds a room is kept after its last participant left (one reconnecting finds it
    /// still open) before it closes (LiveKit's default: 20).
    pub departure_timeout_s: u64,
    /// Seconds between the client's pings (sent to clients in the join response).
    pub ping_interval_s: u32,
    /// Seconds without a ping after which a participant is dropped (and the client, by the
    /// same figure in the join response, reconnects).
    pub ping_timeout_s: u32,
    /// URLs that receive LiveKit-form webhooks (room_started, room_finished,
    /// participant_joined, participant_left, track_published, track_unpublished), as
    /// LiveKit's `webhook.urls`: `application/webhook+json`, signed for LiveKit's
    /// `WebhookReceiver`. Delivery (timeout, retries, queue) follows `[webhooks]`.
    pub webhook_urls: Vec<String>,
    /// The API key (of `keys`) the webhooks are signed with; empty: the first key.
    pub webhook_api_key: String,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            keys: BTreeMap::new(),
            app: "room".to_owned(),
            max_participants: 100,
            max_rooms: 1000,
            empty_timeout_s: 300,
            departure_timeout_s: 20,
            ping_interval_s: 5,
            ping_timeout_s: 15,
            webhook_urls: Vec::new(),
            webhook_api_key: String::new(),
        }
    }
}

impl RoomsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError(format!("rooms.{key}: {why}")));
        if !(1..=MAX_PARTICIPANTS_CEILING).contains(&self.max_participants) {
            return bad(
                "max_participants",
                format!("must be between 1 and {MAX_PARTICIPANTS_CEILING}"),
            );
        }
        if self.max_rooms == 0 {
            return bad("max_rooms", "must be at least 1".to_owned());
        }
        if self.app.is_empty() || self.app.contains(['/', '\\']) {
            return bad("app", "must be one non-empty path segment".to_owned());
        }
        if self.ping_interval_s == 0 || self.ping_timeout_s <= self.ping_interval_s {
            return bad(
                "ping_timeout_s",
                "must be above ping_interval_s, which must be at least 1".to_owned(),
            );
        }
        if !self.webhook_api_key.is_empty() && !self.keys.contains_key(&self.webhook_api_key) {
            return bad("webhook_api_key", "must be one of rooms.keys".to_owned());
        }
        if !self.webhook_urls.is_empty() && self.keys.is_empty() {
            return bad(
                "webhook_urls",
                "webhooks are signed with a key of rooms.keys: set one".to_owned(),
            );
        }
        for u in &self.webhook_urls {
            if let Err(why) = crate::webhooks::parse_url(u) {
                return bad("webhook_urls", why);
            }
        }
        for (k, s) in &self.keys {
            if k.is_empty() || s.is_empty() {
                return bad(
                    "keys",
                    "an API key and its secret must not be empty".to_owned(),
                );
            }
        }
        Ok(())
    }
}
