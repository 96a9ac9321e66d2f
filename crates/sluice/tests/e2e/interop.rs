//! Interoperability beyond ffmpeg: GStreamer's two RTMP stacks (librtmp-based `rtmpsrc` /
//! `rtmpsink`, the family OBS descends from, and the native `rtmp2src` / `rtmp2sink`), our own
//! RTMP client for first-frame timing, and Enhanced RTMP passthrough.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::rtmp_client::RtmpClient;
use common::*;
use media::{Codec, FrameRole, MediaKind};
use rtmp::ClientEvent;
use tokio::process::Command;

/// Runs a gst-launch pipeline ending in `fakesink name=vs` (video) and `name=as` (audio) for
/// `secs`, stops it with SIGINT, and counts the buffers that reached each sink.
async fn gst_count(pipeline: &str, secs: u64) -> (usize, usize, String) {
    let child = Command::new("gst-launch-1.0")
        .arg("-v")
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("gst-launch-1.0 runs (the test command installs it)");
    let pid = child.id().expect("pid").to_string();
    let stop = async {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let _ = Command::new("kill").args(["-INT", &pid]).status().await;
        // librtmp can sit in a blocking read after the interrupt: then stop it for good.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = Command::new("kill")
            .args(["-KILL", &pid])
            .stderr(Stdio::null())
            .status()
            .await;
    };
    let (out, ()) = tokio::join!(
        async {
            tokio::time::timeout(Duration::from_secs(secs + 15), child.wait_with_output())
                .await
                .expect("gst-launch stops")
                .expect("gst-launch output")
        },
        stop
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let video = text
        .lines()
        .filter(|l| l.contains("chain") && l.contains("(vs:sink)"))
        .count();
    let audio = text
        .lines()
        .filter(|l| l.contains("chain") && l.contains("(as:sink)"))
        .count();
    let errors: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(text.lines())
        .filter(|l| l.starts_with("ERROR") || l.contains("ERROR:"))
        .collect::<Vec<_>>()
        .join("\n");
    (video, audio, errors)
}

fn decode_pipeline(src: &str, url: &str) -> String {
    format!(
        "{src} location={url} ! flvdemux name=d \
         d.video ! queue ! h264parse ! avdec_h264 ! fakesink name=vs silent=false sync=false \
         d.audio ! queue ! aacparse ! avdec_aac ! fakesink name=as silent=false sync=false"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_players_decode() {
    let server = start(test_config()).await;
    let key = "live/gst";
    let url = format!("rtmp://{}/{key}", server.rtmp_addr());
    let _publisher = publish(&url, -1, &["-re"]);
    wait_live(&server, key).await;
    let (p1, p2) = (
        decode_pipeline("rtmpsrc", &url),
        decode_pipeline("rtmp2src", &url),
    );
    let (librtmp, native) = tokio::join!(gst_count(&p1, 3), gst_count(&p2, 3));
    for (name, (video, audio, errors)) in [("rtmpsrc (librtmp)", librtmp), ("rtmp2src", native)] {
        eprintln!("FIGURE {name}: decoded {video} video and {audio} audio buffers in 3 s");
        assert!(errors.is_empty(), "{name}: {errors}");
        assert!(video >= 50, "{name}: only {video} video frames decoded");
        assert!(audio >= 50, "{name}: only {audio} audio frames decoded");
    }
    // ffmpeg signs C1 (librtmp as built by Debian and rtmp2src do not), so the publisher
    // exercised the digest handshake and the GStreamer players the simple one.
    let digest = server
        .stats()
        .rtmp_digest_handshakes
        .load(std::sync::atomic::Ordering::Relaxed);
    let all = server
        .stats()
        .rtmp_connections
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        digest >= 1 && all > digest,
        "digest handshakes: {digest} of {all}"
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_publishers_are_watchable() {
    let server = start(test_config()).await;
    let fixture = fixture();
    for (sink, key) in [("rtmp2sink", "live/gst2"), ("rtmpsink", "live/gst1")] {
        let url = format!("rtmp://{}/{key}", server.rtmp_addr());
        let pipeline = format!(
            "filesrc location={} ! flvdemux name=d \
             d.video ! queue ! h264parse ! mux.video \
             d.audio ! queue ! aacparse ! mux.audio \
             flvmux name=mux streamable=true ! {sink} location={url}",
            fixture.display()
        );
        let publisher = Command::new("gst-launch-1.0")
            .args(pipeline.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("gst-launch-1.0 runs");
        wait_live(&server, key).await;
        let d = ffmpeg_decode(&format!("http://{}/{key}.flv", server.http_addr()), 2.0).await;
        eprintln!(
            "FIGURE {sink} publisher: ffmpeg decoded {} video, {} audio frames",
            d.video_frames, d.audio_frames
        );
        assert!(d.stderr.trim().is_empty(), "{sink}: {}", d.stderr);
        assert!(
            d.video_frames >= 40 && d.audio_frames >= 40,
            "{sink}: {d:?}"
        );
        assert_monotonic("video", &d.video_dts);
        drop(publisher);
    }
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_first_frame_time() {
    let server = start(test_config()).await;
    let key = "live/ff";
    let _publisher = publish(
        &format!("rtmp://{}/{key}", server.rtmp_addr()),
        -1,
        &["-re"],
    );
    wait_live(&server, key).await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let mut times = Vec::new();
    for _ in 0..10 {
        let mut c = RtmpClient::connect(server.rtmp_addr(), "live").await;
        c.wait_for("connected", |e| matches!(e, ClientEvent::Connected))
            .await;
        let asked = tokio::time::Instant::now();
        let started = c.play("ff").await;
        assert!(
            matches!(started, ClientEvent::PlayStarted { stream_id: 1 }),
            "{started:?}"
        );
        let media = c.collect_media(Duration::from_millis(300)).await;
        let first_video = media
            .iter()
            .map(|m| {
                (
                    m,
                    flv::frame_from_tag(m.msg_type, m.timestamp, m.payload.clone())
                        .expect("valid tag"),
                )
            })
            .find(|(_, f)| f.kind == MediaKind::Video && f.role == FrameRole::Coded)
            .expect("video arrived");
        assert!(
            first_video.1.keyframe,
            "the first coded video frame is a keyframe"
        );
        // Headers came first.
        let headers = media
            .iter()
            .take_while(|m| !std::ptr::eq(*m, first_video.0))
            .count();
        assert!(
            headers >= 3,
            "metadata and sequence headers precede the keyframe"
        );
        times.push(first_video.0.at.duration_since(asked));
    }
    times.sort();
    eprintln!(
        "FIGURE rtmp first keyframe after play request: p50 {:?}, max {:?}, all {:?}",
        times[times.len() / 2],
        times[times.len() - 1],
        times
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// Enhanced RTMP FourCC video tag: frame type, packet type, FourCC, optional cts, payload.
fn ertmp_video(key: bool, packet_type: u8, fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let frame_type = if key { 1 } else { 2 };
    let mut v = vec![0x80 | (frame_type << 4) | packet_type];
    v.extend_from_slice(fourcc);
    if packet_type == 1 && (fourcc == b"hvc1" || fourcc == b"avc1") {
        v.extend_from_slice(&[0, 0, 0]);
    }
    v.extend_from_slice(payload);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_rtmp_passes_through_unchanged() {
    // No Enhanced RTMP publisher ships in Debian 12 (ffmpeg 5.1, GStreamer 1.22 predate it),
    // so our own client publishes E-RTMP tags and real-protocol players must get the same
    // bytes back.
    let server = start(test_config()).await;
    for (fourcc, codec) in [
        (b"hvc1", Codec::H265),
        (b"av01", Codec::Av1),
        (b"vp09", Codec::Vp9),
    ] {
        let name = format!("ertmp-{}", String::from_utf8_lossy(fourcc));
        let key = format!("live/{name}");
        let mut publisher = RtmpClient::connect(server.rtmp_addr(), "live").await;
        let started = publisher.publish(&name).await;
        assert!(
            matches!(started, ClientEvent::PublishStarted { .. }),
            "{started:?}"
        );
        let seq = ertmp_video(true, 0, fourcc, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut sent = vec![seq.clone()];
        publisher.send(9, 0, &seq).await;
        let frame = |i: u32| {
            let body: Vec<u8> = (0..300 + i * 7).map(|b| (b as u8) ^ (i as u8)).collect();
            ertmp_video(
                i.is_multiple_of(25),
                if i.is_multiple_of(2) { 1 } else { 3 },
                fourcc,
                &body,
            )
        };
        for i in 0..5 {
            let f = frame(i);
            sent.push(f.clone());
            publisher.send(9, i * 40, &f).await;
        }
        // Players join mid-stream: sequence start + the GOP so far, then live frames.
        let mut wait = 0;
        while server.hub().stream(&key).is_none_or(|s| s.frames_in < 6) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            wait += 1;
            assert!(wait < 500, "frames reached the hub");
        }
        let mut rtmp_player = RtmpClient::connect(server.rtmp_addr(), "live").await;
        assert!(matches!(
            rtmp_player.play(&name).await,
            ClientEvent::PlayStarted { .. }
        ));
        let mut http_player =
            RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
        let mut got_http = http_player.read_tags(Duration::from_millis(500)).await;
        for i in 5..60 {
            let f = frame(i);
            sent.push(f.clone());
            publisher.send(9, i * 40, &f).await;
        }
        let got_rtmp: Vec<Vec<u8>> = rtmp_player
            .collect_media(Duration::from_millis(800))
            .await
            .into_iter()
            .filter(|m| m.msg_type == 9)
            .map(|m| m.payload.to_vec())
            .collect();
        assert_eq!(
            got_rtmp, sent,
            "RTMP player got the E-RTMP {codec:?} tags byte for byte"
        );
        got_http.extend(http_player.collect_for(Duration::from_millis(300)).await);
        let got_http: Vec<Vec<u8>> = got_http
            .into_iter()
            .filter(|t| t.kind == MediaKind::Video)
            .map(|t| t.body.to_vec())
            .collect();
        assert_eq!(
            got_http, sent,
            "HTTP-FLV player got the E-RTMP {codec:?} tags byte for byte"
        );
        let snapshot = server.hub().stream(&key).expect("stream");
        assert_eq!(snapshot.video_codec, Some(codec));
        drop(publisher);
    }
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_timestamps_roll_over_and_jump_back_yet_players_see_monotonic_time() {
    // Our client publishes the real H.264/AAC fixture with hostile timestamps: starting just
    // below 2^32 (so they roll over after 2 s) and jumping back 30 s half way; ffmpeg must
    // decode the HTTP-FLV output with strictly increasing timestamps and no errors.
    let server = start(test_config()).await;
    let tags = flv::read_all_tags(&std::fs::read(fixture()).expect("fixture")).expect("tags");
    let mut publisher = RtmpClient::connect(server.rtmp_addr(), "live").await;
    assert!(matches!(
        publisher.publish("hostile").await,
        ClientEvent::PublishStarted { .. }
    ));
    let url = format!("http://{}/live/hostile.flv", server.http_addr());
    let start = tokio::time::Instant::now();
    let base = u32::MAX - 2_000;
    let player = async {
        // Join once the first GOP is in.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // 5 s of media: across the roll-over (at 2 s) and the backward jump (at 4 s).
        ffmpeg_decode(&url, 5.0).await
    };
    let feed = async {
        for round in 0..2u32 {
            for t in &tags {
                let media_ms = round * 4_040 + t.timestamp;
                tokio::time::sleep_until(start + Duration::from_millis(u64::from(media_ms))).await;
                let ts = if round == 0 {
                    base.wrapping_add(t.timestamp)
                } else {
                    t.timestamp.wrapping_add(1_000)
                };
                if round == 1 && t.tag_type != 8 && t.tag_type != 9 {
                    continue;
                }
                let ts = if round == 1 {
                    ts.wrapping_sub(30_000)
                } else {
                    ts
                };
                publisher.send(t.tag_type, ts, &t.body).await;
            }
        }
    };
    let (d, ()) = tokio::join!(player, feed);
    eprintln!(
        "FIGURE hostile timestamps: decoded {} video, {} audio frames",
        d.video_frames, d.audio_frames
    );
    assert!(d.stderr.trim().is_empty(), "{}", d.stderr);
    assert!(d.video_frames >= 110, "{d:?}");
    assert_monotonic("video", &d.video_dts);
    assert_monotonic("audio", &d.audio_dts);
    let snap = server.hub().stream("live/hostile").expect("stream");
    assert!(
        snap.timestamp_discontinuities >= 1,
        "the backward jump was seen and re-based"
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
