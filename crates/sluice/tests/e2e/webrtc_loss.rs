//! WHEP under packet loss: the `sluice` binary, an ffmpeg RTMP publisher and the aiortc WHEP
//! player run in a private network namespace (`unshare`, as root) where netem drops 5% of
//! the UDP packets on loopback (kernels without sch_netem: a lossy UDP relay in front of
//! the server's WebRTC port, `tests/webrtc/loss_proxy.py`, drops them). The viewer's NACKs must be answered with retransmissions
//! (counted by the new quality counters) and playback must keep going, once started, at ≥ 80% of
//! the frame rate of the same run without loss.

use crate::webrtc_support as support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// How long the player plays in each run.
const PLAY_SECONDS: u64 = 12;
/// Percentage of UDP packets dropped in the lossy run.
const LOSS_PERCENT: u32 = 5;

/// Runs `loss.sh` in a fresh network + PID namespace and returns its JSON line.
async fn run(loss: u32) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = dir.join("tests/webrtc/loss.sh");
    let fixture = dir.join("../../fixtures/demo.flv");
    let out = Command::new("unshare")
        .args(["--net", "--pid", "--fork", "--kill-child", "bash"])
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg(fixture)
        .arg(support::python())
        .arg(support::client_script())
        .arg(PLAY_SECONDS.to_string())
        .arg(loss.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(PLAY_SECONDS + 90), out)
        .await
        .expect("the namespace run finishes in time")
        .expect("unshare runs (util-linux; the test needs root)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loss.sh failed: {stdout}\n{stderr}");
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}\n{stderr}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f as u64))
        .unwrap_or(0)
}

/// Frames decoded per second of a run's timeline, from the first sample with frames.
fn timeline(r: &Value) -> Vec<u64> {
    r["client"]["video_timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(u)
        .collect()
}

/// Frames decoded per second from the first sample with frames to the end (loss delays the
/// connection and the first decodable keyframe, so playback is compared once it started).
fn rate(t: &[u64]) -> Result<f64, String> {
    let start = t
        .iter()
        .position(|n| *n > 0)
        .ok_or_else(|| format!("no frame decoded: {t:?}"))?;
    let secs = t.len() - 1 - start;
    if secs < 3 {
        return Err(format!("played for less than 3 s: {t:?}"));
    }
    Ok((t[t.len() - 1] - t[start]) as f64 / secs as f64)
}

/// The lossy run's playback against the clean run's: at least 80% of its frame rate, and
/// the decoded count grows in every two-second window after the first frames.
fn playback_holds(clean_fps: f64, lossy: &[u64]) -> Result<(), String> {
    let lossy_fps = rate(lossy)?;
    if lossy_fps < clean_fps * 0.8 {
        return Err(format!(
            "{lossy_fps:.1} fps under loss ({lossy:?}), {clean_fps:.1} without"
        ));
    }
    let start = lossy.iter().position(|n| *n > 0).unwrap_or(0);
    if let Some(w) = lossy[start..].windows(3).find(|w| w[2] <= w[0]) {
        return Err(format!("video stalled under loss ({w:?}): {lossy:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_recovers_from_udp_loss_with_nacks_and_retransmissions() {
    let clean = run(0).await;
    let clean_t = timeline(&clean);
    let clean_fps = rate(&clean_t).unwrap_or_else(|e| panic!("clean run: {e}"));
    assert!(
        clean_fps >= 20.0,
        "the clean run plays at 25 fps: {clean_t:?}"
    );

    // One more lossy run when the first stalls. aiortc's receiver holds its video while
    // the packet at the head of its 512-packet jitter buffer is missing (until the buffer
    // overflows: about 10 s of this clip) and re-asks for a lost packet only when it sees a
    // new gap, forgetting it 128 packets later; a packet that arrives 100 or more sequence
    // numbers late (an old retransmission) resets that buffer. So one unlucky loss stalls
    // this client for seconds; seen once in about 15 runs, on a loaded CI machine. Two
    // stalls in a row fail the test.
    let mut lossy = run(LOSS_PERCENT).await;
    if let Err(first) = playback_holds(clean_fps, &timeline(&lossy)) {
        eprintln!("first lossy run stalled, running it again: {first}\n{lossy}");
        lossy = run(LOSS_PERCENT).await;
    }
    eprintln!("no loss: {clean}\n{LOSS_PERCENT}% loss: {lossy}");
    if let Err(e) = playback_holds(clean_fps, &timeline(&lossy)) {
        panic!("{e} (clean: {clean_t:?})");
    }

    // The viewer asked for the lost packets and the server sent them again.
    assert!(u(&lossy["nacks"]) > 0, "no NACKs: {lossy}");
    assert!(u(&lossy["retransmits"]) > 0, "no retransmissions: {lossy}");

    // The session list showed the viewer's quality while it played.
    let items = lossy["sessions"]["items"].as_array().expect("sessions");
    let viewer = items
        .iter()
        .find(|i| i["protocol"] == "webrtc")
        .expect("the WebRTC viewer is listed");
    let q = &viewer["webrtc"];
    assert!(u(&q["packets_sent"]) > 100, "{q}");
    assert!(u(&q["nacks_received"]) > 0, "{q}");
    // aiortc's Receiver Reports yield no RTT in str0m: the field is there, null, or a
    // loopback round trip when there is one.
    assert!(
        q.get("rtt_ms").is_some_and(
            |r| r.is_null() || r.as_f64().is_some_and(|ms| (0.0..1000.0).contains(&ms))
        ),
        "{q}"
    );
    assert!(u(&q["packets_lost"]) > 0, "{q}");
    assert_eq!(q["candidate_pair"]["protocol"], "udp", "{q}");
    assert!(
        q["candidate_pair"]["local"]
            .as_str()
            .is_some_and(|a| a.ends_with(":8189")),
        "{q}"
    );
}
