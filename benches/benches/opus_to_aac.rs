//! CPU cost of one Opus → AAC transcoder (a WHIP publisher's audio for RTMP/FLV/TS players):
//! one second of the demo clip's audio, first made into 50 real 20 ms Opus packets with
//! `AacToOpus`, then through `transcode::OpusToAac` (libopus decode + FDK AAC-LC encode).
//! The time per iteration divided by 1 s is the fraction of one core a stream's bridge needs.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use media::{FrameRole, MediaKind};
use sluice_microbench::DEMO_FLV;
use transcode::{AacToOpus, OpusToAac};

/// Opus packets in one second (20 ms each).
const PACKETS_PER_SECOND: usize = 50;

fn demo_opus() -> Vec<transcode::OpusPacket> {
    let tags = flv::read_all_tags(DEMO_FLV).unwrap_or_else(|e| panic!("fixture parses: {e}"));
    let mut t: Option<AacToOpus> = None;
    let mut out = Vec::new();
    for tag in tags {
        let frame = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body)
            .unwrap_or_else(|e| panic!("fixture tag: {e}"));
        if frame.kind != MediaKind::Audio {
            continue;
        }
        match frame.role {
            FrameRole::SequenceHeader => {
                t = Some(AacToOpus::new(&frame.payload()).unwrap_or_else(|e| panic!("asc: {e}")));
            }
            FrameRole::Coded => {
                if let Some(t) = t.as_mut() {
                    t.push(&frame.payload(), frame.dts, &mut out)
                        .unwrap_or_else(|e| panic!("fixture frame: {e}"));
                }
            }
            _ => {}
        }
        if out.len() >= PACKETS_PER_SECOND {
            break;
        }
    }
    out.truncate(PACKETS_PER_SECOND);
    out
}

fn transcode_one_second(c: &mut Criterion) {
    let packets = demo_opus();
    assert_eq!(packets.len(), PACKETS_PER_SECOND);
    let mut g = c.benchmark_group("opus_to_aac");
    g.throughput(Throughput::Elements(PACKETS_PER_SECOND as u64));
    g.bench_function("1s_48k_stereo", |b| {
        b.iter_batched(
            || OpusToAac::new(2).unwrap_or_else(|e| panic!("new: {e}")),
            |mut t| {
                let mut n = 0;
                for (i, p) in packets.iter().enumerate() {
                    n += t
                        .push(black_box(&p.data), 20 * i as u64)
                        .unwrap_or_else(|e| panic!("packet: {e}"))
                        .len();
                }
                black_box(n)
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group!(benches, transcode_one_second);
criterion_main!(benches);
