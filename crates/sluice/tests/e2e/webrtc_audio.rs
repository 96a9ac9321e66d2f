//! WebRTC audio through the hub's tracks, end to end with aiortc: a WHIP publisher's Opus is
//! in the hub as it came and reaches WHEP viewers byte for byte (no transcode), its AAC for
//! FLV players is a derived track that runs only while such a player watches; an RTMP
//! publisher's AAC gets exactly one derived Opus track, shared by every WHEP viewer.

use crate::common;
use crate::webrtc_support as support;

use std::collections::HashSet;
use std::time::Duration;

use common::{RawFlvClient, publish, start, test_config, wait_live};
use media::{Codec, FrameRole, MediaKind};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice::RunningServer;
use support::{wait_sessions, whep_client_with, whip_client};
use tokio::time::Instant;

/// What the aiortc scripts print for a packet: the first 8 bytes of its SHA-256, in hex.
fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn digests(v: &Value) -> Vec<String> {
    v["opus_digests"]
        .as_array()
        .unwrap_or_else(|| panic!("no opus_digests: {v}"))
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

/// The derived tracks of `key` now, as (from, to).
fn derived(server: &RunningServer, key: &str) -> Vec<(Codec, Codec)> {
    server
        .hub()
        .stream(key)
        .map(|s| s.derived_tracks.iter().map(|d| (d.from, d.codec)).collect())
        .unwrap_or_default()
}

/// Waits (bounded) until `key` has no derived track left.
async fn wait_no_derived(server: &RunningServer, key: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !derived(server, key).is_empty() || server.webrtc_transcoders() != 0 {
        assert!(
            Instant::now() < deadline,
            "derived tracks left on {key}: {:?}",
            derived(server, key)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_opus_reaches_whep_as_sent_and_aac_is_derived_on_demand() {
    let server = start(test_config()).await;
    let http = server.http_addr();
    let key = "live/opus";
    let url = format!("http://{http}/{key}/whip");
    let publisher = tokio::spawn(async move { whip_client(&url, 30.0, &["--opus-digests"]).await });
    wait_live(&server, key).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.hub().stream(key).and_then(|s| s.audio_codec) != Some(Codec::Opus) {
        assert!(Instant::now() < deadline, "no Opus in the hub");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 1. The hub carries the publisher's Opus as published; a WHEP viewer (wanting Opus)
    //    starts no derived track.
    let mut sub = server.hub().subscribe(key).unwrap();
    let whep = format!("http://{http}/{key}/whep");
    let viewer =
        tokio::spawn(async move { whep_client_with(&whep, 5.0, &["--opus-digests"]).await });
    let mut hub_opus = Vec::new();
    let mut opus_headers = 0;
    let mut max_derived = 0;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await else {
            continue;
        };
        max_derived = max_derived.max(derived(&server, key).len());
        if f.kind == MediaKind::Audio {
            assert_eq!(
                f.codec,
                Codec::Opus,
                "the hub carries the audio as published"
            );
            match f.role {
                FrameRole::SequenceHeader => opus_headers += 1,
                FrameRole::Coded => hub_opus.push(digest(&f.payload())),
                _ => {}
            }
        }
    }
    drop(sub);
    assert!(opus_headers >= 1, "the Opus sequence header comes first");
    assert!(
        hub_opus.len() > 100,
        "{} Opus frames in 4 s",
        hub_opus.len()
    );
    assert_eq!(max_derived, 0, "no derived track without an AAC consumer");
    let w = viewer.await.unwrap();
    assert_eq!(w["status"], 201, "{w}");
    assert!(w["audio"]["frames"].as_u64().unwrap() > 100, "{w}");
    assert_eq!(server.webrtc_transcoders(), 0);

    // 2. An HTTP-FLV player wants AAC: the hub runs one Opus -> AAC track for it.
    let mut flv = RawFlvClient::connect(http, &format!("/{key}.flv")).await;
    let tags = flv.collect_for(Duration::from_secs(3)).await;
    assert_eq!(flv.status, 200);
    assert_eq!(derived(&server, key), [(Codec::Opus, Codec::Aac)]);
    assert_eq!(server.webrtc_transcoders(), 1);
    let audio: Vec<_> = tags
        .iter()
        .filter(|t| t.kind == MediaKind::Audio)
        .map(|t| flv::frame_from_tag(flv::TAG_AUDIO, t.timestamp, t.body.clone()).unwrap())
        .collect();
    assert!(
        audio.iter().all(|f| f.codec == Codec::Aac),
        "FLV players get AAC only"
    );
    assert_eq!(
        audio.first().map(|f| f.role),
        Some(FrameRole::SequenceHeader)
    );
    assert!(audio.len() > 50, "{} AAC tags in 3 s", audio.len());
    drop(flv);
    // It lingers, then stops with nobody wanting it (the publisher is still on).
    wait_no_derived(&server, key, hub::DERIVED_LINGER + Duration::from_secs(5)).await;
    assert!(server.hub().stream(key).is_some_and(|s| s.is_live));

    // 3. Bytes equal: every Opus packet the WHEP viewer and the hub had is one the
    //    publisher sent (a re-encode would match none).
    let p = publisher.await.unwrap();
    assert_eq!(p["status"], 201, "{p}");
    let sent: HashSet<String> = digests(&p).into_iter().collect();
    let got = digests(&w);
    assert!(got.len() > 100, "viewer got {} Opus packets", got.len());
    let foreign = got.iter().filter(|d| !sent.contains(*d)).count();
    let hub_foreign = hub_opus.iter().filter(|d| !sent.contains(*d)).count();
    eprintln!(
        "opus packets: {} sent, {} at the WHEP viewer ({foreign} not sent), {} in the hub ({hub_foreign} not sent)",
        sent.len(),
        got.len(),
        hub_opus.len()
    );
    assert_eq!(
        foreign, 0,
        "packets the WHEP viewer got that the publisher never sent"
    );
    assert_eq!(hub_foreign, 0, "hub frames that the publisher never sent");
    wait_sessions(
        &server,
        0,
        Duration::from_secs(5),
        "after the publisher left",
    )
    .await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_aac_gets_one_opus_track_shared_by_whep_viewers() {
    let server = start(test_config()).await;
    let key = "live/shared";
    let mut ff = publish(
        &format!("rtmp://{}/{key}", server.rtmp_addr()),
        20,
        &["-re"],
    );
    wait_live(&server, key).await;
    assert!(derived(&server, key).is_empty());

    let url = format!("http://{}/{key}/whep", server.http_addr());
    let viewers: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { whep_client_with(&url, 6.0, &[]).await })
        })
        .collect();
    // While they play: never more than one derived track, and exactly AAC -> Opus.
    let mut seen_one = false;
    let mut max_subscribers = 0;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let d = derived(&server, key);
        assert!(
            d.len() <= 1,
            "one derived track per stream, not per viewer: {d:?}"
        );
        if d == [(Codec::Aac, Codec::Opus)] {
            seen_one = true;
            assert_eq!(server.webrtc_transcoders(), 1);
        }
        if let Some(s) = server.hub().stream(key) {
            max_subscribers = max_subscribers.max(s.subscribers);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_one, "no AAC -> Opus track while WHEP viewers played");
    assert!(max_subscribers >= 3, "{max_subscribers} subscribers");
    let snap = server.hub().stream(key).unwrap();
    let track = &snap.derived_tracks[0];
    assert!(track.usable && track.errors == 0, "{track:?}");
    eprintln!("derived AAC -> Opus track: {track:?}");
    for v in viewers {
        let r = v.await.unwrap();
        assert_eq!(r["status"], 201, "{r}");
        assert!(r["audio"]["frames"].as_u64().unwrap() > 100, "{r}");
        assert_eq!(r["audio"]["sample_rate"], 48000, "{r}");
        assert_eq!(r["audio"]["non_increasing"], 0, "{r}");
        assert!(r["video"]["frames"].as_u64().unwrap() > 50, "{r}");
    }
    wait_sessions(&server, 0, Duration::from_secs(5), "after the viewers left").await;
    wait_no_derived(&server, key, hub::DERIVED_LINGER + Duration::from_secs(5)).await;
    let _ = ff.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// Bytes of `path` on the HTTP listener (200 expected).
async fn fetch(server: &RunningServer, path: &str) -> Vec<u8> {
    let r = common::http_request_with(server.http_addr(), "GET", path, &[], b"").await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.body
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A WHIP stream's recording and HLS muxer start at its publish, before any media, and its
/// AAC is a derived track a frame or so behind the video: both still describe the audio
/// from the start (the first init segment and the MP4's header have an `mp4a` track).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_recordings_and_hls_have_the_aac_from_the_start() {
    let mut cfg = test_config();
    cfg.record.streams = vec!["live/*".into()];
    cfg.hls.always_on = true;
    let dir = std::path::PathBuf::from(&cfg.record.dir);
    let server = start(cfg).await;
    let http = server.http_addr();
    let key = "live/rec";
    let url = format!("http://{http}/{key}/whip");
    let publisher = tokio::spawn(async move { whip_client(&url, 8.0, &[]).await });
    wait_live(&server, key).await;

    // HLS: the init segment of the first media segment carries video and AAC.
    let deadline = Instant::now() + Duration::from_secs(15);
    let playlist = loop {
        let r =
            common::http_request_with(http, "GET", &format!("/{key}/media.m3u8"), &[], b"").await;
        let text = r.text();
        if r.status == 200 && text.matches("#EXTINF").count() >= 2 {
            break text;
        }
        assert!(Instant::now() < deadline, "no HLS segments: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let map = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.split('"').next())
        .unwrap_or_else(|| panic!("no EXT-X-MAP in {playlist}"));
    let init = fetch(&server, &format!("/{key}/{map}")).await;
    assert!(
        contains(&init, b"mp4a"),
        "the first init segment ({} bytes) lacks the AAC: {}",
        init.len(),
        String::from_utf8_lossy(&init).escape_debug()
    );
    if contains(&init, b"avc1") {
        assert!(
            !playlist.contains("#EXT-X-DISCONTINUITY"),
            "the audio came as a discontinuity: {playlist}"
        );
    } else {
        // aiortc's encoder can start its video seconds after its audio on a loaded machine:
        // the video then joins with a new init (both tracks) after a discontinuity.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = common::http_request_with(http, "GET", &format!("/{key}/media.m3u8"), &[], b"")
                .await;
            let maps: Vec<String> = r
                .text()
                .lines()
                .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
                .filter_map(|l| l.split('"').next().map(str::to_owned))
                .collect();
            let mut both = false;
            for m in &maps {
                let i = fetch(&server, &format!("/{key}/{m}")).await;
                both |= contains(&i, b"avc1") && contains(&i, b"mp4a");
            }
            if both {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no init with video and AAC: {maps:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The MP4 recording: ended with the stream (DELETE), its header has both tracks, and it
    // decodes with AAC audio.
    let p = publisher.await.unwrap();
    assert_eq!(p["delete_status"], 200, "{p}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.hub().stream(key).is_some() {
        assert!(Instant::now() < deadline, "stream left after DELETE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let files = loop {
        let files: Vec<_> = std::fs::read_dir(dir.join("live"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        let mp4: Vec<_> = files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
            .collect();
        let recording = common::http_get(http, "/api/v1/recordings").await.json();
        if !mp4.is_empty()
            && recording["recordings"]
                .as_array()
                .is_some_and(|a| a.is_empty())
        {
            break mp4;
        }
        assert!(Instant::now() < deadline, "no recording: {mp4:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Every file's header has the AAC; a video that started late (a loaded machine) starts a
    // second file, whose header has both tracks.
    assert!(files.len() <= 2, "{files:?}");
    let mut with_video = None;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let first_moof = bytes
            .windows(4)
            .position(|w| w == b"moof")
            .expect("a fragment");
        let head = &bytes[..first_moof];
        assert!(contains(head, b"mp4a"), "MP4 header without AAC: {file:?}");
        if contains(head, b"avc1") {
            with_video = Some(file.clone());
        }
    }
    let file = with_video.unwrap_or_else(|| panic!("no MP4 with video: {files:?}"));
    let probe = common::ffprobe(&file.to_string_lossy()).await;
    assert_eq!(
        (probe.video_codec.as_str(), probe.audio_codec.as_str()),
        ("h264", "aac")
    );
    assert_eq!(probe.sample_rate, "48000");
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
