//! CPU cost of one AAC → Opus transcoder: one second of the demo clip's audio (48 kHz stereo
//! AAC-LC, 47 frames of 1024 samples) through `transcode::AacToOpus`. The time per iteration
//! divided by 1 s is the fraction of one core a stream's transcoder needs. A second case
//! resamples: the same frames presented as 44.1 kHz stereo (an ASC edit; the bitstream syntax
//! does not depend on the rate), which adds the 44.1 → 48 kHz resampler.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use media::{FrameRole, MediaKind};
use sluice_microbench::DEMO_FLV;
use transcode::AacToOpus;

/// AAC frames in one second of 48 kHz audio (48000 / 1024, rounded up).
const FRAMES_PER_SECOND: usize = 47;
/// AAC-LC, 44.1 kHz (index 4), stereo.
const ASC_44K_STEREO: [u8; 2] = [0x12, 0x10];

fn demo_audio() -> (Vec<u8>, Vec<bytes::Bytes>) {
    let tags = flv::read_all_tags(DEMO_FLV).unwrap_or_else(|e| panic!("fixture parses: {e}"));
    let mut asc = Vec::new();
    let mut frames = Vec::new();
    for tag in tags {
        let frame = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body)
            .unwrap_or_else(|e| panic!("fixture tag: {e}"));
        if frame.kind != MediaKind::Audio {
            continue;
        }
        match frame.role {
            FrameRole::SequenceHeader => asc = frame.payload().to_vec(),
            FrameRole::Coded => frames.push(frame.payload()),
            _ => {}
        }
    }
    frames.truncate(FRAMES_PER_SECOND);
    (asc, frames)
}

fn transcode_one_second(c: &mut Criterion) {
    let (asc, frames) = demo_audio();
    let mut g = c.benchmark_group("aac_to_opus");
    g.throughput(Throughput::Elements(FRAMES_PER_SECOND as u64));
    for (name, config, rate) in [
        ("1s_48k_stereo", asc.as_slice(), 48_000u64),
        ("1s_44k1_stereo_resampled", &ASC_44K_STEREO[..], 44_100),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    (
                        AacToOpus::new(config).unwrap_or_else(|e| panic!("config: {e}")),
                        Vec::with_capacity(64),
                    )
                },
                |(mut t, mut out)| {
                    for (i, aac) in frames.iter().enumerate() {
                        // Continuous dts at the configured rate (no gap resets).
                        let dts = i as u64 * 1024 * 1000 / rate;
                        t.push(black_box(aac), dts, &mut out)
                            .unwrap_or_else(|e| panic!("fixture frame: {e}"));
                    }
                    black_box(out)
                },
                BatchSize::LargeInput,
            );
        });
    }
    // The resampler alone: 1 s of 44.1 kHz stereo to 48 kHz, in 1024-frame chunks.
    let input: Vec<f32> = (0..44_100 * 2)
        .map(|i| ((i / 2) as f32 * 0.0713).sin() * 0.5)
        .collect();
    g.bench_function("resample_1s_44k1_stereo_only", |b| {
        let mut r = transcode::resample::Resampler::new(44_100, 48_000, 2)
            .unwrap_or_else(|e| panic!("resampler: {e}"));
        let mut out = Vec::with_capacity(48_000 * 2 + 4096);
        b.iter(|| {
            out.clear();
            for chunk in input.chunks(2048) {
                r.process(black_box(chunk), &mut out);
            }
            black_box(out.len())
        });
    });
    g.bench_function("new_transcoder", |b| {
        b.iter(|| AacToOpus::new(black_box(&asc)).unwrap_or_else(|e| panic!("config: {e}")));
    });
    g.finish();
}

criterion_group!(benches, transcode_one_second);
criterion_main!(benches);
