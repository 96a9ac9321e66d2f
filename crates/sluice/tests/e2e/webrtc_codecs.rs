//! WHIP ingest and WHEP playback beyond H.264, end to end: aiortc (an independent WebRTC
//! stack) publishes VP8 + Opus over WHIP; an HTTP-FLV reader sees Enhanced RTMP `vp08` tags
//! (sequence start, then coded frames with keyframes, timestamps increasing) and the AAC made
//! from the Opus; an aiortc WHEP player decodes the VP8 passed through (and the audio); a
//! WHEP offer without VP8 is refused with 400 `codec`; HLS (which muxes H.264/H.265 video
//! only) carries the audio, and ffprobe reads it. Headless Chromium publishes VP9 and AV1
//! over WHIP (codec preferences) and plays them back over WHEP.

use crate::common;
use crate::webrtc_support as support;

use std::path::PathBuf;
use std::time::Duration;

use common::{RawFlvClient, http_request_with, start, test_config, wait_live};
use media::{Codec, FrameRole, MediaKind};
use serde_json::Value;
use support::{chromium_script, python, whep_client};
use tokio::process::Command;

/// Runs `whip_codec_client.py` publishing the fixture in `codec` for `seconds`.
async fn whip_codec_client(url: &str, seconds: f32, codec: &str) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python())
        .arg(dir.join("tests/webrtc/whip_codec_client.py"))
        .arg(url)
        .arg(seconds.to_string())
        .arg(dir.join("../../fixtures/demo.flv"))
        .arg(codec)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs_f32(seconds + 30.0), out)
        .await
        .expect("aiortc publisher finishes in time")
        .expect("python with aiortc runs (scripts/test.sh creates .venv-test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "publisher printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The stream's video codec once the hub knows it (audio may go live first), within 15 s.
async fn wait_video(server: &sluice::RunningServer, key: &str) -> Codec {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(c) = server.hub().stream(key).and_then(|s| s.video_codec) {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key}: no video codec"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An offer whose only video is H.264 (packetization-mode 1), with Opus.
const H264_ONLY_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE 0 1\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
    a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\n\
    a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
    a=rtcp-mux\r\na=rtpmap:97 H264/90000\r\n\
    a=fmtp:97 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n\
    a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_whip_plays_over_http_flv_and_whep() {
    let server = start(test_config()).await;
    let http = server.http_addr();
    let url = format!("http://{http}/live/vp8/whip");
    let publisher = tokio::spawn(async move { whip_codec_client(&url, 18.0, "vp8").await });
    wait_live(&server, "live/vp8").await;
    assert_eq!(wait_video(&server, "live/vp8").await, Codec::Vp8);
    let snap = server.hub().stream("live/vp8").unwrap();
    assert_eq!(snap.publisher.unwrap().protocol, "webrtc");
    // Start the HLS muxer now (503 until its first segment); its playlist is checked at the
    // end.
    let r = common::http_get(http, "/live/vp8/index.m3u8").await;
    assert!(matches!(r.status, 200 | 503), "{} {}", r.status, r.body);

    // HTTP-FLV: the GOP cache starts with the `vp08` SequenceStart, then coded frames.
    let mut flv = RawFlvClient::connect(http, "/live/vp8.flv").await;
    let tags = flv.collect_for(Duration::from_secs(3)).await;
    assert_eq!(flv.status, 200);
    drop(flv);
    let video: Vec<_> = tags.iter().filter(|t| t.kind == MediaKind::Video).collect();
    let first = video.first().expect("video tags");
    assert_eq!(first.role, FrameRole::SequenceHeader);
    // ExVideoTagHeader: IsExHeader | key frame | SequenceStart, FourCC `vp08`, then the
    // VPCodecConfigurationRecord (version 1, flags 0, profile 0, 8-bit 4:2:0).
    assert_eq!(&first.body[..5], &[0x90, b'v', b'p', b'0', b'8']);
    assert_eq!(&first.body[5..9], &[1, 0, 0, 0]);
    assert_eq!(first.body[9], 0, "VP8 profile 0");
    assert_eq!(first.body[11] >> 4, 8, "8-bit");
    let coded: Vec<_> = video
        .iter()
        .filter(|t| t.role == FrameRole::Coded)
        .collect();
    assert!(coded.len() > 30, "{} VP8 frames in 3 s", coded.len());
    for t in &coded {
        let f = flv::frame_from_tag(flv::TAG_VIDEO, t.timestamp, t.body.clone()).unwrap();
        assert_eq!(f.codec, Codec::Vp8);
        // The VP8 frame tag's P bit agrees with the FLV frame type.
        assert_eq!(f.payload()[0] & 1 == 0, f.keyframe, "at {} ms", t.timestamp);
    }
    assert!(coded[0].keyframe, "playback starts at a key frame");
    let ts: Vec<i64> = coded.iter().map(|t| i64::from(t.timestamp)).collect();
    common::assert_monotonic("vp8 over HTTP-FLV", &ts);
    let span = ts.last().unwrap() - ts.first().unwrap();
    assert!(span > 1500, "video spans {span} ms");
    // The AAC made from the publisher's Opus.
    let audio: Vec<_> = tags.iter().filter(|t| t.kind == MediaKind::Audio).collect();
    let aac = flv::frame_from_tag(flv::TAG_AUDIO, 0, audio[0].body.clone()).unwrap();
    assert_eq!(
        (aac.codec, aac.role),
        (Codec::Aac, FrameRole::SequenceHeader)
    );
    assert!(audio.len() > 50, "{} audio tags in 3 s", audio.len());

    // A WHEP viewer that offers no VP8: 400 {"code":"codec"} naming the codec.
    let len = H264_ONLY_OFFER.len().to_string();
    let r = http_request_with(
        http,
        "POST",
        "/live/vp8/whep",
        &[
            ("Content-Type", "application/sdp"),
            ("Content-Length", &len),
        ],
        H264_ONLY_OFFER.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400);
    let j = r.json();
    assert_eq!(j["code"], "codec", "{j}");
    assert!(j["message"].as_str().unwrap().contains("VP8"), "{j}");

    // aiortc over WHEP (offers VP8 and H.264): the VP8 passes through and decodes.
    let whep = format!("http://{http}/live/vp8/whep");
    let r = whep_client(&whep, 5.0, false).await;
    assert_eq!(r["status"], 201, "{r}");
    assert_eq!(r["connection_state"], "connected", "{r}");
    let frames = r["video"]["frames"].as_u64().unwrap();
    assert!(frames > 40, "decoded {frames} VP8 frames in 5 s: {r}");
    assert_eq!(r["video"]["width"], 640, "{r}");
    assert_eq!(r["video"]["height"], 360, "{r}");
    assert_eq!(r["video"]["non_increasing"], 0, "{r}");
    assert!(r["audio"]["frames"].as_u64().unwrap() > 100, "{r}");

    // HLS: audio only (no VP8 in TS/fMP4 here), a playlist ffprobe reads.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = common::http_get(http, "/live/vp8/media.m3u8").await;
        if r.status == 200 && r.body.lines().any(|l| !l.is_empty() && !l.starts_with('#')) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no HLS segment: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json"])
        .arg(format!("http://{http}/live/vp8/index.m3u8"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let probe = tokio::time::timeout(Duration::from_secs(30), probe)
        .await
        .expect("ffprobe in time")
        .expect("ffprobe runs");
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let v: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let streams: Vec<(String, String)> = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or_default().to_owned(),
                s["codec_name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(streams, [("audio".to_owned(), "aac".to_owned())], "{v}");

    let p = publisher.await.unwrap();
    assert_eq!(p["status"], 201, "{p}");
    let answer = p["answer_video"].to_string();
    assert!(
        answer.contains("VP8/90000") && !answer.contains("H264"),
        "{p}"
    );
    assert_eq!(p["delete_status"], 200, "{p}");
}

/// Headless Chromium publishes `codec` (fake camera + microphone) over WHIP and plays it
/// back over WHEP; returns the script's JSON.
async fn chromium_round_trip(http: std::net::SocketAddr, stream: &str, codec: &str) -> Value {
    let args = [
        format!("http://{http}"),
        stream.to_owned(),
        codec.to_owned(),
        "7".to_owned(),
    ];
    let v = chromium_script("codec_test.mjs", &args, Duration::from_secs(120)).await;
    eprintln!("chromium {codec}: {v}");
    v
}

/// Checks one Chromium round trip of `codec` (`fourcc` on HTTP-FLV, `hub` in the hub).
async fn chromium_codec(codec: &str, fourcc: &[u8; 4], hub: Codec) {
    let server = start(test_config()).await;
    let http = server.http_addr();
    let stream = format!("live/{}", codec.to_ascii_lowercase());
    let run = {
        let (stream, codec) = (stream.clone(), codec.to_owned());
        tokio::spawn(async move { chromium_round_trip(http, &stream, &codec).await })
    };
    // While the browser publishes: HTTP-FLV starts with the E-RTMP SequenceStart of the
    // codec's FourCC, then coded frames from a keyframe on, timestamps increasing.
    wait_live(&server, &stream).await;
    assert_eq!(wait_video(&server, &stream).await, hub);
    let mut flv = RawFlvClient::connect(http, &format!("/{stream}.flv")).await;
    let tags = flv.collect_for(Duration::from_secs(2)).await;
    drop(flv);
    let video: Vec<_> = tags.iter().filter(|t| t.kind == MediaKind::Video).collect();
    let first = video.first().expect("video tags");
    assert_eq!(first.role, FrameRole::SequenceHeader);
    assert_eq!(first.body[0], 0x90);
    assert_eq!(&first.body[1..5], fourcc);
    let coded: Vec<_> = video
        .iter()
        .filter(|t| t.role == FrameRole::Coded)
        .collect();
    assert!(coded.len() > 10, "{} frames in 2 s", coded.len());
    assert!(coded[0].keyframe);
    for t in &coded {
        let f = flv::frame_from_tag(flv::TAG_VIDEO, t.timestamp, t.body.clone()).unwrap();
        assert_eq!(f.codec, hub);
    }
    let ts: Vec<i64> = coded.iter().map(|t| i64::from(t.timestamp)).collect();
    common::assert_monotonic(codec, &ts);

    let v = run.await.unwrap();
    assert_eq!(v["publish"]["status"], 201, "{v}");
    let answer = v["publish"]["answer_video"].to_string();
    assert!(answer.contains(&format!("{codec}/90000")), "{v}");
    assert_eq!(v["play"]["status"], 201, "{v}");
    assert_eq!(v["late"]["state"], "connected", "{v}");
    assert_eq!(
        v["late"]["codec"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        format!("video/{}", codec.to_ascii_lowercase()),
        "{v}"
    );
    let frames = |k: &str| v[k]["framesDecoded"].as_u64().unwrap_or(0);
    assert!(
        frames("late") >= frames("early") + 40,
        "frames must grow: {v}"
    );
    assert!(v["late"]["width"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publishes_and_plays_vp9() {
    chromium_codec("VP9", b"vp09", Codec::Vp9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publishes_and_plays_av1() {
    chromium_codec("AV1", b"av01", Codec::Av1).await;
}
