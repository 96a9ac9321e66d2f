//! The web console at `/`: its files are served from the binary, and a real browser (headless
//! Chromium, driven by `tests/console/console_test.mjs` through playwright-core) loads it
//! against a server with a live stream, finds the stream, draws the charts, plays the preview
//! over HLS and then over WebRTC (WHEP),
//! kicks a viewer and stops the publisher through the console's buttons, without a single
//! console error. The browser run saves a screenshot to `target/console-screenshot.png`.
//!
//! Needs `node`, `npm` and `/usr/bin/chromium` (scripts/test.sh installs them). The preview
//! check needs the server's HLS output; `SLUICE_CONSOLE_NO_PREVIEW=1` skips only that check.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;
use sluice::SessionKind;
use tokio::process::Command;
use tokio::time::Instant;

/// The browser script's directory.
fn script_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

/// A GET with extra headers through the shared raw HTTP client.
async fn get_with(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> common::RawHttpResponse {
    common::http_request_with(addr, "GET", path, headers, b"").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_are_served_with_etags() {
    let server = start(test_config()).await;
    let addr = server.http_addr();

    let r = get_with(addr, "/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert!(r.header("content-security-policy").is_some());
    let body = r.text();
    assert!(body.contains("<title>Sluice console</title>"), "{body}");
    assert_eq!(body, sluice::console_asset("index.html").unwrap().body);

    for (file, ctype) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("chart.js", "text/javascript; charset=utf-8"),
        ("player.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ] {
        let path = format!("/console/{file}");
        let r = get_with(addr, &path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ctype), "{path}");
        assert_eq!(r.text(), sluice::console_asset(file).unwrap().body);
        let etag = r.header("etag").expect("etag").to_owned();
        // The same ETag back: 304 with no body.
        let r2 = get_with(addr, &path, &[("If-None-Match", etag.as_str())]).await;
        assert_eq!(r2.status, 304, "{path}");
        assert!(r2.body.is_empty());
        assert_eq!(r2.header("etag"), Some(etag.as_str()));
        let r3 = get_with(addr, &path, &[("If-None-Match", "\"other\"")]).await;
        assert_eq!(r3.status, 200);
    }

    // Not a console file: `/console/{file}` is still the HTTP-FLV route of an app "console".
    let r = get_with(addr, "/console/cam.flv", &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("console/cam"), "{}", r.text());
    assert_eq!(get_with(addr, "/console/nope.js", &[]).await.status, 404);
    // The API and metrics are untouched by the new routes.
    assert_eq!(http_get(addr, "/api/v1/server").await.status, 200);
    assert_eq!(http_get(addr, "/metrics").await.status, 200);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// Waits (bounded) until the session list satisfies `pred`.
async fn sessions_until(
    server: &sluice::RunningServer,
    what: &str,
    pred: impl Fn(&[std::sync::Arc<sluice::SessionEntry>]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if pred(&server.sessions().list()) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until the stream's HLS playlist is served.
async fn wait_hls(addr: std::net::SocketAddr, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let path = format!("/{key}/media.m3u8");
    loop {
        let r = http_get(addr, &path).await;
        if r.status == 200 && r.body.contains("#EXTINF") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never served a playlist (last status {}); the preview needs HLS \
             (SLUICE_CONSOLE_NO_PREVIEW=1 skips the preview check)",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} missing: scripts/test.sh installs the `chromium` package"
    );
    let dir = script_dir();
    common::playwright_core().await;
    let expect_preview = std::env::var_os("SLUICE_CONSOLE_NO_PREVIEW").is_none();

    let mut cfg = test_config();
    // Long: only the console's "Stop publishing" can end the stream within the test.
    cfg.hub.publisher_grace_ms = 30_000;
    let server = start(cfg).await;
    let addr = server.http_addr();
    let key = "live/test";
    let rtmp = format!("rtmp://{}/{key}", server.rtmp_addr());
    let mut publisher = publish(&rtmp, -1, &["-re"]);
    wait_live(&server, key).await;
    let mut rtmp_player = play_null(&rtmp);
    sessions_until(&server, "the RTMP viewer", |l| l.len() == 2).await;
    let mut flv_player = play_null(&format!("http://{addr}/{key}.flv"));
    sessions_until(&server, "both viewers", |l| {
        l.iter().filter(|s| s.kind == SessionKind::Viewer).count() == 2
    })
    .await;
    let rtmp_viewer_id = server
        .sessions()
        .list()
        .iter()
        .find(|s| s.kind == SessionKind::Viewer && s.protocol == "rtmp")
        .map(|s| s.id.to_string())
        .expect("rtmp viewer session");
    if expect_preview {
        wait_hls(addr, key).await;
    }

    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("console-screenshot.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut node = Command::new("node");
    node.arg(dir.join("console_test.mjs"))
        .arg(format!("http://{addr}/"))
        .arg(&screenshot)
        .args(["--stream", key, "--kick", "--stop"])
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if expect_preview {
        node.arg("--expect-preview").arg("--expect-webrtc");
    }
    let out = tokio::time::timeout(Duration::from_secs(180), node.output())
        .await
        .expect("the browser run finished in time")
        .expect("node runs (scripts/test.sh installs nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .map(|j| serde_json::from_str(j).expect("summary JSON"))
        .unwrap_or_else(|| panic!("no summary; stdout: {stdout}\nstderr: {stderr}"));
    println!(
        "console summary: {summary:#}\nscreenshot: {}",
        screenshot.display()
    );

    assert_eq!(
        summary["failures"],
        Value::Array(vec![]),
        "{summary:#}\n{stderr}"
    );
    assert!(out.status.success(), "{summary:#}\n{stderr}");
    assert_eq!(summary["stream_found"], true);
    assert_eq!(summary["selected"], true);
    assert_eq!(
        summary["console_errors"],
        Value::Array(vec![]),
        "{summary:#}"
    );
    for chart in ["bitrate", "viewers"] {
        let c = &summary["charts"][chart];
        assert!(c["points"].as_u64().unwrap_or(0) >= 2, "{chart}: {c}");
        assert!(
            c["series_pixels"].as_u64().unwrap_or(0) >= 20,
            "{chart}: {c}"
        );
    }
    if expect_preview {
        assert_eq!(summary["preview"]["advanced"], true, "{summary:#}");
        // Then the WebRTC (WHEP) preview: Chromium decoded frames of the same stream.
        assert!(
            summary["webrtc"]["frames"].as_u64().unwrap_or(0) > 25,
            "{summary:#}"
        );
    }
    let png = std::fs::read(&screenshot).expect("screenshot saved");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000);

    // The console kicked the first viewer (the RTMP player, the older session): ffmpeg exits.
    assert_eq!(summary["kicked"].as_str(), Some(rtmp_viewer_id.as_str()));
    tokio::time::timeout(Duration::from_secs(10), rtmp_player.wait())
        .await
        .expect("the kicked ffmpeg player exits")
        .expect("wait");
    // "Stop publishing" ended the stream: the publisher and the HTTP-FLV player exit.
    assert_eq!(summary["stopped"], true);
    for (what, child) in [
        ("publisher", &mut publisher),
        ("flv player", &mut flv_player),
    ] {
        tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap_or_else(|_| panic!("the ffmpeg {what} exits after the stop"))
            .expect("wait");
    }
    assert!(server.hub().stream(key).is_none(), "the stream is gone");
    sessions_until(&server, "no sessions", |l| l.is_empty()).await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
