//! WebRTC audio (Opus, RFC 7587) between RTP and the hub. The hub carries Opus as published:
//! Enhanced RTMP audio frames with FourCC `Opus` (a sequence header holding the
//! identification header, then one packet per frame), so WHEP viewers of a WHIP publisher get
//! the publisher's packets byte for byte.
//!
//! - In ([`opus_header_body`], [`opus_body`]): what a WHIP ingest pushes.
//! - Out ([`AudioOut`]): the packet of a hub frame as str0m's Opus packetizer takes it,
//!   copied once per stream through the viewers' shared [`AnnexBCache`].

use std::sync::Arc;

use flv::audio::{ExAudioPacket, FOURCC_OPUS, ex_audio_body};
use media::opus::OpusHead;
use media::{Codec, Frame, FrameRole, MediaKind};

use crate::h264::AnnexBCache;

/// The [`AnnexBCache`] tag of Opus packets (distinct from every video codec's).
const TAG_OPUS: usize = 48;

/// The sequence header of a WebRTC publisher's Opus: RFC 7587 signals every Opus stream as
/// 48 kHz stereo (the decoder mixes what is coded), and RTP has no pre-skip (a receiver
/// decodes from wherever it joins).
pub fn opus_header_body() -> Vec<u8> {
    ex_audio_body(
        FOURCC_OPUS,
        ExAudioPacket::SequenceStart,
        &OpusHead::default_stereo().identification_header(),
    )
}

/// The hub frame body of one Opus packet as it came in RTP.
pub fn opus_body(packet: &[u8]) -> Vec<u8> {
    ex_audio_body(FOURCC_OPUS, ExAudioPacket::CodedFrames, packet)
}

/// Hub audio frames to what str0m's Opus packetizer takes.
#[derive(Debug, Default)]
pub struct AudioOut {
    /// The stream's shared copies (`None`: this viewer copies its own).
    cache: Option<Arc<AnnexBCache>>,
    no_params: Arc<[u8]>,
}

impl AudioOut {
    /// Shares the copies with the other viewers of the stream `cache` belongs to (a cache
    /// of its own: audio and video frames do not evict each other).
    pub fn with_cache(mut self, cache: Arc<AnnexBCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The Opus packet of a coded Opus frame (the same bytes the frame carries); `None` for
    /// headers, other codecs and empty frames.
    pub fn convert(&self, f: &Frame) -> Option<Arc<[u8]>> {
        if f.kind != MediaKind::Audio || f.codec != Codec::Opus || f.role != FrameRole::Coded {
            return None;
        }
        let payload = f.payload();
        if payload.is_empty() {
            return None;
        }
        AnnexBCache::shared(
            self.cache.as_deref(),
            &payload,
            true,
            TAG_OPUS,
            &self.no_params,
            || Some(payload.to_vec()),
        )
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(body: Vec<u8>) -> Frame {
        flv::frame_from_tag(flv::TAG_AUDIO, 20, Bytes::from(body)).unwrap()
    }

    #[test]
    fn ingest_bodies_are_opus_frames() {
        let h = frame(opus_header_body());
        assert_eq!((h.codec, h.role), (Codec::Opus, FrameRole::SequenceHeader));
        assert_eq!(
            OpusHead::parse(&h.payload()).unwrap(),
            Some(OpusHead::default_stereo())
        );
        let f = frame(opus_body(&[0xFC, 0xFF, 0xFE]));
        assert_eq!(
            (f.codec, f.role, f.dts),
            (Codec::Opus, FrameRole::Coded, 20)
        );
        assert_eq!(f.payload().as_ref(), &[0xFC, 0xFF, 0xFE]);
    }

    /// Viewers get the packet as it came, one copy per stream through the cache.
    #[test]
    fn packets_go_out_as_they_came_and_are_shared() {
        let cache = Arc::new(AnnexBCache::default());
        let (a, b) = (
            AudioOut::default().with_cache(Arc::clone(&cache)),
            AudioOut::default().with_cache(cache),
        );
        let f = frame(opus_body(&[0xFC, 1, 2, 3]));
        let (x, y) = (a.convert(&f).unwrap(), b.convert(&f).unwrap());
        assert_eq!(&x[..], &[0xFC, 1, 2, 3]);
        assert!(Arc::ptr_eq(&x, &y), "one copy for both viewers");
        assert_eq!(AudioOut::default().convert(&f).as_deref(), Some(&x[..]));
        // Not for the packetizer: the header, AAC, empty packets.
        assert!(a.convert(&frame(opus_header_body())).is_none());
        assert!(
            a.convert(&frame(flv::audio::aac_body(false, &[1])))
                .is_none()
        );
        assert!(a.convert(&frame(opus_body(&[]))).is_none());
    }
}
