//! The ABR ladder with a real ffmpeg child: the demo clip (640x360, a keyframe every second)
//! published over RTMP gets its rungs below 360p as streams of their own, each playable,
//! at its height, with its keyframes where the source has them; a child killed with
//! SIGKILL is restarted and its rungs play again.

use std::process::Stdio;
use std::time::Duration;

use config::Rung;
use tokio::process::Command;

use crate::common::*;

fn rung(name: &str, height: u32, video_kbps: u32) -> Rung {
    Rung {
        name: name.to_owned(),
        height,
        video_kbps,
        encoder_options: Vec::new(),
    }
}

/// Keyframe times (ms) of `url`'s video over its first `seconds`, from ffprobe's packets.
async fn keyframes(url: &str, seconds: u32) -> Vec<u64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-read_intervals"])
        .arg(format!("%+{seconds}"))
        .args([
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
            url,
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("ffprobe finished")
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains('K'))
        .filter_map(|l| l.split(',').next()?.parse::<f64>().ok())
        .map(|t| (t * 1000.0).round() as u64)
        .collect()
}

async fn ladder_status(server: &sluice::RunningServer, source: &str) -> serde_json::Value {
    let info = http_get(server.http_addr(), "/api/v1/server").await.json();
    info["transcode"][source].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rungs_below_the_source_play_and_come_back_after_sigkill() {
    let mut cfg = test_config();
    cfg.transcode.apps = vec!["live".into()];
    cfg.transcode.preset = "ultrafast".into();
    // 360p is the source's height: skipped (never re-encoded at its own height).
    cfg.transcode.ladder = vec![
        rung("360p", 360, 600),
        rung("240p", 240, 300),
        rung("180p", 180, 200),
    ];
    let server = start(cfg).await;
    let key = "live/abr";
    let _pubr = publish(
        &format!("rtmp://{}/{key}", server.rtmp_addr()),
        -1,
        &["-re"],
    );
    wait_live(&server, key).await;
    for r in ["live/abr_240p", "live/abr_180p"] {
        wait_live_within(&server, r, Duration::from_secs(30)).await;
    }
    assert!(
        server.hub().stream("live/abr_360p").is_none(),
        "no upscale or same-height rung"
    );
    let status = ladder_status(&server, key).await;
    assert_eq!(
        status["rungs"],
        serde_json::json!(["live/abr_240p", "live/abr_180p"])
    );
    let pid = status["pid"].as_u64().expect("ffmpeg runs");

    // Each rung plays over HTTP-FLV at its height, and over HLS.
    let http = server.http_addr();
    for (name, height) in [("abr_240p", 240), ("abr_180p", 180)] {
        let url = format!("http://{http}/live/{name}.flv");
        let p = ffprobe(&url).await;
        assert_eq!(p.height, height, "{name}: {p:?}");
        assert_eq!(p.video_codec, "h264");
        assert_eq!(p.audio_codec, "aac", "the source's audio is copied");
        let d = ffmpeg_decode(&url, 2.0).await;
        assert!(d.video_frames >= 40, "{name}: {} frames", d.video_frames);
        assert_monotonic(name, &d.video_dts);
        // Keyframes where the source has them: one a second, like the demo clip.
        let k = keyframes(&url, 4).await;
        assert!(k.len() >= 3, "{name} keyframes {k:?}");
        for w in k.windows(2) {
            assert!(
                (w[1] - w[0]).abs_diff(1000) <= 80,
                "{name}: keyframes {k:?} not one a second like the source's"
            );
        }
    }
    let hls = ffmpeg_decode(&format!("http://{http}/live/abr_240p/index.m3u8"), 2.0).await;
    assert!(
        hls.video_frames >= 40,
        "HLS of a rung: {}",
        hls.video_frames
    );

    // SIGKILL the child: it is restarted, the error is in the API, the rungs play again.
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = ladder_status(&server, key).await;
        if s["restarts"].as_u64() >= Some(1) && s["pid"].as_u64().is_some_and(|p| p != pid) {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "not restarted: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        status["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    let d = ffmpeg_decode(&format!("http://{http}/live/abr_180p.flv"), 2.0).await;
    assert!(
        d.video_frames >= 40,
        "after the restart: {}",
        d.video_frames
    );
    let metrics = http_get(http, "/metrics").await.body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sluice_transcode_restarts_total") && !l.ends_with(" 0")),
        "restarts counted"
    );
    server.shutdown(Duration::from_secs(5)).await;
}
