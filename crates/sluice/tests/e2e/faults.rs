//! Fault injection end to end: publishers that vanish mid-message, oversized message headers,
//! half-open handshakes by the thousand, viewers that never read or leave during the GOP
//! burst, random bytes on every listener, connect/disconnect churn, and SIGTERM with all of
//! that in flight. After each fault the server must still serve a healthy stream (ffmpeg
//! publishes, ffmpeg decodes every frame with monotonic timestamps) and its live sessions and
//! open descriptors must return to the baseline.
//!
//! The server runs in the test's process, so `/proc/self` (RSS, descriptors) measures it: each
//! test that measures runs in a child process of its own (`common::own_process`), where no
//! other test's sockets or memory are counted, and the fault tests take turns (one lock) so
//! their loads do not add up.

use crate::common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::rtmp_client::RtmpClient;
use common::*;
use futures_util::future::join_all;
use media::{FrameRole, MediaKind};
use rtmp::ClientEvent;
use sluice::{Config, RunningServer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::process::Command;
use tokio::time::Instant;

/// How far the process's resident memory may grow over a churn run (after warm-up).
const RSS_GROWTH_BOUND: u64 = 20 * 1024 * 1024;
/// Descriptors the test process itself may hold beyond the baseline when settled (ffmpeg
/// pipes of the health check, the runtime's own).
const FD_SLACK: usize = 8;
/// How long the server gets to settle after a fault.
const SETTLE: Duration = Duration::from_secs(20);

/// One fault test at a time (held by the parent while the test's own process runs): each
/// puts the machine under a heavy load of its own.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Resident set size of this process (the server runs in it), from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Live sessions as the REST API reports them.
async fn api_sessions(server: &RunningServer) -> u64 {
    http_get(server.http_addr(), "/api/v1/sessions")
        .await
        .json()["total"]
        .as_u64()
        .expect("total")
}

/// What "settled" means for one test: the sessions and descriptors before the fault.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    sessions: usize,
    fds: usize,
}

async fn baseline(server: &RunningServer) -> Baseline {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = Baseline {
        sessions: server.sessions().len(),
        fds: open_fds(),
    };
    assert_eq!(api_sessions(server).await, b.sessions as u64);
    b
}

/// Waits (bounded) until sessions are back to the baseline (registry and API agree) and the
/// descriptors the fault opened are closed.
async fn assert_settled(what: &str, server: &RunningServer, b: Baseline) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let (sessions, fds) = (server.sessions().len(), open_fds());
        if sessions == b.sessions && fds <= b.fds + FD_SLACK {
            let api = api_sessions(server).await;
            if api == b.sessions as u64 {
                eprintln!("FIGURE {what}: settled to {sessions} sessions, {fds} fds");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not back to baseline {b:?}: {sessions} sessions, {fds} fds"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A healthy viewer decodes the healthy stream: frames of both kinds, no decoder complaint,
/// monotonic timestamps.
async fn assert_healthy(what: &str, server: &RunningServer, key: &str) {
    let d = ffmpeg_decode(&format!("http://{}/{key}.flv", server.http_addr()), 1.5).await;
    assert!(
        d.video_frames >= 25 && d.audio_frames >= 25,
        "{what}: healthy viewer decoded {} video, {} audio frames",
        d.video_frames,
        d.audio_frames
    );
    assert!(d.stderr.trim().is_empty(), "{what}: {}", d.stderr);
    assert_monotonic(&format!("{what} video"), &d.video_dts);
    assert_monotonic(&format!("{what} audio"), &d.audio_dts);
}

/// The test configuration with loopback exempt from the per-IP limits (`[limits]`): these
/// tests open thousands of connections from 127.0.0.1 to exercise the server's robustness,
/// not its connection limits (limits.rs covers those).
fn fault_config() -> sluice::Config {
    let mut cfg = test_config();
    cfg.limits.exempt = vec!["127.0.0.0/8".to_owned()];
    cfg
}

/// A server with short timeouts and a real-time publisher on `live/healthy`.
async fn server_with_publisher(
    mut cfg: Config,
) -> (RunningServer, tokio::process::Child, &'static str) {
    cfg.limits.handshake_timeout_ms = 1000;
    cfg.limits.idle_timeout_ms = 2000;
    let server = start(cfg).await;
    let key = "live/healthy";
    let publisher = publish(
        &format!("rtmp://{}/{key}", server.rtmp_addr()),
        -1,
        &["-re"],
    );
    wait_live(&server, key).await;
    (server, publisher, key)
}

/// The fixture's tags, in file order.
fn fixture_tags() -> Vec<flv::Tag> {
    flv::read_all_tags(&std::fs::read(fixture()).expect("fixture")).expect("fixture tags")
}

/// A seeded xorshift64* generator: the same bytes on every run.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Closes with a reset (SO_LINGER 0) instead of a FIN.
fn reset(sock: TcpStream) {
    sock.set_zero_linger().expect("linger");
    drop(sock);
}

/// A TCP socket with a tiny receive buffer, connected to `addr`.
async fn tiny_window(addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().expect("socket");
    s.set_recv_buffer_size(4096).expect("rcvbuf");
    s.connect(addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_vanishing_mid_message() {
    let _turn = LOCK.lock().await;
    if !own_process(module_path!(), "publisher_vanishing_mid_message").await {
        return;
    }
    let (server, _publisher, healthy) = server_with_publisher(fault_config()).await;
    let b = baseline(&server).await;
    let tags = fixture_tags();
    // The metadata and sequence headers, then frames up to the second keyframe.
    let second_key = tags
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            t.tag_type == 9 && t.body.first() == Some(&0x17) && t.body.get(1) == Some(&1)
        })
        .map(|(i, _)| i)
        .nth(1)
        .expect("two keyframes in the fixture");
    for (i, abrupt) in [false, true].into_iter().enumerate() {
        let name = format!("vanish{i}");
        let mut c = RtmpClient::connect(server.rtmp_addr(), "live").await;
        let started = c.publish(&name).await;
        assert!(
            matches!(started, ClientEvent::PublishStarted { .. }),
            "{started:?}"
        );
        for t in &tags[..second_key] {
            c.send(t.tag_type, t.timestamp, &t.body).await;
        }
        let key = format!("live/{name}");
        wait_live(&server, &key).await;
        assert_eq!(server.sessions().len(), b.sessions + 1);
        // Half of the keyframe's chunks, then gone.
        let big = &tags[second_key];
        let half = big.body.len() / 2;
        c.send_partial(9, big.timestamp, &big.body, half).await;
        let sock = c.into_socket();
        if abrupt {
            reset(sock);
        } else {
            drop(sock);
        }
        assert_settled(&format!("vanish (reset={abrupt})"), &server, b).await;
        // The stream ends after the publisher grace; it is never left live.
        let deadline = Instant::now() + SETTLE;
        while server.hub().stream(&key).is_some_and(|s| s.is_live) {
            assert!(Instant::now() < deadline, "{key} stays live");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_healthy("after vanishing publishers", &server, healthy).await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_megabyte_message_header_costs_no_memory() {
    let _turn = LOCK.lock().await;
    if !own_process(
        module_path!(),
        "sixteen_megabyte_message_header_costs_no_memory",
    )
    .await
    {
        return;
    }
    let (server, _publisher, healthy) = server_with_publisher(fault_config()).await;
    let b = baseline(&server).await;
    let rss0 = rss_bytes();
    let errors0 = server.stats().rtmp_errors.load(Ordering::Relaxed);
    const CLIENTS: usize = 20;
    let mut socks = Vec::new();
    for _ in 0..CLIENTS {
        let mut s = raw_rtmp_handshake(server.rtmp_addr()).await;
        // Type-0 chunk header on chunk stream 3: message length 2^24-1 (the most the field
        // holds), video, stream 1; then a little of the body and nothing more.
        let mut msg = vec![0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0];
        msg.extend_from_slice(&[0x17; 100]);
        s.write_all(&msg).await.expect("write");
        socks.push(s);
    }
    let sent = Instant::now();
    let grown = rss_bytes().saturating_sub(rss0);
    eprintln!(
        "FIGURE {CLIENTS} x 16 MiB headers: RSS grew {} KiB",
        grown / 1024
    );
    assert!(
        grown < 16 * 1024 * 1024,
        "{CLIENTS} huge headers grew RSS by {grown} bytes"
    );
    // Closed by limits.max_message_len at once, or at the latest by the idle timeout.
    for s in &mut socks {
        expect_closed(s, Duration::from_secs(5)).await;
    }
    eprintln!("FIGURE huge headers closed after {:?}", sent.elapsed());
    let errors = server.stats().rtmp_errors.load(Ordering::Relaxed);
    assert!(errors >= errors0 + CLIENTS as u64, "closes are counted");
    drop(socks);
    assert_settled("huge headers", &server, b).await;
    assert_healthy("after huge headers", &server, healthy).await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_half_open_handshakes_time_out() {
    let _turn = LOCK.lock().await;
    if !own_process(module_path!(), "thousands_of_half_open_handshakes_time_out").await {
        return;
    }
    let (server, _publisher, healthy) = server_with_publisher(fault_config()).await;
    let b = baseline(&server).await;
    const HALF_OPEN: usize = 2000;
    let addr = server.rtmp_addr();
    let opened = Instant::now();
    let mut socks = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN / 100 {
        let batch = join_all((0..100).map(|_| async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            // C0 and 700 of C1's 1536 bytes.
            let mut c0c1 = vec![3u8];
            c0c1.extend_from_slice(&[0x5A; 700]);
            s.write_all(&c0c1).await.expect("write");
            s
        }))
        .await;
        socks.extend(batch);
    }
    eprintln!(
        "FIGURE {HALF_OPEN} half-open handshakes opened in {:?}",
        opened.elapsed()
    );
    // Every one is closed by the 1 s handshake timeout (bounded wait).
    let closed = join_all(socks.iter_mut().map(|s| async move {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }))
    .await;
    let still_open = closed.iter().filter(|c| !**c).count();
    eprintln!(
        "FIGURE half-open handshakes all closed after {:?}",
        opened.elapsed()
    );
    assert_eq!(still_open, 0, "half-open handshakes left open");
    drop(socks);
    assert_settled("half-open handshakes", &server, b).await;
    assert_healthy("after half-open handshakes", &server, healthy).await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_that_never_read_are_skipped_and_others_flow() {
    let _turn = LOCK.lock().await;
    if !own_process(
        module_path!(),
        "viewers_that_never_read_are_skipped_and_others_flow",
    )
    .await
    {
        return;
    }
    let mut cfg = fault_config();
    cfg.hub.ring_capacity = 2048;
    cfg.hub.viewer_max_queued_bytes = 64 * 1024;
    let (server, _publisher, healthy) = server_with_publisher(cfg).await;
    let b = baseline(&server).await;
    let errors0 = server.stats().rtmp_errors.load(Ordering::Relaxed);
    // A fast publisher (forty times real time) the stalled viewers cannot absorb.
    let key = "live/flood";
    let fast = publish(
        &format!("rtmp://{}/{key}", server.rtmp_addr()),
        60,
        &["-readrate", "40"],
    );
    wait_live(&server, key).await;
    // An HTTP-FLV viewer and an RTMP viewer, each with a tiny window, that never read.
    let mut stalled_http = tiny_window(server.http_addr()).await;
    stalled_http
        .write_all(format!("GET /{key}.flv HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let sock = tiny_window(server.rtmp_addr()).await;
    let mut stalled_rtmp = RtmpClient::over(sock, server.rtmp_addr(), "live");
    let started = stalled_rtmp.play("flood").await;
    assert!(
        matches!(started, ClientEvent::PlayStarted { .. }),
        "{started:?}"
    );
    // Another viewer keeps receiving every frame, in order.
    let mut other = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    let tags = other.collect_for(Duration::from_secs(4)).await;
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == MediaKind::Video && t.role == FrameRole::Coded)
        .map(|t| t.timestamp)
        .collect();
    assert!(
        video.len() > 200,
        "the other viewer got {} frames",
        video.len()
    );
    for w in video.windows(2) {
        assert!(
            w[1] > w[0],
            "other viewer: timestamps {} then {}",
            w[0],
            w[1]
        );
    }
    let max_gap = video.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(
        max_gap <= 80,
        "the other viewer skipped (max gap {max_gap} ms)"
    );
    // The stalled viewers read again. The HTTP-FLV one was moved on to a keyframe, not
    // buffered; the RTMP one, silent (no acknowledgements) and unwritable for longer than
    // `limits.idle_timeout_ms`, was closed.
    let media = stalled_rtmp
        .collect_media(Duration::from_millis(1500))
        .await;
    let mut http_bytes = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let until = Instant::now() + Duration::from_millis(1500);
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, stalled_http.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        http_bytes += n;
    }
    let rtmp_video: Vec<u32> = media
        .iter()
        .filter(|m| m.msg_type == 9)
        .map(|m| m.timestamp)
        .collect();
    let rtmp_gap = rtmp_video
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0);
    let snap = server.hub().stream(key).expect("stream");
    let sessions = http_get(server.http_addr(), "/api/v1/sessions")
        .await
        .json();
    let dropped: Vec<(String, u64)> = sessions["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|s| s["kind"] == "viewer")
        .map(|s| {
            (
                s["protocol"].as_str().unwrap_or_default().to_owned(),
                s["dropped_frames"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    eprintln!(
        "FIGURE stalled viewers: stream dropped {} frames; per session {dropped:?}; \
         RTMP stalled max gap {rtmp_gap} ms; HTTP stalled read {http_bytes} bytes",
        snap.dropped_frames
    );
    assert!(http_bytes > 0 && !rtmp_video.is_empty());
    assert!(
        snap.dropped_frames > 0,
        "the stalled viewer lagged and was moved on"
    );
    assert_eq!(
        dropped
            .iter()
            .filter(|(p, d)| p == "http-flv" && *d > 0)
            .count(),
        1,
        "the stalled HTTP-FLV viewer counts its dropped frames, the other none: {dropped:?}"
    );
    assert!(
        stalled_rtmp.closed && !dropped.iter().any(|(p, _)| p == "rtmp"),
        "the stalled RTMP viewer was dropped: {dropped:?}"
    );
    let errors = server.stats().rtmp_errors.load(Ordering::Relaxed);
    assert!(errors > errors0, "the RTMP drop is counted");
    drop((stalled_http, stalled_rtmp, other));
    drop(fast);
    assert_healthy("after stalled viewers", &server, healthy).await;
    // The flood publisher and its viewers are gone (the killed publisher's grace runs out).
    let deadline = Instant::now() + SETTLE;
    while server.sessions().len() > b.sessions {
        assert!(Instant::now() < deadline, "sessions did not return");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_settled("stalled viewers", &server, b).await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flv_viewers_leaving_during_the_gop_burst() {
    let _turn = LOCK.lock().await;
    if !own_process(module_path!(), "flv_viewers_leaving_during_the_gop_burst").await {
        return;
    }
    let (server, _publisher, healthy) = server_with_publisher(fault_config()).await;
    let b = baseline(&server).await;
    let mut got_bytes = 0;
    for i in 0..300 {
        let mut s = TcpStream::connect(server.http_addr())
            .await
            .expect("connect");
        s.write_all(format!("GET /{healthy}.flv HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let mut buf = [0u8; 300];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            got_bytes += usize::from(n > 0);
        }
        if i % 2 == 0 {
            reset(s);
        } else {
            drop(s);
        }
    }
    assert!(
        got_bytes >= 290,
        "viewers got the response start ({got_bytes}/300)"
    );
    assert_settled("viewers leaving in the burst", &server, b).await;
    assert_healthy("after viewers leaving in the burst", &server, healthy).await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// Writes `data`, half-closes, and waits (bounded) for the server to close.
async fn junk(addr: SocketAddr, prefix_handshake: bool, data: Vec<u8>) -> bool {
    let mut s = if prefix_handshake {
        raw_rtmp_handshake(addr).await
    } else {
        TcpStream::connect(addr).await.expect("connect")
    };
    let _ = s.write_all(&data).await;
    let _ = s.shutdown().await;
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_on_every_listener() {
    let _turn = LOCK.lock().await;
    if !own_process(module_path!(), "random_bytes_on_every_listener").await {
        return;
    }
    let dir = temp_dir("faults-tls");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).expect("key");
    let mut cfg = fault_config();
    cfg.tls.cert_file = dir.join("cert.pem");
    cfg.tls.key_file = dir.join("key.pem");
    cfg.tls.rtmps_listen = "127.0.0.1:0".parse().unwrap();
    cfg.tls.https_listen = "127.0.0.1:0".parse().unwrap();
    let (server, _publisher, healthy) = server_with_publisher(cfg).await;
    let b = baseline(&server).await;
    let mut rng = Rng(0x5EED_F00D_CAFE_BEEF);
    const PER_LISTENER: usize = 40;
    let listeners = [
        ("rtmp", server.rtmp_addr()),
        ("http", server.http_addr()),
        ("rtmps", server.rtmps_addr().expect("rtmps")),
        ("https", server.https_addr().expect("https")),
    ];
    for (name, addr) in listeners {
        let mut runs = Vec::new();
        for i in 0..PER_LISTENER {
            let len = 1 + rng.below(16 * 1024) as usize;
            // On RTMP, half the connections complete the handshake first so the junk reaches
            // the chunk parser.
            runs.push(junk(addr, name == "rtmp" && i % 2 == 1, rng.bytes(len)));
        }
        let closed = join_all(runs).await;
        let open = closed.iter().filter(|c| !**c).count();
        assert_eq!(open, 0, "{name}: {open} junk connections left open");
    }
    // WebRTC UDP: random datagrams, some shaped like STUN (type, length, magic cookie).
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    let webrtc = server.webrtc_addr().expect("webrtc listener");
    for i in 0..500 {
        let len = 1 + rng.below(1500) as usize;
        let mut d = rng.bytes(len);
        if i % 3 == 0 && d.len() >= 20 {
            d[..2].copy_from_slice(&[0x00, 0x01]);
            d[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        }
        udp.send_to(&d, webrtc).await.expect("send");
    }
    drop(udp);
    assert_settled("random bytes", &server, b).await;
    assert_healthy("after random bytes", &server, healthy).await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// One short-lived client of kind `i % 4`: RTMP handshake, API request, bare connect, or an
/// HTTP-FLV viewer reading a little.
async fn cycle(i: usize, rtmp: SocketAddr, http: SocketAddr, key: &str) {
    match i % 4 {
        0 => drop(raw_rtmp_handshake(rtmp).await),
        1 => {
            let r = http_get(http, "/api/v1/streams").await;
            assert_eq!(r.status, 200);
        }
        2 => drop(TcpStream::connect(if i % 8 == 2 { rtmp } else { http }).await),
        _ => {
            let mut s = TcpStream::connect(http).await.expect("connect");
            s.write_all(format!("GET /{key}.flv HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes())
                .await
                .expect("request");
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        }
    }
}

async fn churn(server: &RunningServer, key: &'static str, cycles: usize) {
    const WORKERS: usize = 16;
    let (rtmp, http) = (server.rtmp_addr(), server.http_addr());
    let workers = (0..WORKERS).map(|w| {
        tokio::spawn(async move {
            for i in (w..cycles).step_by(WORKERS) {
                cycle(i, rtmp, http, key).await;
            }
        })
    });
    for r in join_all(workers).await {
        r.expect("worker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connect_disconnect_cycles() {
    let _turn = LOCK.lock().await;
    if !own_process(module_path!(), "ten_thousand_connect_disconnect_cycles").await {
        return;
    }
    let (server, mut publisher, healthy) = server_with_publisher(fault_config()).await;
    // Warm-up: allocator arenas, buffers and the runtime reach their working size.
    churn(&server, healthy, 1000).await;
    let b = baseline(&server).await;
    let rss0 = rss_bytes();
    let started = Instant::now();
    churn(&server, healthy, 10_000).await;
    eprintln!("FIGURE 10000 cycles took {:?}", started.elapsed());
    assert_settled("10k cycles", &server, b).await;
    let grown = rss_bytes().saturating_sub(rss0);
    eprintln!("FIGURE 10000 cycles: RSS grew {} KiB", grown / 1024);
    assert!(grown <= RSS_GROWTH_BOUND, "RSS grew {grown} bytes");
    assert_healthy("after 10k cycles", &server, healthy).await;
    // With the publisher gone (and its grace over), nothing is left.
    publisher.kill().await.expect("kill publisher");
    let deadline = Instant::now() + SETTLE;
    while !server.sessions().is_empty() || api_sessions(&server).await != 0 {
        assert!(Instant::now() < deadline, "sessions left after the churn");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// The CLI's shutdown grace (crates/sluice/src/main.rs `SHUTDOWN_GRACE`).
const CLI_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_faults_in_flight_exits_cleanly() {
    let _turn = LOCK.lock().await;
    let mut child = sluice_process()
        .env("SLUICE_LIMITS_EXEMPT", r#"["127.0.0.0/8"]"#)
        .args(["--log-level", "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice runs");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut rtmp, mut http) = (None::<SocketAddr>, None::<SocketAddr>);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rtmp.is_none() || http.is_none() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("listening lines in time")
            .expect("read")
            .expect("server still running");
        let field = |name: &str| {
            line.split(name)
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse().ok())
        };
        if line.contains("rtmp listening") {
            rtmp = field("rtmp_addr=");
        } else if line.contains("http listening") {
            http = field("http_addr=");
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (rtmp, http) = (rtmp.expect("rtmp addr"), http.expect("http addr"));
    let key = "live/term";
    let _publisher = publish(&format!("rtmp://{rtmp}/{key}"), -1, &["-re"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while http_get(http, &format!("/api/v1/streams/{key}"))
        .await
        .status
        != 200
    {
        assert!(Instant::now() < deadline, "the stream never went live");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Faults in flight: a healthy viewer, a viewer that never reads, an ffmpeg RTMP player,
    // half-open RTMP handshakes, a huge message header and unfinished HTTP requests.
    let mut viewer = RawFlvClient::connect(http, &format!("/{key}.flv")).await;
    let seen = viewer.collect_for(Duration::from_millis(500)).await;
    assert!(seen.iter().any(|t| t.keyframe), "the viewer plays");
    let mut stalled = tiny_window(http).await;
    stalled
        .write_all(format!("GET /{key}.flv HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let rtmp_player = play_decoding(&format!("rtmp://{rtmp}/{key}"));
    let mut half_open = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(rtmp).await.expect("connect");
        s.write_all(&[3, 0, 0, 0]).await.expect("write");
        half_open.push(s);
    }
    for _ in 0..50 {
        let mut s = TcpStream::connect(http).await.expect("connect");
        s.write_all(b"GET /api/v1/streams HTTP/1.1\r\nHost: t\r\n")
            .await
            .expect("write");
        half_open.push(s);
    }
    let mut huge = raw_rtmp_handshake(rtmp).await;
    huge.write_all(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0])
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid = child.id().expect("pid");
    let stopped_at = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("kill");
    assert!(kill.success());
    let status = tokio::time::timeout(CLI_SHUTDOWN_GRACE + Duration::from_secs(3), child.wait())
        .await
        .expect("the server exits within its shutdown grace and a margin")
        .expect("status");
    eprintln!(
        "FIGURE SIGTERM with faults in flight: exit after {:?}",
        stopped_at.elapsed()
    );
    assert!(status.success(), "clean exit: {status:?}");
    // The healthy viewer saw valid FLV up to a clean end of stream.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !viewer.ended && Instant::now() < deadline {
        let _ = viewer.read_tags(Duration::from_millis(200)).await;
    }
    assert!(
        viewer.ended,
        "the HTTP-FLV viewer saw the end of the stream"
    );
    let out = tokio::time::timeout(Duration::from_secs(10), rtmp_player.wait_with_output())
        .await
        .expect("the RTMP player stops once the server is gone")
        .expect("ffmpeg");
    // It played, then saw a clean end of stream, not an error.
    let d = decoded(&out);
    assert!(
        out.status.success() && d.stderr.trim().is_empty(),
        "the RTMP player: {}: {}",
        out.status,
        d.stderr
    );
    assert!(d.video_frames >= 10 && d.audio_frames >= 10, "{d:?}");
    assert_monotonic("rtmp player video", &d.video_dts);
    drop((stalled, half_open, huge));
}

/// The header read timeout given to the server (`limits.http_header_timeout_ms`), short so
/// the test is.
const HTTP_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Unfinished HTTP requests (slowloris) are closed by the header read timeout, on the plain
/// HTTP listener as on HTTPS, and leave nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_http_requests_are_closed() {
    let _turn = LOCK.lock().await;
    if !own_process(module_path!(), "unfinished_http_requests_are_closed").await {
        return;
    }
    let mut cfg = fault_config();
    cfg.limits.http_header_timeout_ms = HTTP_HEADER_READ_TIMEOUT.as_millis() as u64;
    let (server, _publisher, healthy) = server_with_publisher(cfg).await;
    let b = baseline(&server).await;
    let mut socks = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(server.http_addr())
            .await
            .expect("connect");
        s.write_all(b"GET /api/v1/streams HTTP/1.1\r\nHost: t\r\n")
            .await
            .expect("write");
        socks.push(s);
    }
    for s in &mut socks {
        expect_closed(s, HTTP_HEADER_READ_TIMEOUT + Duration::from_secs(5)).await;
    }
    drop(socks);
    assert_settled("unfinished HTTP requests", &server, b).await;
    assert_healthy("after unfinished HTTP requests", &server, healthy).await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
