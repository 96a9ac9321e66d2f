//! End-to-end tests of webhooks: a test HTTP receiver gets signed events for real sessions
//! (ffmpeg publishing over RTMP, a raw HTTP-FLV viewer); failures are retried with backoff; a
//! slow and a dead receiver do not slow the media path.

use crate::common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use hmac::{Hmac, Mac};
use media::MediaKind;
use sha2::Sha256;
use sluice::{Config, EventKind, RunningServer};
use tokio::time::Instant;

const SECRET: &str = "test-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn event(&self) -> String {
        self.json()["event"].as_str().unwrap_or_default().to_owned()
    }

    /// True when `X-Sluice-Signature` is HMAC-SHA256(secret, "<timestamp>.<body>").
    fn signature_valid(&self, secret: &str) -> bool {
        let Some(hex) = self.header("x-sluice-signature").strip_prefix("sha256=") else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(self.header("x-sluice-timestamp").as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        want == hex
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// 200 at once.
    Ok,
    /// 500 for the first `n` requests, then 200.
    FailFirst(u32),
    /// Sleeps this long before answering 200.
    Sleep(Duration),
}

#[derive(Clone)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    behaviour: Behaviour,
    seen: Arc<AtomicU32>,
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` requests arrived.
    async fn wait_hits(&self, n: usize, within: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + within;
        loop {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} of {n} requests: {:?}",
                hits.len(),
                hits.iter().map(Hit::event).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = r.seen.fetch_add(1, Ordering::SeqCst);
    r.hits.lock().unwrap().push(Hit {
        headers,
        body,
        at: Instant::now(),
    });
    match r.behaviour {
        Behaviour::Ok => StatusCode::OK,
        Behaviour::FailFirst(k) if n < k => StatusCode::INTERNAL_SERVER_ERROR,
        Behaviour::FailFirst(_) => StatusCode::NO_CONTENT,
        Behaviour::Sleep(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK
        }
    }
}

/// Starts a receiver on 127.0.0.1:0; returns its URL.
async fn receiver(behaviour: Behaviour) -> (String, Receiver) {
    let r = Receiver {
        hits: Arc::default(),
        behaviour,
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), r)
}

/// A URL nothing listens on (a port bound, then closed).
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/hook")
}

fn config(urls: Vec<String>) -> Config {
    let mut cfg = test_config();
    cfg.webhooks.urls = urls;
    cfg.webhooks.secret = SECRET.into();
    cfg
}

/// Waits (bounded) for an ffmpeg child to exit successfully.
async fn finish(mut child: tokio::process::Child, within: Duration) {
    let status = tokio::time::timeout(within, child.wait())
        .await
        .expect("ffmpeg finished in time")
        .expect("ffmpeg ran");
    assert!(status.success(), "ffmpeg failed: {status}");
}

fn webhook_stats(server: &RunningServer) -> (u64, u64, u64, u64) {
    let w = &server.stats().webhooks;
    (
        w.delivered.load(Ordering::Relaxed),
        w.failed.load(Ordering::Relaxed),
        w.dropped.load(Ordering::Relaxed),
        w.retries.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_events_reach_the_receiver_signed_and_in_order() {
    let (url, rx) = receiver(Behaviour::Ok).await;
    let server = start(config(vec![url])).await;
    let key = "live/wh";
    let publisher = publish(&format!("rtmp://{}/{key}", server.rtmp_addr()), 0, &["-re"]);
    wait_live(&server, key).await;

    let mut viewer = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    let tags = viewer.collect_for(Duration::from_millis(1200)).await;
    assert_eq!(viewer.status, 200);
    assert!(
        tags.iter()
            .any(|t| t.kind == MediaKind::Video && t.keyframe)
    );
    drop(viewer);
    finish(publisher, Duration::from_secs(30)).await;

    let hits = rx.wait_hits(4, Duration::from_secs(20)).await;
    let events: Vec<_> = hits.iter().map(Hit::event).collect();
    assert_eq!(events, ["publish", "play", "stop", "unpublish"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut ids = std::collections::HashSet::new();
    for h in &hits {
        let j = h.json();
        assert_eq!(h.header("content-type"), "application/json");
        assert_eq!(h.header("x-sluice-event"), j["event"]);
        assert_eq!(h.header("x-sluice-delivery"), j["id"]);
        assert!(
            ids.insert(h.header("x-sluice-delivery").to_owned()),
            "ids unique"
        );
        let ts: u64 = h
            .header("x-sluice-timestamp")
            .parse()
            .expect("unix seconds");
        assert!(ts.abs_diff(now) < 120, "timestamp {ts} vs now {now}");
        assert!(h.signature_valid(SECRET), "signature of {}", j["event"]);
        assert!(!h.signature_valid("wrong-secret"));
        assert_eq!(j["stream"], key);
        assert_eq!(
            (j["app"].as_str(), j["name"].as_str()),
            (Some("live"), Some("wh"))
        );
        assert!(j["time"].as_str().unwrap().ends_with('Z'), "{j}");
        assert!(
            j["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{j}"
        );
    }
    let [publish, play, stop, unpublish] = [0, 1, 2, 3].map(|i| hits[i].json());
    assert_eq!(publish["protocol"], "rtmp");
    assert_eq!(play["protocol"], "http-flv");
    assert_eq!(publish["session_id"], unpublish["session_id"]);
    assert_eq!(play["session_id"], stop["session_id"]);
    assert_ne!(publish["session_id"], play["session_id"]);
    assert!(publish.get("bytes").is_none() && play.get("duration_ms").is_none());
    assert!(stop["bytes"].as_u64().unwrap() > 1000, "{stop}");
    assert!(stop["duration_ms"].as_u64().unwrap() >= 1000, "{stop}");
    assert!(stop["dropped_frames"].is_u64());
    // The whole clip (215 KB) went through the publisher.
    assert!(
        unpublish["bytes"].as_u64().unwrap() > 150_000,
        "{unpublish}"
    );
    assert!(
        unpublish["duration_ms"].as_u64().unwrap() >= 3000,
        "{unpublish}"
    );

    let w = &server.stats().webhooks;
    assert_eq!(w.events(EventKind::Publish), 1);
    assert_eq!(w.events(EventKind::Stop), 1);
    assert_eq!(w.events(EventKind::RecordSegment), 0);
    // Delivered is counted after the receiver answered: give the worker a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while webhook_stats(&server).0 < 4 {
        assert!(Instant::now() < deadline, "{:?}", webhook_stats(&server));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(webhook_stats(&server), (4, 0, 0, 0));
    let text = server.metrics_text();
    assert!(
        text.contains("sluice_webhook_events_total{event=\"play\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sluice_webhook_deliveries_total{result=\"ok\"} 4"),
        "{text}"
    );
    let api = http_get(server.http_addr(), "/api/v1/server").await.json();
    assert_eq!(api["webhooks"]["urls"], 1);
    assert_eq!(api["webhooks"]["events"], 4);
    assert_eq!(api["webhooks"]["delivered"], 4);

    // The recorder's event goes out through the same queue.
    let hooks = server.webhooks().expect("webhooks on");
    hooks.emit(sluice::WebhookEvent::record_segment(
        key,
        "/rec/live/wh/1.flv",
        1234,
        6000,
    ));
    let hits = rx.wait_hits(5, Duration::from_secs(10)).await;
    let seg = hits[4].json();
    assert_eq!(seg["event"], "record_segment");
    assert_eq!(seg["path"], "/rec/live/wh/1.flv");
    assert_eq!(
        (seg["bytes"].as_u64(), seg["duration_ms"].as_u64()),
        (Some(1234), Some(6000))
    );
    assert!(hits[4].signature_valid(SECRET));
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_with_backoff() {
    let (url, rx) = receiver(Behaviour::FailFirst(2)).await;
    let mut cfg = config(vec![url]);
    cfg.webhooks.backoff_ms = 150;
    cfg.webhooks.max_backoff_ms = 1000;
    let server = start(cfg).await;
    let publisher = publish(&format!("rtmp://{}/live/retry", server.rtmp_addr()), 0, &[]);
    finish(publisher, Duration::from_secs(30)).await;

    let hits = rx.wait_hits(4, Duration::from_secs(20)).await;
    let events: Vec<_> = hits.iter().map(Hit::event).collect();
    assert_eq!(events, ["publish", "publish", "publish", "unpublish"]);
    let id = hits[0].header("x-sluice-delivery");
    assert!(!id.is_empty());
    assert!(
        hits[..3]
            .iter()
            .all(|h| h.header("x-sluice-delivery") == id)
    );
    assert!(hits.iter().all(|h| h.signature_valid(SECRET)));
    // 150 ms before the first retry, 300 ms before the second.
    let gap = |i: usize| hits[i + 1].at - hits[i].at;
    assert!(gap(0) >= Duration::from_millis(140), "{:?}", gap(0));
    assert!(gap(1) >= Duration::from_millis(290), "{:?}", gap(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while webhook_stats(&server).0 < 2 {
        assert!(Instant::now() < deadline, "{:?}", webhook_stats(&server));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(webhook_stats(&server), (2, 0, 0, 2));
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// Publishes three loops of the fixture as fast as possible with an HTTP-FLV viewer
/// attached; returns the publish time and the server.
async fn fast_publish(cfg: Config) -> (Duration, RunningServer) {
    let server = start(cfg).await;
    let key = "live/fast";
    let started = Instant::now();
    let publisher = publish(&format!("rtmp://{}/{key}", server.rtmp_addr()), 2, &[]);
    // As fast as possible, the publisher may be done before a poll sees it live: the stream
    // (in its grace period) with a cached GOP is what the viewer needs.
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.hub().stream(key).is_none_or(|s| s.gop_frames == 0) {
        assert!(Instant::now() < deadline, "stream {key} never had media");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut viewer = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    finish(publisher, Duration::from_secs(60)).await;
    let took = started.elapsed();
    let tags = viewer.collect_for(Duration::from_millis(500)).await;
    assert_eq!(viewer.status, 200);
    assert!(
        tags.iter()
            .any(|t| t.kind == MediaKind::Video && t.keyframe),
        "the viewer got video"
    );
    (took, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_dead_receivers_do_not_slow_the_media_path() {
    let (baseline, plain) = fast_publish(test_config()).await;
    assert!(plain.webhooks().is_none());
    assert!(plain.shutdown(Duration::from_secs(5)).await);

    let (slow_url, slow) = receiver(Behaviour::Sleep(Duration::from_secs(30))).await;
    let mut cfg = config(vec![slow_url, dead_url().await]);
    cfg.webhooks.timeout_ms = 5000;
    cfg.webhooks.max_attempts = 2;
    cfg.webhooks.backoff_ms = 100;
    cfg.webhooks.max_backoff_ms = 100;
    cfg.webhooks.queue = 1;
    let (with_hooks, server) = fast_publish(cfg).await;
    assert!(
        with_hooks < baseline * 2 + Duration::from_secs(2),
        "publish took {with_hooks:?} with webhooks, {baseline:?} without"
    );
    // The slow receiver holds its first event (publish) for two 5 s attempts, so with a
    // queue of one the later events for it are dropped; the dead one gives up fast.
    slow.wait_hits(1, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, failed, dropped, _) = webhook_stats(&server);
        if failed >= 1 && dropped >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", webhook_stats(&server));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (delivered, failed, dropped, retries) = webhook_stats(&server);
    assert_eq!(delivered, 0);
    assert!(retries >= 1);
    let api = http_get(server.http_addr(), "/api/v1/server").await.json();
    assert_eq!(api["webhooks"]["urls"], 2);
    assert!(api["webhooks"]["failed"].as_u64().unwrap() >= failed);
    assert!(api["webhooks"]["dropped"].as_u64().unwrap() >= dropped);
    let text = server.metrics_text();
    assert!(
        text.contains("sluice_webhook_deliveries_total{result=\"dropped\"}"),
        "{text}"
    );
    // Shutdown gives pending deliveries a bounded grace, not the slow receiver's 30 s.
    let t0 = Instant::now();
    assert!(server.shutdown(Duration::from_secs(5)).await);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}
