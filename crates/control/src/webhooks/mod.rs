//! Webhooks: signed HTTP callbacks on session events (publish, unpublish, play, stop) and
//! recorded segments, delivered off the media path.
//!
//! The session registry emits an event when a session registers or ends ([`Webhooks::emit`]
//! is one `try_send` per URL and never waits). Each URL has a bounded queue and one delivery
//! task, so events reach a URL in order and a slow or dead URL delays nothing else. See
//! [`WebhooksConfig`] for the wire format and the signature scheme.

mod deliver;
mod event;
mod sign;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::webhooks::*;
pub use deliver::{MAX_WEBHOOK_RESPONSE_BYTES, backoff_delay};
pub use event::{EventKind, WebhookEvent};
pub use sign::sign;

use deliver::{Delivery, Policy, Worker};

/// How long queued and in-flight deliveries may still run once the server shuts down; what is
/// left then is dropped (and counted).
pub const WEBHOOK_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Webhook counters (relaxed atomics; read by `/metrics` and `GET /api/v1/server`).
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events emitted, by [`EventKind::index`] order ([`EventKind::ALL`]).
    events: [AtomicU64; 6],
    /// Deliveries (event × URL) a receiver answered with 2xx.
    pub delivered: AtomicU64,
    /// Deliveries given up after `max_attempts`.
    pub failed: AtomicU64,
    /// Deliveries dropped: the URL's queue was full, or shutdown cut them short.
    pub dropped: AtomicU64,
    /// Attempts after the first (each retry of each delivery).
    pub retries: AtomicU64,
}

impl WebhookStats {
    /// Events of `kind` emitted so far.
    pub fn events(&self, kind: EventKind) -> u64 {
        self.events
            .get(kind.index())
            .map_or(0, |a| a.load(Ordering::Relaxed))
    }
}

/// Handle to the delivery tasks (cheap to clone). Emitting never blocks.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    /// One bounded queue per URL.
    queues: Vec<mpsc::Sender<Arc<Delivery>>>,
    stats: Arc<WebhookStats>,
    /// Start time (ns since the epoch), the first half of every delivery id.
    boot: u128,
    seq: AtomicU64,
    closed: AtomicBool,
    close: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("urls", &self.inner.queues.len())
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Starts one delivery task per URL of a validated `cfg` (call inside a Tokio runtime);
    /// `None` when no URL is configured. Counters go to `stats`.
    pub fn start(cfg: &WebhooksConfig, stats: Arc<WebhookStats>) -> Option<Self> {
        let policy = Policy {
            timeout: Duration::from_millis(cfg.timeout_ms),
            max_attempts: cfg.max_attempts.max(1),
            backoff_ms: cfg.backoff_ms,
            max_backoff_ms: cfg.max_backoff_ms,
        };
        let client = deliver::client(policy.timeout);
        let secret: Arc<[u8]> = Arc::from(cfg.secret.as_bytes());
        let close = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut queues = Vec::new();
        for url in &cfg.urls {
            let url = match config::webhooks::parse_url(url) {
                Ok(u) => u,
                Err(why) => {
                    tracing::warn!("webhook URL skipped: {why}");
                    continue;
                }
            };
            let (tx, rx) = mpsc::channel(cfg.queue.clamp(1, MAX_WEBHOOK_QUEUE));
            let worker = Worker {
                url,
                client: client.clone(),
                secret: Arc::clone(&secret),
                policy,
                stats: Arc::clone(&stats),
            };
            tracker.spawn(worker.run(rx, close.clone(), WEBHOOK_SHUTDOWN_GRACE));
            queues.push(tx);
        }
        if queues.is_empty() {
            return None;
        }
        tracing::info!(
            urls = queues.len(),
            signed = !cfg.secret.is_empty(),
            "webhooks on"
        );
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Some(Self {
            inner: Arc::new(Inner {
                queues,
                stats,
                boot,
                seq: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                close,
                tracker,
            }),
        })
    }

    /// Queues `event` for every URL without waiting: a URL whose queue is full (or a server
    /// that is shutting down) drops it and counts it. Assigns the delivery id if `event.id` is
    /// empty.
    pub fn emit(&self, mut event: WebhookEvent) {
        let inner = &self.inner;
        if let Some(a) = inner.stats.events.get(event.event.index()) {
            a.fetch_add(1, Ordering::Relaxed);
        }
        if event.id.is_empty() {
            let seq = inner.seq.fetch_add(1, Ordering::Relaxed) + 1;
            event.id = format!("{:x}-{seq}", inner.boot);
        }
        if inner.closed.load(Ordering::Relaxed) {
            inner
                .stats
                .dropped
                .fetch_add(inner.queues.len() as u64, Ordering::Relaxed);
            return;
        }
        let body = match serde_json::to_vec(&event) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!(
                    event = event.event.as_str(),
                    "webhook event not serialisable: {e}"
                );
                return;
            }
        };
        self.queue(Delivery {
            kind: event.event,
            id: event.id,
            body,
            signed: None,
        });
    }

    /// Queues a body already made in another server's form (LiveKit's room events), sent
    /// with `content_type` and `authorization` (its own signature) besides Sluice's headers.
    pub fn emit_foreign(
        &self,
        kind: EventKind,
        id: String,
        body: Vec<u8>,
        content_type: &'static str,
        authorization: String,
    ) {
        let inner = &self.inner;
        if let Some(a) = inner.stats.events.get(kind.index()) {
            a.fetch_add(1, Ordering::Relaxed);
        }
        if inner.closed.load(Ordering::Relaxed) {
            inner
                .stats
                .dropped
                .fetch_add(inner.queues.len() as u64, Ordering::Relaxed);
            return;
        }
        self.queue(Delivery {
            kind,
            id,
            body: Bytes::from(body),
            signed: Some((content_type, authorization)),
        });
    }

    fn queue(&self, delivery: Delivery) {
        let inner = &self.inner;
        let delivery = Arc::new(delivery);
        for q in &inner.queues {
            if q.try_send(Arc::clone(&delivery)).is_err() {
                inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(event = delivery.kind.as_str(), id = %delivery.id,
                    "webhook queue full; event dropped");
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> &WebhookStats {
        &self.inner.stats
    }

    /// Stops taking events, gives queued and in-flight deliveries [`WEBHOOK_SHUTDOWN_GRACE`],
    /// then drops the rest. Returns true when every task ended within `wait`.
    pub async fn shutdown(&self, wait: Duration) -> bool {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Relaxed);
        inner.close.cancel();
        inner.tracker.close();
        tokio::time::timeout(wait, inner.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port nothing listens on (bound, then closed).
    async fn dead_url() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        format!("http://{addr}/hook")
    }

    #[tokio::test]
    async fn no_urls_means_off() {
        assert!(Webhooks::start(&WebhooksConfig::default(), Arc::default()).is_none());
    }

    #[tokio::test]
    async fn emit_never_blocks_and_counts_drops_and_failures() {
        let cfg = WebhooksConfig {
            urls: vec![dead_url().await],
            queue: 1,
            max_attempts: 2,
            backoff_ms: 50,
            max_backoff_ms: 50,
            ..Default::default()
        };
        let stats = Arc::new(WebhookStats::default());
        let w = Webhooks::start(&cfg, Arc::clone(&stats)).expect("on");
        let t0 = std::time::Instant::now();
        for _ in 0..5 {
            w.emit(WebhookEvent::new(EventKind::Publish, "live/x"));
        }
        assert!(t0.elapsed() < Duration::from_millis(100), "emit waited");
        assert_eq!(stats.events(EventKind::Publish), 5);
        assert_eq!(stats.events(EventKind::Stop), 0);
        // At most one in flight and one queued: at least three of five are dropped.
        assert!(stats.dropped.load(Ordering::Relaxed) >= 3);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stats.failed.load(Ordering::Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline, "never gave up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(stats.retries.load(Ordering::Relaxed) >= 1);
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 0);
        assert!(w.shutdown(Duration::from_secs(5)).await);
        // After shutdown nothing is queued any more.
        let before = stats.dropped.load(Ordering::Relaxed);
        w.emit(WebhookEvent::new(EventKind::Stop, "live/x"));
        assert_eq!(stats.dropped.load(Ordering::Relaxed), before + 1);
        let all = stats.delivered.load(Ordering::Relaxed)
            + stats.failed.load(Ordering::Relaxed)
            + stats.dropped.load(Ordering::Relaxed);
        assert_eq!(all, 6, "every delivery is accounted for");
    }
}
