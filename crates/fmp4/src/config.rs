//! [`TrackConfig`]: one track's codec configuration, built from a hub sequence header.

use bytes::Bytes;
use media::aac::parse_audio_specific_config;
use media::avc::parse_avc_decoder_config;
use media::hevc::parse_hevc_decoder_config;
use media::opus::{OPUS_RATE, OpusHead};
use media::{Codec, Frame, FrameRole, MediaKind};

use crate::Fmp4Error;

/// The longest codec configuration record accepted (avcC, hvcC, AudioSpecificConfig,
/// OpusHead). Real records are a few hundred bytes; 64 KiB leaves room for many parameter
/// sets while keeping every init segment small.
pub const MAX_CONFIG_SIZE: usize = 64 * 1024;

/// Timescale of every video track: the MPEG 90 kHz clock (decode time = dts_ms x 90).
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// Codec configuration of one track, built from a hub sequence-header frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// Audio or video.
    pub kind: MediaKind,
    /// H.264, H.265, AAC or Opus.
    pub codec: Codec,
    /// Media timescale: 90000 for video, the sample rate for audio (48000 for Opus).
    pub timescale: u32,
    /// Picture width from the SPS (0 for audio).
    pub width: u32,
    /// Picture height from the SPS (0 for audio).
    pub height: u32,
    /// Audio sample rate in Hz (0 for video).
    pub sample_rate: u32,
    /// Audio channel count (0 for video).
    pub channels: u16,
    /// RFC 6381 codec string for the HLS `CODECS` attribute, e.g. `avc1.4d401e`.
    pub codec_string: String,
    /// Peak bitrate hint in bits per second; 0 when unknown.
    pub bandwidth_hint: u32,
    /// The sample entry's configuration box payload: avcC, hvcC, the AudioSpecificConfig for
    /// esds, or dOps.
    pub(crate) config: Bytes,
}

impl TrackConfig {
    /// Builds a track configuration from a sequence header: H.264 (avcC), H.265 (hvcC),
    /// AAC (AudioSpecificConfig) or Opus (`OpusHead` when the payload has one, else 48 kHz
    /// stereo defaults). Other codecs and roles are errors.
    pub fn from_sequence_header(frame: &Frame) -> Result<TrackConfig, Fmp4Error> {
        if frame.role != FrameRole::SequenceHeader {
            return Err(Fmp4Error::NotASequenceHeader {
                role: match frame.role {
                    FrameRole::Coded => "Coded",
                    FrameRole::SequenceEnd => "SequenceEnd",
                    FrameRole::Metadata => "Metadata",
                    FrameRole::SequenceHeader => "SequenceHeader",
                },
            });
        }
        let payload = frame.payload();
        if payload.len() > MAX_CONFIG_SIZE {
            return Err(Fmp4Error::ConfigTooLarge {
                what: "sequence header",
                len: payload.len(),
                max: MAX_CONFIG_SIZE,
            });
        }
        match (frame.kind, frame.codec) {
            (MediaKind::Video, Codec::H264) => Self::avc(payload),
            (MediaKind::Video, Codec::H265) => Self::hevc(payload),
            (MediaKind::Audio, Codec::Aac) => Self::aac(payload),
            (MediaKind::Audio, Codec::Opus) => Self::opus(&payload),
            (kind, codec) => Err(Fmp4Error::UnsupportedCodec { kind, codec }),
        }
    }

    fn avc(record: Bytes) -> Result<Self, Fmp4Error> {
        let avcc = parse_avc_decoder_config(&record)?;
        let sps = avcc.parse_sps()?;
        Ok(Self::video(
            Codec::H264,
            sps.width,
            sps.height,
            avcc.codec_string(),
            record,
        ))
    }

    fn hevc(record: Bytes) -> Result<Self, Fmp4Error> {
        let hvcc = parse_hevc_decoder_config(&record)?;
        let sps = hvcc.parse_sps()?;
        Ok(Self::video(
            Codec::H265,
            sps.width,
            sps.height,
            hvcc.codec_string(),
            record,
        ))
    }

    fn video(codec: Codec, width: u32, height: u32, codec_string: String, config: Bytes) -> Self {
        Self {
            kind: MediaKind::Video,
            codec,
            timescale: VIDEO_TIMESCALE,
            width,
            height,
            sample_rate: 0,
            channels: 0,
            codec_string,
            bandwidth_hint: 0,
            config,
        }
    }

    fn aac(asc: Bytes) -> Result<Self, Fmp4Error> {
        let parsed = parse_audio_specific_config(&asc)?;
        // Channel configuration 0 (program config element) is rare; assume stereo.
        let channels = parsed.channels().unwrap_or(2);
        Ok(Self::audio(
            Codec::Aac,
            parsed.sample_rate,
            u16::from(channels),
            format!("mp4a.40.{}", parsed.object_type),
            asc,
        ))
    }

    fn opus(payload: &[u8]) -> Result<Self, Fmp4Error> {
        let head = OpusHead::parse(payload)?.unwrap_or_else(OpusHead::default_stereo);
        Ok(Self::audio(
            Codec::Opus,
            OPUS_RATE,
            u16::from(head.channels),
            "opus".to_owned(),
            head.dops().freeze(),
        ))
    }

    fn audio(codec: Codec, rate: u32, channels: u16, codec_string: String, config: Bytes) -> Self {
        Self {
            kind: MediaKind::Audio,
            codec,
            timescale: rate,
            width: 0,
            height: 0,
            sample_rate: rate,
            channels,
            codec_string,
            bandwidth_hint: 0,
            config,
        }
    }

    /// The raw configuration bytes written into the sample entry: the avcC / hvcC record,
    /// the AudioSpecificConfig (inside esds) or the dOps payload.
    pub fn config_bytes(&self) -> &Bytes {
        &self.config
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use media::{MediaError, WireCache};

    /// A sequence header frame whose body is exactly the payload.
    pub(crate) fn header(kind: MediaKind, codec: Codec, payload: &[u8]) -> Frame {
        Frame {
            kind,
            codec,
            role: FrameRole::SequenceHeader,
            dts: 0,
            cts: 0,
            keyframe: true,
            body: Bytes::copy_from_slice(payload),
            payload_offset: 0,
            wire: WireCache::default(),
            arrival: None,
        }
    }

    /// The demo fixture's H.264 and AAC sequence header payloads.
    pub(crate) fn demo_headers() -> (Bytes, Bytes) {
        let tags = flv::read_all_tags(include_bytes!("../../../fixtures/demo.flv")).unwrap();
        let frames: Vec<Frame> = tags
            .into_iter()
            .map(|t| flv::frame_from_tag(t.tag_type, t.timestamp, t.body).unwrap())
            .collect();
        let find = |codec| {
            frames
                .iter()
                .find(|f| f.codec == codec && f.role == FrameRole::SequenceHeader)
                .unwrap()
                .payload()
        };
        (find(Codec::H264), find(Codec::Aac))
    }

    #[test]
    fn avc_from_real_avcc() {
        let (avcc, _) = demo_headers();
        let t = TrackConfig::from_sequence_header(&header(MediaKind::Video, Codec::H264, &avcc))
            .unwrap();
        assert_eq!(t.codec_string, "avc1.4d401e");
        assert_eq!((t.width, t.height, t.timescale), (640, 360, 90_000));
        assert_eq!((t.sample_rate, t.channels), (0, 0));
        assert_eq!(t.config_bytes(), &avcc);
    }

    #[test]
    fn aac_from_asc() {
        // AAC LC, 48 kHz (index 3), stereo: 00010 0011 0010 000.
        let t =
            TrackConfig::from_sequence_header(&header(MediaKind::Audio, Codec::Aac, &[0x11, 0x90]))
                .unwrap();
        assert_eq!(t.codec_string, "mp4a.40.2");
        assert_eq!(
            (t.timescale, t.sample_rate, t.channels),
            (48_000, 48_000, 2)
        );
        assert_eq!((t.width, t.height), (0, 0));
        // HE-AAC signalled explicitly (object type 5), 24 kHz core, mono.
        let t = TrackConfig::from_sequence_header(&header(
            MediaKind::Audio,
            Codec::Aac,
            &[0x2B, 0x09, 0x88],
        ))
        .unwrap();
        assert_eq!(t.codec_string, "mp4a.40.5");
        assert_eq!((t.sample_rate, t.channels), (24_000, 1));
    }

    #[test]
    fn hevc_from_hvcc() {
        let hvcc = media::fixtures::hevc_record(1280, 720);
        let t = TrackConfig::from_sequence_header(&header(MediaKind::Video, Codec::H265, &hvcc))
            .unwrap();
        assert_eq!(t.codec_string, "hvc1.1.6.L93.90");
        assert_eq!((t.width, t.height), (1280, 720));
    }

    #[test]
    fn opus_defaults_and_head() {
        let t =
            TrackConfig::from_sequence_header(&header(MediaKind::Audio, Codec::Opus, &[])).unwrap();
        assert_eq!(t.codec_string, "opus");
        assert_eq!(
            (t.timescale, t.sample_rate, t.channels),
            (48_000, 48_000, 2)
        );
        assert_eq!(
            &t.config_bytes()[..],
            &[0, 2, 0, 0, 0, 0, 0xBB, 0x80, 0, 0, 0]
        );
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&[0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
        let t = TrackConfig::from_sequence_header(&header(MediaKind::Audio, Codec::Opus, &head))
            .unwrap();
        assert_eq!(t.channels, 1);
        assert_eq!(
            &t.config_bytes()[..],
            &[0, 1, 1, 0x38, 0, 0, 0xBB, 0x80, 0, 0, 0]
        );
    }

    #[test]
    fn rejects_bad_headers() {
        let bad = |kind, codec, payload: &[u8]| {
            TrackConfig::from_sequence_header(&header(kind, codec, payload)).unwrap_err()
        };
        assert!(matches!(
            bad(MediaKind::Video, Codec::Vp9, &[1, 2, 3]),
            Fmp4Error::UnsupportedCodec { .. }
        ));
        assert!(matches!(
            bad(MediaKind::Video, Codec::H264, &[1, 2]),
            Fmp4Error::Codec(MediaError::InvalidCodecConfig {
                what: "AVC decoder configuration record",
                ..
            })
        ));
        // An hvcC record (version 1, 2-byte lengths) without any array.
        let mut no_sps = vec![1u8; 22];
        no_sps.push(0);
        assert!(matches!(
            bad(MediaKind::Video, Codec::H265, &no_sps),
            Fmp4Error::Codec(MediaError::InvalidCodecConfig {
                what: "HEVC decoder configuration record",
                reason: "no SPS"
            })
        ));
        assert!(matches!(
            bad(MediaKind::Audio, Codec::Aac, &[]),
            Fmp4Error::Codec(MediaError::InvalidCodecConfig { .. })
        ));
        assert!(matches!(
            bad(MediaKind::Audio, Codec::Opus, b"OpusHead\x01\x00"),
            Fmp4Error::Codec(MediaError::InvalidCodecConfig {
                what: "OpusHead",
                ..
            })
        ));
        assert!(matches!(
            bad(
                MediaKind::Audio,
                Codec::Aac,
                &vec![0x11; MAX_CONFIG_SIZE + 1]
            ),
            Fmp4Error::ConfigTooLarge { .. }
        ));
        let mut coded = header(MediaKind::Audio, Codec::Aac, &[0x11, 0x90]);
        coded.role = FrameRole::Coded;
        assert!(matches!(
            TrackConfig::from_sequence_header(&coded).unwrap_err(),
            Fmp4Error::NotASequenceHeader { role: "Coded" }
        ));
    }
}
