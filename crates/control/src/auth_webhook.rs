//! Webhook authorisation: `POST auth.webhook_url` with
//! `{"action","app","stream","query","ip","protocol"}`; a 2xx answer allows, any other status
//! denies, and a timeout or connection error denies unless `auth.webhook_fail_open`.
//!
//! Answers are cached for `auth.webhook_cache_ms` per (action, client address, stream,
//! query without `_HLS_*` directives). An allow for an HLS playlist is also remembered per
//! (action, client address, stream) alone, so the segments and parts the player fetches next
//! (whose URIs carry no query) reuse it instead of calling the webhook each time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Serialize;
use tokio::time::Instant;

use access::{Reason, Refusal, Request};
use config::AuthConfig;

/// Most cached webhook answers; when full, expired entries are purged and, if that is not
/// enough, the cache is emptied (a burst of distinct clients cannot grow memory).
pub const MAX_AUTH_WEBHOOK_CACHE: usize = 10_000;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    action: &'static str,
    ip: Option<IpAddr>,
    key: String,
    /// `None`: the stream-wide allow HLS segments reuse.
    query: Option<String>,
}

/// The webhook client and its answer cache.
pub struct WebhookAuth {
    url: Uri,
    client: HttpClient,
    timeout: Duration,
    fail_open: bool,
    ttl: Duration,
    cache: Mutex<HashMap<CacheKey, (bool, Instant)>>,
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Body<'a> {
    action: &'a str,
    app: &'a str,
    stream: &'a str,
    query: &'a str,
    ip: String,
    protocol: &'a str,
}

/// The query without LL-HLS delivery directives (which change on every playlist reload).
fn stable_query(query: Option<&str>) -> String {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("_HLS_"))
        .collect::<Vec<_>>()
        .join("&")
}

impl WebhookAuth {
    /// The client for `cfg.webhook_url`, or `None` when it is not set.
    pub fn new(cfg: &AuthConfig) -> Option<Self> {
        let url: Uri = cfg.webhook_url.parse().ok()?;
        let timeout = Duration::from_millis(cfg.webhook_timeout_ms);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        Some(Self {
            url,
            client,
            timeout,
            fail_open: cfg.webhook_fail_open,
            ttl: Duration::from_millis(cfg.webhook_cache_ms),
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, k: &CacheKey, now: Instant) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(k)
            .filter(|(_, until)| *until > now)
            .map(|(a, _)| *a)
    }

    fn remember(&self, k: CacheKey, allowed: bool, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_AUTH_WEBHOOK_CACHE && !cache.contains_key(&k) {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= MAX_AUTH_WEBHOOK_CACHE {
                cache.clear();
            }
        }
        cache.insert(k, (allowed, now + self.ttl));
    }

    /// Asks the webhook (or the cache) whether `req` may proceed.
    pub async fn check(&self, req: &Request<'_>) -> Result<(), Refusal> {
        let now = Instant::now();
        let stream_wide = CacheKey {
            action: req.action.as_str(),
            ip: req.ip,
            key: req.name.key().to_owned(),
            query: None,
        };
        if req.hls_segment && self.cached(&stream_wide, now) == Some(true) {
            return Ok(());
        }
        let exact = CacheKey {
            query: Some(stable_query(req.query)),
            ..stream_wide.clone()
        };
        let verdict = match self.cached(&exact, now) {
            Some(v) => Some(v),
            None => {
                let v = self.ask(req).await;
                if let Some(allowed) = v {
                    self.remember(exact, allowed, now);
                }
                v
            }
        };
        match verdict {
            Some(true) => {
                if req.hls_playlist {
                    self.remember(stream_wide, true, now);
                }
                Ok(())
            }
            Some(false) => Err(Refusal::new(
                Reason::WebhookDenied,
                "refused by the authorisation webhook",
            )),
            None if self.fail_open => Ok(()),
            None => Err(Refusal::new(
                Reason::WebhookError,
                "the authorisation webhook did not answer",
            )),
        }
    }

    /// POSTs the facts; `Some(true)` on 2xx, `Some(false)` on another status, `None` on a
    /// timeout or connection error.
    async fn ask(&self, req: &Request<'_>) -> Option<bool> {
        let body = Body {
            action: req.action.as_str(),
            app: req.name.app(),
            stream: req.name.stream(),
            query: req.query.unwrap_or(""),
            ip: req.ip.map(|i| i.to_string()).unwrap_or_default(),
            protocol: req.protocol,
        };
        let json = serde_json::to_vec(&body).ok()?;
        let mut http = hyper::Request::post(self.url.clone())
            .body(Full::new(Bytes::from(json)))
            .ok()?;
        let h = http.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(USER_AGENT, HeaderValue::from_static("sluice-auth"));
        match tokio::time::timeout(self.timeout, self.client.request(http)).await {
            Ok(Ok(resp)) => Some(resp.status().is_success()),
            Ok(Err(e)) => {
                tracing::warn!(url = %self.url, "auth webhook failed: {e}");
                None
            }
            Err(_) => {
                tracing::warn!(url = %self.url, timeout_ms = self.timeout.as_millis() as u64,
                    "auth webhook timed out");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_query_drops_hls_directives() {
        assert_eq!(stable_query(Some("_HLS_msn=3&key=a&_HLS_part=1&")), "key=a");
        assert_eq!(stable_query(None), "");
    }

    #[tokio::test]
    async fn cache_is_bounded_and_expires() {
        let w = WebhookAuth::new(&AuthConfig {
            webhook_url: "http://127.0.0.1:9/".into(),
            ..AuthConfig::default()
        })
        .unwrap();
        let now = Instant::now();
        let k = |i: usize| CacheKey {
            action: "play",
            ip: None,
            key: format!("a/{i}"),
            query: None,
        };
        for i in 0..MAX_AUTH_WEBHOOK_CACHE + 5 {
            w.remember(k(i), true, now);
        }
        assert!(w.cache.lock().unwrap().len() <= MAX_AUTH_WEBHOOK_CACHE);
        let last = k(MAX_AUTH_WEBHOOK_CACHE + 4);
        assert_eq!(w.cached(&last, now), Some(true));
        assert_eq!(w.cached(&last, now + Duration::from_secs(6)), None);
    }
}
