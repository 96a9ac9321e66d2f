//! Arbitrary bytes as an FLV tag body of every tag type, and through the codec parsers an
//! FLV sequence header feeds (media's avcC, H.264 SPS and AudioSpecificConfig).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    for tag_type in [flv::TAG_AUDIO, flv::TAG_VIDEO, flv::TAG_SCRIPT, 0, 31] {
        if let Ok(frame) = flv::frame_from_tag(tag_type, u32::MAX, body.clone()) {
            // The payload offset must lie inside the body.
            assert!(frame.payload_offset <= frame.body.len());
            let _ = frame.payload();
            let _ = frame.pts();
        }
    }
    if let Ok(record) = media::avc::parse_avc_decoder_config(&body) {
        let _ = record.parse_sps();
    }
    let _ = media::avc::parse_sps(data);
    if let Ok(asc) = media::aac::parse_audio_specific_config(data) {
        let _ = asc.channels();
    }
});
