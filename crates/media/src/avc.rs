//! H.264 / AVC: NAL unit types, the AVCDecoderConfigurationRecord (`avcC`, ISO/IEC 14496-15
//! 5.3.3) both ways, and the sequence parameter set (ITU-T H.264 7.3.2.1.1) up to the frame
//! cropping fields: profile, level, chroma format, bit depth, width and height.

use bytes::Bytes;

use crate::MediaError;
use crate::bits::BitReader;
use crate::nal::{MAX_PARAMETER_SETS, MAX_SPS_LEN};
use crate::rbsp::unescape_rbsp;
use crate::record::{Reader, nal_length_size};

/// NAL unit type of an IDR slice (H.264 Table 7-1).
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// The NAL unit type of an H.264 NAL unit (`None` for an empty slice).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1F)
}

/// What an AVCDecoderConfigurationRecord says, with zero-copy parameter sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    /// AVCProfileIndication (profile_idc: 66 baseline, 77 main, 100 high, ...).
    pub profile: u8,
    /// profile_compatibility (the SPS constraint_set flags).
    pub compatibility: u8,
    /// AVCLevelIndication (level_idc: 30 = level 3.0, 31 = 3.1, ...).
    pub level: u8,
    /// Bytes per NAL unit length prefix in coded frames (1, 2 or 4).
    pub nal_length_size: u8,
    /// The SPS NAL units (with their NAL header byte), in record order; never empty.
    pub sps: Vec<Bytes>,
    /// The PPS NAL units, in record order (the list is optional in practice: some encoders
    /// send the PPS in band only). SPS and PPS together are at most [`MAX_PARAMETER_SETS`].
    pub pps: Vec<Bytes>,
}

impl AvcDecoderConfig {
    /// Parses the first SPS.
    pub fn parse_sps(&self) -> Result<Sps, MediaError> {
        parse_sps(self.sps.first().map_or(&[][..], |s| s.as_ref()))
    }

    /// The RFC 6381 codec string, e.g. `avc1.4d401e` (profile, compatibility, level in hex).
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }

    /// Every parameter set in decoding order: the SPS, then the PPS.
    pub fn parameter_sets(&self) -> impl Iterator<Item = &Bytes> {
        self.sps.iter().chain(&self.pps)
    }
}

/// Parses an AVCDecoderConfigurationRecord (the AVC sequence header payload). It must be
/// version 1 with at least one non-empty SPS; empty parameter sets are skipped, and
/// parameter sets past [`MAX_PARAMETER_SETS`] are ignored. Trailing bytes (the high profiles'
/// chroma and bit depth extension) are ignored.
pub fn parse_avc_decoder_config(record: &Bytes) -> Result<AvcDecoderConfig, MediaError> {
    let mut r = Reader::new(record, "AVC decoder configuration record");
    let [
        version,
        profile,
        compatibility,
        level,
        length_size,
        sps_count,
    ] = r.array()?;
    if version != 1 {
        return Err(r.invalid("configurationVersion is not 1"));
    }
    let nal_length_size = nal_length_size(length_size, "AVC decoder configuration record")?;
    let (mut sps, mut pps) = (Vec::new(), Vec::new());
    let mut kept = 0;
    for _ in 0..(sps_count & 0x1F) {
        let nal = r.nal()?;
        if !nal.is_empty() && kept < MAX_PARAMETER_SETS {
            sps.push(nal);
            kept += 1;
        }
    }
    if sps.is_empty() {
        return Err(r.invalid("no SPS"));
    }
    if let Ok(pps_count) = r.u8() {
        for _ in 0..pps_count {
            let nal = r.nal()?;
            if !nal.is_empty() && kept < MAX_PARAMETER_SETS {
                pps.push(nal);
                kept += 1;
            }
        }
    }
    Ok(AvcDecoderConfig {
        profile,
        compatibility,
        level,
        nal_length_size,
        sps,
        pps,
    })
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) with one SPS and one PPS and
/// 4-byte NAL lengths, the profile, compatibility and level taken from the SPS; `None` if
/// the SPS is shorter than its 4-byte header, the PPS is empty, or either is longer than
/// the record's 16-bit lengths allow.
pub fn decoder_config_record(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    if sps.len() < 4 || pps.is_empty() {
        return None;
    }
    let (profile, compat, level) = (*sps.get(1)?, *sps.get(2)?, *sps.get(3)?);
    let mut r = Vec::with_capacity(11 + sps.len() + pps.len());
    // version 1, profile, compatibility, level, 6 reserved bits + lengthSizeMinusOne = 3,
    // 3 reserved bits + one SPS.
    r.extend_from_slice(&[1, profile, compat, level, 0xFF, 0xE1]);
    r.extend_from_slice(&u16::try_from(sps.len()).ok()?.to_be_bytes());
    r.extend_from_slice(sps);
    r.push(1);
    r.extend_from_slice(&u16::try_from(pps.len()).ok()?.to_be_bytes());
    r.extend_from_slice(pps);
    Some(r)
}

/// What a sequence parameter set says, as far as stream info needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    /// profile_idc.
    pub profile_idc: u8,
    /// constraint_set0..5 flags and the two reserved bits, as one byte.
    pub constraint_flags: u8,
    /// level_idc.
    pub level_idc: u8,
    /// seq_parameter_set_id.
    pub sps_id: u32,
    /// chroma_format_idc (0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4); 1 when not signalled.
    pub chroma_format_idc: u32,
    /// Luma bit depth (8 when not signalled).
    pub bit_depth_luma: u32,
    /// Chroma bit depth (8 when not signalled).
    pub bit_depth_chroma: u32,
    /// frame_mbs_only_flag: false when the stream may contain field pictures (interlaced).
    pub frame_mbs_only: bool,
    /// Picture width in luma samples, after frame cropping.
    pub width: u32,
    /// Picture (frame) height in luma samples, after frame cropping.
    pub height: u32,
}

/// profile_idc values whose SPS carries chroma format, bit depth and scaling matrices.
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Parses an SPS NAL unit (starting with its NAL header byte, type 7) up to frame cropping.
pub fn parse_sps(nal: &[u8]) -> Result<Sps, MediaError> {
    const WHAT: &str = "H.264 SPS";
    let invalid = |reason| MediaError::InvalidCodecConfig { what: WHAT, reason };
    if nal.len() > MAX_SPS_LEN {
        return Err(invalid("longer than MAX_SPS_LEN"));
    }
    let rbsp = unescape_rbsp(nal);
    let mut r = BitReader::new(&rbsp, WHAT);
    let header = r.bits_u8(8)?;
    if header & 0x80 != 0 || header & 0x1F != NAL_SPS {
        return Err(invalid("not an SPS NAL unit"));
    }
    let profile_idc = r.bits_u8(8)?;
    let constraint_flags = r.bits_u8(8)?;
    let level_idc = r.bits_u8(8)?;
    let sps_id = r.ue_max(31, "seq_parameter_set_id above 31")?;
    let (mut chroma_format_idc, mut separate_colour_plane) = (1, false);
    let (mut bit_depth_luma, mut bit_depth_chroma) = (8, 8);
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue_max(3, "chroma_format_idc above 3")?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        bit_depth_luma = r.ue_max(6, "bit_depth_luma above 14")? + 8;
        bit_depth_chroma = r.ue_max(6, "bit_depth_chroma above 14")? + 8;
        let _qpprime_y_zero_transform_bypass = r.flag()?;
        if r.flag()? {
            // seq_scaling_matrix_present_flag: skip the lists (six 4x4, then two or six 8x8).
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let _log2_max_frame_num_minus4 = r.ue_max(12, "log2_max_frame_num_minus4 above 12")?;
    match r.ue_max(2, "pic_order_cnt_type above 2")? {
        0 => {
            r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4 above 12")?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.flag()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom_field = r.se()?;
            let cycle = r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle above 255")?;
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    let _max_num_ref_frames = r.ue()?;
    let _gaps_in_frame_num_allowed = r.flag()?;
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.flag()?;
    }
    let _direct_8x8_inference = r.flag()?;
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.flag()? {
        (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
    }
    // H.264 7.4.2.1.1: crop units depend on ChromaArrayType and field coding.
    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let (crop_x, crop_y) = match (separate_colour_plane, chroma_format_idc) {
        (true, _) | (_, 0) => (1, field_factor),
        (_, 1) => (2, 2 * field_factor),
        (_, 2) => (2, field_factor),
        _ => (1, field_factor),
    };
    let full_width = width_mbs * 16;
    let full_height = height_map_units * 16 * field_factor;
    let crop_w = crop_x * (u64::from(left) + u64::from(right));
    let crop_h = crop_y * (u64::from(top) + u64::from(bottom));
    let dimension = |full: u64, crop: u64| {
        full.checked_sub(crop)
            .filter(|&v| v > 0)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(invalid(
                "cropping larger than the picture or size out of range",
            ))
    };
    Ok(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        sps_id,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        frame_mbs_only,
        width: dimension(full_width, crop_w)?,
        height: dimension(full_height, crop_h)?,
    })
}

/// Skips one scaling_list() of `size` coefficients (H.264 7.3.2.1.1.1).
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), MediaError> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::BitWriter;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// ffmpeg -f lavfi -i testsrc2=size=640x360 -c:v libx264 -profile:v main (the demo fixture).
    const MAIN_640X360: &str =
        "014d401effe10019674d401eda0280bfe5c044000003000400000300c83c58ba8001000468ef3c80";
    /// libx264 -profile:v high, 1920x1080 (8 lines of bottom cropping).
    const HIGH_1920X1080: &str = "01640028ffe1001b67640028acd940780227e5c044000003000400000300c83c60c65801000768ebe3cb3002c0fdf8f800";
    /// libx264 -profile:v high444 -pix_fmt yuv444p, 100x50 (chroma_format_idc 3).
    const HIGH444_100X50: &str = "01f4000affe1001967f4000a919b28e4f1b1f808800000030080000019078912cb01000668ebe3c44844fff8f800";
    /// libx264 -flags +ildct, 320x200 (frame_mbs_only 0, field cropping units).
    const INTERLACED_320X200: &str = "01640015ffe1001967640015acd94143bf3e0220000003002000000643e28532c001000668fba3cb22c0fdf8f800";

    fn sps_of(record_hex: &str) -> (AvcDecoderConfig, Sps) {
        let record = parse_avc_decoder_config(&Bytes::from(hex(record_hex))).unwrap();
        let sps = record.parse_sps().unwrap();
        (record, sps)
    }

    #[test]
    fn main_profile_record() {
        let (record, sps) = sps_of(MAIN_640X360);
        assert_eq!(
            (record.profile, record.compatibility, record.level),
            (77, 0x40, 30)
        );
        assert_eq!(record.codec_string(), "avc1.4d401e");
        assert_eq!(record.nal_length_size, 4);
        assert_eq!(record.sps.len(), 1);
        assert_eq!(record.sps[0].len(), 0x19);
        assert_eq!(record.sps[0][0], 0x67);
        assert_eq!(record.pps, [&[0x68, 0xEF, 0x3C, 0x80][..]]);
        assert_eq!(record.parameter_sets().count(), 2);
        assert_eq!(
            (sps.profile_idc, sps.level_idc, sps.chroma_format_idc),
            (77, 30, 1)
        );
        assert_eq!(
            (sps.width, sps.height, sps.frame_mbs_only),
            (640, 360, true)
        );
    }

    #[test]
    fn high_profiles() {
        let (_, sps) = sps_of(HIGH_1920X1080);
        assert_eq!(
            (sps.profile_idc, sps.level_idc, sps.width, sps.height),
            (100, 40, 1920, 1080)
        );
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (8, 8));
        let (_, sps) = sps_of(HIGH444_100X50);
        assert_eq!((sps.profile_idc, sps.chroma_format_idc), (244, 3));
        assert_eq!((sps.width, sps.height), (100, 50));
        let (_, sps) = sps_of(INTERLACED_320X200);
        assert!(!sps.frame_mbs_only);
        assert_eq!((sps.width, sps.height), (320, 200));
    }

    #[test]
    fn scaling_matrices_and_poc_type_1() {
        let mut w = BitWriter::default();
        w.put(0x67, 8);
        w.put(100, 8); // profile_idc high
        w.put(0, 8);
        w.put(31, 8); // level 3.1
        w.ue(0); // sps id
        w.ue(1); // chroma 4:2:0
        w.ue(2); // bit_depth_luma 10
        w.ue(2); // bit_depth_chroma 10
        w.put(0, 1); // qpprime
        w.put(1, 1); // seq_scaling_matrix_present_flag
        // List 0 (4x4) present: deltas 8, then -8 -> next 0 ends the explicit values.
        w.put(1, 1);
        w.se(8);
        w.se(-16);
        w.put(0, 5); // lists 1..5 absent
        // List 6 (8x8) present: 64 deltas of +1.
        w.put(1, 1);
        for _ in 0..64 {
            w.se(1);
        }
        w.put(0, 1); // list 7 absent
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(1); // poc type 1
        w.put(0, 1);
        w.se(-3);
        w.se(5);
        w.ue(2); // two offsets
        w.se(1);
        w.se(-1);
        w.ue(4); // max_num_ref_frames
        w.put(0, 1);
        w.ue(79); // width 80 MBs = 1280
        w.ue(44); // height 45 map units = 720
        w.put(1, 1); // frame_mbs_only
        w.put(1, 1); // direct_8x8
        w.put(1, 1); // cropping: left 2, right 0, top 0, bottom 4 (units of 2)
        w.ue(2);
        w.ue(0);
        w.ue(0);
        w.ue(4);
        w.put(1, 1); // rbsp stop bit
        let sps = parse_sps(w.bytes()).unwrap();
        assert_eq!((sps.bit_depth_luma, sps.level_idc), (10, 31));
        assert_eq!((sps.width, sps.height), (1280 - 4, 720 - 8));
    }

    #[test]
    fn bad_records() {
        let record = hex(MAIN_640X360);
        for len in 0..33 {
            // Everything shorter than the SPS end fails cleanly.
            assert!(
                parse_avc_decoder_config(&Bytes::from(record[..len].to_vec())).is_err(),
                "{len}"
            );
        }
        // A record without the PPS list is still usable.
        let no_pps = parse_avc_decoder_config(&Bytes::from(record[..33].to_vec())).unwrap();
        assert!(no_pps.pps.is_empty());
        // A PPS list that promises more than it has is not.
        assert!(parse_avc_decoder_config(&Bytes::from(record[..36].to_vec())).is_err());
        let mut v2 = record.clone();
        v2[0] = 2;
        assert!(parse_avc_decoder_config(&Bytes::from(v2)).is_err());
        let mut length_size_3 = record.clone();
        length_size_3[4] = 0xFE;
        assert!(parse_avc_decoder_config(&Bytes::from(length_size_3)).is_err());
        let mut no_sps = record.clone();
        no_sps[5] = 0xE0;
        assert_eq!(
            parse_avc_decoder_config(&Bytes::from(no_sps)).unwrap_err(),
            MediaError::InvalidCodecConfig {
                what: "AVC decoder configuration record",
                reason: "no SPS"
            }
        );
        assert_eq!(
            parse_avc_decoder_config(&Bytes::from(record[..10].to_vec())).unwrap_err(),
            MediaError::InvalidCodecConfig {
                what: "AVC decoder configuration record",
                reason: "truncated"
            }
        );
    }

    #[test]
    fn parameter_set_limit() {
        let mut r = vec![0x01, 0x4D, 0x00, 0x1E, 0xFF, 0xFF]; // 31 SPS
        for _ in 0..31 {
            r.extend_from_slice(&[0, 2, 0x67, 0x00]);
        }
        r.push(1); // and a PPS, over the limit
        r.extend_from_slice(&[0, 1, 0x68]);
        let c = parse_avc_decoder_config(&Bytes::from(r)).unwrap();
        assert_eq!(c.parameter_sets().count(), MAX_PARAMETER_SETS);
        assert!(c.pps.is_empty());
    }

    #[test]
    fn bad_sps() {
        let record = hex(MAIN_640X360);
        let sps = &record[8..8 + 0x19];
        // The fields up to frame cropping end in byte 9 of this SPS.
        for len in 0..9 {
            assert!(parse_sps(&sps[..len]).is_err(), "{len}");
        }
        let mut pps_type = sps.to_vec();
        pps_type[0] = 0x68;
        assert!(parse_sps(&pps_type).is_err());
        assert!(parse_sps(&vec![0x67; MAX_SPS_LEN + 1]).is_err());
        // Cropping larger than the picture.
        let mut w = BitWriter::default();
        w.put(0x67, 8);
        w.put(66, 8);
        w.put(0, 8);
        w.put(30, 8);
        for v in [0, 0, 0, 1, 0, 0, 0] {
            w.ue(v); // sps id, frame_num, poc type 0, lsb, refs, (gaps as ue 0 = bit 1), width 1 MB
        }
        w.ue(0); // height 1 map unit
        w.put(0b111, 3); // frame_mbs_only, direct_8x8, cropping
        w.ue(8);
        w.ue(0);
        w.ue(0);
        w.ue(0);
        assert!(parse_sps(w.bytes()).is_err());
    }

    #[test]
    fn record_writer_matches_the_spec_layout_and_parses() {
        /// Version 1, profile 66, compat 0xC0, level 30, 4-byte lengths, one SPS
        /// `67 42 C0 1E`, one PPS `68 CE 3C 80`.
        const RECORD: &[u8] = &[
            1, 66, 0xC0, 30, 0xFF, 0xE1, 0, 4, 0x67, 0x42, 0xC0, 0x1E, 1, 0, 4, 0x68, 0xCE, 0x3C,
            0x80,
        ];
        let rec = decoder_config_record(&[0x67, 0x42, 0xC0, 0x1E], &[0x68, 0xCE, 0x3C, 0x80]);
        assert_eq!(rec.as_deref(), Some(RECORD));
        let parsed = parse_avc_decoder_config(&Bytes::from_static(RECORD)).unwrap();
        assert_eq!(parsed.nal_length_size, 4);
        assert_eq!(
            (parsed.sps[0].as_ref(), parsed.pps[0].as_ref()),
            (&RECORD[8..12], &RECORD[15..])
        );
        assert!(
            decoder_config_record(&[0x67, 0x42], &[0x68]).is_none(),
            "short SPS"
        );
        assert!(
            decoder_config_record(&[0x67, 0x42, 0, 0], &[]).is_none(),
            "no PPS"
        );
        assert!(decoder_config_record(&[0x67; 65_536], &[0x68]).is_none());
    }

    #[test]
    fn nal_types() {
        assert_eq!(nal_type(&[0x65, 0x88]), Some(NAL_IDR));
        assert_eq!(nal_type(&[0x67]), Some(NAL_SPS));
        assert_eq!(nal_type(&[]), None);
    }
}
