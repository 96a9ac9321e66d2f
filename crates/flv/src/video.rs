//! Video tag headers, legacy FLV and Enhanced RTMP (v1 + v2).
//!
//! Mapping to [`media::Frame`] fields:
//!
//! * **Legacy** (first byte: FrameType high nibble, CodecID low nibble). AVC (7) and legacy
//!   HEVC (12) carry AVCPacketType (0 sequence header, 1 NALU, 2 end of sequence) and an SI24
//!   composition time (used for NALUs only); payload at 5. Other codec ids (Sorenson H.263,
//!   screen video, VP6, ...) become `Codec::Other(id)` coded frames with the payload at 1.
//! * **Enhanced** (first byte: IsExHeader 0x80, FrameType in bits 4..6, VideoPacketType low
//!   nibble, then a FourCC). SequenceStart and MPEG2TSSequenceStart -> `SequenceHeader`,
//!   CodedFrames -> `Coded` (with an SI24 cts for `avc1`/`hvc1` only), CodedFramesX ->
//!   `Coded` (cts 0), SequenceEnd -> `SequenceEnd`, Metadata -> `Metadata`. ModEx prefixes
//!   are skipped per v2 (nanosecond offsets ignored). **Multitrack** packets are passed through
//!   untouched as `Codec::Other(fourcc)` `Coded` frames (FourCC: the shared one, or the first
//!   track's for ManyTracksManyCodecs) with the payload at the start of the track list, so a
//!   consumer never mistakes a secondary track for the main one. Reserved packet types are
//!   errors. Unknown FourCCs become `Codec::Other(fourcc)`, the FourCC as a big-endian u32.
//! * **FrameType 5** (video info/command frame, legacy or enhanced): a `Coded`, non-keyframe
//!   frame with the codec as signalled; its payload (the command byte) starts right after the
//!   header (1 for legacy, after the FourCC for enhanced). Consumers may forward or drop it.
//! * `keyframe` is FrameType 1 (key frame); sequence headers are always marked keyframes.

use media::{Codec, FrameRole, MediaKind};

use crate::FlvError;
use crate::frame::{Cursor, TagInfo, multitrack_header, skip_mod_ex};

/// FLV video codec id of AVC / H.264.
pub const CODEC_ID_AVC: u8 = 7;
/// FLV video codec id of HEVC in the pre-Enhanced-RTMP convention (as used by many Chinese CDNs).
pub const CODEC_ID_HEVC: u8 = 12;
/// FrameType of a key frame.
pub const FRAME_TYPE_KEY: u8 = 1;
/// FrameType of a video info/command frame.
pub const FRAME_TYPE_COMMAND: u8 = 5;
/// FourCC `avc1` (H.264).
pub const FOURCC_AVC1: u32 = u32::from_be_bytes(*b"avc1");
/// FourCC `hvc1` (H.265).
pub const FOURCC_HVC1: u32 = u32::from_be_bytes(*b"hvc1");
/// FourCC `av01` (AV1).
pub const FOURCC_AV01: u32 = u32::from_be_bytes(*b"av01");
/// FourCC `vp09` (VP9).
pub const FOURCC_VP09: u32 = u32::from_be_bytes(*b"vp09");
/// FourCC `vp08` (VP8).
pub const FOURCC_VP08: u32 = u32::from_be_bytes(*b"vp08");

/// Enhanced RTMP VideoPacketType values.
mod packet {
    pub(super) const SEQUENCE_START: u8 = 0;
    pub(super) const CODED_FRAMES: u8 = 1;
    pub(super) const SEQUENCE_END: u8 = 2;
    pub(super) const CODED_FRAMES_X: u8 = 3;
    pub(super) const METADATA: u8 = 4;
    pub(super) const MPEG2TS_SEQUENCE_START: u8 = 5;
    pub(super) const MULTITRACK: u8 = 6;
    pub(super) const MOD_EX: u8 = 7;
}

/// The [`Codec`] for a video FourCC.
pub fn video_codec_for_fourcc(fourcc: u32) -> Codec {
    match fourcc {
        FOURCC_AVC1 => Codec::H264,
        FOURCC_HVC1 => Codec::H265,
        FOURCC_AV01 => Codec::Av1,
        FOURCC_VP09 => Codec::Vp9,
        FOURCC_VP08 => Codec::Vp8,
        other => Codec::Other(other),
    }
}

/// What an Enhanced RTMP video body written by [`ex_video_body`] carries (its
/// VideoPacketType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExVideoPacket {
    /// SequenceStart (0): the payload is the codec's configuration record.
    SequenceStart,
    /// CodedFrames (1) with an SI24 composition time offset (ms); only `avc1` and `hvc1`
    /// carry one on the wire, for other FourCCs the offset is not written.
    CodedFrames {
        /// Composition time offset (pts - dts) in ms; clamped to the SI24 range.
        cts: i32,
    },
    /// CodedFramesX (3): coded frames with an implied composition time of 0.
    CodedFramesX,
    /// SequenceEnd (2): no payload.
    SequenceEnd,
}

/// Builds an Enhanced RTMP (v2) video tag body: the ExVideoTagHeader (IsExHeader bit,
/// FrameType 1 key or 2 inter, VideoPacketType, FourCC, and for CodedFrames of `avc1`/`hvc1`
/// the SI24 composition time) followed by `payload`. Layout per the Enhanced RTMP v2
/// specification (veovera enhanced-rtmp, "ExVideoTagHeader" and "ExVideoTagBody"). Sequence
/// headers are always marked key frames, as the specification's readers expect.
pub fn ex_video_body(
    fourcc: u32,
    keyframe: bool,
    packet: ExVideoPacket,
    payload: &[u8],
) -> Vec<u8> {
    let key = keyframe || packet == ExVideoPacket::SequenceStart;
    let frame_type: u8 = if key { FRAME_TYPE_KEY } else { 2 };
    let packet_type = match packet {
        ExVideoPacket::SequenceStart => packet::SEQUENCE_START,
        ExVideoPacket::CodedFrames { .. } => packet::CODED_FRAMES,
        ExVideoPacket::CodedFramesX => packet::CODED_FRAMES_X,
        ExVideoPacket::SequenceEnd => packet::SEQUENCE_END,
    };
    let mut b = Vec::with_capacity(payload.len() + 8);
    b.push(0x80 | (frame_type << 4) | packet_type);
    b.extend_from_slice(&fourcc.to_be_bytes());
    if let ExVideoPacket::CodedFrames { cts } = packet
        && matches!(fourcc, FOURCC_AVC1 | FOURCC_HVC1)
    {
        let cts = cts.clamp(-0x80_0000, 0x7F_FFFF);
        b.extend_from_slice(&cts.to_be_bytes()[1..]);
    }
    b.extend_from_slice(payload);
    b
}

/// Parses a non-empty video tag body's header.
pub(crate) fn parse(body: &[u8]) -> Result<TagInfo, FlvError> {
    let mut c = Cursor::new(body);
    let b0 = c.u8("video tag header")?;
    if b0 & 0x80 != 0 {
        enhanced(b0, c)
    } else {
        legacy(b0, c)
    }
}

fn info(codec: Codec, role: FrameRole, cts: i32, keyframe: bool, payload_offset: usize) -> TagInfo {
    TagInfo {
        kind: MediaKind::Video,
        codec,
        role,
        cts,
        keyframe,
        payload_offset,
    }
}

fn legacy(b0: u8, mut c: Cursor<'_>) -> Result<TagInfo, FlvError> {
    let frame_type = b0 >> 4;
    let codec_id = b0 & 0x0F;
    let codec = match codec_id {
        CODEC_ID_AVC => Codec::H264,
        CODEC_ID_HEVC => Codec::H265,
        id => Codec::Other(u32::from(id)),
    };
    if frame_type == FRAME_TYPE_COMMAND {
        return Ok(info(codec, FrameRole::Coded, 0, false, c.pos()));
    }
    let key = frame_type == FRAME_TYPE_KEY;
    if !matches!(codec_id, CODEC_ID_AVC | CODEC_ID_HEVC) {
        return Ok(info(codec, FrameRole::Coded, 0, key, c.pos()));
    }
    let packet_type = c.u8("AVCPacketType")?;
    let cts = c.si24("AVC composition time")?;
    let (role, cts) = match packet_type {
        0 => (FrameRole::SequenceHeader, 0),
        1 => (FrameRole::Coded, cts),
        2 => (FrameRole::SequenceEnd, 0),
        value => {
            return Err(FlvError::UnknownPacketType {
                what: "AVCPacketType",
                value,
            });
        }
    };
    Ok(info(
        codec,
        role,
        cts,
        key || role == FrameRole::SequenceHeader,
        c.pos(),
    ))
}

fn enhanced(b0: u8, mut c: Cursor<'_>) -> Result<TagInfo, FlvError> {
    let frame_type = (b0 >> 4) & 0x07;
    let key = frame_type == FRAME_TYPE_KEY;
    let packet_type = skip_mod_ex(&mut c, b0 & 0x0F, packet::MOD_EX)?;
    if packet_type == packet::MULTITRACK {
        let fourcc = multitrack_header(&mut c, packet::MULTITRACK)?;
        return Ok(info(
            Codec::Other(fourcc),
            FrameRole::Coded,
            0,
            key,
            c.pos(),
        ));
    }
    let fourcc = c.fourcc()?;
    let codec = video_codec_for_fourcc(fourcc);
    if frame_type == FRAME_TYPE_COMMAND {
        return Ok(info(codec, FrameRole::Coded, 0, false, c.pos()));
    }
    let (role, cts) = match packet_type {
        packet::SEQUENCE_START | packet::MPEG2TS_SEQUENCE_START => (FrameRole::SequenceHeader, 0),
        packet::CODED_FRAMES if matches!(codec, Codec::H264 | Codec::H265) => {
            (FrameRole::Coded, c.si24("composition time")?)
        }
        packet::CODED_FRAMES | packet::CODED_FRAMES_X => (FrameRole::Coded, 0),
        packet::SEQUENCE_END => (FrameRole::SequenceEnd, 0),
        packet::METADATA => (FrameRole::Metadata, 0),
        value => {
            return Err(FlvError::UnknownPacketType {
                what: "VideoPacketType",
                value,
            });
        }
    };
    Ok(info(
        codec,
        role,
        cts,
        key || role == FrameRole::SequenceHeader,
        c.pos(),
    ))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{TAG_VIDEO, frame_from_tag};

    fn parse_static(body: &'static [u8]) -> Result<TagInfo, FlvError> {
        // Go through the public entry point so the whole path is covered.
        frame_from_tag(TAG_VIDEO, 0, Bytes::from_static(body)).map(|f| TagInfo {
            kind: f.kind,
            codec: f.codec,
            role: f.role,
            cts: f.cts,
            keyframe: f.keyframe,
            payload_offset: f.payload_offset,
        })
    }

    fn v(codec: Codec, role: FrameRole, cts: i32, keyframe: bool, off: usize) -> TagInfo {
        info(codec, role, cts, keyframe, off)
    }

    #[test]
    fn legacy_avc() {
        // Key frame, AVC, sequence header, cts 0, then the record's first byte.
        assert_eq!(
            parse_static(&[0x17, 0x00, 0x00, 0x00, 0x00, 0x01]).unwrap(),
            v(Codec::H264, FrameRole::SequenceHeader, 0, true, 5)
        );
        // Inter frame NALU with cts +80 ms.
        assert_eq!(
            parse_static(&[0x27, 0x01, 0x00, 0x00, 0x50, 0, 0, 0, 1, 0x41]).unwrap(),
            v(Codec::H264, FrameRole::Coded, 80, false, 5)
        );
        // Key frame NALU with negative cts -40.
        assert_eq!(
            parse_static(&[0x17, 0x01, 0xFF, 0xFF, 0xD8]).unwrap(),
            v(Codec::H264, FrameRole::Coded, -40, true, 5)
        );
        // End of sequence (cts ignored).
        assert_eq!(
            parse_static(&[0x17, 0x02, 0x00, 0x00, 0x01]).unwrap(),
            v(Codec::H264, FrameRole::SequenceEnd, 0, true, 5)
        );
    }

    #[test]
    fn legacy_hevc_and_others() {
        assert_eq!(
            parse_static(&[0x1C, 0x01, 0x00, 0x00, 0x00]).unwrap(),
            v(Codec::H265, FrameRole::Coded, 0, true, 5)
        );
        // Sorenson H.263 (2) inter frame and VP6 (4) key frame: payload right after byte 0.
        assert_eq!(
            parse_static(&[0x22, 0xAB]).unwrap(),
            v(Codec::Other(2), FrameRole::Coded, 0, false, 1)
        );
        assert_eq!(
            parse_static(&[0x14]).unwrap(),
            v(Codec::Other(4), FrameRole::Coded, 0, true, 1)
        );
    }

    #[test]
    fn legacy_command_frame() {
        // FrameType 5, AVC, command 0 (start of seek): not an AVCPacketType.
        assert_eq!(
            parse_static(&[0x57, 0x00]).unwrap(),
            v(Codec::H264, FrameRole::Coded, 0, false, 1)
        );
    }

    #[test]
    fn legacy_errors() {
        assert_eq!(
            parse_static(&[0x17, 0x00, 0x00]).unwrap_err(),
            FlvError::Truncated {
                what: "AVC composition time",
                need: 5,
                have: 3
            }
        );
        assert_eq!(
            parse_static(&[0x17]).unwrap_err(),
            FlvError::Truncated {
                what: "AVCPacketType",
                need: 2,
                have: 1
            }
        );
        assert_eq!(
            parse_static(&[0x17, 0x03, 0, 0, 0]).unwrap_err(),
            FlvError::UnknownPacketType {
                what: "AVCPacketType",
                value: 3
            }
        );
    }

    #[test]
    fn enhanced_sequence_start_and_coded() {
        // 0x90: ExHeader, key frame, SequenceStart; FourCC hvc1.
        assert_eq!(
            parse_static(b"\x90hvc1\x01").unwrap(),
            v(Codec::H265, FrameRole::SequenceHeader, 0, true, 5)
        );
        // 0xA1: ExHeader, inter frame, CodedFrames with SI24 cts (hvc1).
        assert_eq!(
            parse_static(b"\xA1hvc1\x00\x00\x28\x00").unwrap(),
            v(Codec::H265, FrameRole::Coded, 40, false, 8)
        );
        // 0x93: key frame, CodedFramesX (no cts).
        assert_eq!(
            parse_static(b"\x93avc1\x00").unwrap(),
            v(Codec::H264, FrameRole::Coded, 0, true, 5)
        );
        // AV1 CodedFrames has no cts.
        assert_eq!(
            parse_static(b"\x91av01\x12\x00").unwrap(),
            v(Codec::Av1, FrameRole::Coded, 0, true, 5)
        );
        assert_eq!(
            parse_static(b"\xA1vp09\x00").unwrap(),
            v(Codec::Vp9, FrameRole::Coded, 0, false, 5)
        );
        assert_eq!(
            parse_static(b"\x90vp08").unwrap(),
            v(Codec::Vp8, FrameRole::SequenceHeader, 0, true, 5)
        );
    }

    #[test]
    fn enhanced_other_packet_types() {
        assert_eq!(
            parse_static(b"\x92av01").unwrap(),
            v(Codec::Av1, FrameRole::SequenceEnd, 0, true, 5)
        );
        assert_eq!(
            parse_static(b"\x94hvc1\x02\x00\x0Acolor").unwrap(),
            v(Codec::H265, FrameRole::Metadata, 0, true, 5)
        );
        assert_eq!(
            parse_static(b"\x95av01\x80").unwrap(),
            v(Codec::Av1, FrameRole::SequenceHeader, 0, true, 5)
        );
        // Unknown FourCC passes through.
        assert_eq!(
            parse_static(b"\x93vvc1").unwrap(),
            v(
                Codec::Other(u32::from_be_bytes(*b"vvc1")),
                FrameRole::Coded,
                0,
                true,
                5
            )
        );
        // Command frame (type 5).
        assert_eq!(
            parse_static(b"\xD1avc1\x00").unwrap(),
            v(Codec::H264, FrameRole::Coded, 0, false, 5)
        );
        assert_eq!(
            parse_static(b"\x98avc1").unwrap_err(),
            FlvError::UnknownPacketType {
                what: "VideoPacketType",
                value: 8
            }
        );
    }

    #[test]
    fn enhanced_mod_ex() {
        // ModEx: 3 bytes of nano offset, then ModExType 0 / packet type CodedFrames, FourCC, cts.
        assert_eq!(
            parse_static(b"\x97\x02\x00\x01\x00\x01avc1\x00\x00\x14").unwrap(),
            v(Codec::H264, FrameRole::Coded, 20, true, 13)
        );
        assert!(matches!(
            parse_static(b"\x97\x05\x00"),
            Err(FlvError::Truncated { .. })
        ));
    }

    #[test]
    fn enhanced_multitrack_passthrough() {
        // Multitrack, OneTrack (0) with CodedFramesX, shared FourCC av01, then track 0 data.
        assert_eq!(
            parse_static(b"\x96\x03av01\x00\x12\x00").unwrap(),
            v(Codec::Other(FOURCC_AV01), FrameRole::Coded, 0, true, 6)
        );
        // ManyTracksManyCodecs: first track's FourCC peeked, payload at the track list.
        assert_eq!(
            parse_static(b"\xA6\x21hvc1\x01\x00\x00\x01\x00").unwrap(),
            v(Codec::Other(FOURCC_HVC1), FrameRole::Coded, 0, false, 2)
        );
        assert_eq!(
            parse_static(b"\x96\x31av01").unwrap_err(),
            FlvError::UnknownPacketType {
                what: "AvMultitrackType",
                value: 3
            }
        );
        assert!(matches!(
            parse_static(b"\x96\x06av01").unwrap_err(),
            FlvError::UnknownPacketType { .. }
        ));
        assert!(matches!(
            parse_static(b"\x96\x01av").unwrap_err(),
            FlvError::Truncated { .. }
        ));
    }

    #[test]
    fn enhanced_truncated() {
        assert_eq!(
            parse_static(b"\x90av").unwrap_err(),
            FlvError::Truncated {
                what: "FourCC",
                need: 5,
                have: 3
            }
        );
        assert_eq!(
            parse_static(b"\x91avc1\x00").unwrap_err(),
            FlvError::Truncated {
                what: "composition time",
                need: 8,
                have: 6
            }
        );
    }

    #[test]
    fn ex_video_body_wire_layout_and_round_trip() {
        // SequenceStart of vp08: 0x80 | key (1 << 4) | 0, FourCC, record.
        let b = ex_video_body(FOURCC_VP08, false, ExVideoPacket::SequenceStart, &[1, 2]);
        assert_eq!(b, [0x90, b'v', b'p', b'0', b'8', 1, 2]);
        let f = frame_from_tag(TAG_VIDEO, 0, Bytes::from(b)).unwrap();
        assert_eq!(
            (f.codec, f.role, f.keyframe),
            (Codec::Vp8, FrameRole::SequenceHeader, true)
        );
        assert_eq!(f.payload().as_ref(), &[1, 2]);
        // CodedFramesX inter frame of av01: 0x80 | 2 << 4 | 3.
        let b = ex_video_body(FOURCC_AV01, false, ExVideoPacket::CodedFramesX, &[9]);
        assert_eq!(b, [0xA3, b'a', b'v', b'0', b'1', 9]);
        let f = frame_from_tag(TAG_VIDEO, 40, Bytes::from(b)).unwrap();
        assert_eq!(
            (f.codec, f.role, f.keyframe, f.cts),
            (Codec::Av1, FrameRole::Coded, false, 0)
        );
        // CodedFrames of hvc1 carries an SI24 cts (-40 = FF FF D8).
        let b = ex_video_body(
            FOURCC_HVC1,
            true,
            ExVideoPacket::CodedFrames { cts: -40 },
            &[7],
        );
        assert_eq!(b, [0x91, b'h', b'v', b'c', b'1', 0xFF, 0xFF, 0xD8, 7]);
        let f = frame_from_tag(TAG_VIDEO, 0, Bytes::from(b)).unwrap();
        assert_eq!((f.codec, f.cts, f.keyframe), (Codec::H265, -40, true));
        assert_eq!(f.payload().as_ref(), &[7]);
        // CodedFrames of vp09 has no cts on the wire.
        let b = ex_video_body(
            FOURCC_VP09,
            true,
            ExVideoPacket::CodedFrames { cts: 5 },
            &[3],
        );
        assert_eq!(b, [0x91, b'v', b'p', b'0', b'9', 3]);
        // Out-of-range cts is clamped to SI24.
        let b = ex_video_body(
            FOURCC_HVC1,
            false,
            ExVideoPacket::CodedFrames { cts: i32::MAX },
            &[],
        );
        assert_eq!(&b[5..], &[0x7F, 0xFF, 0xFF]);
        let b = ex_video_body(FOURCC_VP09, false, ExVideoPacket::SequenceEnd, &[]);
        let f = frame_from_tag(TAG_VIDEO, 0, Bytes::from(b)).unwrap();
        assert_eq!(f.role, FrameRole::SequenceEnd);
    }
}
