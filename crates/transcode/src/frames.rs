//! The engines over hub frames: [`AacToOpusFrames`] and [`OpusToAacFrames`] take the coded
//! audio frames of a stream as the hub carries them (`media::Frame`s with FLV tag bodies) and
//! make the frames of the other codec, in the same form: the decoder configuration as a
//! `SequenceHeader` frame before the first coded frame, then one frame per packet.
//!
//! These are what the binary registers as the hub's derived-track transforms (the hub's
//! `Transform` trait is implemented by a closure around [`AacToOpusFrames::push`] there: this
//! crate stays free of the hub and its runtime). Bodies:
//! - Opus: Enhanced RTMP audio with FourCC `Opus` ([`flv::audio::ex_audio_body`]): the
//!   identification header (`OpusHead`) as SequenceStart, one packet per CodedFrames.
//! - AAC: legacy FLV AAC ([`flv::audio::aac_body`]): the AudioSpecificConfig, then raw frames
//!   (what every RTMP, FLV, MPEG-TS and MP4 consumer already reads).
//!
//! Time: each output frame's dts is the engine's (the input's millisecond timeline: see
//! [`AacToOpus`] and [`OpusToAac`]); `cts` is 0.

use bytes::Bytes;
use flv::audio::{ExAudioPacket, FOURCC_OPUS, aac_body, ex_audio_body};
use media::opus::OpusHead;
use media::{Codec, Frame, FrameRole, MediaKind, WireCache};

use crate::{AacFrame, AacToOpus, MAX_CHANNELS, OpusPacket, OpusToAac, TranscodeError};

/// Channels of the AAC made from an Opus stream whose header does not say: WebRTC Opus is
/// always signalled as two channels (RFC 7587), and a mono packet decodes to stereo.
pub const DEFAULT_OPUS_CHANNELS: u16 = 2;

/// An audio frame of `codec` with `body`, whose payload is the last `payload_len` bytes.
fn audio_frame(
    codec: Codec,
    role: FrameRole,
    dts: u64,
    body: Vec<u8>,
    payload_len: usize,
) -> Frame {
    let payload_offset = body.len().saturating_sub(payload_len);
    Frame {
        kind: MediaKind::Audio,
        codec,
        role,
        dts,
        cts: 0,
        keyframe: true,
        body: Bytes::from(body),
        payload_offset,
        wire: WireCache::default(),
        arrival: None,
    }
}

/// True for the frames an engine consumes: coded audio of `codec` with a payload.
fn is_input(f: &Frame, codec: Codec) -> bool {
    f.kind == MediaKind::Audio && f.codec == codec && f.role == FrameRole::Coded
}

/// AAC frames in, Opus frames out (an RTMP publisher's audio for WebRTC viewers).
#[derive(Debug)]
pub struct AacToOpusFrames {
    engine: AacToOpus,
    /// The Opus sequence header, sent before the first packet.
    header: Option<Vec<u8>>,
    packets: Vec<OpusPacket>,
}

impl AacToOpusFrames {
    /// For the AAC configuration in `header` (the stream's AAC sequence header frame, whose
    /// payload is the AudioSpecificConfig). Without one AAC cannot be decoded: an error.
    pub fn new(header: Option<&Frame>) -> Result<Self, TranscodeError> {
        let asc = header.map(Frame::payload).unwrap_or_default();
        let engine = AacToOpus::new(&asc)?;
        let head = OpusHead {
            channels: u8::try_from(engine.channels()).unwrap_or(2),
            // Packets are stamped with their first input sample (RFC 7587): nothing to skip.
            pre_skip: 0,
            input_sample_rate: engine.sample_rate_in(),
            output_gain: 0,
            mapping_family: 0,
            mapping: None,
        };
        let header = ex_audio_body(
            FOURCC_OPUS,
            ExAudioPacket::SequenceStart,
            &head.identification_header(),
        );
        Ok(Self {
            engine,
            header: Some(header),
            packets: Vec::new(),
        })
    }

    /// Transcodes one AAC frame (other frames are ignored) and appends the Opus frames it
    /// completed to `out`, the sequence header before the first. A frame that fails is an
    /// error for that frame only; what it still completed is appended.
    pub fn push(&mut self, input: &Frame, out: &mut Vec<Frame>) -> Result<(), TranscodeError> {
        if !is_input(input, Codec::Aac) {
            return Ok(());
        }
        self.packets.clear();
        let result = self
            .engine
            .push(&input.payload(), input.dts, &mut self.packets);
        for p in self.packets.drain(..) {
            if let Some(h) = self.header.take() {
                let len = h.len() - 5;
                out.push(audio_frame(
                    Codec::Opus,
                    FrameRole::SequenceHeader,
                    p.dts_ms,
                    h,
                    len,
                ));
            }
            let body = ex_audio_body(FOURCC_OPUS, ExAudioPacket::CodedFrames, &p.data);
            out.push(audio_frame(
                Codec::Opus,
                FrameRole::Coded,
                p.dts_ms,
                body,
                p.data.len(),
            ));
        }
        result
    }
}

/// Opus frames in, AAC frames out (a WHIP publisher's audio for RTMP, FLV, HLS viewers and
/// recordings).
#[derive(Debug)]
pub struct OpusToAacFrames {
    engine: OpusToAac,
    /// The AAC sequence header, sent before the first frame.
    header: Option<Vec<u8>>,
}

impl OpusToAacFrames {
    /// For the Opus stream whose sequence header frame is `header` (its `OpusHead` gives the
    /// channel count, at most two); without one, or an unreadable one,
    /// [`DEFAULT_OPUS_CHANNELS`].
    pub fn new(header: Option<&Frame>) -> Result<Self, TranscodeError> {
        let channels = header
            .and_then(|h| OpusHead::parse(&h.payload()).ok().flatten())
            .map_or(DEFAULT_OPUS_CHANNELS, |h| {
                u16::from(h.channels).clamp(1, MAX_CHANNELS)
            });
        let engine = OpusToAac::new(channels)?;
        let header = aac_body(true, &engine.audio_specific_config());
        Ok(Self {
            engine,
            header: Some(header),
        })
    }

    /// Transcodes one Opus packet (other frames are ignored) and appends the AAC frames it
    /// completed to `out`, the sequence header before the first.
    pub fn push(&mut self, input: &Frame, out: &mut Vec<Frame>) -> Result<(), TranscodeError> {
        if !is_input(input, Codec::Opus) {
            return Ok(());
        }
        for AacFrame { data, pts_ms } in self.engine.push(&input.payload(), input.dts)? {
            if let Some(h) = self.header.take() {
                let len = h.len() - 2;
                out.push(audio_frame(
                    Codec::Aac,
                    FrameRole::SequenceHeader,
                    pts_ms,
                    h,
                    len,
                ));
            }
            out.push(audio_frame(
                Codec::Aac,
                FrameRole::Coded,
                pts_ms,
                aac_body(false, &data),
                data.len(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame `flv::frame_from_tag` makes of `f`'s body: the adapters' frames must be
    /// what any ingest of the same bytes would give the hub.
    fn reparsed(f: &Frame) -> Frame {
        flv::frame_from_tag(flv::TAG_AUDIO, f.dts as u32, f.body.clone()).unwrap()
    }

    fn same_as_parsed(f: &Frame) {
        let p = reparsed(f);
        assert_eq!(
            (p.kind, p.codec, p.role, p.payload_offset, p.keyframe, p.cts),
            (f.kind, f.codec, f.role, f.payload_offset, f.keyframe, f.cts)
        );
    }

    fn aac_header() -> Frame {
        // AAC-LC, 48 kHz, stereo.
        flv::frame_from_tag(
            flv::TAG_AUDIO,
            0,
            Bytes::from(aac_body(true, &[0x11, 0x90])),
        )
        .unwrap()
    }

    /// Real AAC in (encoded from Opus by the other adapter): Opus out, header first, then
    /// one 20 ms packet at a time on the input's timeline.
    #[test]
    fn aac_becomes_opus_frames() {
        // Make AAC from silence-coded Opus packets (a CELT 20 ms frame of digital silence).
        let mut to_aac = OpusToAacFrames::new(None).unwrap();
        let mut aac = Vec::new();
        for i in 0..50u64 {
            let body = ex_audio_body(FOURCC_OPUS, ExAudioPacket::CodedFrames, &[0xF8, 0xFF, 0xFE]);
            let f = flv::frame_from_tag(flv::TAG_AUDIO, (1000 + 20 * i) as u32, Bytes::from(body))
                .unwrap();
            to_aac.push(&f, &mut aac).unwrap();
        }
        assert!(aac.len() > 30, "{} AAC frames", aac.len());
        let (header, coded) = aac.split_first().unwrap();
        assert_eq!(
            (header.codec, header.role),
            (Codec::Aac, FrameRole::SequenceHeader)
        );
        same_as_parsed(header);
        assert!(
            coded
                .iter()
                .all(|f| f.role == FrameRole::Coded && f.codec == Codec::Aac)
        );
        coded.iter().for_each(same_as_parsed);
        // 1024 samples at 48 kHz: 21.33 ms apart, from the first input's time (the first
        // frame kept after the encoder's priming starts at it).
        assert_eq!(coded[0].dts, 1000);
        for w in coded[1..].windows(2) {
            assert!(
                (21..=22).contains(&(w[1].dts - w[0].dts)),
                "{} {}",
                w[0].dts,
                w[1].dts
            );
        }

        let mut to_opus = AacToOpusFrames::new(Some(header)).unwrap();
        let mut opus = Vec::new();
        for f in coded {
            to_opus.push(f, &mut opus).unwrap();
        }
        let (h, packets) = opus.split_first().unwrap();
        assert_eq!((h.codec, h.role), (Codec::Opus, FrameRole::SequenceHeader));
        same_as_parsed(h);
        let head = OpusHead::parse(&h.payload()).unwrap().unwrap();
        assert_eq!((head.channels, head.input_sample_rate), (2, 48_000));
        assert!(packets.len() > 20);
        for (i, p) in packets.iter().enumerate() {
            assert_eq!((p.codec, p.role), (Codec::Opus, FrameRole::Coded));
            same_as_parsed(p);
            assert_eq!(p.dts, coded[0].dts + 20 * i as u64);
            assert_eq!(
                media::opus::opus_packet_duration(&p.payload()).unwrap(),
                960
            );
        }
        // Only one header, and nothing but Opus frames.
        assert_eq!(
            opus.iter()
                .filter(|f| f.role == FrameRole::SequenceHeader)
                .count(),
            1
        );
    }

    #[test]
    fn headers_choose_the_configuration() {
        assert!(
            AacToOpusFrames::new(None).is_err(),
            "AAC needs its configuration"
        );
        let mono = OpusHead {
            channels: 1,
            ..OpusHead::default_stereo()
        };
        let h = flv::frame_from_tag(
            flv::TAG_AUDIO,
            0,
            Bytes::from(ex_audio_body(
                FOURCC_OPUS,
                ExAudioPacket::SequenceStart,
                &mono.identification_header(),
            )),
        )
        .unwrap();
        assert_eq!(OpusToAacFrames::new(Some(&h)).unwrap().engine.channels(), 1);
        assert_eq!(OpusToAacFrames::new(None).unwrap().engine.channels(), 2);
        // Frames that are not the engine's input are ignored.
        let mut t = OpusToAacFrames::new(None).unwrap();
        let mut out = Vec::new();
        t.push(&aac_header(), &mut out).unwrap();
        t.push(&h, &mut out).unwrap();
        assert!(out.is_empty());
    }
}
