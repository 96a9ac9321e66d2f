//! The HLS segmenter: CPU per frame (fMP4 with LL-HLS parts, and MPEG-TS), and, on the
//! demo clip's timeline (25 fps, 1 s GOP, 2 s target, 200 ms parts), how much media has to
//! arrive after a keyframe before the part and the segment that start with it are listed.
//! That media time is the structural latency; the processing time per frame is what the
//! benchmark measures on top of it.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hls::{HlsParams, HlsStream, PlaylistQuery, Readiness, SegmentFormat};
use media::{Frame, FrameRole};

/// Passes of the 4 s clip per measured iteration.
const LOOPS: u64 = 5;
const LOOP_MS: u64 = 4000;

fn frames() -> Vec<Frame> {
    let all: Vec<Frame> = flv::read_all_tags(sluice_microbench::DEMO_FLV)
        .expect("fixture")
        .into_iter()
        .filter_map(|t| flv::frame_from_tag(t.tag_type, t.timestamp, t.body).ok())
        .collect();
    let mut out: Vec<Frame> = all
        .iter()
        .filter(|f| f.role == FrameRole::SequenceHeader)
        .cloned()
        .collect();
    for l in 0..LOOPS {
        for f in all.iter().filter(|f| f.role == FrameRole::Coded) {
            let mut f = f.clone();
            f.dts += l * LOOP_MS;
            out.push(f);
        }
    }
    out
}

fn params(format: SegmentFormat) -> HlsParams {
    HlsParams {
        format,
        target_duration_ms: 2000,
        part_target_ms: if format == SegmentFormat::Fmp4 {
            200
        } else {
            0
        },
        window_segments: 8,
    }
}

/// Media time (ms) between a segment's keyframe and its first part, and the segment itself,
/// being listed; averaged over the run. Also the bytes held once the window is full.
fn structural_latency(frames: &[Frame]) {
    let mut hls = HlsStream::new(params(SegmentFormat::Fmp4), "b-").expect("params");
    let (mut part_lat, mut seg_lat) = (Vec::new(), Vec::new());
    let mut starts: Vec<(u64, u64)> = Vec::new(); // (msn, keyframe dts)
    let mut opened = false;
    for f in frames {
        let before = hls.stats().segments_total;
        hls.push(f, f.dts).expect("push");
        let after = hls.stats().segments_total;
        // A keyframe that closed the previous segment (or the very first one) starts the
        // segment whose media sequence number is the count of completed segments.
        if f.is_video_keyframe() && (after > before || !opened) {
            // The very first segment waits for a complete segment before any playlist is
            // served at all: start-up, not steady state, so it is left out.
            if opened {
                starts.push((after, f.dts));
            }
            opened = true;
        }
        starts.retain(|&(msn, kdts)| {
            let q = |part| PlaylistQuery {
                msn: Some(msn),
                part,
                skip: false,
            };
            let part_ready = hls.playlist_readiness(&q(Some(0))) == Readiness::Ready;
            if part_ready && !part_lat.iter().any(|(m, _)| *m == msn) {
                part_lat.push((msn, f.dts - kdts));
            }
            let seg_ready = hls.playlist_readiness(&q(None)) == Readiness::Ready;
            if seg_ready {
                seg_lat.push((msn, f.dts - kdts));
            }
            !seg_ready
        });
    }
    let avg = |v: &[(u64, u64)]| v.iter().map(|x| x.1).sum::<u64>() as f64 / v.len().max(1) as f64;
    eprintln!(
        "structural latency (media ms after the keyframe): first part listed {:.0} ms (n={}), segment listed {:.0} ms (n={}); bytes held: {} in {} segments",
        avg(&part_lat),
        part_lat.len(),
        avg(&seg_lat),
        seg_lat.len(),
        hls.stats().bytes,
        hls.stats().segments
    );
}

fn segmenter(c: &mut Criterion) {
    let frames = frames();
    structural_latency(&frames);
    let mut g = c.benchmark_group("hls_segmenter");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.measurement_time(Duration::from_secs(5));
    for format in [SegmentFormat::Fmp4, SegmentFormat::Ts] {
        g.bench_function(format!("{format:?}_push_20s_of_demo"), |b| {
            b.iter(|| {
                let mut hls = HlsStream::new(params(format), "b-").expect("params");
                for f in &frames {
                    black_box(hls.push(f, f.dts).expect("push"));
                }
                black_box(hls.media_playlist(false))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, segmenter);
criterion_main!(benches);
