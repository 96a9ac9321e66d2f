//! Access control: who may publish and play which stream, and who may use the REST API.
//!
//! Every protocol asks [`check`] with a [`Request`] (action, app, stream, query, client
//! address, protocol, bearer token) before it publishes or plays; the first `[[auth.rules]]`
//! whose pattern matches `app/stream` decides (else `auth.publish` / `auth.play`):
//!
//! - its `deny_ips` / `allow_ips` (CIDR) are checked first;
//! - `open` allows, `deny` refuses;
//! - `token` needs a JWT ([`jwt`]) as `?token=` or `Authorization: Bearer`, or a signed URL
//!   `?expires=&sign=` ([`signed_url`]);
//! - `webhook` asks `auth.webhook_url` ([`webhook`]), with a short cache.
//!
//! HLS: tokens and signed URLs are checked on every request (playlists, segments, parts,
//! init segments; the check is local and cheap). When a playlist was authorised by a query
//! credential, the same `token=` or `expires=&sign=` is written into every URI of the
//! playlist, because players do not carry the playlist's query to segment URIs. Webhook
//! answers for a playlist are cached per (client address, stream, action), and segments
//! reuse them; a segment with no cached allow asks the webhook itself.
//!
//! Refusals are [`Refusal`]s with a fixed [`Reason`]: RTMP clients get
//! `NetStream.Publish.Unauthorized` / `NetStream.Play.Unauthorized`, HTTP clients 401/403
//! with `{"code","message"}`; each is logged (stream name without its query; never a token
//! or a secret) and counted in `sluice_auth_refused_total{protocol,action,reason}`.
//!
//! The REST API ([`api`]): with `auth.api_token` set, `/api/v1/*` needs
//! `Authorization: Bearer <api_token>`; without it, a non-loopback HTTP listener serves the
//! API to loopback clients only.

pub(crate) mod api;
pub mod cidr;
pub mod config;
pub(crate) mod guard;
pub mod jwt;
pub mod refusal;
pub(crate) mod rules;
pub mod signed_url;
pub(crate) mod webhook;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub use config::{AuthConfig, AuthMode, AuthRule};
pub use refusal::{Reason, Refusal};

use crate::{ServerError, Shared};

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
    /// Application (first path segment).
    pub app: &'a str,
    /// Stream name without any query or extension.
    pub stream: &'a str,
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
    pub fn new(action: Action, app: &'a str, stream: &'a str, protocol: &'static str) -> Self {
        Self {
            action,
            app,
            stream,
            query: None,
            ip: None,
            protocol,
            bearer: None,
            hls_playlist: false,
            hls_segment: false,
        }
    }

    /// `app/stream`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.app, self.stream)
    }
}

/// An allowed request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The query credential (`token=...` or `expires=...&sign=...`, URL-encoded as received)
    /// that allowed it, to be carried into the URIs of an HLS playlist.
    pub carry: Option<String>,
}

/// Access-control state built at start: compiled rules, keys, the webhook client and cache,
/// and the refusal counters.
#[derive(Debug)]
pub(crate) struct AuthState {
    rules: rules::Rules,
    keys: jwt::JwtKeys,
    url_secret: Option<Vec<u8>>,
    webhook: Option<webhook::WebhookAuth>,
    refused: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
}

/// Protocol labels of the refusal counter that are not a media protocol.
pub const API_PROTOCOL: &str = "api";

impl AuthState {
    /// Compiles `cfg` and reads its key files; warns when the API is left without a token on
    /// a non-loopback listener.
    pub(crate) fn new(cfg: &AuthConfig, http_addr: SocketAddr) -> Result<Self, ServerError> {
        cfg.validate()?;
        let keys = jwt::JwtKeys::load(cfg)?;
        let uses_token = [cfg.publish, cfg.play]
            .into_iter()
            .chain(cfg.rules.iter().flat_map(|r| [r.publish, r.play]))
            .any(|m| m == AuthMode::Token);
        if uses_token && keys.is_empty() && cfg.url_signing_secret.is_empty() {
            tracing::warn!(
                "auth: a rule needs a token but no jwt_secret, jwt_public_key_file, jwks_file \
                 or url_signing_secret is set: every such request will be refused"
            );
        }
        if cfg.api_token.is_empty() && !http_addr.ip().is_loopback() {
            tracing::warn!(
                %http_addr,
                "auth.api_token is not set and the HTTP listener is not loopback: the REST API \
                 answers loopback clients only (others get 403); set auth.api_token to use it \
                 remotely"
            );
        }
        Ok(Self {
            rules: rules::Rules::new(cfg),
            keys,
            url_secret: (!cfg.url_signing_secret.is_empty())
                .then(|| cfg.url_signing_secret.as_bytes().to_vec()),
            webhook: webhook::WebhookAuth::new(cfg),
            refused: Mutex::new(BTreeMap::new()),
        })
    }

    /// Counts one refusal (labels are all from fixed sets, so the map stays small).
    pub(crate) fn count(&self, protocol: &'static str, action: &'static str, reason: Reason) {
        let mut m = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((protocol, action, reason.as_str())).or_default() += 1;
    }

    /// Every refusal counted so far: ((protocol, action, reason), count).
    pub(crate) fn refused(&self) -> Vec<((&'static str, &'static str, &'static str), u64)> {
        let m = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }

    async fn decide(&self, req: &Request<'_>) -> Result<Grant, Refusal> {
        let key = req.key();
        match self.rules.decide(req.action, &key, req.ip)? {
            AuthMode::Open => Ok(Grant::default()),
            AuthMode::Token => self.token(req, &key),
            AuthMode::Webhook => match &self.webhook {
                Some(w) => w.check(req, &key).await.map(|()| Grant::default()),
                // Refused by validation; kept closed if it ever happens.
                None => Err(Refusal::new(Reason::WebhookError, "no webhook configured")),
            },
            AuthMode::Deny => Err(Refusal::new(Reason::DenyRule, "denied")),
        }
    }

    fn token(&self, req: &Request<'_>, key: &str) -> Result<Grant, Refusal> {
        let q = QueryCredentials::parse(req.query.unwrap_or(""));
        if let Some((raw, token)) = &q.token {
            self.keys.verify(token, req.action, key, req.ip)?;
            return Ok(Grant {
                carry: Some(format!("token={raw}")),
            });
        }
        if let Some(token) = req.bearer {
            self.keys.verify(token, req.action, key, req.ip)?;
            return Ok(Grant::default());
        }
        if let (Some(expires), Some(sign)) = (&q.expires, &q.sign) {
            let Some(secret) = &self.url_secret else {
                return Err(Refusal::new(
                    Reason::BadToken,
                    "signed URLs are not enabled on this server",
                ));
            };
            signed_url::verify(secret, key, &expires.1, &sign.1, unix_s())?;
            return Ok(Grant {
                carry: Some(format!("expires={}&sign={}", expires.0, sign.0)),
            });
        }
        Err(Refusal::new(
            Reason::MissingToken,
            "a token is required (?token=, Authorization: Bearer, or ?expires=&sign=)",
        ))
    }
}

/// Longest query value considered (a JWT is limited to [`jwt::MAX_TOKEN_LEN`]).
const MAX_QUERY_VALUE: usize = jwt::MAX_TOKEN_LEN;

/// The credentials of a query: (raw, decoded) values of `token`, `expires`, `sign`.
#[derive(Debug, Default)]
pub(crate) struct QueryCredentials {
    pub(crate) token: Option<(String, String)>,
    pub(crate) expires: Option<(String, String)>,
    pub(crate) sign: Option<(String, String)>,
}

impl QueryCredentials {
    pub(crate) fn parse(query: &str) -> Self {
        let mut q = Self::default();
        for pair in query.split('&') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            if v.len() > MAX_QUERY_VALUE || !v.bytes().all(|b| b.is_ascii_graphic()) {
                continue;
            }
            let slot = match k {
                "token" => &mut q.token,
                "expires" => &mut q.expires,
                "sign" => &mut q.sign,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some((v.to_owned(), crate::api::percent_decode(v)));
            }
        }
        q
    }
}

fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Decides `req`: `Ok` with what to carry into HLS playlists, or the refusal (logged and
/// counted). Every protocol calls this before publishing or playing; WHIP/WHEP pass the
/// `Authorization: Bearer` token as `bearer`.
pub(crate) async fn check(shared: &Shared, req: &Request<'_>) -> Result<Grant, Refusal> {
    let res = shared.auth.decide(req).await;
    if let Err(r) = &res {
        shared
            .auth
            .count(req.protocol, req.action.as_str(), r.reason);
        // The stream name carries no query here, so no credential reaches the log.
        tracing::info!(
            protocol = req.protocol,
            action = req.action.as_str(),
            app = req.app,
            stream = req.stream,
            ip = ?req.ip,
            reason = r.reason.as_str(),
            "access refused: {}",
            r.message
        );
    }
    res
}

/// Joins two optional queries with `&` (an RTMP stream name's query and the connect query).
pub(crate) fn merge_queries(a: Option<&str>, b: Option<&str>) -> Option<String> {
    match (a.filter(|s| !s.is_empty()), b.filter(|s| !s.is_empty())) {
        (Some(a), Some(b)) => Some(format!("{a}&{b}")),
        (Some(x), None) | (None, Some(x)) => Some(x.to_owned()),
        (None, None) => None,
    }
}

/// The query of an RTMP `connect`: the `app` query, else the `tcUrl` query.
pub(crate) fn rtmp_connect_query(app_query: Option<&str>, tc_url: Option<&str>) -> Option<String> {
    app_query
        .filter(|q| !q.is_empty())
        .or_else(|| tc_url.and_then(|u| u.split_once('?')).map(|(_, q)| q))
        .map(str::to_owned)
}

/// The RTMP status code of a refusal of `action`.
pub(crate) fn rtmp_code(action: Action) -> &'static str {
    match action {
        Action::Publish => "NetStream.Publish.Unauthorized",
        Action::Play => "NetStream.Play.Unauthorized",
    }
}

/// Registers `sluice_auth_refused_total` on the scrape's recorder.
pub(crate) fn metrics(shared: &Shared) {
    metrics::describe_counter!(
        "sluice_auth_refused_total",
        "Publish, play and API requests refused by access control, by protocol, action and \
         reason (missing_token, bad_token, expired, wrong_stream, wrong_action, wrong_ip, \
         ip_denied, webhook_denied, webhook_error, deny_rule)."
    );
    for ((protocol, action, reason), n) in shared.auth.refused() {
        metrics::counter!("sluice_auth_refused_total", "protocol" => protocol,
            "action" => action, "reason" => reason)
        .absolute(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::config::AuthRule;

    fn state(cfg: AuthConfig) -> AuthState {
        AuthState::new(&cfg, "127.0.0.1:0".parse().unwrap()).unwrap()
    }

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

    #[tokio::test]
    async fn signed_url_grant_carries_the_query() {
        let s = state(token_cfg());
        let exp = unix_s() + 60;
        let sign = signed_url::sign(b"u", "live/a", exp);
        let q = format!("x=1&expires={exp}&sign={sign}");
        let mut req = Request::new(Action::Play, "live", "a", "hls");
        req.query = Some(&q);
        let g = s.decide(&req).await.unwrap();
        assert_eq!(g.carry, Some(format!("expires={exp}&sign={sign}")));
        req.stream = "b";
        assert_eq!(s.decide(&req).await.unwrap_err().reason, Reason::BadToken);
        req.query = None;
        assert_eq!(
            s.decide(&req).await.unwrap_err().reason,
            Reason::MissingToken
        );
        // Streams no rule matches are open by default.
        let other = Request::new(Action::Publish, "other", "a", "rtmp");
        assert_eq!(s.decide(&other).await, Ok(Grant::default()));
        let none = state(AuthConfig {
            url_signing_secret: String::new(),
            ..token_cfg()
        });
        req.query = Some(&q);
        req.stream = "a";
        assert_eq!(
            none.decide(&req).await.unwrap_err().reason,
            Reason::BadToken
        );
    }

    #[test]
    fn query_credentials_and_rtmp_queries() {
        let q = QueryCredentials::parse("a=1&token=x%2Ey&token=second&sign=ab&expires=5");
        assert_eq!(q.token, Some(("x%2Ey".into(), "x.y".into())));
        assert_eq!(q.sign.unwrap().1, "ab");
        assert_eq!(q.expires.unwrap().1, "5");
        assert!(QueryCredentials::parse("token").token.is_none());
        assert_eq!(
            merge_queries(Some("a=1"), Some("b=2")).as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(merge_queries(Some(""), Some("b=2")).as_deref(), Some("b=2"));
        assert_eq!(merge_queries(None, None), None);
        assert_eq!(
            rtmp_connect_query(None, Some("rtmp://h/live?token=t")).as_deref(),
            Some("token=t")
        );
        assert_eq!(
            rtmp_connect_query(Some("k=1"), Some("rtmp://h/live?token=t")).as_deref(),
            Some("k=1")
        );
        assert_eq!(rtmp_connect_query(None, Some("rtmp://h/live")), None);
    }

    #[test]
    fn refusals_are_counted_by_label() {
        let s = state(AuthConfig::default());
        s.count("rtmp", "publish", Reason::Expired);
        s.count("rtmp", "publish", Reason::Expired);
        s.count("hls", "play", Reason::MissingToken);
        assert_eq!(
            s.refused(),
            vec![
                (("hls", "play", "missing_token"), 1),
                (("rtmp", "publish", "expired"), 2)
            ]
        );
    }
}
