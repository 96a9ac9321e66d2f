//! Access control as pure decisions: who may publish and play which stream.
//!
//! The crate's rule: no IO on the request path, no async, no clocks (the time is passed in).
//! It parses what clients send (stream names, query credentials, JWTs, signed URLs) and
//! decides with the compiled `[auth]` rules; the one decision it cannot make alone (asking
//! `auth.webhook_url`) it hands back as [`Decision::AskWebhook`] for the control plane to
//! make. Every parser here has a fuzz target.
//!
//! The first `[[auth.rules]]` whose pattern matches `app/stream` decides (else `auth.publish`
//! / `auth.play`):
//! - its `deny_ips` / `allow_ips` (CIDR) are checked first;
//! - `open` allows, `deny` refuses;
//! - `token` needs a JWT ([`jwt`]) as `?token=` or `Authorization: Bearer`, or a signed URL
//!   `?expires=&sign=` ([`signed_url`], bound to the action);
//! - `webhook` asks `auth.webhook_url`.
//!
//! When a play was allowed by a query credential, [`Grant::carry`] holds it so HLS can write
//! it into every URI of a playlist (players do not carry a playlist's query to segments).
#![forbid(unsafe_code)]

pub mod jwt;
pub mod name;
pub mod origin;
pub mod pattern;
pub mod query;
pub mod refusal;
mod rules;
pub mod signed_url;
pub mod srt;

use std::net::IpAddr;

use config::{AuthConfig, AuthMode};

pub use name::{NameError, StreamName, escape_for_log};
pub use pattern::pattern_matches;
pub use query::{QueryCredentials, form_decode, merge_queries, query_value, rtmp_connect_query};
pub use refusal::{Reason, Refusal};

/// Errors of building a [`Policy`] (a key file that cannot be read or parsed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// A configured key is unusable; the message names the key.
    #[error("configuration: {0}")]
    Config(String),
}

/// What a client asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Send a stream.
    Publish,
    /// Receive a stream (or a VOD file).
    Play,
}

impl Action {
    /// `"publish"` or `"play"` (the JWT `action` claim and the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Play => "play",
        }
    }
}

/// The facts of one publish or play request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Publish or play.
    pub action: Action,
    /// The checked stream name (for VOD, app `vod` and the file's path).
    pub name: &'a StreamName,
    /// Raw query string (without `?`), still URL-encoded.
    pub query: Option<&'a str>,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// Protocol label: `rtmp`, `http-flv`, `ws-flv`, `hls`, `vod`, `webrtc`, ...
    pub protocol: &'static str,
    /// Token of an `Authorization: Bearer` header.
    pub bearer: Option<&'a str>,
    /// An HLS playlist request (a webhook allow is then reused by its segments).
    pub hls_playlist: bool,
    /// An HLS segment, part or init request (reuses a playlist's webhook allow).
    pub hls_segment: bool,
}

impl<'a> Request<'a> {
    /// A request with no query, address, bearer or HLS flag.
    pub fn new(action: Action, name: &'a StreamName, protocol: &'static str) -> Self {
        Self {
            action,
            name,
            query: None,
            ip: None,
            protocol,
            bearer: None,
            hls_playlist: false,
            hls_segment: false,
        }
    }
}

/// An allowed request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The query credential (`token=...` or `expires=...&sign=...`, URL-encoded as received)
    /// that allowed a play, to be carried into the URIs of an HLS playlist. Never set for a
    /// publish.
    pub carry: Option<String>,
}

/// What [`Policy::decide`] concludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow(Grant),
    /// The rule says `webhook`: the caller asks `auth.webhook_url`.
    AskWebhook,
}

/// The compiled `[auth]` section: rules with parsed CIDRs, JWT keys, the URL-signing secret.
#[derive(Debug)]
pub struct Policy {
    rules: rules::Rules,
    keys: jwt::JwtKeys,
    url_secret: Option<Vec<u8>>,
}

impl Policy {
    /// Compiles `cfg` (validated) and reads its key files (once, at start).
    pub fn new(cfg: &AuthConfig) -> Result<Self, AccessError> {
        Ok(Self {
            rules: rules::Rules::new(cfg),
            keys: jwt::JwtKeys::load(cfg)?,
            url_secret: (!cfg.url_signing_secret.is_empty())
                .then(|| cfg.url_signing_secret.as_bytes().to_vec()),
        })
    }

    /// True when some rule needs a token but no key or secret could verify one.
    pub fn token_without_keys(&self, cfg: &AuthConfig) -> bool {
        let uses_token = [cfg.publish, cfg.play]
            .into_iter()
            .chain(cfg.rules.iter().flat_map(|r| [r.publish, r.play]))
            .any(|m| m == AuthMode::Token);
        uses_token && self.keys.is_empty() && self.url_secret.is_none()
    }

    /// Decides `req` at `now_s` (unix seconds).
    pub fn decide(&self, req: &Request<'_>, now_s: u64) -> Result<Decision, Refusal> {
        match self.rules.decide(req.action, req.name.key(), req.ip)? {
            AuthMode::Open => Ok(Decision::Allow(Grant::default())),
            AuthMode::Token => self.token(req, now_s).map(Decision::Allow),
            AuthMode::Webhook => Ok(Decision::AskWebhook),
            AuthMode::Deny => Err(Refusal::new(Reason::DenyRule, "denied")),
        }
    }

    fn token(&self, req: &Request<'_>, now_s: u64) -> Result<Grant, Refusal> {
        let key = req.name.key();
        let q = QueryCredentials::parse(req.query.unwrap_or(""));
        // Only a play's query credential is carried (into HLS playlists).
        let carry = |c: String| (req.action == Action::Play).then_some(c);
        if let Some((raw, token)) = &q.token {
            self.keys.verify(token, req.action, key, req.ip, now_s)?;
            return Ok(Grant {
                carry: carry(format!("token={raw}")),
            });
        }
        if let Some(token) = req.bearer {
            self.keys.verify(token, req.action, key, req.ip, now_s)?;
            return Ok(Grant::default());
        }
        if let (Some(expires), Some(sign)) = (&q.expires, &q.sign) {
            let Some(secret) = &self.url_secret else {
                return Err(Refusal::new(
                    Reason::BadToken,
                    "signed URLs are not enabled on this server",
                ));
            };
            signed_url::verify(secret, req.action, key, &expires.1, &sign.1, now_s)?;
            return Ok(Grant {
                carry: carry(format!("expires={}&sign={}", expires.0, sign.0)),
            });
        }
        Err(Refusal::new(
            Reason::MissingToken,
            "a token is required (?token=, Authorization: Bearer, or ?expires=&sign=)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::AuthRule;

    fn token_cfg() -> AuthConfig {
        AuthConfig {
            jwt_secret: "k".into(),
            url_signing_secret: "u".into(),
            rules: vec![AuthRule {
                pattern: "live/*".into(),
                publish: AuthMode::Token,
                play: AuthMode::Token,
                ..AuthRule::default()
            }],
            ..AuthConfig::default()
        }
    }

    fn allow(d: Result<Decision, Refusal>) -> Result<Grant, Reason> {
        match d {
            Ok(Decision::Allow(g)) => Ok(g),
            Ok(Decision::AskWebhook) => panic!("unexpected webhook"),
            Err(r) => Err(r.reason),
        }
    }

    #[test]
    fn signed_url_grant_carries_the_query_for_play_only() {
        let s = Policy::new(&token_cfg()).unwrap();
        let now = 1_000;
        let exp = now + 60;
        let a = StreamName::new("live", "a").unwrap();
        let b = StreamName::new("live", "b").unwrap();
        let sign = signed_url::sign(b"u", Action::Play, "live/a", exp);
        let q = format!("x=1&expires={exp}&sign={sign}");
        let mut req = Request::new(Action::Play, &a, "hls");
        req.query = Some(&q);
        let g = allow(s.decide(&req, now)).unwrap();
        assert_eq!(g.carry, Some(format!("expires={exp}&sign={sign}")));
        // A viewer's play signature does not publish (finding: a viewer's signed URL took
        // the stream over).
        let mut publish = req;
        publish.action = Action::Publish;
        assert_eq!(allow(s.decide(&publish, now)), Err(Reason::BadToken));
        let psign = signed_url::sign(b"u", Action::Publish, "live/a", exp);
        let pq = format!("expires={exp}&sign={psign}");
        publish.query = Some(&pq);
        assert_eq!(allow(s.decide(&publish, now)), Ok(Grant::default()));
        req.name = &b;
        assert_eq!(allow(s.decide(&req, now)), Err(Reason::BadToken));
        req.query = None;
        assert_eq!(allow(s.decide(&req, now)), Err(Reason::MissingToken));
        // Streams no rule matches are open by default.
        let other_name = StreamName::new("other", "a").unwrap();
        let other = Request::new(Action::Publish, &other_name, "rtmp");
        assert_eq!(allow(s.decide(&other, now)), Ok(Grant::default()));
        let none = Policy::new(&AuthConfig {
            url_signing_secret: String::new(),
            ..token_cfg()
        })
        .unwrap();
        req.query = Some(&q);
        req.name = &a;
        assert_eq!(allow(none.decide(&req, now)), Err(Reason::BadToken));
    }

    #[test]
    fn webhook_rules_ask_the_caller() {
        let p = Policy::new(&AuthConfig {
            play: AuthMode::Webhook,
            webhook_url: "http://127.0.0.1:9/auth".into(),
            ..AuthConfig::default()
        })
        .unwrap();
        let n = StreamName::new("live", "a").unwrap();
        let req = Request::new(Action::Play, &n, "rtmp");
        assert_eq!(p.decide(&req, 0), Ok(Decision::AskWebhook));
        let publish = Request::new(Action::Publish, &n, "rtmp");
        assert_eq!(p.decide(&publish, 0), Ok(Decision::Allow(Grant::default())));
    }
}
