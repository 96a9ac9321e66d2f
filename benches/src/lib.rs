//! Shared fixtures for Sluice's criterion micro-benchmarks (see `benches/`).
//!
//! Run with `CARGO_TARGET_DIR=/work/target-micro cargo bench` from this directory.

use bytes::Bytes;
use media::Frame;

/// The demo clip every bench that needs real media reads.
pub const DEMO_FLV: &[u8] = include_bytes!("../../fixtures/demo.flv");

/// A deterministic, non-repeating-looking payload of `len` bytes.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
        .collect()
}

/// An H.264 coded video frame with a legacy FLV video tag body of `len` bytes.
pub fn video_frame(dts: u64, keyframe: bool, len: usize) -> Frame {
    let mut body = payload(len.max(5));
    body[0] = if keyframe { 0x17 } else { 0x27 };
    body[1] = 1; // AVC NALU
    body[2] = 0;
    body[3] = 0;
    body[4] = 0;
    flv::frame_from_tag(flv::TAG_VIDEO, dts as u32, Bytes::from(body))
        .unwrap_or_else(|e| panic!("bench fixture is a valid video tag: {e}"))
}
