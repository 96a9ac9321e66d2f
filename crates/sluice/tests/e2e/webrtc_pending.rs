//! WebRTC offers that never connect (security finding 4): a flood of unauthenticated WHEP
//! offers on one keep-alive connection takes at most `webrtc.max_pending_peers_per_ip`
//! slots of its address and `webrtc.max_pending_peers` in all, apart from connected peers;
//! the rest get 503 `{"code":"limit"}` with `Retry-After`, counted. A real viewer (aiortc)
//! still gets in, and once the pending peers time out their address does too. An offer that
//! never connects lists no session and fires no webhook.
//!
//! Every loopback client is 127.0.0.1 unless it binds another 127/8 address: the floods
//! below come from 127.0.0.2 to .4 (their own sockets), the aiortc viewer from 127.0.0.1.

use crate::common;
use crate::webrtc_support as support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use common::{http_get, publish, start, test_config, wait_live};
use serde_json::Value;
use sluice::{EventKind, RunningServer};
use support::{OFFER, post_offer, wait_sessions, whep_client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// One answer to an offer: status, `Retry-After`, body.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn code(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A connection to `server` from the loopback address `source`.
async fn connect_from(source: IpAddr, server: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(source, 0)).unwrap();
    sock.connect(server).await.unwrap()
}

/// Reads one HTTP/1.1 response with a Content-Length body from `sock` (`buf` keeps what
/// follows it); `None` when the server closed the connection.
async fn read_answer(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Answer> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).into_owned();
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_owned())
                })
            };
            let status = head.split_whitespace().nth(1)?.parse().ok()?;
            let len: usize = header("content-length")?.parse().ok()?;
            while buf.len() < pos + 4 + len {
                let n = sock.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[pos + 4..pos + 4 + len].to_vec();
            let retry_after = header("retry-after");
            buf.drain(..pos + 4 + len);
            return Some(Answer {
                status,
                retry_after,
                body,
            });
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// POSTs `n` WHEP offers to `path` one after the other on one keep-alive connection from
/// `source` (a new connection if the server closes one); bounded to 60 s.
async fn flood(server: SocketAddr, source: IpAddr, path: &str, n: usize) -> Vec<Answer> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    );
    let run = async {
        let mut answers = Vec::with_capacity(n);
        let mut conn: Option<(TcpStream, Vec<u8>)> = None;
        let mut reconnects = 0;
        while answers.len() < n {
            let (sock, buf) = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert((connect_from(source, server).await, Vec::new())),
            };
            let answer = match sock.write_all(request.as_bytes()).await {
                Ok(()) => read_answer(sock, buf).await,
                Err(_) => None,
            };
            match answer {
                Some(a) => answers.push(a),
                None => {
                    reconnects += 1;
                    assert!(reconnects <= n, "the server keeps closing the connection");
                    conn = None;
                }
            }
        }
        answers
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the flood finishes in time")
}

/// `sluice_connections_refused_total{protocol="webrtc",reason=...}` now.
fn refused(server: &RunningServer, reason: &str) -> u64 {
    let series =
        format!("sluice_connections_refused_total{{protocol=\"webrtc\",reason=\"{reason}\"}} ");
    server
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn wait_pending(server: &RunningServer, want: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while server.webrtc_pending_peers() != want {
        assert!(
            Instant::now() < deadline,
            "{} pending WebRTC peers, want {want}",
            server.webrtc_pending_peers()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_limit(a: &Answer) {
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.code(), "limit", "{a:?}");
    assert_eq!(a.retry_after.as_deref(), Some("5"), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_flood_cannot_keep_anyone_else_out() {
    const ICE_TIMEOUT: Duration = Duration::from_secs(8);
    const PER_IP: usize = 4;
    const TOTAL: usize = 8;
    const FLOOD: usize = 300;
    let mut cfg = test_config();
    cfg.webrtc.max_pending_peers = TOTAL;
    cfg.webrtc.max_pending_peers_per_ip = PER_IP;
    cfg.webrtc.ice_timeout_ms = ICE_TIMEOUT.as_millis() as u64;
    // Loopback is exempt from per-address limits by default (a local reverse proxy).
    cfg.limits.exempt = Vec::new();
    let server = start(cfg.clone()).await;
    let http = server.http_addr();
    let key = "live/flood";
    let mut ff = publish(
        &format!("rtmp://{}/{key}", server.rtmp_addr()),
        20,
        &["-re"],
    );
    wait_live(&server, key).await;
    let path = format!("/{key}/whep");

    // 1. The flood from one address: its first PER_IP offers are answered (and stay pending:
    //    nobody does ICE for them), every other one is refused at once.
    let t0 = Instant::now();
    let answers = flood(http, loopback(2), &path, FLOOD).await;
    let took = t0.elapsed();
    let ok = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(ok, PER_IP, "answered offers of one address");
    answers
        .iter()
        .filter(|a| a.status != 201)
        .for_each(assert_limit);
    eprintln!(
        "{FLOOD} offers on one connection in {took:?}: {ok} answered, {} refused",
        FLOOD - ok
    );
    assert_eq!(server.webrtc_pending_peers(), PER_IP);
    assert_eq!(
        refused(&server, "pending_peers_per_ip"),
        (FLOOD - PER_IP) as u64
    );

    // 2. A real viewer from another address connects meanwhile and plays.
    let url = format!("http://{http}{path}");
    let viewer = {
        let url = url.clone();
        tokio::spawn(async move { whep_client(&url, 4.0, false).await })
    };
    let stats = server.webrtc_stats().unwrap();
    let connected = || stats.connected.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(6);
    while connected() == 0 {
        assert!(Instant::now() < deadline, "the viewer did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.webrtc_pending_peers(),
        PER_IP,
        "the viewer is no longer pending"
    );
    // While it plays: the flood's address is still refused; a second address fills the
    // total; a third then meets the total cap.
    let again = flood(http, loopback(2), &path, 1).await;
    assert_limit(&again[0]);
    let second = flood(http, loopback(3), &path, PER_IP).await;
    assert!(second.iter().all(|a| a.status == 201), "{second:?}");
    let third = flood(http, loopback(4), &path, 1).await;
    assert_limit(&third[0]);
    assert!(
        String::from_utf8_lossy(&third[0].body).contains("connecting at once"),
        "{:?}",
        third[0]
    );
    assert_eq!(refused(&server, "pending_peers"), 1);
    let r = viewer.await.unwrap();
    assert_eq!(r["status"], 201, "{r}");
    assert_eq!(r["connection_state"], "connected", "{r}");
    assert!(r["video"]["frames"].as_u64().unwrap() > 20, "{r}");
    // The flood's peers were pending the whole time the viewer got in.
    assert!(
        t0.elapsed() < ICE_TIMEOUT,
        "the test ran past the ICE timeout ({:?}): it showed nothing",
        t0.elapsed()
    );
    assert_eq!(connected(), 1);
    assert!(
        server
            .metrics_text()
            .contains(&format!("sluice_webrtc_pending_peers {}", PER_IP + PER_IP)),
        "pending gauge"
    );

    // 3. The same viewer's own address full of pending offers: refused too (the cap is per
    //    address, and the viewer has no privilege) ...
    wait_pending(&server, 0, ICE_TIMEOUT + Duration::from_secs(4)).await;
    let own = flood(http, loopback(1), &path, PER_IP).await;
    assert!(own.iter().all(|a| a.status == 201), "{own:?}");
    let r = whep_client(&url, 1.0, false).await;
    assert_eq!(r["status"], 503, "{r}");
    assert!(r["error"].as_str().unwrap().contains("\"limit\""), "{r}");
    // ... until those time out: then it gets in.
    wait_pending(&server, 0, ICE_TIMEOUT + Duration::from_secs(4)).await;
    let r = whep_client(&url, 2.0, false).await;
    assert_eq!(r["status"], 201, "{r}");
    assert_eq!(r["connection_state"], "connected", "{r}");
    wait_sessions(&server, 0, Duration::from_secs(5), "after the viewers left").await;
    assert_eq!(server.webrtc_pending_peers(), 0);
    let _ = ff.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);

    // 4. An exempt address (here all of loopback, the default) meets only the total cap.
    cfg.limits.exempt = vec!["127.0.0.0/8".into()];
    let server = start(cfg).await;
    let _p = server
        .hub()
        .publish(
            key,
            hub::PublisherInfo {
                protocol: "rtmp",
                remote: String::new(),
            },
        )
        .unwrap();
    let answers = flood(server.http_addr(), loopback(2), &path, TOTAL + 2).await;
    assert_eq!(answers.iter().filter(|a| a.status == 201).count(), TOTAL);
    answers[TOTAL..].iter().for_each(assert_limit);
    assert_eq!(refused(&server, "pending_peers"), 2);
    assert_eq!(refused(&server, "pending_peers_per_ip"), 0);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// The webhook events the receiver got (their JSON bodies).
#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<Vec<Value>>>);

impl Hooks {
    fn events(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }

    /// (event, protocol) of each event about `stream`.
    fn of(&self, stream: &str) -> Vec<(String, String)> {
        self.events()
            .iter()
            .filter(|e| e["stream"] == stream)
            .map(|e| {
                (
                    e["event"].as_str().unwrap_or_default().to_owned(),
                    e["protocol"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

async fn hook(State(h): State<Hooks>, body: Bytes) -> StatusCode {
    if let Ok(v) = serde_json::from_slice(&body) {
        h.0.lock().unwrap().push(v);
    }
    StatusCode::OK
}

/// A webhook receiver on 127.0.0.1:0: its URL and what it got.
async fn receiver() -> (String, Hooks) {
    let hooks = Hooks::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(hooks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), hooks)
}

async fn webrtc_api_sessions(server: &RunningServer) -> usize {
    let r = http_get(server.http_addr(), "/api/v1/sessions").await;
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["protocol"] == "webrtc")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_that_never_connect_list_nothing_and_fire_no_webhook() {
    let (url, hooks) = receiver().await;
    let mut cfg = test_config();
    cfg.webhooks.urls = vec![url];
    cfg.webrtc.ice_timeout_ms = 1000;
    let server = start(cfg).await;
    let http = server.http_addr();
    let key = "live/hooked";
    let mut ff = publish(
        &format!("rtmp://{}/{key}", server.rtmp_addr()),
        20,
        &["-re"],
    );
    wait_live(&server, key).await;

    // A WHEP offer and a WHIP offer (a sendonly twin of the same SDP) that never connect.
    let r = post_offer(http, &format!("/{key}/whep"), OFFER.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let whip_offer = OFFER.replace("a=recvonly", "a=sendonly");
    let r = post_offer(http, "/live/ghost/whip", whip_offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(server.webrtc_pending_peers(), 2);
    assert_eq!(
        webrtc_api_sessions(&server).await,
        0,
        "pending peers are no sessions"
    );
    // Both are dropped at the ICE timeout, never having been sessions.
    wait_sessions(&server, 0, Duration::from_secs(5), "after the ICE timeout").await;
    assert_eq!(server.webrtc_pending_peers(), 0);
    let w = &server.stats().webhooks;
    assert_eq!(w.events(EventKind::Play), 0);
    assert_eq!(w.events(EventKind::Stop), 0);
    assert_eq!(w.events(EventKind::Publish), 1, "the RTMP publisher's only");
    assert_eq!(w.events(EventKind::Unpublish), 0);

    // A viewer that connects is a session from then on: play, then stop when it leaves.
    let v = whep_client(&format!("http://{http}/{key}/whep"), 2.0, false).await;
    assert_eq!(v["status"], 201, "{v}");
    assert_eq!(v["connection_state"], "connected", "{v}");
    wait_sessions(&server, 0, Duration::from_secs(5), "after the viewer left").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hooks.of(key).iter().any(|(e, _)| e == "stop") {
        assert!(
            Instant::now() < deadline,
            "no stop event: {:?}",
            hooks.events()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let webrtc: Vec<String> = hooks
        .of(key)
        .into_iter()
        .filter(|(_, p)| p == "webrtc")
        .map(|(e, _)| e)
        .collect();
    assert_eq!(webrtc, ["play", "stop"], "{:?}", hooks.events());
    assert!(
        hooks.of("live/ghost").is_empty(),
        "the WHIP offer that never connected: {:?}",
        hooks.of("live/ghost")
    );
    assert_eq!(w.events(EventKind::Play), 1);
    let _ = ff.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
