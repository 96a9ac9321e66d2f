//! Arbitrary bytes through the MPEG-TS demuxer (SRT ingest's parser): no panic, bounded
//! units. The first byte picks how the rest is split into pushes (an SRT datagram, a byte
//! at a time, ...); seeds are the starts of ffmpeg's H.264+AAC and H.265+Opus streams.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpegts::demux::{MAX_PES_BYTES, TsDemuxer};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split).max(1);
    let mut demuxer = TsDemuxer::new();
    let mut out = Vec::new();
    for piece in rest.chunks(chunk) {
        demuxer.push(piece, &mut out);
    }
    demuxer.flush(&mut out);
    assert_eq!(demuxer.stats().units, out.len() as u64);
    assert!(out.iter().all(|u| u.data.len() <= MAX_PES_BYTES && u.pts >= u.dts));
});
