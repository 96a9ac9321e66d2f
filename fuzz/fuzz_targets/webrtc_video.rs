//! Depacketized WHIP video from a hostile publisher: rtp's per-codec converters (H.264,
//! H.265, AV1, VP9, VP8), media's configuration record and keyframe parsers, and WHEP's
//! conversion of what they made never panic, and never make more than a bounded amount from
//! one frame.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::{Codec, av1, avc, hevc, vp};
use rtp::hevc::HevcAnnexB;
use rtp::video_in::VideoIn;
use rtp::video_out::VideoOut;

fuzz_target!(|data: &[u8]| {
    let made = webrtc_video(data);
    // Three conversions of the frame, each with a header and a copy, plus the parsers.
    assert!(made <= 16 * data.len() + 65_536);
});

/// The first byte picks the codec (H.264, H.265, AV1, VP9, VP8 by its value mod 5), the rest
/// is the frame, fed as contiguous and after loss; every FLV body made goes back through
/// `flv::frame_from_tag` and the WHEP converter, and the record and header parsers see the
/// raw bytes too. Returns the bytes made.
fn webrtc_video(data: &[u8]) -> usize {
    let Some((&pick, frame)) = data.split_first() else {
        return 0;
    };
    let codec =
        [Codec::H264, Codec::H265, Codec::Av1, Codec::Vp9, Codec::Vp8][usize::from(pick % 5)];
    let mut made = 0;
    let Some(mut v) = VideoIn::new(codec) else {
        return 0;
    };
    let mut out = VideoOut::default();
    for contiguous in [true, false, true] {
        let (unit, _) = v.accept(frame, contiguous);
        let Some(u) = unit else { continue };
        for body in u.header.into_iter().chain(std::iter::once(u.frame)) {
            made += body.len();
            if let Ok(f) = flv::frame_from_tag(flv::TAG_VIDEO, 0, Bytes::from(body)) {
                made += out.convert(Some(codec), &f).map_or(0, |d| d.len());
            }
        }
    }
    made += usize::from(vp::vp8_keyframe(frame).is_some());
    made += usize::from(vp::vp9_keyframe(frame).is_some());
    made += usize::from(av1::parse_sequence_header(frame).is_ok());
    made += av1::obus(frame).map_or(0, |o| o.len());
    made += usize::from(hevc::parse_sps(frame).is_ok());
    let record = Bytes::copy_from_slice(frame);
    made += hevc::parse_hevc_decoder_config(&record).map_or(0, |c| c.parameter_sets().count());
    made += avc::parse_avc_decoder_config(&record).map_or(0, |c| c.parameter_sets().count());
    let mut annexb = HevcAnnexB::default();
    if annexb.set_config(frame) {
        made += annexb.convert(frame, true).map_or(0, |d| d.len());
    }
    made
}
