//! AVC decoder configuration record and sequence parameter set.

use bytes::Bytes;

use super::bits::{BitReader, unescape_rbsp};
use crate::FlvError;
use crate::frame::Cursor;

/// Largest SPS NAL unit [`parse_sps`] accepts (the record's length field is 16 bits).
pub const MAX_SPS_LEN: usize = 65_535;

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
    /// The first SPS NAL unit (with its NAL header byte).
    pub sps: Bytes,
    /// The first PPS NAL unit, if any.
    pub pps: Option<Bytes>,
}

impl AvcDecoderConfig {
    /// Parses [`sps`](Self::sps).
    pub fn parse_sps(&self) -> Result<Sps, FlvError> {
        parse_sps(&self.sps)
    }
}

/// Parses an AVCDecoderConfigurationRecord (the AVC sequence header payload).
pub fn parse_avc_decoder_config(record: &Bytes) -> Result<AvcDecoderConfig, FlvError> {
    const WHAT: &str = "AVC decoder configuration record";
    let invalid = |reason| FlvError::InvalidCodecConfig { what: WHAT, reason };
    let mut c = Cursor::new(record);
    let [
        version,
        profile,
        compatibility,
        level,
        length_size,
        sps_count,
    ] = c.array(WHAT)?;
    if version != 1 {
        return Err(invalid("configurationVersion is not 1"));
    }
    let nal_length_size = (length_size & 0x03) + 1;
    if nal_length_size == 3 {
        return Err(invalid("NAL length size 3 is not allowed"));
    }
    let mut first_sps = None;
    for _ in 0..(sps_count & 0x1F) {
        let len = usize::from(c.u16(WHAT)?);
        let start = c.pos();
        c.take(len, WHAT)?;
        first_sps.get_or_insert_with(|| record.slice(start..start + len));
    }
    let sps = first_sps.ok_or(invalid("no SPS"))?;
    // The PPS list is optional in practice (some encoders send it in band).
    let mut pps = None;
    if let Ok(pps_count) = c.u8(WHAT) {
        for _ in 0..pps_count {
            let len = usize::from(c.u16(WHAT)?);
            let start = c.pos();
            c.take(len, WHAT)?;
            pps.get_or_insert_with(|| record.slice(start..start + len));
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
pub fn parse_sps(nal: &[u8]) -> Result<Sps, FlvError> {
    const WHAT: &str = "H.264 SPS";
    let invalid = |reason| FlvError::InvalidCodecConfig { what: WHAT, reason };
    if nal.len() > MAX_SPS_LEN {
        return Err(invalid("longer than MAX_SPS_LEN"));
    }
    let rbsp = unescape_rbsp(nal);
    let mut r = BitReader::new(&rbsp, WHAT);
    let header = r.bits_u8(8)?;
    if header & 0x80 != 0 || header & 0x1F != 7 {
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
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), FlvError> {
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
        assert_eq!(record.nal_length_size, 4);
        assert_eq!(record.sps.len(), 0x19);
        assert_eq!(record.sps[0], 0x67);
        assert_eq!(record.pps.as_deref(), Some(&[0x68, 0xEF, 0x3C, 0x80][..]));
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

    /// Writes bits MSB first, for hand-built SPS fixtures.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, n: u32) {
            for i in (0..n).rev() {
                if self.bits.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                *self.bytes.last_mut().unwrap() |= bit << (7 - self.bits % 8);
                self.bits += 1;
            }
        }
        fn ue(&mut self, v: u32) {
            let v1 = u64::from(v) + 1;
            let len = 64 - v1.leading_zeros();
            self.put(0, len - 1);
            self.put(v1 as u32, len);
        }
        fn se(&mut self, v: i32) {
            self.ue(if v > 0 {
                (2 * v - 1) as u32
            } else {
                (-2 * v) as u32
            });
        }
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
        let sps = parse_sps(&w.bytes).unwrap();
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
        assert!(parse_avc_decoder_config(&Bytes::from(record[..33].to_vec())).is_ok());
        let mut v2 = record.clone();
        v2[0] = 2;
        assert!(parse_avc_decoder_config(&Bytes::from(v2)).is_err());
        let mut no_sps = record.clone();
        no_sps[5] = 0xE0;
        assert_eq!(
            parse_avc_decoder_config(&Bytes::from(no_sps)).unwrap_err(),
            FlvError::InvalidCodecConfig {
                what: "AVC decoder configuration record",
                reason: "no SPS"
            }
        );
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
        assert!(parse_sps(&w.bytes).is_err());
    }
}
