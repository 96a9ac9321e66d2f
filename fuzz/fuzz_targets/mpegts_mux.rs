//! Arbitrary frame sequences through the MPEG-TS muxer: no panic, whole 188-byte packets.
//!
//! The input is split into chunks: a length byte, a control byte, a timestamp byte, then the
//! payload. The control byte picks kind/codec, role and keyframe; sequence-header chunks
//! with valid-looking prefixes exercise the avcC/hvcC/AudioSpecificConfig parsers.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use media::{Codec, Frame, FrameRole, MediaKind, WireCache};

/// Frames built from one input, at most.
const MAX_FRAMES: usize = 256;

fuzz_target!(|data: &[u8]| {
    let mut muxer = mpegts::TsMuxer::new();
    let mut out = BytesMut::new();
    let mut rest = data;
    let mut dts: u64 = u64::from(data.first().copied().unwrap_or(0)) << 26;
    for _ in 0..MAX_FRAMES {
        let [len, control, step, tail @ ..] = rest else {
            break;
        };
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let (kind, codec) = match control & 0x07 {
            0 | 1 => (MediaKind::Video, Codec::H264),
            2 => (MediaKind::Video, Codec::H265),
            3 | 4 => (MediaKind::Audio, Codec::Aac),
            5 => (MediaKind::Data, Codec::Script),
            6 => (MediaKind::Video, Codec::Av1),
            _ => (MediaKind::Audio, Codec::Mp3),
        };
        let role = match (control >> 3) & 0x03 {
            0 => FrameRole::SequenceHeader,
            3 => FrameRole::SequenceEnd,
            _ => FrameRole::Coded,
        };
        // Large steps and negative offsets exercise 33-bit wrapping and the cts clamp.
        dts = dts.wrapping_add(u64::from(*step) * 1000);
        let cts = i32::from(*step as i8) * 10;
        let body = if role == FrameRole::SequenceHeader && control & 0x20 != 0 {
            // A plausible header prefix so the record parsers get past their first checks.
            let mut b = match codec {
                Codec::H265 => {
                    let mut h = vec![1u8; 21];
                    h.extend_from_slice(&[0xFF, 3]);
                    h
                }
                _ => vec![1, 0x4D, 0, 0x1E, 0xFF, 0xE1],
            };
            b.extend_from_slice(payload);
            b
        } else {
            payload.to_vec()
        };
        let frame = Frame {
            kind,
            codec,
            role,
            dts,
            cts,
            keyframe: control & 0x80 != 0,
            body: Bytes::from(body),
            payload_offset: usize::from(control >> 6 & 1),
            wire: WireCache::default(),
            arrival: None,
        };
        if control & 0x40 != 0 {
            muxer.write_tables(&mut out);
        }
        let before = out.len();
        match muxer.push(&frame, &mut out) {
            Ok(true) => assert!(out.len() > before),
            Ok(false) | Err(_) => assert_eq!(out.len(), before),
        }
        assert_eq!(out.len() % mpegts::TS_PACKET_LEN, 0);
    }
    assert!(out.chunks(mpegts::TS_PACKET_LEN).all(|p| p[0] == 0x47));
});
