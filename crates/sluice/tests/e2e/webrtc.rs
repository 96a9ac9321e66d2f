//! WebRTC (WHEP) end to end: ffmpeg publishes the fixture over RTMP and aiortc, an
//! independent WebRTC stack, plays it over WHEP on loopback (H.264 passed through, AAC
//! transcoded to Opus by the hub's derived track). Also the WHEP error answers, CORS, cleanup after DELETE, kick and
//! timeout, and hostile datagrams on the shared UDP port.
//!
//! aiortc comes from the venv `scripts/test.sh` creates (`.venv-test`); set `SLUICE_PYTHON`
//! to use another interpreter.

use crate::common;
use crate::webrtc_support as support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{http_get, http_request_with, publish, start, test_config, wait_live};
use serde_json::Value;
use sluice::RunningServer;
use support::{
    OFFER, blast_noise, chromium_script, post_offer, process_cpu_ms, stun_request, wait_sessions,
    whep_client,
};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_plays_rtmp_stream_in_aiortc_and_cleans_up() {
    // Its own process: the CPU figure below is this process's.
    if !common::own_process(
        module_path!(),
        "whep_plays_rtmp_stream_in_aiortc_and_cleans_up",
    )
    .await
    {
        return;
    }
    let server = start(test_config()).await;
    let rtmp = format!("rtmp://{}/live/rtc", server.rtmp_addr());
    let mut ff = publish(&rtmp, 20, &["-re"]);
    wait_live(&server, "live/rtc").await;

    // Hostile datagrams first: dropped and counted, and the peer below still plays.
    let udp = server.webrtc_addr().expect("webrtc enabled");
    blast_noise(udp, 2000).await;
    let stats = server.webrtc_stats().unwrap();
    // Wait until the reader has taken what the kernel kept (it may drop some under load);
    // with no peer yet, every datagram that arrived must have been dropped and counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = stats.datagrams_in.load(Ordering::Relaxed);
        if now == seen && now > 0 {
            break;
        }
        seen = now;
        assert!(Instant::now() < deadline, "noise never settled");
    }
    assert!(seen >= 100, "only {seen} noise datagrams arrived");
    assert_eq!(stats.datagrams_dropped.load(Ordering::Relaxed), seen);
    let text = server.metrics_text();
    assert!(
        text.contains(&format!(
            "sluice_webrtc_datagrams_total{{result=\"dropped\"}} {seen}"
        )),
        "{text}"
    );

    // Server CPU (this process: the in-process server; ffmpeg and the client are children)
    // with the publisher alone, then with one WebRTC viewer: a rough per-viewer figure
    // (the viewer's share includes the stream's AAC-to-Opus transcoder). Printed only.
    let (c0, t0) = (process_cpu_ms(), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base = (process_cpu_ms() - c0) as f64 / t0.elapsed().as_secs_f64();
    let url = format!("http://{}/live/rtc/whep", server.http_addr());
    let (c1, t1) = (process_cpu_ms(), Instant::now());
    let r = whep_client(&url, 4.0, false).await;
    let with = (process_cpu_ms() - c1) as f64 / t1.elapsed().as_secs_f64();
    eprintln!("server CPU: {base:.0} ms/s publisher only, {with:.0} ms/s with one WebRTC viewer");
    eprintln!("whep client: {r}");
    assert_eq!(r["status"], 201, "{r}");
    assert!(
        r["location"]
            .as_str()
            .unwrap()
            .starts_with("/live/rtc/whep/"),
        "{r}"
    );
    assert!(r["etag"].as_str().is_some(), "{r}");
    let v = &r["video"];
    assert!(v["frames"].as_u64().unwrap() >= 50, "video frames: {r}");
    assert_eq!(v["width"], 640, "{r}");
    assert_eq!(v["height"], 360, "{r}");
    assert_eq!(v["non_increasing"], 0, "video pts must increase: {r}");
    assert!(v["last_pts"].as_i64() > v["first_pts"].as_i64(), "{r}");
    let a = &r["audio"];
    assert!(a["frames"].as_u64().unwrap() > 100, "audio frames: {r}");
    assert_eq!(a["sample_rate"], 48000, "{r}");
    assert_eq!(r["delete_status"], 200, "{r}");

    // DELETE frees everything: the session, the API entry, and (after its linger) the
    // stream's derived Opus track.
    wait_sessions(&server, 0, Duration::from_secs(5), "after DELETE").await;
    let deadline = Instant::now() + hub::DERIVED_LINGER + Duration::from_secs(5);
    while server.webrtc_transcoders() != 0 || webrtc_api_sessions(&server).await != 0 {
        assert!(Instant::now() < deadline, "transcoder or API entry left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stats.connected.load(Ordering::Relaxed) >= 1);
    assert!(stats.bytes_out.load(Ordering::Relaxed) > 100_000);
    let text = server.metrics_text();
    assert!(text.contains("sluice_webrtc_peers 0"), "{text}");
    assert!(text.contains("sluice_webrtc_connected_total 1"), "{text}");
    assert!(
        text.contains(r#"sluice_viewers{protocol="webrtc"} 0"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"sluice_egress_bytes_total{protocol="webrtc"} 0"#),
        "{text}"
    );
    if let Some((median, n)) = stats.latency_median_us() {
        eprintln!("hub frame -> RTP sent: median {median} us over {n} live video frames");
    }
    let _ = ff.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// The `webrtc` quality object of the one WebRTC session in `/api/v1/sessions`, once it has
/// an RTT and a loss fraction (Chromium's receiver reports carry both), or what it last had
/// after about 8 s.
async fn browser_quality(server: &RunningServer) -> Value {
    let mut last = Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = http_get(server.http_addr(), "/api/v1/sessions").await;
        let items = r.json()["items"].as_array().cloned().unwrap_or_default();
        if let Some(q) = items.iter().find(|i| i["protocol"] == "webrtc") {
            last = q["webrtc"].clone();
            if last["rtt_ms"].is_number() && last["loss_fraction"].is_number() {
                break;
            }
        }
    }
    last
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
async fn whep_viewer_is_listed_kicked_and_timed_out() {
    let mut cfg = test_config();
    cfg.webrtc.ice_timeout_ms = 2000;
    let server = start(cfg).await;
    let rtmp = format!("rtmp://{}/live/kick", server.rtmp_addr());
    let mut ff = publish(&rtmp, 20, &["-re"]);
    wait_live(&server, "live/kick").await;
    let url = format!("http://{}/live/kick/whep", server.http_addr());

    // 1. Listed by the API with protocol "webrtc", then kicked through it.
    let client = {
        let url = url.clone();
        tokio::spawn(async move { whep_client(&url, 8.0, true).await })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let id = loop {
        let r = http_get(server.http_addr(), "/api/v1/sessions").await;
        let v = r.json();
        let hit = v["items"].as_array().unwrap().iter().find(|i| {
            i["protocol"] == "webrtc"
                && i["kind"] == "viewer"
                && i["stream"] == "live/kick"
                && i["bytes"].as_u64().unwrap_or(0) > 10_000
        });
        if let Some(h) = hit {
            break h["id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or(h["id"].to_string());
        }
        assert!(
            Instant::now() < deadline,
            "no flowing webrtc session listed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let streams = http_get(server.http_addr(), "/api/v1/streams/live/kick").await;
    assert_eq!(streams.status, 200, "{}", streams.body);
    assert_eq!(
        streams.json()["viewers"]["webrtc"].as_u64(),
        Some(1),
        "{}",
        streams.body
    );
    let kicked = http_request_with(
        server.http_addr(),
        "DELETE",
        &format!("/api/v1/sessions/{id}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(kicked.status, 204, "kick: {}", kicked.text());
    wait_sessions(&server, 0, Duration::from_secs(3), "after kick").await;
    // The kicked viewer had played.
    let r = client.await.expect("the client task");
    assert_eq!(r["status"], 201, "{r}");
    assert!(r["video"]["frames"].as_u64().unwrap_or(0) > 0, "{r}");

    // 2. A viewer that vanishes without DELETE is timed out (ice_timeout_ms = 2 s).
    let r = whep_client(&url, 2.0, true).await;
    assert_eq!(r["status"], 201, "{r}");
    assert!(r["video"]["frames"].as_u64().unwrap() > 0, "{r}");
    wait_sessions(
        &server,
        0,
        Duration::from_secs(6),
        "after the viewer vanished",
    )
    .await;
    // The derived Opus track stops once its linger after the last viewer ran out.
    let deadline = Instant::now() + hub::DERIVED_LINGER + Duration::from_secs(5);
    while server.webrtc_transcoders() != 0 {
        assert!(Instant::now() < deadline, "derived Opus track left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = ff.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn whep_http_errors_cors_and_resources() {
    let server = start(test_config()).await;
    let addr = server.http_addr();
    // A live stream without any media (the hub knows it; enough for signalling).
    let _publisher = server
        .hub()
        .publish(
            "live/sig",
            hub::PublisherInfo {
                protocol: "rtmp",
                remote: String::new(),
            },
        )
        .unwrap();

    // 404 JSON for a stream that does not exist.
    let r = post_offer(addr, "/live/nope/whep", OFFER.as_bytes()).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "not_found");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));

    // 400 with a reason for malformed SDP and for an offer with nothing we can send.
    let r = post_offer(addr, "/live/sig/whep", b"hello").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("v=0"));
    let vp8 = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
    let r = post_offer(addr, "/live/sig/whep", vp8.as_bytes()).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"].as_str().unwrap().contains("H.264"),
        "{:?}",
        r.json()
    );

    // 415 for the wrong content type; 413 over max_sdp_bytes.
    let r = http_request_with(
        addr,
        "POST",
        "/live/sig/whep",
        &[("Content-Type", "text/plain"), ("Content-Length", "3")],
        b"v=0",
    )
    .await;
    assert_eq!(r.status, 415);
    let big = vec![b'a'; 40 * 1024];
    let r = post_offer(addr, "/live/sig/whep", &big).await;
    assert_eq!(r.status, 413);

    // CORS preflight on the endpoint and on a resource.
    let r = http_request_with(addr, "OPTIONS", "/live/sig/whep", &[], b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert!(
        r.header("access-control-allow-headers")
            .unwrap()
            .contains("Content-Type")
    );
    let expose = r.header("access-control-expose-headers").unwrap();
    assert!(
        expose.contains("Location") && expose.contains("ETag"),
        "{expose}"
    );

    // A valid offer: 201 with the answer, Location and ETag.
    let r = post_offer(addr, "/live/sig/whep", OFFER.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    let answer = String::from_utf8_lossy(&r.body).into_owned();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(
        answer.contains("H264/90000") && answer.contains("opus/48000"),
        "{answer}"
    );
    let udp = server.webrtc_addr().unwrap();
    assert!(
        answer.contains(&format!("127.0.0.1 {}", udp.port())),
        "candidate {udp} in {answer}"
    );
    let info = http_get(addr, "/api/v1/server").await.json();
    assert_eq!(info["webrtc"]["listen"], udp.to_string(), "{info}");
    assert_eq!(info["webrtc"]["candidates"][0], udp.to_string(), "{info}");
    assert_eq!(info["webrtc"]["peers"], 1, "{info}");
    let location = r.header("location").unwrap().to_owned();
    assert!(location.starts_with("/live/sig/whep/"), "{location}");
    let etag = r.header("etag").unwrap().to_owned();
    assert_eq!(server.webrtc_sessions(), 1);

    // PATCH: trickle candidates 204, wrong ETag 412, ICE restart without If-Match 428 (RFC
    // 9725 requires `If-Match: *`; webrtc_restart.rs covers restarts), unknown
    // resource 404.
    let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n";
    let len = frag.len().to_string();
    let trickle = [
        ("Content-Type", "application/trickle-ice-sdpfrag"),
        ("Content-Length", len.as_str()),
        ("If-Match", etag.as_str()),
    ];
    let r = http_request_with(addr, "PATCH", &location, &trickle, frag.as_bytes()).await;
    assert_eq!(r.status, 204);
    let mut wrong = trickle;
    wrong[2].1 = "\"nope\"";
    let r = http_request_with(addr, "PATCH", &location, &wrong, frag.as_bytes()).await;
    assert_eq!(r.status, 412);
    let restart = frag.replace("ice-ufrag:abcd", "ice-ufrag:efgh");
    let rlen = restart.len().to_string();
    let r = http_request_with(
        addr,
        "PATCH",
        &location,
        &[
            ("Content-Type", "application/trickle-ice-sdpfrag"),
            ("Content-Length", rlen.as_str()),
        ],
        restart.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 428, "{}", r.text());
    let r = http_request_with(
        addr,
        "PATCH",
        "/live/sig/whep/ffff",
        &trickle[..2],
        frag.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "not_found");

    // A viewer not yet connected is pending, not a session: the API does not list it (and no
    // `play` webhook fired: tests/webrtc_pending.rs).
    assert_eq!(webrtc_api_sessions(&server).await, 0);
    assert_eq!(server.webrtc_pending_peers(), 1);
    let info = http_get(addr, "/api/v1/server").await.json();
    assert_eq!(info["webrtc"]["pending_peers"], 1, "{info}");

    // DELETE ends it and frees everything; a second DELETE is 404.
    let r = http_request_with(addr, "DELETE", &location, &[], b"").await;
    assert_eq!(r.status, 200);
    wait_sessions(&server, 0, Duration::from_secs(3), "after DELETE").await;
    assert_eq!(webrtc_api_sessions(&server).await, 0);
    assert_eq!(server.webrtc_pending_peers(), 0);
    let r = http_request_with(addr, "DELETE", &location, &[], b"").await;
    assert_eq!(r.status, 404);

    // max_peers: with a limit of 1 the second offer gets 503.
    assert!(server.shutdown(Duration::from_secs(5)).await);
    let mut cfg = test_config();
    cfg.webrtc.max_peers = 1;
    let server = start(cfg).await;
    let _p = server
        .hub()
        .publish(
            "live/sig",
            hub::PublisherInfo {
                protocol: "rtmp",
                remote: String::new(),
            },
        )
        .unwrap();
    let r = post_offer(server.http_addr(), "/live/sig/whep", OFFER.as_bytes()).await;
    assert_eq!(r.status, 201);
    let r = post_offer(server.http_addr(), "/live/sig/whep", OFFER.as_bytes()).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "limit");
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(server.shutdown(Duration::from_secs(5)).await);

    // ICE/DTLS timeout: a peer that keeps sending (unauthenticated) STUN to its session but
    // never completes ICE and DTLS is freed after ice_timeout_ms, traffic or not.
    let mut cfg = test_config();
    cfg.webrtc.ice_timeout_ms = 1000;
    let server = start(cfg).await;
    let _p = server
        .hub()
        .publish(
            "live/sig",
            hub::PublisherInfo {
                protocol: "rtmp",
                remote: String::new(),
            },
        )
        .unwrap();
    let r = post_offer(server.http_addr(), "/live/sig/whep", OFFER.as_bytes()).await;
    assert_eq!(r.status, 201);
    let answer = String::from_utf8_lossy(&r.body).into_owned();
    let ufrag = answer
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .expect("answer has a ufrag")
        .to_owned();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp = server.webrtc_addr().unwrap();
    let start_at = Instant::now();
    while server.webrtc_sessions() != 0 {
        assert!(
            start_at.elapsed() < Duration::from_secs(4),
            "session not freed by the connect timeout"
        );
        let _ = sock
            .send_to(&stun_request(&format!("{ufrag}:abcd")), udp)
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        start_at.elapsed() >= Duration::from_millis(800),
        "freed too early"
    );
    let stats = server.webrtc_stats().unwrap();
    assert_eq!(stats.connected.load(Ordering::Relaxed), 0);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn player_page_coexists_with_hls_and_whep_routes() {
    let server = start(test_config()).await;
    let addr = server.http_addr();
    let r = http_request_with(addr, "GET", "/live/cam/", &[], b"").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("connect-src 'self'")
    );
    let html = String::from_utf8_lossy(&r.body);
    assert!(
        html.contains("RTCPeerConnection") && html.contains("new URL(\"whep\""),
        "{html}"
    );
    // The HLS route still answers `/{app}/{stream}/{file}` (its own 404 for a stream that
    // is not live), and `whep` is not taken for an HLS file.
    let r = http_request_with(addr, "GET", "/live/cam/index.m3u8", &[], b"").await;
    assert_eq!(r.status, 404);
    assert!(String::from_utf8_lossy(&r.body).contains("not live"));
    let r = http_request_with(addr, "GET", "/live/cam/whep", &[], b"").await;
    assert_eq!(r.status, 405);
    // HTTP-FLV on `/{app}/{file}` is untouched.
    let r = http_request_with(addr, "GET", "/live/cam.flv", &[], b"").await;
    assert_eq!(r.status, 404);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_page_plays_in_headless_chromium() {
    let server = start(test_config()).await;
    let rtmp = format!("rtmp://{}/live/page", server.rtmp_addr());
    let mut ff = publish(&rtmp, 20, &["-re"]);
    wait_live(&server, "live/page").await;
    let url = format!("http://{}/live/page/", server.http_addr());
    let args = [url, "7".to_owned()];
    let run = tokio::spawn(async move {
        chromium_script("player_test.mjs", &args, Duration::from_secs(120)).await
    });
    // While Chromium plays, its receiver reports give the server what aiortc's do not: a
    // round-trip time (LSR/DLSR) and a loss fraction. A broadcast viewer negotiates no
    // transport-cc and the server runs no bandwidth estimation for it: no estimate.
    let quality = browser_quality(&server).await;
    let v = run.await.expect("the chromium task runs");
    eprintln!("chromium: {v}");
    eprintln!("chromium viewer's quality: {quality}");
    let rtt = quality["rtt_ms"].as_f64().unwrap_or(-1.0);
    assert!(
        rtt > 0.0 && rtt < 1000.0,
        "loopback RTT from RTCP: {quality}"
    );
    let loss = quality["loss_fraction"].as_f64().unwrap_or(-1.0);
    assert!(
        (0.0..=0.05).contains(&loss),
        "loopback loss fraction: {quality}"
    );
    assert!(quality["estimate_bps"].is_null(), "no BWE: {quality}");
    assert!(
        quality["packets_sent"].as_u64().unwrap_or(0) > 20,
        "{quality}"
    );
    assert_eq!(quality["candidate_pair"]["protocol"], "udp", "{quality}");
    let frames = |k: &str| v[k]["stats"]["framesDecoded"].as_u64().unwrap_or(0);
    let samples = |k: &str| v[k]["stats"]["totalSamplesReceived"].as_u64().unwrap_or(0);
    assert_eq!(v["late"]["status"], "connected", "{v}");
    // About 4 s between the two readings at 25 fps and 48 kHz.
    assert!(
        frames("late") >= frames("early") + 50,
        "video frames must grow: {v}"
    );
    assert!(
        samples("late") >= samples("early") + 100_000,
        "audio must grow: {v}"
    );
    let _ = ff.kill().await;
    // Closing the browser leaves the session to the ICE timeout or its DTLS close.
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_offers_go_through_access_control() {
    let mut cfg = test_config();
    cfg.auth.rules.push(sluice::configuration::AuthRule {
        pattern: "secure/*".into(),
        publish: sluice::configuration::AuthMode::Deny,
        play: sluice::configuration::AuthMode::Deny,
        allow_ips: vec![],
        deny_ips: vec![],
    });
    let server = start(cfg).await;
    let addr = server.http_addr();
    let r = post_offer(addr, "/secure/cam/whep", OFFER.as_bytes()).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "deny_rule");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // Other apps stay open: the unknown stream is a 404, not a refusal.
    let r = post_offer(addr, "/live/nope/whep", OFFER.as_bytes()).await;
    assert_eq!(r.status, 404);
    assert!(
        server.metrics_text().contains(
            r#"sluice_auth_refused_total{protocol="webrtc",action="play",reason="deny_rule"} 1"#
        ),
        "the refusal is counted"
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
