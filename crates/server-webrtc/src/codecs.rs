//! str0m's side of our codecs: the codecs a viewer's `Rtc` enables, whether a negotiated
//! payload type can carry the stream's video, and str0m's codec names in the hub's terms.

use media::Codec;
use str0m::RtcConfig;
use str0m::format::{Codec as RtcCodec, CodecSpec};

/// The hub codec of a str0m video codec we ingest; `None` for anything else.
pub fn hub_codec(codec: RtcCodec) -> Option<Codec> {
    match codec {
        RtcCodec::H264 => Some(Codec::H264),
        RtcCodec::H265 => Some(Codec::H265),
        RtcCodec::Av1 => Some(Codec::Av1),
        RtcCodec::Vp9 => Some(Codec::Vp9),
        RtcCodec::Vp8 => Some(Codec::Vp8),
        _ => None,
    }
}

/// `config` with our video codec `codec` and Opus as its only codecs (H.264 for a codec
/// WebRTC cannot carry: nothing of it will be written).
pub fn enable(config: RtcConfig, codec: Codec) -> RtcConfig {
    let config = config.clear_codecs().enable_opus(true, false);
    match codec {
        Codec::H265 => config.enable_h265(true),
        Codec::Av1 => config.enable_av1(true),
        Codec::Vp9 => config.enable_vp9(true),
        Codec::Vp8 => config.enable_vp8(true),
        _ => config.enable_h264(true),
    }
}

/// Whether a negotiated payload type can carry our video: H.264 only in packetization-mode
/// 1 (str0m's FU-A/STAP-A), the other codecs as negotiated.
pub fn usable(spec: &CodecSpec) -> bool {
    match spec.codec {
        RtcCodec::H264 => spec.format.packetization_mode == Some(1),
        RtcCodec::H265 | RtcCodec::Av1 | RtcCodec::Vp9 | RtcCodec::Vp8 => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_enables_the_stream_codec() {
        for (codec, want) in [
            (Codec::Vp8, RtcCodec::Vp8),
            (Codec::Vp9, RtcCodec::Vp9),
            (Codec::Av1, RtcCodec::Av1),
            (Codec::H265, RtcCodec::H265),
            (Codec::H264, RtcCodec::H264),
        ] {
            let mut config = enable(RtcConfig::new(), codec);
            let codecs: Vec<RtcCodec> = config
                .codec_config()
                .params()
                .iter()
                .map(|p| p.spec().codec)
                .collect();
            assert!(codecs.contains(&want), "{codec:?}: {codecs:?}");
            assert!(codecs.contains(&RtcCodec::Opus));
            assert!(
                codecs.iter().all(|c| *c == want || *c == RtcCodec::Opus),
                "{codec:?}: {codecs:?}"
            );
        }
    }
}
