//! WHIP video, per codec, from what str0m depacketizes to the FLV tag bodies the hub takes:
//!
//! - H.264: legacy FLV AVC tags (codec id 7) with an AVCDecoderConfigurationRecord built
//!   from the in-band SPS/PPS ([`crate::h264::Avcc`]): every FLV reader plays them.
//! - H.265, AV1, VP9, VP8: Enhanced RTMP v2 tags ([`flv::video::ex_video_body`]) with the
//!   FourCC `hvc1`, `av01`, `vp09`, `vp08`: a SequenceStart with the codec's configuration
//!   record (HEVCDecoderConfigurationRecord, `av1C`, `vpcC`) whenever it appears or changes,
//!   then CodedFrames (composition time 0: WebRTC sends frames in presentation order).
//!
//! Loss: after a frame str0m marks non-contiguous (and at the start), frames are dropped
//! until the next keyframe, and a keyframe is asked for. Keyframes: H.264 IDR, H.265 IRAP,
//! AV1 temporal units with a sequence header, VP8/VP9 key frames by their frame headers.

use flv::video::{
    ExVideoPacket, FOURCC_AV01, FOURCC_HVC1, FOURCC_VP08, FOURCC_VP09, ex_video_body,
};
use media::Codec;
use media::vp::{VpInfo, vp8_keyframe, vp9_keyframe};

use crate::av1::Av1In;
use crate::h264::{Avcc, MAX_ACCESS_UNIT_BYTES};
use crate::hevc::Hvcc;

/// One frame for the hub: FLV video tag bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoUnit {
    /// A sequence header tag to publish first (a new or changed configuration).
    pub header: Option<Vec<u8>>,
    /// The coded frame's tag.
    pub frame: Vec<u8>,
    /// The frame is a keyframe (H.264 IDR, H.265 IRAP, AV1 with a sequence header, VP8/VP9
    /// key frame): a viewer can start decoding at it.
    pub keyframe: bool,
}

/// Per-codec state.
#[derive(Debug)]
enum Converter {
    H264(Avcc),
    H265(Hvcc),
    Av1(Av1In),
    /// VP8 or VP9: the FourCC and the `vpcC` record last published.
    Vp {
        fourcc: u32,
        record: Option<Vec<u8>>,
    },
}

/// The video side of one WHIP publisher.
#[derive(Debug)]
pub struct VideoIn {
    codec: Codec,
    conv: Converter,
    /// Dropping until a keyframe (at start, and after a non-contiguous frame).
    waiting_key: bool,
    started: bool,
}

impl VideoIn {
    /// The converter for `codec`; `None` if WHIP does not ingest it.
    pub fn new(codec: Codec) -> Option<Self> {
        let conv = match codec {
            Codec::H264 => Converter::H264(Avcc::default()),
            Codec::H265 => Converter::H265(Hvcc::default()),
            Codec::Av1 => Converter::Av1(Av1In::default()),
            Codec::Vp9 => Converter::Vp {
                fourcc: FOURCC_VP09,
                record: None,
            },
            Codec::Vp8 => Converter::Vp {
                fourcc: FOURCC_VP08,
                record: None,
            },
            _ => return None,
        };
        Some(Self {
            codec,
            conv,
            waiting_key: true,
            started: false,
        })
    }

    /// The codec this converter takes.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// One depacketized frame: the unit to publish (if any) and whether to ask for a
    /// keyframe.
    pub fn accept(&mut self, data: &[u8], contiguous: bool) -> (Option<VideoUnit>, bool) {
        if !self.started || !contiguous {
            self.started = true;
            self.waiting_key = true;
        }
        match self.convert(data) {
            Some(u) if u.keyframe => {
                self.waiting_key = false;
                (Some(u), false)
            }
            Some(u) if !self.waiting_key => (Some(u), false),
            // Broken, or a delta frame whose references may be missing.
            _ => (None, true),
        }
    }

    fn convert(&mut self, data: &[u8]) -> Option<VideoUnit> {
        if data.len() > MAX_ACCESS_UNIT_BYTES {
            return None;
        }
        match &mut self.conv {
            Converter::H264(avcc) => {
                let u = avcc.convert(data)?;
                Some(VideoUnit {
                    header: u.config.map(|c| avc_body(true, 0, &c)),
                    frame: avc_body(u.keyframe, 1, &u.data),
                    keyframe: u.keyframe,
                })
            }
            Converter::H265(hvcc) => {
                let u = hvcc.convert(data)?;
                Some(ex_unit(FOURCC_HVC1, u.config, &u.data, u.keyframe))
            }
            Converter::Av1(av1) => {
                let u = av1.convert(data)?;
                Some(ex_unit(FOURCC_AV01, u.config, &u.data, u.keyframe))
            }
            Converter::Vp { fourcc, record } => {
                if data.is_empty() {
                    return None;
                }
                let info: Option<VpInfo> = if *fourcc == FOURCC_VP08 {
                    vp8_keyframe(data)
                } else {
                    vp9_keyframe(data)
                };
                let mut config = None;
                if let Some(info) = info {
                    let vpcc = info.vpcc();
                    if record.as_ref() != Some(&vpcc) {
                        *record = Some(vpcc.clone());
                        config = Some(vpcc);
                    }
                }
                record.as_ref()?;
                Some(ex_unit(*fourcc, config, data, info.is_some()))
            }
        }
    }
}

/// An Enhanced RTMP unit: SequenceStart when `config` is new, then CodedFrames.
fn ex_unit(fourcc: u32, config: Option<Vec<u8>>, data: &[u8], keyframe: bool) -> VideoUnit {
    VideoUnit {
        header: config.map(|c| ex_video_body(fourcc, true, ExVideoPacket::SequenceStart, &c)),
        frame: ex_video_body(
            fourcc,
            keyframe,
            ExVideoPacket::CodedFrames { cts: 0 },
            data,
        ),
        keyframe,
    }
}

/// A legacy FLV video tag body: AVC, key or inter frame, packet type, cts 0, payload.
pub fn avc_body(keyframe: bool, packet_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(payload.len() + 5);
    b.push(if keyframe { 0x17 } else { 0x27 });
    b.extend_from_slice(&[packet_type, 0, 0, 0]);
    b.extend_from_slice(payload);
    b
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use media::FrameRole;

    use super::*;

    fn frame(body: &[u8]) -> media::Frame {
        flv::frame_from_tag(flv::mux::TAG_VIDEO, 0, Bytes::copy_from_slice(body)).unwrap()
    }

    #[test]
    fn h264_waits_for_a_keyframe_at_start_and_after_loss() {
        let idr = [
            0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0x3C, 0x80, 0, 0, 0, 1,
            0x65, 0x88,
        ];
        let delta = [0, 0, 0, 1, 0x41, 0x9A];
        let mut v = VideoIn::new(Codec::H264).unwrap();
        assert_eq!(v.accept(&delta, true), (None, true), "no keyframe yet");
        let (u, want) = v.accept(&idr, true);
        let u = u.unwrap();
        assert!(u.keyframe && !want);
        let h = frame(&u.header.unwrap());
        assert_eq!((h.codec, h.role), (Codec::H264, FrameRole::SequenceHeader));
        assert!(frame(&u.frame).is_video_keyframe());
        assert!(v.accept(&delta, true).0.is_some());
        // Loss: this and the next delta frames are dropped, a keyframe is requested.
        assert_eq!(v.accept(&delta, false), (None, true));
        assert_eq!(v.accept(&delta, true), (None, true));
        assert!(
            v.accept(&idr, false).0.is_some(),
            "a keyframe after loss is fine"
        );
        assert!(v.accept(&delta, true).0.is_some());
        assert_eq!(v.accept(&[1, 2, 3], true), (None, true), "garbage");
    }

    /// VP8 key frame header for 640x360 and an inter frame.
    const VP8_KEY: &[u8] = &[
        0x50, 0x42, 0x02, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0xAA,
    ];
    const VP8_INTER: &[u8] = &[0x31, 0x02, 0x00, 0xBB];

    #[test]
    fn vp8_becomes_enhanced_rtmp_with_loss_handling() {
        let mut v = VideoIn::new(Codec::Vp8).unwrap();
        assert_eq!(v.codec(), Codec::Vp8);
        assert_eq!(v.accept(VP8_INTER, true), (None, true), "no key frame yet");
        let (u, want) = v.accept(VP8_KEY, true);
        let u = u.unwrap();
        assert!(!want && u.keyframe);
        let h = u.header.unwrap();
        assert_eq!(&h[..5], &[0x90, b'v', b'p', b'0', b'8']);
        let hf = frame(&h);
        assert_eq!((hf.codec, hf.role), (Codec::Vp8, FrameRole::SequenceHeader));
        assert_eq!(hf.payload().len(), media::vp::VPCC_LEN);
        let f = frame(&u.frame);
        assert_eq!(
            (f.codec, f.role, f.keyframe),
            (Codec::Vp8, FrameRole::Coded, true)
        );
        assert_eq!(f.payload().as_ref(), VP8_KEY);
        let (u, _) = v.accept(VP8_INTER, true);
        let u = u.unwrap();
        assert!(u.header.is_none() && !u.keyframe);
        assert_eq!(frame(&u.frame).payload().as_ref(), VP8_INTER);
        // Same key frame again: no new sequence header.
        assert!(v.accept(VP8_KEY, true).0.unwrap().header.is_none());
        assert_eq!(v.accept(VP8_INTER, false), (None, true), "loss");
        assert_eq!(v.accept(&[], true), (None, true), "empty");
    }

    #[test]
    fn av1_and_h265_units_parse_back() {
        let mut v = VideoIn::new(Codec::Av1).unwrap();
        let mut tu = media::fixtures::av1_sequence_header_obu();
        tu.extend_from_slice(&[0x32, 0x01, 0xCC]);
        let u = v.accept(&tu, true).0.unwrap();
        let h = frame(&u.header.unwrap());
        assert_eq!((h.codec, h.role), (Codec::Av1, FrameRole::SequenceHeader));
        assert_eq!(h.payload()[0], 0x81);
        let f = frame(&u.frame);
        assert_eq!((f.codec, f.keyframe), (Codec::Av1, true));
        assert_eq!(f.payload().as_ref(), tu.as_slice());

        use media::fixtures::{HEVC_PPS as PPS, HEVC_VPS as VPS, hevc_sps};
        let mut v = VideoIn::new(Codec::H265).unwrap();
        let sps = hevc_sps(640, 360, None);
        let mut au = Vec::new();
        for n in [VPS, &sps, PPS, &[0x26, 0x01, 0xAF]] {
            au.extend_from_slice(&[0, 0, 0, 1]);
            au.extend_from_slice(n);
        }
        let u = v.accept(&au, true).0.unwrap();
        let h = frame(&u.header.unwrap());
        assert_eq!((h.codec, h.role), (Codec::H265, FrameRole::SequenceHeader));
        let f = frame(&u.frame);
        assert_eq!((f.codec, f.keyframe, f.cts), (Codec::H265, true, 0));
        assert_eq!(f.payload().as_ref(), &[0, 0, 0, 3, 0x26, 0x01, 0xAF]);
        assert!(VideoIn::new(Codec::Aac).is_none());
    }
}
