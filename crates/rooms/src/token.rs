//! LiveKit access tokens: HS256 JWTs whose `iss` is an API key of `[rooms.keys]` and whose
//! signature is made with that key's secret. `sub` is the participant's identity; the
//! `video` claim carries the grants (camelCase, as LiveKit's server SDKs write them).

use std::collections::BTreeMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::RoomsError;

/// Longest token accepted (bytes): bounds the work spent on a hostile one.
pub const MAX_TOKEN_LEN: usize = 8192;
/// Clock skew (seconds) tolerated on `exp` and `nbf`.
pub const LEEWAY_S: u64 = 10;

/// The `video` grant of a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VideoGrant {
    /// May create rooms (RoomService).
    pub room_create: bool,
    /// May list rooms (RoomService).
    pub room_list: bool,
    /// May administer `room` (RoomService on it).
    pub room_admin: bool,
    /// May join `room`.
    pub room_join: bool,
    /// The room these grants are for.
    pub room: String,
    /// May publish tracks (absent: yes).
    pub can_publish: Option<bool>,
    /// May subscribe (absent: yes).
    pub can_subscribe: Option<bool>,
    /// May send data messages (absent: yes).
    pub can_publish_data: Option<bool>,
    /// The sources it may publish (`camera`, `microphone`, `screen_share`,
    /// `screen_share_audio`); empty: any.
    pub can_publish_sources: Vec<String>,
    /// May update its own name, metadata and attributes.
    pub can_update_own_metadata: Option<bool>,
    /// Not shown to the other participants.
    pub hidden: bool,
}

impl VideoGrant {
    /// May publish.
    pub fn publish(&self) -> bool {
        self.can_publish.unwrap_or(true)
    }
    /// May subscribe.
    pub fn subscribe(&self) -> bool {
        self.can_subscribe.unwrap_or(true)
    }
    /// May send data.
    pub fn publish_data(&self) -> bool {
        self.can_publish_data.unwrap_or(true)
    }
}

/// A verified token's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Claims {
    /// The API key that signed it.
    pub iss: String,
    /// The participant's identity.
    pub sub: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Display name.
    pub name: String,
    /// Participant metadata.
    pub metadata: String,
    /// Participant attributes.
    pub attributes: BTreeMap<String, String>,
    /// The grants.
    pub video: VideoGrant,
    /// SHA-256 of a webhook body (base64), in webhook tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The API keys and secrets of `[rooms.keys]`.
#[derive(Default)]
pub struct RoomKeys {
    keys: BTreeMap<String, DecodingKey>,
}

impl std::fmt::Debug for RoomKeys {
    // Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomKeys")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RoomKeys {
    /// From `[rooms.keys]` (API key = secret).
    pub fn new(keys: &BTreeMap<String, String>) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|(k, s)| (k.clone(), DecodingKey::from_secret(s.as_bytes())))
                .collect(),
        }
    }

    /// True when no key is configured (no token can verify).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `token` (signature by its `iss` key, `exp`, `nbf`) and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, RoomsError> {
        let bad = |why: &str| RoomsError::Token(why.to_owned());
        if token.is_empty() {
            return Err(bad("missing"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(bad("too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed"))?;
        if header.alg != Algorithm::HS256 {
            return Err(bad("not HS256"));
        }
        let iss = unverified_issuer(token).ok_or_else(|| bad("no issuer (API key)"))?;
        let key = self.keys.get(&iss).ok_or_else(|| bad("unknown API key"))?;
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_S;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss"]);
        v.set_issuer(&[iss.as_str()]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => bad("expired"),
                ErrorKind::ImmatureSignature => bad("not valid yet"),
                ErrorKind::InvalidSignature => bad("bad signature"),
                _ => bad("malformed claims"),
            }
        })?;
        Ok(data.claims)
    }
}

/// The `iss` claim read before verifying (to pick the key); nothing else is trusted from it.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    serde_json::from_slice::<Iss>(&raw).ok()?.iss
}

/// Signs `claims` with `secret` (HS256): the tokens `POST /api/join` hands out.
pub fn mint(claims: &Claims, secret: &str) -> Result<String, RoomsError> {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| RoomsError::Token(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn keys() -> RoomKeys {
        RoomKeys::new(&BTreeMap::from([(
            "devkey".to_owned(),
            "secret".to_owned(),
        )]))
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: "devkey".into(),
            sub: "alice".into(),
            exp,
            video: VideoGrant {
                room_join: true,
                room: "demo".into(),
                ..VideoGrant::default()
            },
            ..Claims::default()
        }
    }

    #[test]
    fn minted_token_verifies_and_others_do_not() {
        let t = mint(&claims(now() + 60), "secret").unwrap();
        let c = keys().verify(&t).unwrap();
        assert_eq!(c.sub, "alice");
        assert!(c.video.room_join && c.video.publish());
        let wrong = mint(&claims(now() + 60), "other").unwrap();
        assert_eq!(
            keys().verify(&wrong),
            Err(RoomsError::Token("bad signature".into()))
        );
        let old = mint(&claims(now() - 3600), "secret").unwrap();
        assert_eq!(
            keys().verify(&old),
            Err(RoomsError::Token("expired".into()))
        );
        let mut c = claims(now() + 60);
        c.iss = "nokey".into();
        let t = mint(&c, "secret").unwrap();
        assert_eq!(
            keys().verify(&t),
            Err(RoomsError::Token("unknown API key".into()))
        );
        assert!(keys().verify("a.b.c").is_err());
        assert!(keys().verify(&"x".repeat(MAX_TOKEN_LEN + 1)).is_err());
    }
}
