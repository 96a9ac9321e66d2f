//! The demo fixture muxed like concatenated HLS segments, checked by ffprobe and ffmpeg.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::BytesMut;
use media::{FrameRole, MediaKind};
use mpegts::TsMuxer;

const DEMO: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/demo.flv"
));
/// How long ffprobe or ffmpeg may take on the 4-second fixture.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The muxed fixture and how many coded video and audio frames went in.
fn mux_fixture() -> (BytesMut, u64, u64) {
    let mut muxer = TsMuxer::new();
    let mut out = BytesMut::new();
    let (mut video, mut audio) = (0, 0);
    let mut tables_written = false;
    for tag in flv::read_all_tags(DEMO).expect("fixture parses") {
        let frame = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body).expect("frame");
        let coded = frame.role == FrameRole::Coded && frame.kind != MediaKind::Data;
        // Tables at the start of the output and before every keyframe (segment starts).
        if frame.is_video_keyframe() || (coded && !tables_written) {
            muxer.write_tables(&mut out);
            tables_written = true;
        }
        if muxer.push(&frame, &mut out).expect("fixture frames mux") {
            match frame.kind {
                MediaKind::Video => video += 1,
                _ => audio += 1,
            }
        }
    }
    (out, video, audio)
}

/// Runs a command with a deadline and returns its output.
fn run(program: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output());
    });
    rx.recv_timeout(TOOL_TIMEOUT)
        .unwrap_or_else(|_| panic!("{program} finished within {TOOL_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

/// A temp file removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(bytes: &[u8]) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("sluice-mpegts-{}-{nanos}.ts", std::process::id()));
        std::fs::write(&path, bytes).expect("temp file written");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn ffprobe_counts_every_frame_and_ffmpeg_decodes_cleanly() {
    let (ts, video, audio) = mux_fixture();
    assert_eq!(ts.len() % mpegts::TS_PACKET_LEN, 0);
    assert!(
        video > 90 && audio > 150,
        "{video} video, {audio} audio frames"
    );
    let file = TempFile::new(&ts);
    let path = file.path().to_str().expect("utf-8 temp path");

    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames,width,height",
            "-of",
            "json",
            path,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed: {stderr}");
    assert!(stderr.is_empty(), "ffprobe complained: {stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let streams = json["streams"].as_array().expect("streams array");
    assert_eq!(streams.len(), 2, "{json}");
    let h264 = streams
        .iter()
        .find(|s| s["codec_name"] == "h264")
        .unwrap_or_else(|| panic!("an h264 stream in {json}"));
    let aac = streams
        .iter()
        .find(|s| s["codec_name"] == "aac")
        .unwrap_or_else(|| panic!("an aac stream in {json}"));
    assert_eq!(
        (h264["width"].as_u64(), h264["height"].as_u64()),
        (Some(640), Some(360))
    );
    let frames = |s: &serde_json::Value| s["nb_read_frames"].as_str().and_then(|n| n.parse().ok());
    assert_eq!(frames(h264), Some(video), "video frames");
    assert_eq!(frames(aac), Some(audio), "audio frames");

    let out = run("ffmpeg", &["-v", "error", "-i", path, "-f", "null", "-"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    assert!(stderr.is_empty(), "decode errors: {stderr}");
}
