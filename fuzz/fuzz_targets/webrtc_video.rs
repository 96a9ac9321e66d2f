//! Depacketized WHIP video from a hostile publisher: the per-codec converters (H.264, H.265,
//! AV1, VP9, VP8), their configuration record and keyframe parsers, and WHEP's conversion of
//! what they made never panic, and never make more than a bounded amount from one frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let made = sluice_server::fuzzing::webrtc_video(data);
    // Three conversions of the frame, each with a header and a copy, plus the parsers.
    assert!(made <= 16 * data.len() + 65_536);
});
