//! `[webhooks]` configuration and its validation.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Most webhook URLs (one delivery task and one queue each).
pub const MAX_WEBHOOK_URLS: usize = 16;
/// Largest `webhooks.queue`: pending events per URL (an event body is a few hundred bytes).
pub const MAX_WEBHOOK_QUEUE: usize = 65_536;
/// Largest `webhooks.max_attempts`.
pub const MAX_WEBHOOK_ATTEMPTS: u32 = 20;
/// Largest `webhooks.timeout_ms` (one attempt may not hold a URL's queue longer).
pub const MAX_WEBHOOK_TIMEOUT_MS: u64 = 60_000;
/// Largest `webhooks.max_backoff_ms`.
pub const MAX_WEBHOOK_BACKOFF_MS: u64 = 600_000;

/// `[webhooks]`: HTTP callbacks on session events (publish, unpublish, play, stop,
/// record_segment).
///
/// Each event is POSTed as JSON to every URL with `Content-Type: application/json`,
/// `X-Sluice-Event: <event>`, `X-Sluice-Delivery: <id>` (the same on every retry),
/// `X-Sluice-Timestamp: <unix seconds>` and, when `secret` is set,
/// `X-Sluice-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` computed over
/// the timestamp header's value, a dot and the exact body bytes. Receivers should recompute it,
/// compare in constant time and reject stale timestamps.
///
/// A 2xx answer is a delivery; anything else, a timeout or a connection error is retried after
/// `backoff_ms`, doubling up to `max_backoff_ms`, for at most `max_attempts` attempts. Each URL
/// has its own queue and delivery task (events reach one URL in order; a slow URL delays no
/// other); emitting never waits: when a URL's queue is full the event is dropped for it and
/// counted.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Receivers, `http://host:port/path` (empty: webhooks are off). `https` is refused until
    /// the server has a TLS client.
    pub urls: Vec<String>,
    /// HMAC-SHA256 key for `X-Sluice-Signature` (empty: events are not signed). Never logged.
    pub secret: String,
    /// Time (ms) one attempt may take: connect, request and response.
    pub timeout_ms: u64,
    /// Attempts per event and URL before giving up (logged at warn and counted as failed).
    pub max_attempts: u32,
    /// Wait (ms) before the first retry; doubles for each further retry.
    pub backoff_ms: u64,
    /// Longest wait (ms) between two attempts.
    pub max_backoff_ms: u64,
    /// Events waiting per URL; beyond it new events are dropped for that URL and counted, so
    /// the media path never waits for a receiver.
    pub queue: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: String::new(),
            timeout_ms: 3_000,
            max_attempts: 5,
            backoff_ms: 500,
            max_backoff_ms: 10_000,
            queue: 1024,
        }
    }
}

impl std::fmt::Debug for WebhooksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = if self.secret.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("WebhooksConfig")
            .field("urls", &self.urls)
            .field("secret", &secret)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_ms", &self.backoff_ms)
            .field("max_backoff_ms", &self.max_backoff_ms)
            .field("queue", &self.queue)
            .finish()
    }
}

impl WebhooksConfig {
    /// Checks every key, naming the bad one (`webhooks.urls[1]: ...`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("webhooks.{key}: {why}")));
        if self.urls.len() > MAX_WEBHOOK_URLS {
            return bad("urls", &format!("at most {MAX_WEBHOOK_URLS} URLs"));
        }
        for (i, url) in self.urls.iter().enumerate() {
            if let Err(why) = parse_url(url) {
                return bad(&format!("urls[{i}]"), &why);
            }
        }
        if !(1..=MAX_WEBHOOK_TIMEOUT_MS).contains(&self.timeout_ms) {
            return bad(
                "timeout_ms",
                &format!("must be between 1 and {MAX_WEBHOOK_TIMEOUT_MS}"),
            );
        }
        if !(1..=MAX_WEBHOOK_ATTEMPTS).contains(&self.max_attempts) {
            return bad(
                "max_attempts",
                &format!("must be between 1 and {MAX_WEBHOOK_ATTEMPTS}"),
            );
        }
        if self.backoff_ms == 0 {
            return bad("backoff_ms", "must be positive");
        }
        if !(self.backoff_ms..=MAX_WEBHOOK_BACKOFF_MS).contains(&self.max_backoff_ms) {
            return bad(
                "max_backoff_ms",
                &format!("must be between backoff_ms and {MAX_WEBHOOK_BACKOFF_MS}"),
            );
        }
        if !(1..=MAX_WEBHOOK_QUEUE).contains(&self.queue) {
            return bad(
                "queue",
                &format!("must be between 1 and {MAX_WEBHOOK_QUEUE}"),
            );
        }
        Ok(())
    }
}

/// Parses a receiver URL: `http://host[:port][/path]`, no credentials.
pub fn parse_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{url:?}: https is not supported yet (no TLS client); use http://"
            ));
        }
        _ => return Err(format!("{url:?} must start with http://")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{url:?} has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!(
            "{url:?}: credentials in the URL are not supported (use webhooks.secret)"
        ));
    }
    if authority.host().is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_urls(urls: &[&str]) -> WebhooksConfig {
        WebhooksConfig {
            urls: urls.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn accepts_http_urls() {
        with_urls(&[
            "http://127.0.0.1:9000/hook",
            "http://example.com",
            "http://[::1]:80/a?b=c",
        ])
        .validate()
        .expect("valid");
        assert_eq!(parse_url("http://h:1/p").unwrap().port_u16(), Some(1));
    }

    #[test]
    fn refuses_https_and_junk_naming_the_key() {
        let err = |urls: &[&str]| with_urls(urls).validate().unwrap_err().to_string();
        let e = err(&["http://ok/", "https://secure.example/hook"]);
        assert!(e.contains("webhooks.urls[1]") && e.contains("https"), "{e}");
        let e = err(&["ftp://x/"]);
        assert!(e.contains("urls[0]") && e.contains("http://"), "{e}");
        let e = err(&["not a url"]);
        assert!(e.contains("urls[0]"), "{e}");
        let e = err(&["/relative/path"]);
        assert!(e.contains("urls[0]"), "{e}");
        let e = err(&["http://user:pw@host/"]);
        assert!(e.contains("credentials"), "{e}");
    }

    #[test]
    fn refuses_bad_numbers() {
        let check = |f: fn(&mut WebhooksConfig), key: &str| {
            let mut c = WebhooksConfig::default();
            f(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        };
        check(|c| c.timeout_ms = 0, "webhooks.timeout_ms");
        check(|c| c.max_attempts = 0, "webhooks.max_attempts");
        check(|c| c.backoff_ms = 0, "webhooks.backoff_ms");
        check(|c| c.max_backoff_ms = 100, "webhooks.max_backoff_ms");
        check(|c| c.queue = 0, "webhooks.queue");
        check(|c| c.queue = MAX_WEBHOOK_QUEUE + 1, "webhooks.queue");
        WebhooksConfig::default()
            .validate()
            .expect("defaults are valid");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = WebhooksConfig {
            secret: "hunter2".into(),
            ..Default::default()
        };
        let text = format!("{c:?}");
        assert!(
            !text.contains("hunter2") && text.contains("redacted"),
            "{text}"
        );
    }
}
