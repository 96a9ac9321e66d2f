//! Connection limits and fairness (`[limits]`) with real clients: viewers per stream,
//! publishers per app, connections per address and per second, the global connection cap,
//! and HTTP request-head size and time limits. After each, a healthy publish and viewer still
//! work.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use sluice::{ListenerKind, RunningServer, ViewerProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Child;
use tokio::time::Instant;

/// The refusal counter of `protocol` and `reason` in the metrics text (0 when absent).
fn refused(server: &RunningServer, protocol: &str, reason: &str) -> u64 {
    let series =
        format!("sluice_connections_refused_total{{protocol=\"{protocol}\",reason=\"{reason}\"}} ");
    server
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// Viewers of `key` over every protocol, as the server counts them.
fn viewers(server: &RunningServer, key: &str) -> u64 {
    server.stream_counters().get(key).map_or(0, |c| {
        ViewerProtocol::ALL
            .iter()
            .map(|p| c.viewers.get(*p))
            .sum::<u64>()
    })
}

/// Waits (bounded) until `cond` holds.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) for an ffmpeg process to exit and returns whether it succeeded.
async fn exit_success(child: &mut Child, within: Duration) -> bool {
    tokio::time::timeout(within, child.wait())
        .await
        .expect("ffmpeg exits in time")
        .expect("ffmpeg status")
        .success()
}

/// True when the server closed `sock` (EOF or reset) within `within`; false if it stayed
/// open that long.
async fn closed_within(sock: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn rtmp_url(server: &RunningServer, key: &str) -> String {
    format!("rtmp://{}/{key}", server.rtmp_addr())
}

/// A fresh publish to `key` and an HTTP-FLV viewer that receives a video keyframe.
async fn assert_healthy(server: &RunningServer, key: &str) {
    let mut publisher = publish(&rtmp_url(server, key), -1, &["-re"]);
    wait_live(server, key).await;
    let mut viewer = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut keyframe = false;
    while !keyframe && Instant::now() < deadline {
        let tags = viewer.read_tags(Duration::from_secs(2)).await;
        keyframe = tags
            .iter()
            .any(|t| t.kind == media::MediaKind::Video && t.keyframe);
        if viewer.ended {
            break;
        }
    }
    assert_eq!(viewer.status, 200, "healthy viewer admitted");
    assert!(keyframe, "healthy viewer got a keyframe");
    let _ = publisher.kill().await;
}

#[tokio::test]
async fn viewers_per_stream_refuses_beyond_the_limit_across_protocols() {
    let mut cfg = test_config();
    cfg.limits.max_viewers_per_stream = 2;
    let server = start(cfg).await;
    let key = "live/popular";
    let mut publisher = publish(&rtmp_url(&server, key), -1, &["-re"]);
    wait_live(&server, key).await;

    // Two viewers: RTMP (ffmpeg) and HTTP-FLV.
    let mut rtmp_viewer = play_null(&rtmp_url(&server, key));
    let mut flv_viewer = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    assert!(
        !flv_viewer
            .read_tags(Duration::from_secs(5))
            .await
            .is_empty()
    );
    assert_eq!(flv_viewer.status, 200);
    wait_for("two viewers", || viewers(&server, key) == 2).await;

    // A third over RTMP: NetStream.Play.Failed, ffmpeg exits with an error.
    let mut third = play_null(&rtmp_url(&server, key));
    assert!(
        !exit_success(&mut third, Duration::from_secs(15)).await,
        "third RTMP viewer refused"
    );
    // A third over HTTP-FLV: 503 with the JSON limit error.
    let resp = http_get(server.http_addr(), &format!("/{key}.flv")).await;
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert_eq!(resp.json()["code"], "limit");
    assert!(
        resp.json()["message"]
            .as_str()
            .unwrap()
            .contains("live/popular")
    );
    assert_eq!(refused(&server, "rtmp", "viewers_per_stream"), 1);
    assert_eq!(refused(&server, "http-flv", "viewers_per_stream"), 1);

    // The admitted viewers keep receiving.
    let before = flv_viewer.read_tags(Duration::from_secs(3)).await;
    assert!(!before.is_empty(), "first viewers keep flowing");
    assert!(
        rtmp_viewer.try_wait().expect("status").is_none(),
        "RTMP viewer still playing"
    );

    // One leaves: a new viewer gets in.
    let _ = rtmp_viewer.kill().await;
    wait_for("one viewer left", || viewers(&server, key) == 1).await;
    let mut newcomer = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    assert!(!newcomer.read_tags(Duration::from_secs(5)).await.is_empty());
    assert_eq!(newcomer.status, 200);
    assert!(
        !flv_viewer
            .read_tags(Duration::from_secs(3))
            .await
            .is_empty()
    );

    drop(newcomer);
    drop(flv_viewer);
    let _ = publisher.kill().await;
    assert_healthy(&server, "live/after-viewers").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn publishers_per_app_refuses_the_next_publisher() {
    let mut cfg = test_config();
    cfg.limits.max_publishers_per_app = 1;
    let server = start(cfg).await;
    let mut first = publish(&rtmp_url(&server, "live/one"), -1, &["-re"]);
    wait_live(&server, "live/one").await;

    let mut second = publish(&rtmp_url(&server, "live/two"), 0, &["-re"]);
    assert!(
        !exit_success(&mut second, Duration::from_secs(15)).await,
        "second publisher in the app refused"
    );
    assert!(server.hub().stream("live/two").is_none_or(|s| !s.is_live));
    assert_eq!(refused(&server, "rtmp", "publishers_per_app"), 1);
    assert!(server.hub().stream("live/one").is_some_and(|s| s.is_live));

    // Another app has its own count.
    assert_healthy(&server, "other/stream").await;
    // The first publisher leaves: the app takes a new one.
    let _ = first.kill().await;
    let _ = first.wait().await;
    assert_healthy(&server, "live/three").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn per_ip_concurrent_connections_are_capped_and_counted() {
    let mut cfg = test_config();
    cfg.limits.max_connections_per_ip = 4;
    cfg.limits.connections_per_ip_per_second = 0;
    // Loopback is exempt by default; these clients are loopback.
    cfg.limits.exempt = Vec::new();
    let server = start(cfg).await;
    let addr = server.rtmp_addr();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    wait_for("four open", || {
        server.open_connections(ListenerKind::Rtmp) == 4
    })
    .await;
    // The fifth is closed at once (on any listener: the limit is per address).
    let mut fifth = TcpStream::connect(addr).await.expect("connect");
    assert!(closed_within(&mut fifth, Duration::from_secs(1)).await);
    let mut http = TcpStream::connect(server.http_addr())
        .await
        .expect("connect");
    assert!(closed_within(&mut http, Duration::from_secs(1)).await);
    assert_eq!(refused(&server, "rtmp", "per_ip_connections"), 1);
    assert_eq!(refused(&server, "http", "per_ip_connections"), 1);
    assert!(
        server
            .metrics_text()
            .contains("sluice_connections_open{listener=\"rtmp\"} 4")
    );

    // Closing one admits a new one.
    drop(held.pop());
    wait_for("three open", || {
        server.open_connections(ListenerKind::Rtmp) == 3
    })
    .await;
    let mut again = TcpStream::connect(addr).await.expect("connect");
    assert!(!closed_within(&mut again, Duration::from_millis(500)).await);
    drop(again);
    drop(held);
    wait_for("none open", || {
        server.open_connections(ListenerKind::Rtmp) == 0
    })
    .await;
    assert_healthy(&server, "live/after-per-ip").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn per_ip_connection_rate_refuses_a_burst_then_refills() {
    let mut cfg = test_config();
    cfg.limits.connections_per_ip_per_second = 2;
    cfg.limits.connections_per_ip_burst = 5;
    cfg.limits.exempt = Vec::new();
    let server = start(cfg).await;
    let addr = server.rtmp_addr();
    let mut socks = Vec::new();
    for _ in 0..8 {
        socks.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut closed = 0;
    for s in &mut socks {
        if closed_within(s, Duration::from_millis(300)).await {
            closed += 1;
        }
    }
    // The burst of 5 (perhaps one more refilled meanwhile) got in; the rest were closed.
    assert!((2..=3).contains(&closed), "closed {closed} of 8");
    assert_eq!(refused(&server, "rtmp", "per_ip_rate"), closed);
    drop(socks);

    // After a refill (2 per second) connections succeed again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut later = TcpStream::connect(addr).await.expect("connect");
    assert!(!closed_within(&mut later, Duration::from_millis(300)).await);
    drop(later);
    // The bucket refills fully for the health check (5 tokens at 2/s).
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_healthy(&server, "live/after-rate").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn global_connection_limit_spans_listeners_and_exempt_skips_per_ip() {
    let mut cfg = test_config();
    cfg.limits.max_connections = 3;
    cfg.limits.max_connections_per_ip = 1;
    cfg.limits.exempt = vec!["127.0.0.0/8".into()];
    let server = start(cfg).await;
    // Loopback is exempt from the per-address limit of 1, not from the global 3.
    let a = TcpStream::connect(server.rtmp_addr()).await.expect("a");
    let b = TcpStream::connect(server.rtmp_addr()).await.expect("b");
    let c = TcpStream::connect(server.http_addr()).await.expect("c");
    wait_for("three open", || {
        server.open_connections(ListenerKind::Rtmp) == 2
            && server.open_connections(ListenerKind::Http) == 1
    })
    .await;
    let mut d = TcpStream::connect(server.http_addr()).await.expect("d");
    assert!(closed_within(&mut d, Duration::from_secs(1)).await);
    assert_eq!(refused(&server, "http", "max_connections"), 1);
    drop((a, b, c));
    wait_for("all closed", || {
        server.open_connections(ListenerKind::Rtmp) == 0
            && server.open_connections(ListenerKind::Http) == 0
    })
    .await;
    assert_healthy(&server, "live/after-global").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// Sends `head` (ignoring write errors once the server has answered or closed) and reads
/// the answer until close.
async fn raw_exchange(addr: SocketAddr, head: Vec<u8>) -> Vec<u8> {
    let sock = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = sock.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&head).await;
        wr
    });
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut raw))
        .await
        .expect("server answers or closes in time");
    drop(writer.await);
    raw
}

#[tokio::test]
async fn oversized_request_head_gets_431_and_the_server_stays_healthy() {
    let server = start(test_config()).await;
    let mut head = b"GET /api/v1/server HTTP/1.1\r\nHost: test\r\n".to_vec();
    for i in 0..64 {
        head.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let raw = raw_exchange(server.http_addr(), head).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 431"),
        "64 KiB of headers: {text:?}"
    );
    // A normal request still works.
    let ok = http_get(server.http_addr(), "/api/v1/server").await;
    assert_eq!(ok.status, 200);
    // The API counts open connections per listener: this request's own.
    assert_eq!(ok.json()["connections"]["http"], 1, "{}", ok.body);
    assert_eq!(ok.json()["connections"]["rtmp"], 0);
    assert_healthy(&server, "live/after-431").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn slowloris_is_closed_after_the_header_timeout() {
    let mut cfg = test_config();
    cfg.limits.http_header_timeout_ms = 1000;
    let server = start(cfg).await;
    let mut sock = TcpStream::connect(server.http_addr())
        .await
        .expect("connect");
    let started = Instant::now();
    sock.write_all(b"GET /api/v1/server HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .await
        .expect("start");
    let mut closed_after = None;
    // One header byte every 250 ms, at most 40 of them (10 s).
    for _ in 0..40 {
        if closed_within(&mut sock, Duration::from_millis(250)).await {
            closed_after = Some(started.elapsed());
            break;
        }
        if sock.write_all(b"a").await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let after = closed_after.expect("the slow client was closed");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(4),
        "closed after {after:?}"
    );
    let ok = http_get(server.http_addr(), "/api/v1/server").await;
    assert_eq!(ok.status, 200);
    assert_healthy(&server, "live/after-slowloris").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
