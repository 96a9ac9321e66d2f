//! HLS from hostile input: arbitrary request names and playlist queries, and arbitrary
//! frames through both segment formats, with every lookup and playlist rendered along the
//! way. Nothing may panic; playlists always start with #EXTM3U.
#![no_main]

use bytes::Bytes;
use hls::{HlsFile, HlsParams, HlsStream, PlaylistQuery, SegmentFormat};
use libfuzzer_sys::fuzz_target;
use media::{Codec, Frame, FrameRole, MediaKind, WireCache};

/// The demo fixture's avcC (H.264 Main 640x360) and AAC-LC config, so frames get muxed.
const AVCC: &[u8] = &[
    0x01, 0x4D, 0x40, 0x1E, 0xFF, 0xE1, 0x00, 0x19, 0x67, 0x4D, 0x40, 0x1E, 0xDA, 0x02, 0x80, 0xBF,
    0xE5, 0xC0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xC8, 0x3C, 0x58, 0xBA,
    0x80, 0x01, 0x00, 0x04, 0x68, 0xEF, 0x3C, 0x80,
];
const ASC: &[u8] = &[0x11, 0x90];

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let format = if first & 1 == 0 { SegmentFormat::Fmp4 } else { SegmentFormat::Ts };
    let params = HlsParams {
        format,
        target_duration_ms: 1000,
        part_target_ms: if first & 2 == 0 { 200 } else { 0 },
        window_segments: 3,
    };
    let Ok(mut hls) = HlsStream::new(params, "f-") else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut dts = 0u64;
    let mut rest = rest;
    while let [control, n, tail @ ..] = rest {
        let len = usize::from(*n).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let (kind, codec) = match control & 3 {
            0 | 1 => (MediaKind::Video, Codec::H264),
            2 => (MediaKind::Audio, Codec::Aac),
            _ => (MediaKind::Audio, Codec::Opus),
        };
        let header = control & 0x0C == 0;
        let body = match (header, kind) {
            (true, MediaKind::Video) if control & 0x10 != 0 => Bytes::from_static(AVCC),
            (true, MediaKind::Audio) if control & 0x10 != 0 => Bytes::from_static(ASC),
            _ => Bytes::copy_from_slice(payload),
        };
        dts = match control >> 6 {
            0 => dts.saturating_add(u64::from(*n) * 4),
            1 => dts,
            2 => dts.saturating_sub(u64::from(*n)),
            _ => dts.saturating_add(u64::from(*n) << 12),
        };
        let frame = Frame {
            kind,
            codec,
            role: if header { FrameRole::SequenceHeader } else { FrameRole::Coded },
            dts,
            cts: i32::from(*n) - 100,
            keyframe: control & 0x20 != 0,
            body,
            payload_offset: 0,
            wire: WireCache::default(),
            arrival: None,
        };
        let _ = hls.push(&frame, dts);
        if control & 0x80 != 0 {
            hls.mark_discontinuity();
        }
        assert!(hls.media_playlist(control & 1 == 0).starts_with("#EXTM3U\n"));
    }
    // The input as request names and queries.
    for piece in text.split('\n') {
        if let Ok(file) = HlsFile::parse(piece, "f-") {
            let _ = hls.lookup(file);
        }
        if let Ok(q) = PlaylistQuery::parse(piece) {
            let _ = hls.playlist_readiness(&q);
            assert!(hls.media_playlist(q.skip).starts_with("#EXTM3U\n"));
        }
    }
    let _ = hls.multivariant_playlist();
    hls.end();
    assert!(hls.media_playlist(false).ends_with("#EXT-X-ENDLIST\n"));
});
