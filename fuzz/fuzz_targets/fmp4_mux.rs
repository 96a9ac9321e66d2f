//! Arbitrary frames through the fMP4 Fragmenter, with flushes: nothing may panic, and every
//! fragment must be a well-sized moof + mdat.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::{Codec, Frame, FrameRole, MediaKind, WireCache};

// Valid configs so coded frames get past configuration; the fuzzer mutates the rest.
/// The demo fixture's avcC (H.264 Main 640x360).
const AVCC: &[u8] = &[
    0x01, 0x4D, 0x40, 0x1E, 0xFF, 0xE1, 0x00, 0x19, 0x67, 0x4D, 0x40, 0x1E, 0xDA, 0x02, 0x80, 0xBF,
    0xE5, 0xC0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xC8, 0x3C, 0x58, 0xBA,
    0x80, 0x01, 0x00, 0x04, 0x68, 0xEF, 0x3C, 0x80,
];
const ASC: &[u8] = &[0x11, 0x90];

fuzz_target!(|data: &[u8]| {
    let mut f = fmp4::Fragmenter::new();
    let mut dts: u64 = 0;
    let mut rest = data;
    // Each record: control byte, length byte, then that many payload bytes.
    while let [control, n, tail @ ..] = rest {
        let n = *n;
        let len = usize::from(n).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let (kind, codec) = match control & 0x07 {
            0 | 1 => (MediaKind::Video, Codec::H264),
            2 => (MediaKind::Video, Codec::H265),
            3 | 4 => (MediaKind::Audio, Codec::Aac),
            5 => (MediaKind::Audio, Codec::Opus),
            6 => (MediaKind::Video, Codec::Vp9),
            _ => (MediaKind::Data, Codec::Script),
        };
        let role = match (control >> 3) & 0x03 {
            0 => FrameRole::SequenceHeader,
            3 => FrameRole::SequenceEnd,
            _ => FrameRole::Coded,
        };
        // Sometimes use a valid config so coded frames reach the timing code.
        let body = match (role, codec, control & 0x20 != 0) {
            (FrameRole::SequenceHeader, Codec::H264, true) => Bytes::from_static(AVCC),
            (FrameRole::SequenceHeader, Codec::Aac, true) => Bytes::from_static(ASC),
            _ => Bytes::copy_from_slice(payload),
        };
        // dts step: forward, stay, or jump back (hostile publishers).
        dts = match control >> 6 {
            0 => dts.saturating_add(u64::from(n)),
            1 => dts,
            2 => dts.saturating_sub(u64::from(n) * 7),
            _ => dts.saturating_add(u64::from(n) << 20),
        };
        let frame = Frame {
            kind,
            codec,
            role,
            dts,
            cts: i32::from(n) - 128,
            keyframe: n & 1 == 0,
            body,
            payload_offset: 0,
            wire: WireCache::default(),
            arrival: None,
        };
        let _ = f.push(&frame);
        let _ = f.tracks();
        let _ = f.init_segment();
        let _ = f.buffered_duration_ms();
        let fragment = match control & 0x30 {
            0x10 => f.flush(None),
            0x30 => f.flush(Some(dts)),
            _ => None,
        };
        if let Some(fragment) = fragment {
            check(&fragment);
        }
    }
    if let Some(fragment) = f.finish() {
        check(&fragment);
    }
});

fn check(fragment: &fmp4::Fragment) {
    assert!(fragment.duration_ms > 0);
    assert!(fragment.video_samples + fragment.audio_samples > 0);
    // moof + mdat whose sizes add up to the whole fragment.
    let b = &fragment.bytes[..];
    let moof = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    assert_eq!(&b[4..8], b"moof");
    assert_eq!(&b[moof + 4..moof + 8], b"mdat");
    let mdat = u32::from_be_bytes([b[moof], b[moof + 1], b[moof + 2], b[moof + 3]]) as usize;
    assert_eq!(moof + mdat, b.len());
}
