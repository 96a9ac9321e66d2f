//! RTMP chunk stream hot paths: per-viewer encode (header + shared body) versus the general
//! encoder, and decoding an interleaved audio/video stream.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rtmp::chunk::{
    CSID_AUDIO, CSID_VIDEO, ChunkDecoder, DEFAULT_MAX_CHUNK_STREAMS, DEFAULT_MAX_MESSAGE_LEN,
    chunk_body, encode_message, write_message_header,
};
use sluice_microbench::payload;

/// The outgoing chunk size the server uses.
const CHUNK_SIZE: u32 = 4096;
/// RTMP message type ids.
const MSG_AUDIO: u8 = 8;
const MSG_VIDEO: u8 = 9;
/// Messages in the decode input.
const DECODE_MESSAGES: usize = 1_000;
/// Bytes handed to the decoder per push, like one socket read.
const READ_SIZE: usize = 16 * 1024;

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtmp_encode");
    for size in [1024usize, 8 * 1024, 64 * 1024] {
        let data = payload(size);
        g.throughput(Throughput::Bytes(size as u64));
        // What the server does once per frame (shared by every viewer).
        g.bench_with_input(BenchmarkId::new("chunk_body", size), &data, |b, data| {
            b.iter(|| chunk_body(black_box(data), CHUNK_SIZE, CSID_VIDEO));
        });
        // What the server does per viewer: a fresh type-0 header, then the shared body.
        let shared: Bytes = chunk_body(&data, CHUNK_SIZE, CSID_VIDEO);
        g.bench_with_input(
            BenchmarkId::new("per_viewer_header_plus_shared_body", size),
            &shared,
            |b, shared| {
                let mut head = BytesMut::with_capacity(64);
                let mut ts = 0u32;
                b.iter(|| {
                    head.clear();
                    ts = ts.wrapping_add(40);
                    write_message_header(&mut head, CSID_VIDEO, ts, size as u32, MSG_VIDEO, 1);
                    let body = shared.clone();
                    black_box((&head, body));
                });
            },
        );
        // The general path: header and chunked copy of the payload per viewer.
        g.bench_with_input(
            BenchmarkId::new("encode_message", size),
            &data,
            |b, data| {
                let mut out = BytesMut::with_capacity(size + size / 128 + 64);
                let mut ts = 0u32;
                b.iter(|| {
                    out.clear();
                    ts = ts.wrapping_add(40);
                    encode_message(
                        &mut out,
                        CSID_VIDEO,
                        ts,
                        MSG_VIDEO,
                        1,
                        black_box(data),
                        CHUNK_SIZE,
                    );
                    black_box(&out);
                });
            },
        );
    }
    g.finish();
}

/// 1,000 messages alternating audio (~200 B) and video (2 KiB to 16 KiB, a 48 KiB keyframe
/// every 50th video message). Each audio message is sent between the first and the second
/// chunk of the video message before it when that one spans several chunks, so the decoder
/// really reassembles interleaved chunk streams.
fn decode_input() -> Vec<u8> {
    let mut out = BytesMut::new();
    let mut pending_audio: Option<Vec<u8>> = None;
    for i in 0..DECODE_MESSAGES {
        let ts = (i as u32) * 20;
        if i % 2 == 1 {
            let audio = payload(180 + i % 40);
            match pending_audio.take() {
                Some(rest) => {
                    encode_message(&mut out, CSID_AUDIO, ts, MSG_AUDIO, 1, &audio, CHUNK_SIZE);
                    out.extend_from_slice(&rest);
                }
                None => encode_message(&mut out, CSID_AUDIO, ts, MSG_AUDIO, 1, &audio, CHUNK_SIZE),
            }
        } else {
            let v = i / 2;
            let len = if v % 50 == 0 {
                48 * 1024
            } else {
                2048 + (v % 8) * 2048
            };
            let video = payload(len);
            write_message_header(&mut out, CSID_VIDEO, ts, len as u32, MSG_VIDEO, 1);
            let body = chunk_body(&video, CHUNK_SIZE, CSID_VIDEO);
            let first = (CHUNK_SIZE as usize).min(body.len());
            out.extend_from_slice(&body[..first]);
            if body.len() > first {
                pending_audio = Some(body[first..].to_vec());
            }
        }
    }
    if let Some(rest) = pending_audio {
        out.extend_from_slice(&rest);
    }
    out.to_vec()
}

fn decode(c: &mut Criterion) {
    let input = decode_input();
    // Check the fixture once: every message comes out.
    assert_eq!(run_decoder(&input), DECODE_MESSAGES, "decode fixture");
    let mut g = c.benchmark_group("rtmp_decode");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("chunk_decoder_1000_interleaved_av", |b| {
        b.iter(|| run_decoder(black_box(&input)));
    });
    g.finish();
}

fn run_decoder(input: &[u8]) -> usize {
    let mut dec = ChunkDecoder::new(DEFAULT_MAX_MESSAGE_LEN, DEFAULT_MAX_CHUNK_STREAMS);
    // The encoder side announced this with Set Chunk Size.
    let _ = dec.set_chunk_size(CHUNK_SIZE);
    let mut n = 0;
    for read in input.chunks(READ_SIZE) {
        dec.push(read);
        while let Ok(Some(m)) = dec.poll() {
            black_box(&m);
            n += 1;
        }
    }
    n
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = encode, decode
}
criterion_main!(benches);
