//! One delivery task per URL: takes events from the URL's bounded queue in order and POSTs each
//! until a 2xx answer, retrying with doubling backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{EventKind, WebhookStats};

/// Most response body bytes read from a receiver (the rest is ignored).
pub const MAX_WEBHOOK_RESPONSE_BYTES: usize = 64 * 1024;

/// How long pooled keep-alive connections to receivers stay open unused.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// The HTTP client type ctl by the delivery tasks.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// An event ready to send: serialised once, ctl by every URL's queue.
#[derive(Debug)]
pub struct Delivery {
    pub kind: EventKind,
    pub id: String,
    pub body: Bytes,
    /// A foreign form's content type and `Authorization` (LiveKit's room events).
    pub signed: Option<(&'static str, String)>,
}

/// Retry policy of one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

/// The wait before retry number `retry` (1 = the second attempt): `initial_ms` doubled
/// `retry - 1` times, capped at `max_ms`.
pub fn backoff_delay(retry: u32, initial_ms: u64, max_ms: u64) -> Duration {
    let doublings = retry.saturating_sub(1).min(63);
    let ms = initial_ms.saturating_mul(1u64 << doublings).min(max_ms);
    Duration::from_millis(ms)
}

/// Builds the client: HTTP/1.1 with keep-alive pooling, the attempt timeout as connect timeout.
pub fn client(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector)
}

/// One URL's delivery task.
pub struct Worker {
    pub url: Uri,
    pub client: HttpClient,
    pub secret: Arc<[u8]>,
    pub policy: Policy,
    pub stats: Arc<WebhookStats>,
}

impl Worker {
    /// Delivers queued events in order until `close` is cancelled; then keeps delivering what
    /// is queued for at most `grace` and counts whatever is left as dropped.
    pub async fn run(
        self,
        mut rx: mpsc::Receiver<Arc<Delivery>>,
        close: CancellationToken,
        grace: Duration,
    ) {
        let mut deadline: Option<Instant> = None;
        loop {
            let next = match deadline {
                None => tokio::select! {
                    d = rx.recv() => d,
                    () = close.cancelled() => {
                        deadline = Some(Instant::now() + grace);
                        continue;
                    }
                },
                Some(_) => rx.try_recv().ok(),
            };
            let Some(delivery) = next else { break };
            let run = self.deliver(&delivery);
            tokio::pin!(run);
            let outcome = loop {
                match deadline {
                    None => tokio::select! {
                        ok = &mut run => break Some(ok),
                        () = close.cancelled() => deadline = Some(Instant::now() + grace),
                    },
                    Some(at) => break tokio::time::timeout_at(at, &mut run).await.ok(),
                }
            };
            let counter = match outcome {
                Some(true) => &self.stats.delivered,
                Some(false) => &self.stats.failed,
                None => {
                    tracing::warn!(url = %self.url, event = delivery.kind.as_str(),
                        id = %delivery.id, "webhook delivery cut short by shutdown");
                    &self.stats.dropped
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if outcome.is_none() {
                break;
            }
        }
        rx.close();
        let mut left = 0u64;
        while rx.try_recv().is_ok() {
            left += 1;
        }
        if left > 0 {
            tracing::warn!(url = %self.url, left, "webhook events dropped at shutdown");
            self.stats.dropped.fetch_add(left, Ordering::Relaxed);
        }
    }

    /// Sends one event, retrying; true once a receiver answered 2xx.
    async fn deliver(&self, d: &Delivery) -> bool {
        let p = self.policy;
        let mut last = String::new();
        for attempt in 1..=p.max_attempts {
            if attempt > 1 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff_delay(attempt - 1, p.backoff_ms, p.max_backoff_ms))
                    .await;
            }
            match self.attempt(d).await {
                Ok(()) => {
                    tracing::debug!(url = %self.url, event = d.kind.as_str(), id = %d.id,
                        attempt, "webhook delivered");
                    return true;
                }
                Err(why) => {
                    tracing::debug!(url = %self.url, event = d.kind.as_str(), id = %d.id,
                        attempt, error = %why, "webhook attempt failed");
                    last = why;
                }
            }
        }
        tracing::warn!(url = %self.url, event = d.kind.as_str(), id = %d.id,
            attempts = p.max_attempts, error = %last, "webhook delivery failed; giving up");
        false
    }

    /// One POST, bounded by the policy's timeout.
    async fn attempt(&self, d: &Delivery) -> Result<(), String> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.as_secs());
        let content_type = d.signed.as_ref().map_or("application/json", |s| s.0);
        let mut req = Request::post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
            .header(USER_AGENT, concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .header("x-sluice-event", d.kind.as_str())
            .header("x-sluice-delivery", d.id.as_str())
            .header("x-sluice-timestamp", timestamp);
        if let Some((_, auth)) = &d.signed {
            req = req.header(hyper::header::AUTHORIZATION, auth.as_str());
        }
        if !self.secret.is_empty() {
            req = req.header(
                "x-sluice-signature",
                super::sign(&self.secret, timestamp, &d.body),
            );
        }
        let req = req
            .body(Full::new(d.body.clone()))
            .map_err(|e| format!("bad request: {e}"))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| chain(&e))?;
            let status = resp.status();
            // Read (a bounded part of) the answer so the connection can be reused.
            let _ = Limited::new(resp.into_body(), MAX_WEBHOOK_RESPONSE_BYTES)
                .collect()
                .await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {status}"))
            }
        };
        tokio::time::timeout(self.policy.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.policy.timeout))?
    }
}

/// An error and its sources, `outer: inner: ...`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let ms = |r| backoff_delay(r, 500, 10_000).as_millis();
        let schedule: Vec<_> = (1..=7).map(ms).collect();
        assert_eq!(schedule, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(backoff_delay(0, 500, 10_000).as_millis(), 500);
        assert_eq!(
            backoff_delay(u32::MAX, u64::MAX / 2, u64::MAX).as_millis(),
            u128::from(u64::MAX)
        );
    }
}
