//! Recording end to end: ffmpeg publishes over RTMP, Sluice records, and ffprobe/ffmpeg
//! check the files (and the HLS VOD playlist beside an MP4) decode and last as long as what
//! was published.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{http_get, http_request};
use sluice::configuration::RecordFormat;
use tokio::time::Instant;

/// Files under `dir` with extension `ext`, sorted by name.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == ext));
    v.sort();
    v
}

/// Waits (bounded) until no recording is in progress.
async fn wait_no_recordings(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http_get(addr, "/api/v1/recordings").await;
        assert_eq!(r.status, 200);
        if r.json()["recordings"]
            .as_array()
            .is_some_and(|a| a.is_empty())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "recording never ended: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Duration (s) and frame counts (video, audio) of a media file or URL, by decoding it.
async fn probe(input: &str) -> (f64, usize, usize) {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args([
            "stream=codec_type,nb_read_frames:format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("ffprobe in time")
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ffprobe {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut dur, mut v, mut a) = (0.0, 0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        match f.as_slice() {
            ["video", n] => v = n.parse().unwrap_or(0),
            ["audio", n] => a = n.parse().unwrap_or(0),
            [d] => dur = d.parse().unwrap_or(0.0),
            _ => {}
        }
    }
    (dur, v, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_mp4_recording_matches_what_was_published() {
    let mut cfg = common::test_config();
    cfg.record.streams = vec!["rec/*".into()];
    cfg.hub.publisher_grace_ms = 300;
    let rec_dir = PathBuf::from(&cfg.record.dir).join("rec");
    let server = common::start(cfg).await;
    let (rtmp, http) = (server.rtmp_addr(), server.http_addr());
    // Two passes of the clip (8 s of media) in real time: an ffmpeg that sends faster than
    // we read and then exits resets the connection (it never reads our acknowledgements),
    // which discards what the kernel held: the recording could not be complete.
    let mut p = common::publish(&format!("rtmp://{rtmp}/rec/cam"), 1, &["-re"]);
    let status = tokio::time::timeout(Duration::from_secs(40), p.wait()).await;
    assert!(
        status
            .expect("publisher finished")
            .expect("ffmpeg")
            .success()
    );
    wait_no_recordings(http).await;
    let mp4 = files(&rec_dir, "mp4");
    assert_eq!(mp4.len(), 1, "{mp4:?}");
    let path = mp4[0].to_string_lossy().into_owned();
    let (dur, v, a) = probe(&path).await;
    assert!((dur - 8.0).abs() < 0.25, "duration {dur}");
    assert_eq!(v, 200, "every video frame of two passes");
    assert!((370..=380).contains(&a), "audio frames {a}");
    let d = common::ffmpeg_decode(&path, 60.0).await;
    assert!(d.stderr.trim().is_empty(), "{}", d.stderr);
    common::assert_monotonic("video", &d.video_dts);
    // The HLS VOD playlist beside it plays the same media, through /vod over HTTP.
    let m3u8 = files(&rec_dir, "m3u8");
    assert_eq!(m3u8.len(), 1);
    let text = std::fs::read_to_string(&m3u8[0]).unwrap();
    assert!(
        text.contains("#EXT-X-MAP:URI=") && text.ends_with("#EXT-X-ENDLIST\n"),
        "{text}"
    );
    let name = m3u8[0].file_name().unwrap().to_string_lossy().into_owned();
    let url = format!("http://{http}/vod/recordings/rec/{name}");
    let (_, hv, ha) = probe(&url).await;
    assert_eq!(hv, 200, "HLS VOD video frames");
    assert!((370..=380).contains(&ha), "HLS VOD audio frames {ha}");
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_started_flv_recording_rotates_and_stops() {
    let mut cfg = common::test_config();
    cfg.record.max_duration_ms = 1500;
    let rec_dir = PathBuf::from(&cfg.record.dir).join("live");
    let server = common::start(cfg).await;
    let (rtmp, http) = (server.rtmp_addr(), server.http_addr());
    let mut p = common::publish(&format!("rtmp://{rtmp}/live/api"), 2, &["-re"]);
    common::wait_live(&server, "live/api").await;
    // Unknown stream, then a real start, then a second start.
    let r = common::http_request_with(
        http,
        "POST",
        "/api/v1/streams/live/none/recording",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
    let body = br#"{"format":"flv"}"#;
    let len = body.len().to_string();
    let headers = [
        ("Content-Length", len.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = common::http_request_with(
        http,
        "POST",
        "/api/v1/streams/live/api/recording",
        &headers,
        body,
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["format"], "flv");
    let r = common::http_request_with(http, "POST", "/api/v1/streams/live/api/recording", &[], b"")
        .await;
    assert_eq!(r.status, 409);
    let headers = [
        ("Content-Length", "7"),
        ("Content-Type", "application/json"),
    ];
    let r = common::http_request_with(
        http,
        "POST",
        "/api/v1/streams/live/api/recording",
        &headers,
        b"{\"x\":1}",
    )
    .await;
    assert_eq!(r.status, 400, "an unknown field is refused");
    assert_eq!(r.json()["code"], "invalid_body");
    let list = http_get(http, "/api/v1/recordings").await.json();
    assert_eq!(list["recordings"][0]["stream"], "live/api");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let r = http_request(http, "DELETE", "/api/v1/streams/live/api/recording").await;
    assert_eq!(r.status, 204);
    wait_no_recordings(http).await;
    let r = http_request(http, "DELETE", "/api/v1/streams/live/api/recording").await;
    assert_eq!(r.status, 404);
    let flv = files(&rec_dir, "flv");
    assert!(flv.len() >= 2, "rotated at least once: {flv:?}");
    let mut total = 0.0;
    for f in &flv {
        let path = f.to_string_lossy().into_owned();
        let (dur, v, a) = probe(&path).await;
        assert!(v > 0 && a > 0, "{path}: {v} video, {a} audio frames");
        // Rotation happens at the first keyframe after 1.5 s (1 s GOPs).
        assert!(dur < 2.6, "{path}: {dur} s");
        let d = common::ffmpeg_decode(&path, 60.0).await;
        assert!(d.stderr.trim().is_empty(), "{path}: {}", d.stderr);
        assert!(
            d.video_dts.first().is_some_and(|t| *t < 100),
            "{path} starts near zero"
        );
        total += dur;
    }
    assert!(
        (3.5..6.5).contains(&total),
        "recorded {total} s in {} files",
        flv.len()
    );
    let _ = p.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[test]
fn record_format_names_are_the_config_names() {
    let cfg = sluice::Config::from_toml("[record]\nformat = \"flv\"\n").unwrap();
    assert_eq!(cfg.record.format, RecordFormat::Flv);
    assert!(sluice::Config::from_toml("[record]\nformat = \"avi\"\n").is_err());
}
