//! WebRTC transports end to end: ICE-TCP (passive TCP candidate, RFC 4571 framing) carrying
//! a stream to headless Chromium while UDP cannot, SO_REUSEPORT-sharded UDP sockets carrying
//! one to aiortc, and junk on the ICE-TCP port closed and counted while a viewer plays.

use crate::common;
use crate::webrtc_support as support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{http_get, publish, start, test_config, wait_live};
use serde_json::Value;
use support::{chromium_script, stun_request, whep_client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// `GET /api/v1/server` as JSON.
async fn server_info(server: &sluice::RunningServer) -> Value {
    serde_json::from_str(&http_get(server.http_addr(), "/api/v1/server").await.body).unwrap()
}

/// Runs `player_tcp_test.mjs`: the player page in Chromium, with the WHEP answer stripped
/// of its UDP candidates.
async fn chromium_over_tcp(page: &str, seconds: u32) -> Value {
    let args = [page.to_owned(), seconds.to_string()];
    chromium_script("player_tcp_test.mjs", &args, Duration::from_secs(120)).await
}

/// How ICE-TCP is proven to carry the media: the WHEP answer reaches Chromium with only the
/// TCP candidate (the UDP one is removed in flight), and Sluice is ICE-lite, so it never
/// sends a check of its own: Chromium cannot know any UDP address of the server. The test
/// then requires frames and audio decoded in Chromium, frames received over TCP, not a
/// single datagram on the UDP port, and the TCP connection listed in the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_carries_playback_to_chromium_without_udp() {
    let server = start(test_config()).await;
    let rtmp = format!("rtmp://{}/live/tcp", server.rtmp_addr());
    let mut ff = publish(&rtmp, 20, &["-re"]);
    wait_live(&server, "live/tcp").await;

    // The API lists both kinds of candidates.
    let info: Value = server_info(&server).await;
    let w = &info["webrtc"];
    let tcp_listen: SocketAddr = w["tcp_listen"].as_str().unwrap().parse().unwrap();
    assert_eq!(w["tcp_candidates"][0], tcp_listen.to_string(), "{info}");
    assert_eq!(
        w["candidates"][0],
        server.webrtc_addr().unwrap().to_string()
    );
    assert_eq!(w["tcp_connections"], 0);

    let url = format!("http://{}/live/tcp/", server.http_addr());
    let page = tokio::spawn(async move { chromium_over_tcp(&url, 8).await });
    // While it plays, the API shows the ICE-TCP connection.
    let stats = server.webrtc_stats().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: Value = server_info(&server).await;
        if info["webrtc"]["tcp_connections"] == 1 && stats.tcp_frames_in.load(Ordering::Relaxed) > 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "no ICE-TCP connection: {info}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = page.await.unwrap();
    eprintln!("chromium over ICE-TCP: {v}");
    assert!(!v["removed"].as_array().unwrap().is_empty(), "{v}");
    let kept = v["kept"].as_array().unwrap();
    assert!(
        !kept.is_empty()
            && kept
                .iter()
                .all(|c| c.as_str().unwrap().contains("tcptype passive")),
        "{v}"
    );
    let frames = |k: &str| v[k]["stats"]["framesDecoded"].as_u64().unwrap_or(0);
    let samples = |k: &str| v[k]["stats"]["totalSamplesReceived"].as_u64().unwrap_or(0);
    assert_eq!(v["late"]["status"], "connected", "{v}");
    assert!(
        frames("late") >= frames("early") + 50,
        "video frames must grow: {v}"
    );
    assert!(
        samples("late") >= samples("early") + 100_000,
        "audio must grow: {v}"
    );
    assert_eq!(
        stats.datagrams_in.load(Ordering::Relaxed),
        0,
        "nothing may have used UDP"
    );
    // The viewer's STUN consent checks and RTCP (receiver reports about once a second; a
    // broadcast viewer sends no transport-cc feedback) came over TCP.
    let frames_in = stats.tcp_frames_in.load(Ordering::Relaxed);
    assert!(frames_in > 5, "{frames_in} frames from the viewer");
    assert!(stats.bytes_out.load(Ordering::Relaxed) > 100_000);
    assert_eq!(stats.tcp_invalid.load(Ordering::Relaxed), 0);
    let _ = ff.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_plays_over_four_reuseport_udp_sockets() {
    let mut cfg = test_config();
    cfg.webrtc.udp_sockets = 4;
    let server = start(cfg).await;
    let info: Value = server_info(&server).await;
    assert_eq!(info["webrtc"]["udp_sockets"], 4, "{info}");
    let rtmp = format!("rtmp://{}/live/shard", server.rtmp_addr());
    let mut ff = publish(&rtmp, 20, &["-re"]);
    wait_live(&server, "live/shard").await;
    let url = format!("http://{}/live/shard/whep", server.http_addr());
    let r = whep_client(&url, 4.0, false).await;
    eprintln!("whep client: {r}");
    assert_eq!(r["status"], 201, "{r}");
    let v = &r["video"];
    assert!(v["frames"].as_u64().unwrap() >= 50, "video frames: {r}");
    assert_eq!(v["width"], 640, "{r}");
    assert_eq!(v["non_increasing"], 0, "{r}");
    assert!(r["audio"]["frames"].as_u64().unwrap() >= 50, "{r}");
    let stats = server.webrtc_stats().unwrap();
    assert!(stats.datagrams_in.load(Ordering::Relaxed) > 0);
    assert_eq!(stats.send_dropped.load(Ordering::Relaxed), 0);
    let _ = ff.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// Reads until the server closes (bounded by `within`): true when it did.
async fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 256];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, c.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_junk_is_closed_and_counted_while_a_viewer_plays() {
    let mut cfg = test_config();
    cfg.webrtc.ice_timeout_ms = 4000;
    let server = start(cfg).await;
    let rtmp = format!("rtmp://{}/live/junk", server.rtmp_addr());
    let mut ff = publish(&rtmp, 20, &["-re"]);
    wait_live(&server, "live/junk").await;
    let info: Value = server_info(&server).await;
    let tcp: SocketAddr = info["webrtc"]["tcp_listen"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let url = format!("http://{}/live/junk/whep", server.http_addr());
    let viewer = tokio::spawn(async move { whep_client(&url, 7.0, false).await });

    let junk = async move {
        // Random bytes (xorshift, fixed seeds), a 65535 length then nothing, a STUN request
        // for an unknown ufrag, and a slow drip of a frame: each connection stays open on
        // our side until the server closes it.
        let mut conns = Vec::new();
        for seed in [0x9E37_79B9_7F4A_7C15u64, 0xD1B5_4A32_D192_ED03] {
            let mut x = seed;
            let bytes: Vec<u8> = (0..300)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let mut c = TcpStream::connect(tcp).await.unwrap();
            let _ = c.write_all(&bytes).await;
            conns.push(c);
        }
        let mut c = TcpStream::connect(tcp).await.unwrap();
        let _ = c.write_all(&[0xFF, 0xFF]).await;
        conns.push(c);
        let mut c = TcpStream::connect(tcp).await.unwrap();
        let stun = stun_request("nobody:x");
        let mut framed = (stun.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&stun);
        let _ = c.write_all(&framed).await;
        conns.push(c);
        let mut drip = TcpStream::connect(tcp).await.unwrap();
        let t0 = Instant::now();
        for b in framed.iter().take(12) {
            if drip.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for c in &mut conns {
            assert!(
                closed_within(c, Duration::from_secs(6)).await,
                "junk left open"
            );
        }
        assert!(
            closed_within(&mut drip, Duration::from_secs(6)).await,
            "drip left open"
        );
        assert!(
            t0.elapsed() >= Duration::from_millis(3500),
            "drip closed early"
        );
    };
    junk.await;
    let stats = server.webrtc_stats().unwrap();
    assert_eq!(stats.tcp_invalid.load(Ordering::Relaxed), 5);
    assert_eq!(stats.tcp_accepted.load(Ordering::Relaxed), 5);

    let r = viewer.await.unwrap();
    eprintln!("whep client: {r}");
    assert!(
        r["video"]["frames"].as_u64().unwrap() >= 100,
        "video frames: {r}"
    );
    assert_eq!(r["video"]["non_increasing"], 0, "{r}");
    let info: Value = server_info(&server).await;
    assert_eq!(info["webrtc"]["tcp_connections"], 0, "{info}");
    let _ = ff.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
