//! The `sluice` binary as a user runs it: flags, configuration errors, the demo, and a clean
//! stop on SIGTERM with players attached.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::Instant;

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

#[tokio::test]
async fn help_lists_the_flags() {
    let out = sluice().arg("--help").output().await.expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--rtmp-listen",
        "--http-listen",
        "--log-level",
        "--demo",
        "--print-config",
    ] {
        assert!(text.contains(flag), "--help mentions {flag}");
    }
}

#[tokio::test]
async fn print_config_shows_defaults_env_and_flags() {
    let out = sluice()
        .args(["--print-config", "--rtmp-listen", "127.0.0.1:1999"])
        .env("SLUICE_HUB_RING_CAPACITY", "2048")
        .output()
        .await
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = sluice::Config::from_toml(&String::from_utf8_lossy(&out.stdout)).expect("valid toml");
    assert_eq!(cfg.rtmp.listen.to_string(), "127.0.0.1:1999");
    assert_eq!(cfg.hub.ring_capacity, 2048);
    assert_eq!(cfg.http, sluice::Config::default().http);
}

#[tokio::test]
async fn unknown_config_key_is_named() {
    let path = std::env::temp_dir().join(format!("sluice-bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[rtmp]\nlisten = \"127.0.0.1:0\"\nchunksize = 4096\n",
    )
    .expect("write");
    let out = sluice()
        .arg("--config")
        .arg(&path)
        .arg("--print-config")
        .output()
        .await
        .expect("runs");
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chunksize"), "error names the key: {err}");
}

/// Starts the binary with the demo on port 0 and returns it with its bound addresses,
/// read from its log.
async fn start_demo() -> (tokio::process::Child, String, String) {
    let mut child = common::sluice_process()
        .arg("--demo")
        .args(["--log-level", "info"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut rtmp, mut http) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rtmp.is_none() || http.is_none() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("listening lines in time")
            .expect("read")
            .expect("server still running");
        let addr = line
            .split("rtmp_addr=")
            .nth(1)
            .or_else(|| line.split("http_addr=").nth(1));
        let addr = addr.map(|a| a.split_whitespace().next().unwrap_or_default().to_owned());
        if line.contains("rtmp listening") {
            rtmp = addr;
        } else if line.contains("http listening") {
            http = addr;
        }
    }
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, rtmp.unwrap_or_default(), http.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_plays_and_sigterm_stops_cleanly() {
    let (mut child, rtmp, http) = start_demo().await;
    let flv_url = format!("http://{http}/live/demo.flv");
    // The demo is watchable over HTTP-FLV and RTMP at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut probe = None;
    while probe.is_none() && Instant::now() < deadline {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-show_streams", "-of", "json", &flv_url])
            .kill_on_drop(true)
            .output()
            .await
            .expect("ffprobe runs");
        if out.status.success() {
            probe = Some(out);
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let probe = probe.expect("the demo is watchable");
    let streams: serde_json::Value = serde_json::from_slice(&probe.stdout).expect("JSON");
    let codecs: Vec<&str> = streams["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert_eq!(codecs, ["h264", "aac"], "{streams}");
    // The API knows what the demo is.
    let info = common::http_get(http.parse().unwrap(), "/api/v1/streams/live/demo").await;
    assert_eq!(info.status, 200);
    let info = info.json();
    assert_eq!(info["video"]["codec"], "h264");
    assert_eq!(
        (
            info["video"]["width"].as_u64(),
            info["video"]["height"].as_u64()
        ),
        (Some(640), Some(360))
    );
    let d = common::ffmpeg_decode(&format!("rtmp://{rtmp}/live/demo"), 1.5).await;
    assert!(d.video_frames >= 30 && d.stderr.trim().is_empty(), "{d:?}");

    // Players attached while SIGTERM arrives: both learn the stream ended; the server exits.
    let mut http_player =
        common::RawFlvClient::connect(http.parse().unwrap(), "/live/demo.flv").await;
    let before = http_player.collect_for(Duration::from_millis(300)).await;
    assert_eq!(http_player.status, 200);
    assert!(
        before.iter().any(|t| t.keyframe),
        "the HTTP-FLV player plays before the stop"
    );
    let rtmp_player = common::play_decoding(&format!("rtmp://{rtmp}/live/demo"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pid = child.id().expect("pid");
    let stopped_at = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("kill");
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the server exits within its shutdown bound")
        .expect("status");
    eprintln!("FIGURE shutdown took {:?}", stopped_at.elapsed());
    assert!(status.success(), "clean exit: {status:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !http_player.ended && Instant::now() < deadline {
        let _ = http_player.read_tags(Duration::from_millis(200)).await;
    }
    assert!(
        http_player.ended,
        "the HTTP-FLV player saw the end of the stream"
    );
    let out = tokio::time::timeout(Duration::from_secs(10), rtmp_player.wait_with_output())
        .await
        .expect("the RTMP player stops once told")
        .expect("ffmpeg");
    let d = common::decoded(&out);
    // It played until the stop, then saw a clean end of stream, not an error.
    assert!(
        out.status.success() && d.stderr.trim().is_empty(),
        "the RTMP player: {}: {}",
        out.status,
        d.stderr
    );
    assert!(d.video_frames >= 10 && d.audio_frames >= 10, "{d:?}");
    common::assert_monotonic("rtmp player video", &d.video_dts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_follow_a_session_from_start_to_end() {
    let mut child = common::sluice_process()
        .arg("--demo")
        .env("SLUICE_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next = async || -> serde_json::Value {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("log lines in time")
            .expect("read")
            .expect("server still running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let mut rtmp = String::new();
    while rtmp.is_empty() {
        let v = next().await;
        if v["fields"]["message"] == "rtmp listening" {
            rtmp = v["fields"]["rtmp_addr"]
                .as_str()
                .expect("rtmp_addr")
                .to_owned();
        }
    }
    // An RTMP player for a moment.
    let mut player = common::play_null(&format!("rtmp://{rtmp}/live/demo"));
    let mut started = None;
    let mut tagged = false;
    while started.is_none() || !tagged {
        let v = next().await;
        if v["fields"]["message"] == "session started" && v["fields"]["protocol"] == "rtmp" {
            assert_eq!(v["fields"]["stream"], "live/demo");
            started = v["fields"]["session"].as_u64();
        }
        // Lines logged inside the connection carry its span: peer and stream.
        if v["span"]["name"] == "rtmp" && v["span"]["stream"] == "live/demo" {
            assert!(
                v["span"]["peer"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("127.0.0.1:"))
            );
            tagged = true;
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = player.kill().await;
    loop {
        let v = next().await;
        if v["fields"]["message"] == "session ended" && v["fields"]["session"].as_u64() == started {
            assert!(
                v["fields"]["bytes"].as_u64().is_some_and(|b| b > 10_000),
                "{v}"
            );
            assert!(
                v["fields"]["duration_ms"]
                    .as_u64()
                    .is_some_and(|d| d >= 1000),
                "{v}"
            );
            assert_eq!(v["level"], "INFO");
            break;
        }
    }
    let _ = child.kill().await;
}
