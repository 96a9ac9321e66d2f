//! End to end: the demo fixture through a [`Fragmenter`], checked by ffprobe and ffmpeg.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use fmp4::{Fragment, Fragmenter, Pushed};
use media::{Frame, MediaKind};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/demo.flv");

fn demo_frames() -> Vec<Frame> {
    let file = std::fs::read(DEMO).unwrap();
    flv::read_all_tags(&file)
        .unwrap()
        .into_iter()
        .map(|t| flv::frame_from_tag(t.tag_type, t.timestamp, t.body).unwrap())
        .collect()
}

/// A temp file that is removed on drop; unique per process and call.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, bytes: &[u8]) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("sluice-fmp4-{}-{tag}-{n}.mp4", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Everything the fragmenter produced for the fixture.
struct Output {
    init: bytes::Bytes,
    fragments: Vec<Fragment>,
    fed_video: u32,
    fed_audio: u32,
}

/// Pushes the fixture, flushing before every video keyframe (segments) and every ~200 ms
/// (parts), then finishes.
fn fragment_demo() -> Output {
    let mut f = Fragmenter::new();
    let mut fragments = Vec::new();
    let (mut fed_video, mut fed_audio, mut last_part) = (0, 0, 0);
    for frame in &demo_frames() {
        if f.push(frame).unwrap() == Pushed::Sample {
            match frame.kind {
                MediaKind::Video => fed_video += 1,
                _ => fed_audio += 1,
            }
        }
        if frame.is_video_keyframe() {
            fragments.extend(f.flush(Some(frame.dts)));
            last_part = frame.dts;
        } else if frame.dts >= last_part + 200 {
            fragments.extend(f.flush(None));
            last_part = frame.dts;
        }
    }
    fragments.extend(f.finish());
    assert!(f.finish().is_none());
    Output {
        init: f.init_segment().unwrap(),
        fragments,
        fed_video,
        fed_audio,
    }
}

/// `ffprobe -show_entries ... -of json`, read line by line into (key, value) pairs.
fn probe(path: &Path) -> Vec<(String, String)> {
    let out = Command::new("/usr/bin/ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,width,height,nb_read_frames:format=duration")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (k, v) = line.trim().trim_end_matches(',').split_once(':')?;
            Some((
                k.trim().trim_matches('"').to_owned(),
                v.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect()
}

/// All values of `key`, in output order (streams are listed in track order).
fn values(probe: &[(String, String)], key: &str) -> Vec<String> {
    probe
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// Runs `ffmpeg -v error -i path -f null -` and returns everything it printed.
fn decode_errors(path: &Path) -> String {
    let out = Command::new("/usr/bin/ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn whole_stream_probes_and_decodes() {
    let out = fragment_demo();
    assert!(
        out.fragments.len() > 10,
        "{} fragments",
        out.fragments.len()
    );
    let mut file = out.init.to_vec();
    for frag in &out.fragments {
        file.extend_from_slice(&frag.bytes);
    }
    let tmp = TempFile::new("whole", &file);
    let p = probe(&tmp.0);
    assert_eq!(values(&p, "codec_name"), ["h264", "aac"]);
    assert_eq!(values(&p, "width"), ["640"]);
    assert_eq!(values(&p, "height"), ["360"]);
    assert_eq!(
        values(&p, "nb_read_frames"),
        [out.fed_video.to_string(), out.fed_audio.to_string()]
    );
    let expected: f64 = values(&probe(Path::new(DEMO)), "duration")[0]
        .parse()
        .unwrap();
    let got: f64 = values(&p, "duration")[0].parse().unwrap();
    assert!(
        (got - expected).abs() < 0.1,
        "duration {got} vs fixture {expected}"
    );
    assert_eq!(decode_errors(&tmp.0), "");

    // The fragments tile the timeline, so their durations add up to the fixture's.
    let total: u64 = out.fragments.iter().map(|f| f.duration_ms).sum();
    assert!(
        (total as f64 / 1000.0 - expected).abs() < 0.1,
        "sum {total} ms"
    );
}

#[test]
fn each_keyframe_fragment_decodes_on_its_own() {
    let out = fragment_demo();
    let segments: Vec<&Fragment> = out
        .fragments
        .iter()
        .filter(|f| f.independent && f.video_samples > 0)
        .collect();
    assert!(segments.len() >= 2, "{} keyframe fragments", segments.len());
    // Every fragment that starts a segment (right after a keyframe flush) is independent.
    assert!(out.fragments[0].independent);
    for frag in segments.iter().take(4) {
        let mut file = out.init.to_vec();
        file.extend_from_slice(&frag.bytes);
        let tmp = TempFile::new("single", &file);
        assert_eq!(
            decode_errors(&tmp.0),
            "",
            "fragment {}",
            frag.sequence_number
        );
        let p = probe(&tmp.0);
        assert_eq!(
            values(&p, "nb_read_frames"),
            [
                frag.video_samples.to_string(),
                frag.audio_samples.to_string()
            ],
            "fragment {}",
            frag.sequence_number
        );
    }
}
