//! FLV hot paths: building a tag, parsing tags into frames, reading a whole file.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flv::{FlvReader, TAG_VIDEO, frame_from_tag, read_all_tags, tag_header, write_tag};
use sluice_microbench::{DEMO_FLV, payload};

/// Body size of the `write_tag` bench.
const BODY_LEN: usize = 4096;
/// Bytes handed to the reader per push, like one socket read.
const READ_SIZE: usize = 16 * 1024;

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("flv_build");
    let body = payload(BODY_LEN);
    g.throughput(Throughput::Bytes(BODY_LEN as u64));
    g.bench_function("write_tag_4k_reused_buf", |b| {
        let mut out = BytesMut::with_capacity(BODY_LEN + 64);
        let mut ts = 0u32;
        b.iter(|| {
            out.clear();
            ts = ts.wrapping_add(40);
            write_tag(&mut out, TAG_VIDEO, ts, black_box(&body));
            black_box(&out);
        });
    });
    g.bench_function("tag_header", |b| {
        let mut ts = 0u32;
        b.iter(|| {
            ts = ts.wrapping_add(40);
            tag_header(TAG_VIDEO, black_box(BODY_LEN as u32), ts)
        });
    });
    g.finish();
}

fn parse(c: &mut Criterion) {
    let tags = read_all_tags(DEMO_FLV).unwrap_or_else(|e| panic!("fixture parses: {e}"));
    let mut g = c.benchmark_group("flv_parse");
    g.throughput(Throughput::Elements(tags.len() as u64));
    g.bench_function("frame_from_tag_all_fixture_tags", |b| {
        b.iter(|| {
            for t in &tags {
                let _ = black_box(frame_from_tag(t.tag_type, t.timestamp, t.body.clone()));
            }
        });
    });
    g.throughput(Throughput::Bytes(DEMO_FLV.len() as u64));
    g.bench_function("flv_reader_whole_fixture", |b| {
        b.iter(|| {
            let mut reader = FlvReader::new();
            let mut n = 0usize;
            for read in black_box(DEMO_FLV).chunks(READ_SIZE) {
                reader.push(read);
                while let Ok(Some(tag)) = reader.next_tag() {
                    black_box(&tag);
                    n += 1;
                }
            }
            n
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = build, parse
}
criterion_main!(benches);
