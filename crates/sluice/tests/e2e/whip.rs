//! WHIP ingest end to end: aiortc (an independent WebRTC stack) publishes the fixture as
//! H.264 + Opus; ffmpeg plays the stream over RTMP and HTTP-FLV (the hub's AAC track made
//! from the Opus), a raw FLV reader checks A/V sync, and aiortc plays it back over WHEP (the
//! publisher's Opus as it came). Also the WHIP refusals (409, 400, access control) and DELETE ending the
//! stream.

use crate::common;
use crate::webrtc_support as support;

use std::time::Duration;

use common::{RawFlvClient, ffmpeg_decode, start, test_config, wait_live};
use media::{FrameRole, MediaKind};
use support::{post_offer, wait_sessions, whep_client, whip_client};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_stream_plays_over_rtmp_flv_and_whep_in_sync() {
    let server = start(test_config()).await;
    let http = server.http_addr();
    let url = format!("http://{http}/live/cam/whip");
    let publisher = tokio::spawn(async move { whip_client(&url, 16.0, &[]).await });
    wait_live(&server, "live/cam").await;
    let snap = server.hub().stream("live/cam").unwrap();
    assert_eq!(snap.publisher.unwrap().protocol, "webrtc");

    // HTTP-FLV, raw: the tags that arrive together carry timestamps close together.
    let mut flv = RawFlvClient::connect(http, "/live/cam.flv").await;
    let tags = flv.collect_for(Duration::from_secs(3)).await;
    assert_eq!(flv.status, 200);
    let coded = |k: MediaKind| {
        tags.iter()
            .filter(|t| t.kind == k && t.role == FrameRole::Coded)
            .map(|t| t.timestamp)
            .collect::<Vec<u32>>()
    };
    let (v, a) = (coded(MediaKind::Video), coded(MediaKind::Audio));
    assert!(
        v.len() > 20 && a.len() > 50,
        "video {} audio {}",
        v.len(),
        a.len()
    );
    assert!(
        tags.iter()
            .any(|t| t.kind == MediaKind::Video && t.role == FrameRole::SequenceHeader)
    );
    assert!(
        tags.iter()
            .any(|t| t.kind == MediaKind::Audio && t.role == FrameRole::SequenceHeader)
    );
    // Tags arriving together carry timestamps within 200 ms of each other (the hub's AAC
    // track, made from the Opus, follows the video of the same time by a frame or two of
    // the encoder's delay). aiortc's software encoder can fall
    // behind its own audio for a moment on a loaded machine (its video then arrives late,
    // with the right timestamps), so the check is made over up to three windows: a server
    // that mistimes a track fails all three.
    let last_skew = |tags: &[common::SeenTag]| {
        let last = |k: MediaKind| {
            tags.iter()
                .rev()
                .find(|t| t.kind == k && t.role == FrameRole::Coded)
                .map(|t| i64::from(t.timestamp))
        };
        Some(last(MediaKind::Video)? - last(MediaKind::Audio)?)
    };
    let mut skews = vec![last_skew(&tags)];
    while skews.len() < 3 && skews.last().unwrap().is_none_or(|s| s.abs() > 200) {
        let more = flv.collect_for(Duration::from_secs(1)).await;
        skews.push(last_skew(&more));
    }
    eprintln!("A/V skew at the FLV player (last video - last audio), per window: {skews:?} ms");
    assert!(
        skews.iter().flatten().any(|s| s.abs() <= 200),
        "A/V skew in every window: {skews:?} ms"
    );
    drop(flv);

    // ffmpeg decodes both tracks over RTMP and HTTP-FLV (and WHEP plays meanwhile).
    let rtmp = format!("rtmp://{}/live/cam", server.rtmp_addr());
    let flv_url = format!("http://{http}/live/cam.flv");
    let whep = format!("http://{http}/live/cam/whep");
    let (r, f, w) = tokio::join!(
        ffmpeg_decode(&rtmp, 3.0),
        ffmpeg_decode(&flv_url, 3.0),
        whep_client(&whep, 4.0, false)
    );
    // aiortc's software encoder drops to a few fps on a loaded 2-core machine: the frame
    // count only has to show decoding works; errors and timestamps are checked strictly.
    for (name, d) in [("rtmp", &r), ("http-flv", &f)] {
        assert!(
            d.video_frames >= 5,
            "{name}: {} video frames",
            d.video_frames
        );
        assert!(
            d.audio_frames > 20,
            "{name}: {} audio frames",
            d.audio_frames
        );
        assert!(
            d.stderr.trim().is_empty(),
            "{name}: decode errors: {}",
            d.stderr
        );
        common::assert_monotonic(&format!("{name} video"), &d.video_dts);
        common::assert_monotonic(&format!("{name} audio"), &d.audio_dts);
    }
    eprintln!("whep client of the whip stream: {w}");
    assert_eq!(w["status"], 201, "{w}");
    assert!(w["video"]["frames"].as_u64().unwrap() > 20, "{w}");
    assert!(w["audio"]["frames"].as_u64().unwrap() > 50, "{w}");
    assert_eq!(w["video"]["non_increasing"], 0, "{w}");

    let p = publisher.await.unwrap();
    eprintln!("whip client: {p}");
    assert_eq!(p["status"], 201, "{p}");
    assert!(
        p["location"]
            .as_str()
            .unwrap()
            .starts_with("/live/cam/whip/"),
        "{p}"
    );
    assert_eq!(p["delete_status"], 200, "{p}");
    // DELETE ended the stream at once (no grace period) and freed the peer.
    wait_sessions(&server, 0, Duration::from_secs(5), "after DELETE").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.hub().stream("live/cam").is_some() || server.webrtc_transcoders() != 0 {
        assert!(
            Instant::now() < deadline,
            "stream or audio entry left after DELETE"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_refuses_second_publisher_bad_offers_and_denied_streams() {
    let mut cfg = test_config();
    cfg.auth.rules.push(sluice::configuration::AuthRule {
        pattern: "secure/*".into(),
        publish: sluice::configuration::AuthMode::Deny,
        play: sluice::configuration::AuthMode::Open,
        allow_ips: vec![],
        deny_ips: vec![],
    });
    let server = start(cfg).await;
    let http = server.http_addr();

    let r = post_offer(http, "/live/x/whip", b"hello").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "bad_offer");
    // Nothing we take: Theora video (VP8 would do now) and PCMU audio.
    let theora = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 theora/90000\r\na=sendonly\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let r = post_offer(http, "/live/x/whip", theora.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["message"].as_str().unwrap().contains("H.264"),
        "{}",
        r.text()
    );
    assert!(
        server.hub().stream("live/x").is_none(),
        "a refused offer publishes nothing"
    );

    let r = whip_client(&format!("http://{http}/secure/cam/whip"), 1.0, &[]).await;
    assert_eq!(r["status"], 403, "{r}");

    let url = format!("http://{http}/live/dup/whip");
    let first = {
        let url = url.clone();
        tokio::spawn(async move { whip_client(&url, 15.0, &[]).await })
    };
    wait_live(&server, "live/dup").await;
    let second = whip_client(&url, 1.0, &[]).await;
    assert_eq!(second["status"], 409, "{second}");
    assert!(
        second["error"]
            .as_str()
            .unwrap()
            .contains("already_publishing"),
        "{second}"
    );
    let first = first.await.unwrap();
    assert_eq!(first["delete_status"], 200, "{first}");
    wait_sessions(&server, 0, Duration::from_secs(5), "after DELETE").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
