//! HLS and LL-HLS end to end: ffmpeg publishes over RTMP, ffmpeg plays the fMP4 and TS
//! variants, and a raw HTTP client checks playlists, blocking reloads, preload hints, delta
//! updates, discontinuities and headers.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use sluice::configuration::HlsFormat;
use tokio::time::Instant;

/// A GET with a binary body and every header (the shared raw HTTP/1.1 client); `_limit`
/// documents the caller's bound, the client's own (20 s) applies.
async fn get(addr: SocketAddr, path: &str, _limit: Duration) -> common::RawHttpResponse {
    common::http_request_with(addr, "GET", path, &[], b"").await
}

const T: Duration = Duration::from_secs(15);

/// Server with HLS on; `legacy` serves MPEG-TS.
async fn server() -> sluice::RunningServer {
    let mut cfg = common::test_config();
    cfg.hls.app_formats.insert("legacy".into(), HlsFormat::Ts);
    common::start(cfg).await
}

/// A media playlist's facts.
#[derive(Debug, Default)]
struct Media {
    target: u64,
    sequence: u64,
    segments: Vec<(String, f64)>,
    parts: Vec<String>,
    hint: Option<String>,
    discontinuities: usize,
    skipped: usize,
}

fn parse(p: &str) -> Media {
    assert!(p.starts_with("#EXTM3U\n"), "{p}");
    let mut m = Media::default();
    let mut dur = None;
    for line in p.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            m.target = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            m.sequence = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            dur = Some(v.trim_end_matches(',').parse().unwrap());
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            let uri = v.split("URI=\"").nth(1).unwrap().split('"').next().unwrap();
            m.parts.push(uri.to_owned());
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"") {
            m.hint = Some(v.trim_end_matches('"').to_owned());
        } else if line == "#EXT-X-DISCONTINUITY" {
            m.discontinuities += 1;
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
            m.skipped = v.parse().unwrap();
        } else if !line.starts_with('#') && !line.is_empty() {
            m.segments
                .push((line.to_owned(), dur.take().expect("EXTINF before URI")));
        }
    }
    m
}

/// Polls the media playlist until it lists `n` segments.
async fn wait_segments(addr: SocketAddr, path: &str, n: usize) -> Media {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(addr, path, T).await;
        if r.status == 200 {
            let m = parse(&r.text());
            if m.segments.len() >= n {
                return m;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{path} never listed {n} segments"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_the_fmp4_and_ts_variants() {
    let server = server().await;
    let rtmp = server.rtmp_addr();
    let http = server.http_addr();
    let mut a = common::publish(&format!("rtmp://{rtmp}/live/a"), 4, &["-re"]);
    let mut b = common::publish(&format!("rtmp://{rtmp}/legacy/b"), 4, &["-re"]);
    common::wait_live(&server, "live/a").await;
    common::wait_live(&server, "legacy/b").await;
    for (key, ext, ctype) in [
        ("live/a", "m4s", "video/mp4"),
        ("legacy/b", "ts", "video/mp2t"),
    ] {
        // The multivariant playlist describes the one rendition.
        let r = get(http, &format!("/{key}/index.m3u8"), T).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/vnd.apple.mpegurl")
        );
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let mv = r.text();
        assert!(mv.contains("CODECS=\"avc1.4d401e,mp4a.40.2\""), "{mv}");
        assert!(mv.contains("RESOLUTION=640x360"), "{mv}");
        assert!(mv.contains("FRAME-RATE=25.000"), "{mv}");
        let m = wait_segments(http, &format!("/{key}/media.m3u8"), 2).await;
        assert!(m.segments.iter().all(|(u, _)| u.ends_with(ext)), "{m:?}");
        let seg = get(http, &format!("/{key}/{}", m.segments[0].0), T).await;
        assert_eq!(seg.status, 200);
        assert_eq!(seg.header("content-type"), Some(ctype));
        assert!(
            seg.header("cache-control")
                .is_some_and(|v| v.contains("immutable"))
        );
        assert_eq!(
            seg.header("content-length"),
            Some(seg.body.len().to_string().as_str())
        );
        // ffmpeg decodes it through the multivariant playlist with no error.
        let d = common::ffmpeg_decode(&format!("http://{http}/{key}/index.m3u8"), 3.0).await;
        assert!(d.video_frames >= 50, "{key}: {d:?}");
        assert!(d.audio_frames >= 100, "{key}: {d:?}");
        assert!(
            d.stderr.trim().is_empty(),
            "{key}: ffmpeg complained: {}",
            d.stderr
        );
        common::assert_monotonic("video", &d.video_dts);
        common::assert_monotonic("audio", &d.audio_dts);
    }
    let _ = a.kill().await;
    let _ = b.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_stay_valid_while_live() {
    let server = server().await;
    let (rtmp, http) = (server.rtmp_addr(), server.http_addr());
    let mut p = common::publish(&format!("rtmp://{rtmp}/live/p"), 4, &["-re"]);
    common::wait_live(&server, "live/p").await;
    let first = wait_segments(http, "/live/p/media.m3u8", 1).await;
    let mut last_seq = first.sequence;
    let mut last_first_uri = first.segments[0].0.clone();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(7);
    while Instant::now() < deadline {
        let r = get(http, "/live/p/media.m3u8", T).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-control"), Some("public, max-age=1"));
        let m = parse(&r.text());
        assert_eq!(m.target, 2);
        for (uri, d) in &m.segments {
            assert!(d.round() as u64 <= m.target, "{uri} {d} > {}", m.target);
        }
        assert!(m.sequence >= last_seq, "media sequence went back");
        if m.sequence == last_seq {
            assert_eq!(
                m.segments[0].0, last_first_uri,
                "same sequence, same first segment"
            );
        }
        last_seq = m.sequence;
        last_first_uri = m.segments[0].0.clone();
        // The newest part is listed (LL-HLS is on), served, and an fMP4 fragment.
        let part = m
            .parts
            .last()
            .unwrap_or_else(|| panic!("no part listed: {m:?}"));
        let r = get(http, &format!("/live/p/{part}"), T).await;
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[4..8], b"moof");
        seen += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(seen > 5);
    // Parts become available about one part target after their first frame arrived.
    let text = server.metrics_text();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    let count = value(r#"sluice_delivery_latency_seconds_count{protocol="hls"}"#);
    let sum = value(r#"sluice_delivery_latency_seconds_sum{protocol="hls"}"#);
    assert!(count > 10.0, "{count} HLS latency samples");
    assert!(sum / count < 0.5, "mean HLS part latency {} s", sum / count);
    let m = parse(&get(http, "/live/p/media.m3u8", T).await.text());
    assert!(m.segments.len() >= 3, "{m:?}");
    // Bad directives and unknown names are refused, not waited on.
    let far = m.sequence + m.segments.len() as u64 + 5;
    let r = get(http, &format!("/live/p/media.m3u8?_HLS_msn={far}"), T).await;
    assert_eq!(r.status, 400);
    let r = get(http, "/live/p/media.m3u8?_HLS_part=1", T).await;
    assert_eq!(r.status, 400);
    let r = get(http, "/live/p/nonsense.m4s", T).await;
    assert_eq!(r.status, 404);
    let r = get(http, "/live/nobody/index.m3u8", T).await;
    assert_eq!(r.status, 404);
    let _ = p.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reload_and_preload_hint_complete_when_the_part_exists() {
    let server = server().await;
    let (rtmp, http) = (server.rtmp_addr(), server.http_addr());
    let mut p = common::publish(&format!("rtmp://{rtmp}/live/ll"), 4, &["-re"]);
    common::wait_live(&server, "live/ll").await;
    let m = wait_segments(http, "/live/ll/media.m3u8", 1).await;
    let hint = m.hint.clone().expect("a preload hint");
    // The hint names the next part: `<prefix><msn>.<part>.m4s`.
    let stem = hint.trim_end_matches(".m4s");
    let (head, part) = stem.rsplit_once('.').unwrap();
    let msn: u64 = head.rsplit('-').next().unwrap().parse().unwrap();
    let part: u32 = part.parse().unwrap();
    assert!(
        !m.parts.contains(&hint),
        "the hinted part is not listed yet"
    );
    // Ask for the playlist that contains the hinted part, and for the part itself, before
    // either exists: both wait, then complete.
    let q = format!("/live/ll/media.m3u8?_HLS_msn={msn}&_HLS_part={part}");
    let blocked = tokio::spawn(async move { get(http, &q, T).await });
    let hint_path = format!("/live/ll/{hint}");
    let part_req = tokio::spawn(async move { get(http, &hint_path, T).await });
    let pl = blocked.await.unwrap();
    let body = part_req.await.unwrap();
    assert_eq!(pl.status, 200);
    assert!(
        pl.header("cache-control")
            .is_some_and(|v| v.starts_with("public, max-age="))
    );
    let after = parse(&pl.text());
    assert!(
        after.parts.contains(&hint)
            || after
                .segments
                .iter()
                .any(|(u, _)| u.contains(&format!("-{msn}."))),
        "the blocking response lists the part it waited for: {after:?}"
    );
    assert_eq!(body.status, 200);
    assert_eq!(
        &body.body[4..8],
        b"moof",
        "the hinted part is an fMP4 fragment"
    );
    // A delta update skips old segments once there are enough of them.
    let m = wait_segments(http, "/live/ll/media.m3u8", 8).await;
    let r = get(http, "/live/ll/media.m3u8?_HLS_skip=YES", T).await;
    assert_eq!(r.status, 200);
    let d = parse(&r.text());
    assert!(d.skipped > 0, "{}", r.text());
    assert_eq!(d.sequence, m.sequence.max(d.sequence));
    assert!(d.segments.len() < m.segments.len() + 2);
    let _ = p.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_reconnect_is_a_discontinuity() {
    let server = server().await;
    let (rtmp, http) = (server.rtmp_addr(), server.http_addr());
    let url = format!("rtmp://{rtmp}/live/r");
    let mut p = common::publish(&url, 0, &["-re"]);
    common::wait_live(&server, "live/r").await;
    wait_segments(http, "/live/r/media.m3u8", 1).await;
    // The clip ends after 4 s; publish again within the 5 s grace.
    let ended = tokio::time::timeout(Duration::from_secs(10), p.wait())
        .await
        .expect("the first publisher ends with the clip")
        .expect("ffmpeg");
    assert!(ended.success(), "the first publisher: {ended}");
    let mut p = common::publish(&url, 1, &["-re"]);
    common::wait_live(&server, "live/r").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = parse(&get(http, "/live/r/media.m3u8", T).await.text());
        if m.discontinuities > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no EXT-X-DISCONTINUITY after the reconnect: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = p.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_is_served_over_http2() {
    let server = server().await;
    let (rtmp, http) = (server.rtmp_addr(), server.http_addr());
    let mut p = common::publish(&format!("rtmp://{rtmp}/live/h2"), 4, &["-re"]);
    common::wait_live(&server, "live/h2").await;
    let m = wait_segments(http, "/live/h2/media.m3u8", 1).await;
    // curl (a real HTTP/2 client) over cleartext HTTP/2 with prior knowledge.
    let url = format!("http://{http}/live/h2/{}", m.segments[0].0);
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code} %{size_download}"])
        .arg(&url)
        .output();
    let out = tokio::time::timeout(T, out)
        .await
        .unwrap()
        .expect("curl runs");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut it = line.split_whitespace();
    assert_eq!(it.next(), Some("2"), "{line}");
    assert_eq!(it.next(), Some("200"), "{line}");
    let size: usize = it.next().unwrap().parse().unwrap();
    let h1 = get(http, &format!("/live/h2/{}", m.segments[0].0), T).await;
    assert_eq!(size, h1.body.len(), "same segment over HTTP/2 and HTTP/1.1");
    let _ = p.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_mode_mirrors_a_playable_stream_and_prunes_old_files() {
    let mut cfg = common::test_config();
    let dir = common::temp_dir("hls-disk");
    cfg.hls.disk_dir = dir.to_string_lossy().into_owned();
    cfg.hls.window_segments = 3;
    let server = common::start(cfg).await;
    let rtmp = server.rtmp_addr();
    // Nobody asks Sluice for a playlist: disk mode muxes from publish on.
    let mut p = common::publish(&format!("rtmp://{rtmp}/live/disk"), 4, &["-re"]);
    common::wait_live(&server, "live/disk").await;
    let stream_dir = dir.join("live").join("disk");
    let media = stream_dir.join("media.m3u8");
    // Once the window slid, every URI of the playlist is a file: segments and the LL-HLS
    // parts. The mirror writes the media, then the playlist, then deletes what left it, so
    // the files are checked between two reads of the same playlist (a newer one may already
    // have dropped the older parts, and their files with them).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (m, missing) = loop {
        if let Ok(text) = std::fs::read_to_string(&media) {
            let m = parse(&text);
            if m.segments.len() >= 3 && m.sequence >= 2 {
                let missing: Vec<String> = m
                    .segments
                    .iter()
                    .map(|(uri, _)| uri)
                    .chain(&m.parts)
                    .filter(|uri| !stream_dir.join(uri).is_file())
                    .cloned()
                    .collect();
                if std::fs::read_to_string(&media).is_ok_and(|again| again == text) {
                    break (m, missing);
                }
            }
        }
        assert!(Instant::now() < deadline, "no slid window on disk");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        missing.is_empty(),
        "listed, missing on disk: {missing:?} in {m:?}"
    );
    assert!(!m.parts.is_empty(), "the LL-HLS parts are mirrored: {m:?}");
    // Segments that left the window (and the two kept after it) were deleted.
    let segment_files = std::fs::read_dir(&stream_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".m4s") && n.matches('.').count() == 1
        })
        .count();
    assert!(
        segment_files <= 3 + 2 + 1,
        "{segment_files} segment files kept"
    );
    // A plain file reader plays it: ffmpeg on the mirrored multivariant playlist.
    let d = common::ffmpeg_decode(&stream_dir.join("index.m3u8").to_string_lossy(), 2.0).await;
    assert!(d.video_frames >= 40, "{d:?}");
    assert!(d.stderr.trim().is_empty(), "{}", d.stderr);
    let _ = p.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
