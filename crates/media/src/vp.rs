//! VP8 and VP9: keyframe detection and stream info from the frame headers, and the
//! VPCodecConfigurationRecord (`vpcC`) Enhanced RTMP carries in a `vp08`/`vp09`
//! SequenceStart.
//!
//! - VP8 (RFC 6386 9.1): a 3-byte frame tag whose lowest bit is the inverse key frame flag
//!   (the "P" bit RFC 7741 4.3 repeats in the payload header: 0 = key frame), then on key
//!   frames the start code `9d 01 2a` and 14-bit width and height (little endian).
//! - VP9 (VP9 bitstream spec 6.2, uncompressed_header): frame_marker (2), profile (2, plus a
//!   reserved bit for profile 3), show_existing_frame, frame_type (0 = KEY_FRAME), show_frame,
//!   error_resilient_mode, then on key frames the sync code `49 83 42`, color_config
//!   (bit depth, color space, range, subsampling) and frame_size.
//! - `vpcC` ("VP Codec ISO Media File Format Binding" 2.2): the FullBox version 1 and flags
//!   0, then profile, level, bitDepth (4) | chromaSubsampling (3) | videoFullRangeFlag (1),
//!   colourPrimaries, transferCharacteristics, matrixCoefficients and a 16-bit
//!   codecInitializationDataSize (0: VP8 and VP9 have none). Enhanced RTMP v2 names this
//!   record for both `vp08` and `vp09` SequenceStart; FFmpeg's FLV muxer and demuxer carry it
//!   with the FullBox header, and so do we.

use crate::MediaError;
use crate::bits::BitReader;

/// Bytes of the `vpcC` payload we write (version/flags + 8 record bytes).
pub const VPCC_LEN: usize = 12;
/// ISO/IEC 23091-2 "unspecified" colour primaries/transfer/matrix code.
const CICP_UNSPECIFIED: u8 = 2;
/// `vpcC` chromaSubsampling for 4:2:0 with chroma co-located with luma (FFmpeg's default).
const CHROMA_420_COLOCATED: u8 = 1;
/// VP9 levels (VP9 profile/level table: level, max luma picture size in samples), used to
/// give the record a level from the frame size; past the last, level 0 (undefined).
const VP9_LEVELS: &[(u8, u32)] = &[
    (10, 36_864),
    (11, 73_728),
    (20, 122_880),
    (21, 245_760),
    (30, 552_960),
    (31, 983_040),
    (40, 2_228_224),
    (50, 8_912_896),
    (60, 35_651_584),
];

/// What a key frame header says about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpInfo {
    /// The profile (VP8: the frame tag's version, 0..=3; VP9: 0..=3).
    pub profile: u8,
    /// Bits per sample: 8, 10 or 12.
    pub bit_depth: u8,
    /// `vpcC` chromaSubsampling code (0..3).
    pub chroma: u8,
    /// Full (PC) range rather than limited (studio) range.
    pub full_range: bool,
    /// ISO/IEC 23091-2 matrix coefficients (primaries and transfer are left unspecified).
    pub matrix: u8,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
}

impl VpInfo {
    /// The `vpcC` payload (FullBox header included) for this stream.
    pub fn vpcc(&self) -> Vec<u8> {
        let pixels = self.width.saturating_mul(self.height);
        let level = VP9_LEVELS
            .iter()
            .find(|(_, max)| pixels <= *max)
            .map_or(0, |(l, _)| *l);
        let record: [u8; VPCC_LEN] = [
            1,
            0,
            0,
            0,
            self.profile,
            level,
            (self.bit_depth << 4) | ((self.chroma & 7) << 1) | u8::from(self.full_range),
            CICP_UNSPECIFIED,
            CICP_UNSPECIFIED,
            self.matrix,
            0,
            0,
        ];
        record.to_vec()
    }
}

/// The stream info of a VP8 key frame; `None` for inter frames and malformed data.
pub fn vp8_keyframe(frame: &[u8]) -> Option<VpInfo> {
    let tag = *frame.first()?;
    if tag & 1 != 0 {
        return None;
    }
    if frame.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let dim = |at: usize| -> Option<u32> {
        let lo = *frame.get(at)?;
        let hi = *frame.get(at + 1)?;
        Some(u32::from(u16::from_le_bytes([lo, hi]) & 0x3FFF))
    };
    let (width, height) = (dim(6)?, dim(8)?);
    if width == 0 || height == 0 {
        return None;
    }
    Some(VpInfo {
        profile: (tag >> 1) & 7,
        bit_depth: 8,
        chroma: CHROMA_420_COLOCATED,
        full_range: false,
        matrix: CICP_UNSPECIFIED,
        width,
        height,
    })
}

/// The stream info of a VP9 key frame (the first frame of a superframe); `None` for other
/// frames and malformed data.
pub fn vp9_keyframe(frame: &[u8]) -> Option<VpInfo> {
    vp9_key_header(frame).ok().flatten()
}

/// The uncompressed header of a VP9 frame as far as a key frame's stream info:
/// `Ok(None)` for a frame that is not a key frame, an error if the header is malformed.
fn vp9_key_header(frame: &[u8]) -> Result<Option<VpInfo>, MediaError> {
    let mut b = BitReader::new(frame, "VP9 uncompressed header");
    if b.bits(2)? != 2 {
        return Err(b.error("bad frame_marker"));
    }
    let low = b.bits(1)?;
    let high = b.bits(1)?;
    let profile = (high << 1) | low;
    if profile == 3 {
        b.skip(1)?;
    }
    if b.flag()? {
        return Ok(None); // show_existing_frame
    }
    if b.flag()? {
        return Ok(None); // frame_type 1: NON_KEY_FRAME
    }
    b.skip(2)?; // show_frame, error_resilient_mode
    if b.bits(24)? != 0x49_83_42 {
        return Err(b.error("bad frame_sync_code"));
    }
    let bit_depth = if profile >= 2 {
        if b.flag()? { 12 } else { 10 }
    } else {
        8
    };
    let color_space = b.bits(3)?;
    let (full_range, sx, sy) = if color_space != 7 {
        let range = b.flag()?;
        if profile == 1 || profile == 3 {
            let sx = b.flag()?;
            let sy = b.flag()?;
            b.skip(1)?;
            (range, sx, sy)
        } else {
            (range, true, true)
        }
    } else {
        if profile == 1 || profile == 3 {
            b.skip(1)?;
        }
        (true, false, false)
    };
    let width = b.bits(16)? + 1;
    let height = b.bits(16)? + 1;
    // VP9 color_space to ISO/IEC 23091-2 matrix coefficients (unknown, BT.601 (bt470bg),
    // BT.709, SMPTE-170, SMPTE-240, BT.2020 NCL, reserved, sRGB (identity)).
    let matrix = [2u8, 5, 1, 6, 7, 9, 2, 0]
        .get(color_space as usize)
        .copied()
        .unwrap_or(CICP_UNSPECIFIED);
    let chroma = match (sx, sy) {
        (true, true) => CHROMA_420_COLOCATED,
        (true, false) => 2,
        _ => 3,
    };
    Ok(Some(VpInfo {
        profile: profile as u8,
        bit_depth,
        chroma,
        full_range,
        matrix,
        width,
        height,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::BitWriter;

    /// A VP8 key frame header: frame tag (key, version 0, show_frame, partition size 0x1234),
    /// start code, 640 x 360.
    const VP8_KEY: &[u8] = &[
        0x50, 0x42, 0x02, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0xAA,
    ];

    #[test]
    fn vp8_key_and_inter_frames() {
        let info = vp8_keyframe(VP8_KEY).unwrap();
        assert_eq!((info.width, info.height, info.profile), (640, 360, 0));
        // The same frame with the P bit set is an inter frame.
        let mut inter = VP8_KEY.to_vec();
        inter[0] |= 1;
        assert_eq!(vp8_keyframe(&inter), None);
        assert_eq!(vp8_keyframe(&VP8_KEY[..7]), None, "truncated");
        assert_eq!(vp8_keyframe(&[0x50, 0x42, 0x02, 1, 2, 3, 4, 5, 6, 7]), None);
        assert_eq!(vp8_keyframe(&[]), None);
    }

    #[test]
    fn vpcc_wire_layout() {
        let rec = vp8_keyframe(VP8_KEY).unwrap().vpcc();
        // version 1, flags 0, profile 0, level 21 (640x360 = 230400 samples: above 2.0's
        // 122880, within 2.1's 245760), 8 bit << 4 | 4:2:0 colocated << 1 | limited range, unspecified x3,
        // no initialization data.
        assert_eq!(rec, [1, 0, 0, 0, 0, 21, 0x82, 2, 2, 2, 0, 0]);
        assert_eq!(rec.len(), VPCC_LEN);
    }

    /// A VP9 profile 0 key frame: frame_marker 10, profile 00, show_existing 0, frame_type 0,
    /// show_frame 1, error_res 0 (1000 0010), sync code 49 83 42, color_space 2 (BT.709),
    /// color_range 0, width-1 = 1279, height-1 = 719.
    fn vp9_key() -> Vec<u8> {
        // Bits after the first byte: sync (24), cs 010, range 0, w 16 bits, h 16 bits.
        let mut w = BitWriter::default();
        w.put(0b1000_0010, 8);
        w.put(0x49_83_42, 24);
        w.put(2, 3);
        w.put(0, 1);
        w.put(1279, 16);
        w.put(719, 16);
        w.bytes().to_vec()
    }

    #[test]
    fn vp9_key_frame_header() {
        let key = vp9_key();
        assert_eq!(&key[..4], &[0x82, 0x49, 0x83, 0x42]);
        let info = vp9_keyframe(&key).unwrap();
        assert_eq!(
            info,
            VpInfo {
                profile: 0,
                bit_depth: 8,
                chroma: 1,
                full_range: false,
                matrix: 1,
                width: 1280,
                height: 720,
            }
        );
        assert_eq!(info.vpcc(), [1, 0, 0, 0, 0, 31, 0x82, 2, 2, 1, 0, 0]);
        // frame_type 1 (inter): 1000 0110.
        let mut inter = key.clone();
        inter[0] = 0x86;
        assert_eq!(vp9_keyframe(&inter), None);
        // show_existing_frame: 1000 1000.
        assert_eq!(vp9_keyframe(&[0x88, 0]), None);
        // Bad frame marker, bad sync code, truncated.
        assert_eq!(vp9_keyframe(&[0x02, 0x49, 0x83, 0x42]), None);
        assert_eq!(vp9_keyframe(&[0x82, 0x49, 0x83, 0x43, 0, 0, 0, 0, 0]), None);
        assert_eq!(vp9_keyframe(&key[..6]), None);
        assert_eq!(vp9_keyframe(&[]), None);
    }
}
