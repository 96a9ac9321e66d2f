//! WHEP video, per codec: which codec a viewer's `Rtc` enables (the live stream's), whether
//! a negotiated payload type can carry it, and each hub frame as RTP packetizers take
//! it: H.264 and H.265 as Annex B with the parameter sets before every keyframe, VP8 and
//! VP9 as the raw frames, AV1 as its OBUs (temporal delimiters dropped, as RTP carries none).

use std::sync::Arc;

use media::av1::{OBU_TEMPORAL_DELIMITER, obus};
use media::{Codec, Frame, FrameRole, MediaKind};

use crate::h264::{AnnexB, AnnexBCache};
use crate::hevc::HevcAnnexB;

/// [`AnnexBCache`] tags of the codecs other than H.264 (whose tag is its NAL length size,
/// 1 to 4): H.265 adds its NAL length size to [`TAG_H265`].
const TAG_H265: usize = 16;
const TAG_AV1: usize = 32;
const TAG_VP9: usize = 33;
const TAG_VP8: usize = 34;

/// Hub frames to what str0m's packetizer of the negotiated codec takes.
#[derive(Debug, Default)]
pub struct VideoOut {
    avc: AnnexB,
    hevc: HevcAnnexB,
    /// The stream's shared conversions (`None`: this viewer converts and copies its own).
    cache: Option<Arc<AnnexBCache>>,
    /// The parameter sets of codecs without any (the cache key's).
    no_params: Arc<[u8]>,
}

impl VideoOut {
    /// Shares conversions with the other viewers of the stream `cache` belongs to: each
    /// frame is converted (and copied into the bytes str0m takes) once per stream.
    pub fn with_cache(mut self, cache: Arc<AnnexBCache>) -> Self {
        self.avc = std::mem::take(&mut self.avc).with_cache(Arc::clone(&cache));
        self.cache = Some(cache);
        self
    }

    /// One hub frame for a track negotiated as `negotiated` (`None`: not known yet): the
    /// payload to write, `None` for sequence headers (kept for later keyframes), frames of
    /// another codec and malformed frames.
    pub fn convert(&mut self, negotiated: Option<Codec>, f: &Frame) -> Option<Arc<[u8]>> {
        if f.kind != MediaKind::Video {
            return None;
        }
        let payload = f.payload();
        if f.role == FrameRole::SequenceHeader {
            match f.codec {
                Codec::H264 => {
                    self.avc.set_config(&payload);
                }
                Codec::H265 => {
                    self.hevc.set_config(&payload);
                }
                _ => {}
            }
            return None;
        }
        let matches = negotiated? == f.codec
            && matches!(
                f.codec,
                Codec::H264 | Codec::H265 | Codec::Av1 | Codec::Vp9 | Codec::Vp8
            );
        if !matches || f.role != FrameRole::Coded || payload.is_empty() {
            return None;
        }
        let key = f.keyframe;
        match f.codec {
            Codec::H264 => self.avc.convert_shared(&payload, key),
            Codec::H265 => {
                let (size, params) = self.hevc.inputs();
                let hevc = &self.hevc;
                AnnexBCache::shared(
                    self.cache.as_deref(),
                    &payload,
                    key,
                    TAG_H265 + size,
                    params,
                    || hevc.convert(&payload, key),
                )
            }
            Codec::Av1 => AnnexBCache::shared(
                self.cache.as_deref(),
                &payload,
                key,
                TAG_AV1,
                &self.no_params,
                || {
                    let mut out = Vec::with_capacity(payload.len());
                    for o in obus(&payload).ok()? {
                        if o.obu_type != OBU_TEMPORAL_DELIMITER {
                            out.extend_from_slice(o.bytes);
                        }
                    }
                    (!out.is_empty()).then_some(out)
                },
            ),
            codec => {
                let tag = if codec == Codec::Vp9 {
                    TAG_VP9
                } else {
                    TAG_VP8
                };
                AnnexBCache::shared(
                    self.cache.as_deref(),
                    &payload,
                    key,
                    tag,
                    &self.no_params,
                    || Some(payload.to_vec()),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use flv::video::{ExVideoPacket, FOURCC_AV01, FOURCC_VP08, ex_video_body};

    use super::*;

    fn frame(body: Vec<u8>) -> Frame {
        flv::frame_from_tag(flv::mux::TAG_VIDEO, 0, bytes::Bytes::from(body)).unwrap()
    }

    #[test]
    fn passes_the_negotiated_codec_through() {
        let mut out = VideoOut::default();
        let key = frame(ex_video_body(
            FOURCC_VP08,
            true,
            ExVideoPacket::CodedFrames { cts: 0 },
            &[0x50, 1, 2],
        ));
        assert_eq!(
            out.convert(Some(Codec::Vp8), &key).as_deref(),
            Some(&[0x50, 1, 2][..])
        );
        assert_eq!(out.convert(Some(Codec::Vp9), &key), None, "other codec");
        assert_eq!(out.convert(Some(Codec::H264), &key), None);
        assert_eq!(out.convert(None, &key), None, "nothing negotiated yet");
        let header = frame(ex_video_body(
            FOURCC_VP08,
            true,
            ExVideoPacket::SequenceStart,
            &[1],
        ));
        assert_eq!(out.convert(Some(Codec::Vp8), &header), None);
        // AV1: the temporal delimiter goes, the frame OBU stays; garbage is dropped.
        let tu = frame(ex_video_body(
            FOURCC_AV01,
            false,
            ExVideoPacket::CodedFramesX,
            &[0x12, 0x00, 0x32, 0x01, 0xCC],
        ));
        assert_eq!(
            out.convert(Some(Codec::Av1), &tu).as_deref(),
            Some(&[0x32, 0x01, 0xCC][..])
        );
        let bad = frame(ex_video_body(
            FOURCC_AV01,
            false,
            ExVideoPacket::CodedFramesX,
            &[0x80],
        ));
        assert_eq!(out.convert(Some(Codec::Av1), &bad), None);
        // H.264 without a sequence header yet: nothing.
        let avc = frame(crate::video_in::avc_body(true, 1, &[0, 0, 0, 1, 0x65]));
        assert_eq!(out.convert(Some(Codec::H264), &avc), None);
    }

    #[test]
    fn viewers_of_a_stream_share_each_frame_of_every_codec() {
        let cache = Arc::new(AnnexBCache::default());
        let mut a = VideoOut::default().with_cache(Arc::clone(&cache));
        let mut b = VideoOut::default().with_cache(cache);
        let mut own = VideoOut::default();
        for (fourcc, rtc, payload) in [
            (FOURCC_VP08, Codec::Vp8, vec![0x50, 1, 2]),
            (FOURCC_AV01, Codec::Av1, vec![0x12, 0x00, 0x32, 0x01, 0xCC]),
        ] {
            let f = frame(ex_video_body(
                fourcc,
                true,
                ExVideoPacket::CodedFrames { cts: 0 },
                &payload,
            ));
            let (x, y) = (a.convert(Some(rtc), &f), b.convert(Some(rtc), &f));
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(
                Arc::ptr_eq(&x, &y),
                "{rtc:?}: one conversion for both viewers"
            );
            assert_eq!(own.convert(Some(rtc), &f).as_deref(), Some(&*x), "{rtc:?}");
        }
    }
}
