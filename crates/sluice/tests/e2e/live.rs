//! End-to-end tests of the live core with real clients: ffmpeg publishes over RTMP; ffmpeg,
//! ffprobe, a WebSocket client and raw sockets play over RTMP, HTTP-FLV and WebSocket-FLV.

use crate::common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use media::{FrameRole, MediaKind};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

fn urls(server: &sluice::RunningServer, key: &str) -> (String, String, String) {
    (
        format!("rtmp://{}/{key}", server.rtmp_addr()),
        format!("http://{}/{key}.flv", server.http_addr()),
        format!("ws://{}/{key}.flv", server.http_addr()),
    )
}

/// Reads WebSocket-FLV for `dur` and returns the bytes (a complete FLV prefix).
async fn ws_capture(url: &str, dur: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects");
    let mut data = Vec::new();
    let mut first_key: Option<Duration> = None;
    let mut reader = flv::FlvReader::new();
    let deadline = started + dur;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.next()).await {
        let msg = msg.expect("ws message");
        if let tokio_tungstenite::tungstenite::Message::Binary(b) = msg {
            data.extend_from_slice(&b);
            if first_key.is_none() {
                reader.push(&b);
                while let Some(t) = reader.next_tag().expect("valid flv") {
                    let f = flv::frame_from_tag(t.tag_type, t.timestamp, t.body).expect("tag");
                    if f.is_video_keyframe() && first_key.is_none() {
                        first_key = Some(started.elapsed());
                    }
                }
            }
        }
    }
    (data, first_key.expect("a keyframe arrived over ws-flv"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_rtmp_play_everywhere() {
    let server = start(test_config()).await;
    let key = "live/e2e";
    let (rtmp, http, ws) = urls(&server, key);
    let _publisher = publish(&rtmp, -1, &["-re"]);
    wait_live(&server, key).await;
    // Let the publisher get into its second GOP so players join mid-stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let ws_file = std::env::temp_dir().join(format!("sluice-ws-{}.flv", std::process::id()));
    let (rtmp_dec, http_dec, (ws_bytes, ws_first), rtmp_probe, http_probe) = tokio::join!(
        ffmpeg_decode(&rtmp, 3.0),
        ffmpeg_decode(&http, 3.0),
        ws_capture(&ws, Duration::from_secs(3)),
        ffprobe(&rtmp),
        ffprobe(&http),
    );
    std::fs::write(&ws_file, &ws_bytes).expect("write ws capture");
    let ws_path = ws_file.to_string_lossy().into_owned();
    let ws_dec = ffmpeg_decode(&ws_path, 10.0).await;
    let ws_probe = ffprobe(&ws_path).await;
    let _ = std::fs::remove_file(&ws_file);

    for (name, d, p) in [
        ("rtmp", &rtmp_dec, &rtmp_probe),
        ("http-flv", &http_dec, &http_probe),
        ("ws-flv", &ws_dec, &ws_probe),
    ] {
        eprintln!(
            "FIGURE {name}: decoded {} video and {} audio frames, stderr={:?}",
            d.video_frames, d.audio_frames, d.stderr
        );
        assert!(
            d.stderr.trim().is_empty(),
            "{name}: decode errors: {}",
            d.stderr
        );
        assert!(
            d.video_frames >= 50,
            "{name}: only {} video frames",
            d.video_frames
        );
        assert!(
            d.audio_frames >= 50,
            "{name}: only {} audio frames",
            d.audio_frames
        );
        assert_monotonic(&format!("{name} video"), &d.video_dts);
        assert_monotonic(&format!("{name} audio"), &d.audio_dts);
        assert_fixture_probe(p);
    }
    eprintln!("FIGURE ws-flv first keyframe after {:?}", ws_first);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_starts_on_cached_keyframe_at_once() {
    let server = start(test_config()).await;
    let key = "live/late";
    let (rtmp, _, _) = urls(&server, key);
    let _publisher = publish(&rtmp, -1, &["-re"]);
    wait_live(&server, key).await;
    tokio::time::sleep(Duration::from_millis(2300)).await;

    let mut firsts = Vec::new();
    for _ in 0..5 {
        let mut c = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
        let tags = c.collect_for(Duration::from_millis(1500)).await;
        assert_eq!(c.status, 200);
        // Metadata and sequence headers first, then a keyframe, then what followed.
        let first_coded = tags
            .iter()
            .position(|t| t.role == FrameRole::Coded && t.kind != MediaKind::Data)
            .expect("coded frames");
        let headers = &tags[..first_coded];
        assert!(
            headers
                .iter()
                .any(|t| t.kind == MediaKind::Video && t.role == FrameRole::SequenceHeader)
        );
        assert!(
            headers
                .iter()
                .any(|t| t.kind == MediaKind::Audio && t.role == FrameRole::SequenceHeader)
        );
        assert!(headers.iter().any(|t| t.role == FrameRole::Metadata));
        let first_video = tags[first_coded..]
            .iter()
            .find(|t| t.kind == MediaKind::Video)
            .expect("video");
        assert!(
            first_video.keyframe,
            "the first video frame a late joiner gets is a keyframe"
        );
        // Player timelines start near zero whenever they join.
        assert!(
            first_video.timestamp < 100,
            "starts near zero: {}",
            first_video.timestamp
        );
        for kind in [MediaKind::Video, MediaKind::Audio] {
            let ts: Vec<u32> = tags
                .iter()
                .filter(|t| t.kind == kind && t.role == FrameRole::Coded)
                .map(|t| t.timestamp)
                .collect();
            assert!(ts.windows(2).all(|w| w[1] >= w[0]), "{kind:?} monotonic");
        }
        firsts.push(first_video.at.duration_since(c.started));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    firsts.sort();
    eprintln!("FIGURE http-flv first keyframe (request to receipt): {firsts:?}");
    // Decodes: a late ffmpeg player decodes with no errors from its first frame.
    let d = ffmpeg_decode(&format!("http://{}/{key}.flv", server.http_addr()), 1.0).await;
    assert!(
        d.stderr.trim().is_empty(),
        "late joiner decode errors: {}",
        d.stderr
    );
    assert!(d.video_frames >= 20);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_is_refused_and_first_keeps_streaming() {
    let server = start(test_config()).await;
    let key = "live/exclusive";
    let (rtmp, _, _) = urls(&server, key);
    let mut first = publish(&rtmp, -1, &["-re"]);
    wait_live(&server, key).await;
    let second = publish(&rtmp, 0, &["-re"]);
    let out = tokio::time::timeout(Duration::from_secs(20), second.wait_with_output())
        .await
        .expect("second publisher gives up in time")
        .expect("ffmpeg");
    assert!(
        !out.status.success(),
        "the second publisher must be refused"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BadName") || err.contains("already"),
        "refusal reason shown: {err}"
    );
    assert!(
        first.try_wait().expect("status").is_none(),
        "first publisher still running"
    );
    let mut c = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    let tags = c.collect_for(Duration::from_millis(1500)).await;
    let video = tags
        .iter()
        .filter(|t| t.kind == MediaKind::Video && t.role == FrameRole::Coded)
        .count();
    assert!(
        video >= 25,
        "first publisher still delivers ({video} frames)"
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_reconnect_within_grace_keeps_players() {
    let mut cfg = test_config();
    cfg.hub.publisher_grace_ms = 5_000;
    let server = start(cfg).await;
    let key = "live/grace";
    let (rtmp, _, _) = urls(&server, key);
    // First publisher: the 4 s clip once, then it disconnects.
    let mut first = publish(&rtmp, 0, &["-re"]);
    wait_live(&server, key).await;
    let mut player = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    let mut tags = player.collect_for(Duration::from_millis(500)).await;
    let status = tokio::time::timeout(Duration::from_secs(15), first.wait())
        .await
        .expect("first publisher ends")
        .expect("status");
    assert!(status.success());
    tags.extend(player.collect_for(Duration::from_millis(700)).await);
    // Second publisher within the grace, timestamps starting from zero again.
    let _second = publish(&rtmp, 0, &["-re"]);
    tags.extend(player.collect_for(Duration::from_millis(3000)).await);
    assert!(
        !player.ended,
        "the player stayed attached across the reconnect"
    );
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == MediaKind::Video && t.role == FrameRole::Coded)
        .map(|t| t.timestamp)
        .collect();
    assert!(
        video.windows(2).all(|w| w[1] >= w[0]),
        "monotonic across the reconnect"
    );
    let span = video.last().copied().unwrap_or(0) - video.first().copied().unwrap_or(0);
    assert!(
        span > 4_500,
        "media from both publishers reached the player (span {span} ms)"
    );
    let snapshot = server.hub().stream(key).expect("stream");
    assert!(snapshot.publisher_connects >= 2);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_expiry_ends_players() {
    let mut cfg = test_config();
    cfg.hub.publisher_grace_ms = 300;
    let server = start(cfg).await;
    let key = "live/expire";
    let (rtmp, _, _) = urls(&server, key);
    let mut publisher = publish(&rtmp, 0, &["-re"]);
    wait_live(&server, key).await;
    let mut player = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    // Playing first (a refused player would count as ended at once).
    let tags = player.collect_for(Duration::from_millis(300)).await;
    assert_eq!(player.status, 200);
    assert!(tags.iter().any(|t| t.keyframe), "the player plays");
    publisher.kill().await.expect("kill publisher");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !player.ended && Instant::now() < deadline {
        let _ = player.read_tags(Duration::from_millis(200)).await;
    }
    assert!(
        player.ended,
        "players see the end of the stream after the grace"
    );
    assert!(server.hub().stream(key).is_none(), "the stream is gone");
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_player_does_not_delay_others_and_is_bounded() {
    let mut cfg = test_config();
    // 2048 frames is ~750 ms of headroom at forty times real time, so the fast player keeps
    // up even on a loaded CI machine; the stalled one falls far further behind than that.
    cfg.hub.ring_capacity = 2048;
    cfg.hub.viewer_max_queued_bytes = 64 * 1024;
    let server = start(cfg).await;
    let key = "live/stall";
    let (rtmp, _, _) = urls(&server, key);
    // 244 s of media (13 MB) at forty times real time: more than the kernel's socket
    // buffers can absorb for the stalled player, so it must fall behind the ring.
    let _publisher = publish(&rtmp, 60, &["-readrate", "40"]);
    wait_live(&server, key).await;
    // A player that never reads, with a tiny receive window.
    let stalled_sock = tokio::net::TcpSocket::new_v4().expect("socket");
    stalled_sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stalled = stalled_sock
        .connect(server.http_addr())
        .await
        .expect("connect");
    stalled
        .write_all(format!("GET /{key}.flv HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut fast = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    let tags = fast.collect_for(Duration::from_secs(4)).await;
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == MediaKind::Video && t.role == FrameRole::Coded)
        .map(|t| t.timestamp)
        .collect();
    assert!(
        video.len() > 200,
        "the fast player got {} frames",
        video.len()
    );
    let max_gap = video.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(
        max_gap <= 80,
        "the fast player saw no skipped frames (max gap {max_gap} ms)"
    );
    // The stalled player reads again: its subscriber finds it fell behind the ring and skips
    // to a keyframe, counting what it skipped (the server never buffered it all).
    let mut stalled_bytes = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let until = Instant::now() + Duration::from_millis(1500);
    while let Ok(Ok(n)) =
        tokio::time::timeout_at(until, tokio::io::AsyncReadExt::read(&mut stalled, &mut buf)).await
    {
        if n == 0 {
            break;
        }
        stalled_bytes += n;
    }
    assert!(stalled_bytes > 0);
    let snap = server.hub().stream(key).expect("stream");
    eprintln!(
        "FIGURE stalled player: stream dropped {} frames, {} subscribers",
        snap.dropped_frames, snap.subscribers
    );
    assert!(
        snap.dropped_frames > 0,
        "the stalled player lagged and was moved on, not buffered"
    );
    drop(stalled);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_only_that_connection() {
    let server = start(test_config()).await;
    let key = "live/robust";
    let (rtmp, _, _) = urls(&server, key);
    let _publisher = publish(&rtmp, -1, &["-re"]);
    wait_live(&server, key).await;
    let mut player = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    let _ = player.collect_for(Duration::from_millis(300)).await;

    // 1. Garbage after the handshake: a type-3 chunk on a chunk stream never opened.
    let mut s = raw_rtmp_handshake(server.rtmp_addr()).await;
    s.write_all(&[0xFF; 1024]).await.expect("write");
    expect_closed(&mut s, Duration::from_secs(5)).await;

    // 2. A message length of 2^24-1.
    let mut s = raw_rtmp_handshake(server.rtmp_addr()).await;
    let mut msg = vec![0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0];
    msg.extend_from_slice(&[0x02; 64]);
    s.write_all(&msg).await.expect("write");
    expect_closed(&mut s, Duration::from_secs(5)).await;

    // 3. A chunk stream id storm: thousands of chunk streams, each with a partial message.
    let mut s = raw_rtmp_handshake(server.rtmp_addr()).await;
    let mut storm = Vec::new();
    for csid in 64u32..5000 {
        let id = csid - 64;
        storm.extend_from_slice(&[0x01, (id & 0xFF) as u8, (id >> 8) as u8]);
        storm.extend_from_slice(&[0, 0, 0, 0, 0, 100, 9, 1, 0, 0, 0]);
        storm.extend_from_slice(&[0x17; 10]);
    }
    let _ = s.write_all(&storm).await;
    expect_closed(&mut s, Duration::from_secs(5)).await;

    // 4. Garbage instead of a handshake.
    let mut s = tokio::net::TcpStream::connect(server.rtmp_addr())
        .await
        .expect("connect");
    let _ = s.write_all(&[0x47; 4000]).await;
    expect_closed(&mut s, Duration::from_secs(5)).await;

    // Everyone else carried on.
    let tags = player.collect_for(Duration::from_millis(1000)).await;
    assert!(!player.ended);
    assert!(tags.iter().filter(|t| t.kind == MediaKind::Video).count() >= 15);
    let d = ffmpeg_decode(&rtmp, 1.0).await;
    assert!(d.video_frames >= 20 && d.stderr.trim().is_empty());
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_stream_is_a_clear_error() {
    let server = start(test_config()).await;
    let mut c = RawFlvClient::connect(server.http_addr(), "/live/nothing.flv").await;
    let _ = c.collect_for(Duration::from_millis(500)).await;
    assert_eq!(c.status, 404);
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
        .arg(format!("rtmp://{}/live/nothing", server.rtmp_addr()))
        .args(["-t", "1", "-f", "null", "-"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .expect("in time")
        .expect("ffmpeg");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("StreamNotFound") || err.contains("not found") || err.contains("NotFound"),
        "{err}"
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// Publishes the fixture under `cfg`, then decodes ~3 s over RTMP and HTTP-FLV at once and
/// returns (frames decoded by both players, viewer writes the server made meanwhile).
async fn decode_counting_writes(cfg: sluice::Config, key: &str) -> (usize, u64) {
    let server = start(cfg).await;
    let (rtmp, http, _) = urls(&server, key);
    let _publisher = publish(&rtmp, -1, &["-re"]);
    wait_live(&server, key).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let writes = &server.stats().viewer_writes;
    let before = writes.load(std::sync::atomic::Ordering::Relaxed);
    let (r, h) = tokio::join!(ffmpeg_decode(&rtmp, 3.0), ffmpeg_decode(&http, 3.0));
    let used = writes.load(std::sync::atomic::Ordering::Relaxed) - before;
    for (name, d) in [("rtmp", &r), ("http-flv", &h)] {
        assert!(d.stderr.trim().is_empty(), "{name}: {}", d.stderr);
        assert!(
            d.video_frames >= 70 && d.audio_frames >= 100,
            "{name}: {d:?}"
        );
        assert_monotonic(name, &d.video_dts);
        assert_monotonic(name, &d.audio_dts);
    }
    assert!(server.shutdown(Duration::from_secs(5)).await);
    (
        r.video_frames + r.audio_frames + h.video_frames + h.audio_frames,
        used,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_window_cuts_writes_and_keeps_the_stream_whole() {
    let mut cfg = test_config();
    cfg.hub.viewer_batch_ms = 100;
    let (frames, used) = decode_counting_writes(cfg, "live/batched").await;
    // ~3 s of media (2 s live after the GOP burst) per viewer; with a 100 ms window that is
    // about 25 writes each.
    eprintln!("FIGURE 100 ms batching: {used} writes for {frames} decoded frames (2 viewers)");
    assert!(
        used < 2 * 60,
        "{used} writes: batching should gather frames"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_rides_with_video_by_default() {
    // Default config: no batching window, but audio-only pending bytes wait (<= 50 ms) for the
    // next video frame, so a viewer gets about one write per video frame, not one per frame.
    let (frames, used) = decode_counting_writes(test_config(), "live/coalesced").await;
    eprintln!("FIGURE audio coalescing: {used} writes for {frames} decoded frames (2 viewers)");
    assert!(
        used * 100 < frames as u64 * 45,
        "{used} writes for {frames} frames: audio should ride with video"
    );
}
