//! Access control at run time: the compiled [`access::Policy`], the webhook client and its
//! cache for `webhook` rules, and the refusal counters.
//!
//! The decisions themselves are `access`'s (pure, fuzzed); this module adds what needs IO
//! or state: asking `auth.webhook_url`, logging refusals (the stream name escaped, never a
//! token or a secret) and counting them in `sluice_auth_refused_total{protocol,action,reason}`.
//!
//! The REST API's own token check is the `api_guard` module.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use access::{Decision, Grant, Policy, Reason, Refusal, Request};
use config::AuthConfig;

use crate::ControlError;
use crate::auth_webhook::WebhookAuth;

/// Protocol label of refusals that are not a media protocol.
pub const API_PROTOCOL: &str = "api";

/// Access-control state built at start: the policy, the webhook client and cache, and the
/// refusal counters.
#[derive(Debug)]
pub struct AuthState {
    policy: Policy,
    webhook: Option<WebhookAuth>,
    refused: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
}

impl AuthState {
    /// Compiles `cfg` and reads its key files; warns when a rule needs a token nothing can
    /// verify, and when the API is left without a token on a non-loopback listener.
    pub fn new(cfg: &AuthConfig, http_addr: SocketAddr) -> Result<Self, ControlError> {
        cfg.validate()?;
        let policy = Policy::new(cfg)?;
        if policy.token_without_keys(cfg) {
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
            policy,
            webhook: WebhookAuth::new(cfg),
            refused: Mutex::new(BTreeMap::new()),
        })
    }

    /// Counts one refusal (labels are all from fixed sets, so the map stays small).
    pub fn count(&self, protocol: &'static str, action: &'static str, reason: Reason) {
        let mut m = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((protocol, action, reason.as_str())).or_default() += 1;
    }

    /// Every refusal counted so far: ((protocol, action, reason), count).
    pub fn refused(&self) -> Vec<((&'static str, &'static str, &'static str), u64)> {
        let m = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }

    async fn decide(&self, req: &Request<'_>) -> Result<Grant, Refusal> {
        match self.policy.decide(req, unix_s())? {
            Decision::Allow(grant) => Ok(grant),
            Decision::AskWebhook => match &self.webhook {
                Some(w) => w.check(req).await.map(|()| Grant::default()),
                // Refused by validation; kept closed if it ever happens.
                None => Err(Refusal::new(Reason::WebhookError, "no webhook configured")),
            },
        }
    }

    /// Decides `req`: `Ok` with what to carry into HLS playlists, or the refusal (logged and
    /// counted).
    pub async fn check(&self, req: &Request<'_>) -> Result<Grant, Refusal> {
        let res = self.decide(req).await;
        if let Err(r) = &res {
            self.count(req.protocol, req.action.as_str(), r.reason);
            // The name carries no query here, so no credential reaches the log; it is checked
            // (no control characters), and escaped anyway.
            tracing::info!(
                protocol = req.protocol,
                action = req.action.as_str(),
                stream = %access::escape_for_log(req.name.key()),
                ip = ?req.ip,
                reason = r.reason.as_str(),
                "access refused: {}",
                r.message
            );
        }
        res
    }

    /// Registers `sluice_auth_refused_total` on the scrape's recorder.
    pub fn metrics(&self) {
        metrics::describe_counter!(
            "sluice_auth_refused_total",
            "Publish, play and API requests refused by access control, by protocol, action and \
             reason (missing_token, bad_token, expired, wrong_stream, wrong_action, wrong_ip, \
             ip_denied, webhook_denied, webhook_error, deny_rule, host_not_allowed, cross_site)."
        );
        for ((protocol, action, reason), n) in self.refused() {
            metrics::counter!("sluice_auth_refused_total", "protocol" => protocol,
                "action" => action, "reason" => reason)
            .absolute(n);
        }
    }
}

fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_label() {
        let s = AuthState::new(&AuthConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
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
