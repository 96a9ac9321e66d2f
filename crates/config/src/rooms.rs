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
    /// Seconds an empty room is kept (metadata, created by the API) before it closes.
    pub empty_timeout_s: u64,
    /// Seconds between the client's pings (sent to clients in the join response).
    pub ping_interval_s: u32,
    /// Seconds without a ping after which a participant is dropped (and the client, by the
    /// same figure in the join response, reconnects).
    pub ping_timeout_s: u32,
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
            ping_interval_s: 5,
            ping_timeout_s: 15,
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
        for (k, s) in &self.keys {
            if k.is_empty() || s.is_empty() {
                return bad("keys", "an API key and its secret must not be empty".to_owned());
            }
        }
        Ok(())
    }
}
