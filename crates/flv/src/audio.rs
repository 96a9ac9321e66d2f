//! Audio tag headers, legacy FLV and Enhanced RTMP (v2).
//!
//! Mapping to [`media::Frame`] fields (`keyframe` is always true, `cts` always 0):
//!
//! * **Legacy** (SoundFormat high nibble, rate/size/type in the low nibble). AAC (10) carries
//!   AACPacketType: 0 = AudioSpecificConfig -> `SequenceHeader`, 1 = raw -> `Coded`; payload
//!   at 2. MP3 (2) -> `Mp3`; every other format -> `Codec::Other(format)`; payload at 1.
//! * **Enhanced** (SoundFormat 9 = ExHeader, AudioPacketType low nibble, then a FourCC):
//!   SequenceStart -> `SequenceHeader`, CodedFrames -> `Coded`, SequenceEnd -> `SequenceEnd`,
//!   MultichannelConfig -> `Coded` (a channel-order description, forwarded in band; it must
//!   not replace the cached sequence header). ModEx prefixes are skipped per v2; Multitrack
//!   packets pass through as `Codec::Other(fourcc)` `Coded` frames with the payload at the
//!   track list (see [`crate::video`]). FourCCs: `Opus` -> Opus, `mp4a` -> Aac, `.mp3` ->
//!   Mp3, anything else (`fLaC`, `ac-3`, `ec-3`, ...) -> `Codec::Other(fourcc)`.
//!
//! Builders write what the parser reads: [`aac_body`] (legacy AAC) and [`ex_audio_body`]
//! (Enhanced RTMP, e.g. Opus as a WHIP publisher sends it).

use media::{Codec, FrameRole, MediaKind};

use crate::FlvError;
use crate::frame::{Cursor, TagInfo, multitrack_header, skip_mod_ex};

/// SoundFormat of MP3.
pub const SOUND_FORMAT_MP3: u8 = 2;
/// SoundFormat announcing an Enhanced RTMP audio header.
pub const SOUND_FORMAT_EX_HEADER: u8 = 9;
/// SoundFormat of AAC.
pub const SOUND_FORMAT_AAC: u8 = 10;
/// FourCC `Opus`.
pub const FOURCC_OPUS: u32 = u32::from_be_bytes(*b"Opus");
/// FourCC `mp4a` (AAC).
pub const FOURCC_MP4A: u32 = u32::from_be_bytes(*b"mp4a");
/// FourCC `.mp3`.
pub const FOURCC_MP3: u32 = u32::from_be_bytes(*b".mp3");
/// FourCC `fLaC`.
pub const FOURCC_FLAC: u32 = u32::from_be_bytes(*b"fLaC");
/// FourCC `ac-3`.
pub const FOURCC_AC3: u32 = u32::from_be_bytes(*b"ac-3");
/// FourCC `ec-3`.
pub const FOURCC_EAC3: u32 = u32::from_be_bytes(*b"ec-3");

/// Enhanced RTMP AudioPacketType values.
mod packet {
    pub(super) const SEQUENCE_START: u8 = 0;
    pub(super) const CODED_FRAMES: u8 = 1;
    pub(super) const SEQUENCE_END: u8 = 2;
    pub(super) const MULTICHANNEL_CONFIG: u8 = 4;
    pub(super) const MULTITRACK: u8 = 5;
    pub(super) const MOD_EX: u8 = 6;
}

/// The [`Codec`] for an audio FourCC.
pub fn audio_codec_for_fourcc(fourcc: u32) -> Codec {
    match fourcc {
        FOURCC_OPUS => Codec::Opus,
        FOURCC_MP4A => Codec::Aac,
        FOURCC_MP3 => Codec::Mp3,
        other => Codec::Other(other),
    }
}

fn info(codec: Codec, role: FrameRole, payload_offset: usize) -> TagInfo {
    TagInfo {
        kind: MediaKind::Audio,
        codec,
        role,
        cts: 0,
        keyframe: true,
        payload_offset,
    }
}

/// The first byte of a legacy AAC tag body: SoundFormat 10 with the rate, size and type
/// flags FLV fixes for AAC (44 kHz, 16-bit, stereo; players read the real values from the
/// AudioSpecificConfig).
pub const AAC_HEADER_BYTE: u8 = (SOUND_FORMAT_AAC << 4) | 0x0F;

/// Builds a legacy FLV AAC tag body: [`AAC_HEADER_BYTE`], AACPacketType (0: `payload` is an
/// AudioSpecificConfig, the sequence header; 1: `payload` is one raw AAC frame), `payload`.
pub fn aac_body(sequence_header: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(payload.len() + 2);
    b.push(AAC_HEADER_BYTE);
    b.push(u8::from(!sequence_header));
    b.extend_from_slice(payload);
    b
}

/// What an Enhanced RTMP audio body written by [`ex_audio_body`] carries (its
/// AudioPacketType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExAudioPacket {
    /// SequenceStart (0): the codec's configuration (for Opus the identification header,
    /// `OpusHead`, RFC 7845 section 5.1).
    SequenceStart,
    /// CodedFrames (1): one coded frame (for Opus one packet, RFC 6716).
    CodedFrames,
    /// SequenceEnd (2): no payload.
    SequenceEnd,
}

/// Builds an Enhanced RTMP (v2) audio tag body: the ExAudioTagHeader (SoundFormat 9 =
/// ExHeader in the high nibble, AudioPacketType in the low one, then the FourCC) followed by
/// `payload`. Layout per the Enhanced RTMP v2 specification (veovera enhanced-rtmp,
/// "ExAudioTagHeader").
pub fn ex_audio_body(fourcc: u32, packet: ExAudioPacket, payload: &[u8]) -> Vec<u8> {
    let packet_type = match packet {
        ExAudioPacket::SequenceStart => packet::SEQUENCE_START,
        ExAudioPacket::CodedFrames => packet::CODED_FRAMES,
        ExAudioPacket::SequenceEnd => packet::SEQUENCE_END,
    };
    let mut b = Vec::with_capacity(payload.len() + 5);
    b.push((SOUND_FORMAT_EX_HEADER << 4) | packet_type);
    b.extend_from_slice(&fourcc.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// Parses a non-empty audio tag body's header.
pub(crate) fn parse(body: &[u8]) -> Result<TagInfo, FlvError> {
    let mut c = Cursor::new(body);
    let b0 = c.u8("audio tag header")?;
    match b0 >> 4 {
        SOUND_FORMAT_AAC => {
            let role = match c.u8("AACPacketType")? {
                0 => FrameRole::SequenceHeader,
                1 => FrameRole::Coded,
                value => {
                    return Err(FlvError::UnknownPacketType {
                        what: "AACPacketType",
                        value,
                    });
                }
            };
            Ok(info(Codec::Aac, role, c.pos()))
        }
        SOUND_FORMAT_MP3 => Ok(info(Codec::Mp3, FrameRole::Coded, c.pos())),
        SOUND_FORMAT_EX_HEADER => enhanced(b0, c),
        format => Ok(info(
            Codec::Other(u32::from(format)),
            FrameRole::Coded,
            c.pos(),
        )),
    }
}

fn enhanced(b0: u8, mut c: Cursor<'_>) -> Result<TagInfo, FlvError> {
    let packet_type = skip_mod_ex(&mut c, b0 & 0x0F, packet::MOD_EX)?;
    if packet_type == packet::MULTITRACK {
        let fourcc = multitrack_header(&mut c, packet::MULTITRACK)?;
        return Ok(info(Codec::Other(fourcc), FrameRole::Coded, c.pos()));
    }
    let fourcc = c.fourcc()?;
    let role = match packet_type {
        packet::SEQUENCE_START => FrameRole::SequenceHeader,
        packet::CODED_FRAMES | packet::MULTICHANNEL_CONFIG => FrameRole::Coded,
        packet::SEQUENCE_END => FrameRole::SequenceEnd,
        value => {
            return Err(FlvError::UnknownPacketType {
                what: "AudioPacketType",
                value,
            });
        }
    };
    Ok(info(audio_codec_for_fourcc(fourcc), role, c.pos()))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{TAG_AUDIO, frame_from_tag};

    fn parse_static(body: &'static [u8]) -> Result<(Codec, FrameRole, usize), FlvError> {
        let f = frame_from_tag(TAG_AUDIO, 5, Bytes::from_static(body))?;
        assert_eq!(
            (f.kind, f.cts, f.keyframe, f.dts),
            (MediaKind::Audio, 0, true, 5)
        );
        Ok((f.codec, f.role, f.payload_offset))
    }

    #[test]
    fn legacy_aac() {
        // 0xAF: AAC, 44 kHz, 16 bit, stereo; AACPacketType 0 then the ASC 11 90.
        assert_eq!(
            parse_static(&[0xAF, 0x00, 0x11, 0x90]).unwrap(),
            (Codec::Aac, FrameRole::SequenceHeader, 2)
        );
        assert_eq!(
            parse_static(&[0xAF, 0x01, 0x21, 0x10]).unwrap(),
            (Codec::Aac, FrameRole::Coded, 2)
        );
        assert_eq!(
            parse_static(&[0xAF]).unwrap_err(),
            FlvError::Truncated {
                what: "AACPacketType",
                need: 2,
                have: 1
            }
        );
        assert_eq!(
            parse_static(&[0xAF, 0x02]).unwrap_err(),
            FlvError::UnknownPacketType {
                what: "AACPacketType",
                value: 2
            }
        );
    }

    #[test]
    fn legacy_others() {
        assert_eq!(
            parse_static(&[0x2F, 0xFF, 0xFB]).unwrap(),
            (Codec::Mp3, FrameRole::Coded, 1)
        );
        // Nellymoser (6), G.711 A-law (7), Speex (11).
        assert_eq!(
            parse_static(&[0x6E, 0x00]).unwrap(),
            (Codec::Other(6), FrameRole::Coded, 1)
        );
        assert_eq!(
            parse_static(&[0x72]).unwrap(),
            (Codec::Other(7), FrameRole::Coded, 1)
        );
        assert_eq!(
            parse_static(&[0xB6, 0x01]).unwrap(),
            (Codec::Other(11), FrameRole::Coded, 1)
        );
    }

    #[test]
    fn enhanced_packets() {
        assert_eq!(
            parse_static(b"\x90Opus\x4F\x70").unwrap(),
            (Codec::Opus, FrameRole::SequenceHeader, 5)
        );
        assert_eq!(
            parse_static(b"\x91Opus\xFC").unwrap(),
            (Codec::Opus, FrameRole::Coded, 5)
        );
        assert_eq!(
            parse_static(b"\x91mp4a\x21").unwrap(),
            (Codec::Aac, FrameRole::Coded, 5)
        );
        assert_eq!(
            parse_static(b"\x92.mp3").unwrap(),
            (Codec::Mp3, FrameRole::SequenceEnd, 5)
        );
        assert_eq!(
            parse_static(b"\x94fLaC\x00\x02").unwrap(),
            (Codec::Other(FOURCC_FLAC), FrameRole::Coded, 5)
        );
        assert_eq!(
            parse_static(b"\x91ac-3\x0B").unwrap(),
            (Codec::Other(FOURCC_AC3), FrameRole::Coded, 5)
        );
        assert_eq!(
            parse_static(b"\x90ec-3").unwrap(),
            (Codec::Other(FOURCC_EAC3), FrameRole::SequenceHeader, 5)
        );
        assert_eq!(
            parse_static(b"\x93Opus").unwrap_err(),
            FlvError::UnknownPacketType {
                what: "AudioPacketType",
                value: 3
            }
        );
        assert_eq!(
            parse_static(b"\x91Op").unwrap_err(),
            FlvError::Truncated {
                what: "FourCC",
                need: 5,
                have: 3
            }
        );
    }

    /// What the builders write parses back to the same codec, role and payload.
    #[test]
    fn builders_round_trip() {
        let parse = |body: Vec<u8>| {
            let f = frame_from_tag(TAG_AUDIO, 7, Bytes::from(body)).unwrap();
            (f.codec, f.role, f.payload().to_vec())
        };
        assert_eq!(aac_body(true, &[0x11, 0x90]), [0xAF, 0x00, 0x11, 0x90]);
        assert_eq!(
            parse(aac_body(true, &[0x11, 0x90])),
            (Codec::Aac, FrameRole::SequenceHeader, vec![0x11, 0x90])
        );
        assert_eq!(
            parse(aac_body(false, &[0x21, 0x10, 0x04])),
            (Codec::Aac, FrameRole::Coded, vec![0x21, 0x10, 0x04])
        );
        let head = b"OpusHead\x01\x02\x00\x00\x80\xBB\x00\x00\x00\x00\x00";
        let body = ex_audio_body(FOURCC_OPUS, ExAudioPacket::SequenceStart, head);
        assert_eq!(&body[..5], b"\x90Opus");
        assert_eq!(
            parse(body),
            (Codec::Opus, FrameRole::SequenceHeader, head.to_vec())
        );
        let body = ex_audio_body(FOURCC_OPUS, ExAudioPacket::CodedFrames, &[0xFC, 1, 2]);
        assert_eq!(body, b"\x91Opus\xFC\x01\x02");
        assert_eq!(
            parse(body),
            (Codec::Opus, FrameRole::Coded, vec![0xFC, 1, 2])
        );
        assert_eq!(
            parse(ex_audio_body(FOURCC_MP4A, ExAudioPacket::SequenceEnd, &[])),
            (Codec::Aac, FrameRole::SequenceEnd, vec![])
        );
    }

    #[test]
    fn enhanced_mod_ex_and_multitrack() {
        // ModEx (2 bytes of data) -> CodedFrames, Opus.
        assert_eq!(
            parse_static(b"\x96\x01\xAA\xBB\x01Opus\xFC").unwrap(),
            (Codec::Opus, FrameRole::Coded, 9)
        );
        // Multitrack ManyTracks (1) of CodedFrames, shared FourCC Opus, then tracks.
        assert_eq!(
            parse_static(b"\x95\x11Opus\x00\x00\x00\x01\xFC").unwrap(),
            (Codec::Other(FOURCC_OPUS), FrameRole::Coded, 6)
        );
    }
}
