//! `[auth]`: who may publish and play, and with which credentials.

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::cidr::Cidr;

/// Longest `auth.webhook_timeout_ms` accepted: a publisher or player waits this long at most.
pub const MAX_AUTH_WEBHOOK_TIMEOUT_MS: u64 = 30_000;
/// Longest `auth.webhook_cache_ms` accepted: a revoked viewer keeps access this long at most.
pub const MAX_AUTH_WEBHOOK_CACHE_MS: u64 = 3_600_000;
/// Most `[[auth.rules]]`: rules are tried in order on every request.
pub const MAX_AUTH_RULES: usize = 256;
/// Most CIDR entries in one rule's `allow_ips` plus `deny_ips`.
pub const MAX_RULE_CIDRS: usize = 1024;

/// What a publish or play needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Anyone (subject to the rule's IP lists).
    #[default]
    Open,
    /// A valid JWT (`?token=`, `Authorization: Bearer`) or HMAC-signed URL
    /// (`?expires=&sign=`).
    Token,
    /// The answer of `auth.webhook_url` (2xx allows).
    Webhook,
    /// Nobody.
    Deny,
}

impl AuthMode {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Token => "token",
            Self::Webhook => "webhook",
            Self::Deny => "deny",
        }
    }
}

/// `[[auth.rules]]`: an override for the streams matching `pattern` (the first matching rule
/// wins; streams matching none use `auth.publish` / `auth.play` and no IP lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthRule {
    /// `app/stream` pattern where `*` matches anything (`live/*`, `*`, `vod/*` for files).
    pub pattern: String,
    /// What publishing needs.
    pub publish: AuthMode,
    /// What playing needs.
    pub play: AuthMode,
    /// When not empty, only clients in one of these CIDRs (`10.0.0.0/8`, `::1/128`, or a
    /// bare address) may publish or play.
    pub allow_ips: Vec<String>,
    /// Clients in one of these CIDRs are refused (checked before `allow_ips`).
    pub deny_ips: Vec<String>,
}

impl Default for AuthRule {
    fn default() -> Self {
        Self {
            pattern: "*".to_owned(),
            publish: AuthMode::Open,
            play: AuthMode::Open,
            allow_ips: Vec::new(),
            deny_ips: Vec::new(),
        }
    }
}

/// `[auth]`: access control for publishing, playing and the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// What publishing needs when no rule matches: "open" | "token" | "webhook" | "deny".
    pub publish: AuthMode,
    /// What playing needs when no rule matches.
    pub play: AuthMode,
    /// HS256 secret of JWTs; empty: HMAC tokens are refused.
    pub jwt_secret: String,
    /// PEM file of the RSA or EC public key of RS256/ES256 JWTs; empty: none.
    pub jwt_public_key_file: String,
    /// JWKS (JSON) file of public keys chosen by the token's `kid`; empty: none.
    pub jwks_file: String,
    /// Secret of signed URLs: `sign = hex(HMAC-SHA256(secret, "<app>/<stream>:<expires>"))`;
    /// empty: signed URLs are refused.
    pub url_signing_secret: String,
    /// Receiver of webhook authorisation requests (`http://` only); needed by "webhook" rules.
    pub webhook_url: String,
    /// Longest wait (ms) for the webhook's answer; past it the request counts as failed.
    pub webhook_timeout_ms: u64,
    /// Allow when the webhook cannot be reached or times out (default: refuse, fail closed).
    pub webhook_fail_open: bool,
    /// How long (ms) a webhook answer is reused for the same client, stream and action
    /// (allow and deny alike); 0 turns the cache off.
    pub webhook_cache_ms: u64,
    /// Bearer token the REST API and `/metrics` require (`Authorization: Bearer <api_token>`).
    /// Empty: the API trusts clients by address: it is open on a loopback listener; on a
    /// non-loopback listener only loopback clients may use it (others get 403 asking the
    /// operator to set this), and only under the names of `http.allowed_hosts`, never for a
    /// state-changing request from another site's page (CSRF).
    pub api_token: String,
    /// A second bearer token that opens `/metrics` only (least privilege for a Prometheus
    /// scraper: it cannot use the API). `/metrics` asks for a token whenever `api_token` or
    /// this is set, and takes either; with neither it is open, like the streams it lists.
    pub metrics_token: String,
    /// Per-stream overrides, first match wins.
    pub rules: Vec<AuthRule>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            publish: AuthMode::Open,
            play: AuthMode::Open,
            jwt_secret: String::new(),
            jwt_public_key_file: String::new(),
            jwks_file: String::new(),
            url_signing_secret: String::new(),
            webhook_url: String::new(),
            webhook_timeout_ms: 2000,
            webhook_fail_open: false,
            webhook_cache_ms: 5000,
            api_token: String::new(),
            metrics_token: String::new(),
            rules: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Checks values that parse but make no sense, naming the key. Key files are read at
    /// start (see `AuthState::new`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if !(1..=MAX_AUTH_WEBHOOK_TIMEOUT_MS).contains(&self.webhook_timeout_ms) {
            return bad("auth.webhook_timeout_ms", "must be between 1 and 30000");
        }
        if self.webhook_cache_ms > MAX_AUTH_WEBHOOK_CACHE_MS {
            return bad("auth.webhook_cache_ms", "must be at most 3600000");
        }
        if self.rules.len() > MAX_AUTH_RULES {
            return bad("auth.rules", "at most 256 rules");
        }
        let uses_webhook = [self.publish, self.play]
            .into_iter()
            .chain(self.rules.iter().flat_map(|r| [r.publish, r.play]))
            .any(|m| m == AuthMode::Webhook);
        if uses_webhook && self.webhook_url.is_empty() {
            return bad(
                "auth.webhook_url",
                "must be set when a rule uses \"webhook\"",
            );
        }
        if !self.webhook_url.is_empty() {
            match self.webhook_url.parse::<http::Uri>() {
                Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {}
                _ => return bad("auth.webhook_url", "must be an http:// URL"),
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.pattern.is_empty() {
                return bad(&format!("auth.rules[{i}].pattern"), "must not be empty");
            }
            if r.allow_ips.len() + r.deny_ips.len() > MAX_RULE_CIDRS {
                return bad(&format!("auth.rules[{i}]"), "at most 1024 CIDRs");
            }
            for (list, name) in [(&r.allow_ips, "allow_ips"), (&r.deny_ips, "deny_ips")] {
                for c in list {
                    if c.parse::<Cidr>().is_err() {
                        return bad(
                            &format!("auth.rules[{i}].{name}"),
                            &format!("{c:?} is not an address or CIDR"),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_open_and_valid() {
        let c = AuthConfig::default();
        assert_eq!((c.publish, c.play), (AuthMode::Open, AuthMode::Open));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn invalid_values_name_the_key() {
        let mut c = AuthConfig {
            play: AuthMode::Webhook,
            ..AuthConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("auth.webhook_url")
        );
        c.webhook_url = "https://x/".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("auth.webhook_url")
        );
        c.webhook_url = "http://127.0.0.1:9/auth".into();
        assert!(c.validate().is_ok());
        c.rules.push(AuthRule {
            deny_ips: vec!["10.0.0.0/33".into()],
            ..AuthRule::default()
        });
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("auth.rules[0].deny_ips"), "{err}");
        c.rules[0].deny_ips = vec!["10.0.0.0/8".into()];
        c.webhook_timeout_ms = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("webhook_timeout_ms")
        );
    }
}
