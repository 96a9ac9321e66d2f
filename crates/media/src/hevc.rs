//! H.265 / HEVC: NAL unit types, the HEVCDecoderConfigurationRecord (`hvcC`, ISO/IEC
//! 14496-15 8.3.3.1) both ways with its RFC 6381 codec string (ISO/IEC 14496-15 Annex E),
//! and the sequence parameter set (ITU-T H.265 7.3.2.2) up to the bit depths.
//!
//! The record's profile/tier/level bytes are the SPS's general profile_tier_level copied as
//! they are (the record lays them out bit for bit like H.265 7.3.3).

use bytes::Bytes;

use crate::MediaError;
use crate::bits::BitReader;
use crate::nal::{MAX_PARAMETER_SETS, MAX_SPS_LEN};
use crate::rbsp::unescape_rbsp;
use crate::record::{Reader, nal_length_size};

/// NAL unit type of a video parameter set (H.265 Table 7-1).
pub const NAL_VPS: u8 = 32;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 34;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 35;

/// Bytes of an hvcC record before its NAL unit arrays.
pub const HVCC_HEADER_LEN: usize = 23;

/// The NAL unit type of an H.265 NAL unit (first header byte, bits 1..6; `None` for an
/// empty slice).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| (h >> 1) & 0x3F)
}

/// IRAP pictures (BLA, IDR, CRA and the reserved IRAP types 16..=23): random access points.
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// What an HEVCDecoderConfigurationRecord says, with zero-copy parameter sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcDecoderConfig {
    /// general_profile_space .. general_level_idc: 12 bytes, laid out as in the SPS.
    pub profile_tier_level: [u8; 12],
    /// Bytes per NAL unit length prefix in coded frames (1, 2 or 4).
    pub nal_length_size: u8,
    /// The VPS NAL units of the record's VPS arrays, in record order.
    pub vps: Vec<Bytes>,
    /// The SPS NAL units.
    pub sps: Vec<Bytes>,
    /// The PPS NAL units. VPS, SPS and PPS together are at most [`MAX_PARAMETER_SETS`];
    /// other arrays (SEI) are skipped.
    pub pps: Vec<Bytes>,
}

impl HevcDecoderConfig {
    /// Parses the first SPS; an error if the record has none.
    pub fn parse_sps(&self) -> Result<Sps, MediaError> {
        let sps = self.sps.first().ok_or(MediaError::InvalidCodecConfig {
            what: "HEVC decoder configuration record",
            reason: "no SPS",
        })?;
        parse_sps(sps)
    }

    /// The RFC 6381 codec string, e.g. `hvc1.1.6.L93.B0` (see [`codec_string`]).
    pub fn codec_string(&self) -> String {
        codec_string(&self.profile_tier_level)
    }

    /// Every parameter set in decoding order: VPS, SPS, PPS.
    pub fn parameter_sets(&self) -> impl Iterator<Item = &Bytes> {
        self.vps.iter().chain(&self.sps).chain(&self.pps)
    }
}

/// Parses an HEVCDecoderConfigurationRecord (the H.265 sequence header payload): version 1,
/// the general profile_tier_level, the NAL length size and the VPS, SPS and PPS arrays
/// (empty NAL units skipped, at most [`MAX_PARAMETER_SETS`] kept).
pub fn parse_hevc_decoder_config(record: &Bytes) -> Result<HevcDecoderConfig, MediaError> {
    const WHAT: &str = "HEVC decoder configuration record";
    let mut r = Reader::new(record, WHAT);
    let header: [u8; HVCC_HEADER_LEN] = r.array()?;
    if header[0] != 1 {
        return Err(r.invalid("configurationVersion is not 1"));
    }
    let mut profile_tier_level = [0; 12];
    profile_tier_level.copy_from_slice(&header[1..13]);
    let mut config = HevcDecoderConfig {
        profile_tier_level,
        nal_length_size: nal_length_size(header[21], WHAT)?,
        vps: Vec::new(),
        sps: Vec::new(),
        pps: Vec::new(),
    };
    let mut kept = 0;
    for _ in 0..header[22] {
        let array_type = r.u8()? & 0x3F;
        let count = r.u16()?;
        for _ in 0..count {
            let nal = r.nal()?;
            let list = match array_type {
                NAL_VPS => &mut config.vps,
                NAL_SPS => &mut config.sps,
                NAL_PPS => &mut config.pps,
                _ => continue,
            };
            if !nal.is_empty() && kept < MAX_PARAMETER_SETS {
                list.push(nal);
                kept += 1;
            }
        }
    }
    Ok(config)
}

/// `hvc1.<space><profile>.<compat reversed, hex>.<L|H><level>[.<constraint bytes>]` from a
/// general profile_tier_level (trailing zero constraint bytes are left out).
pub fn codec_string(ptl: &[u8; 12]) -> String {
    let space = match ptl[0] >> 6 {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let profile = ptl[0] & 0x1F;
    let tier = if ptl[0] & 0x20 != 0 { 'H' } else { 'L' };
    let compat = u32::from_be_bytes([ptl[1], ptl[2], ptl[3], ptl[4]]).reverse_bits();
    let level = ptl[11];
    let mut s = format!("hvc1.{space}{profile}.{compat:X}.{tier}{level}");
    let constraints = &ptl[5..11];
    let used = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    for b in constraints.iter().take(used) {
        s.push_str(&format!(".{b:02X}"));
    }
    s
}

/// An HEVCDecoderConfigurationRecord with one VPS, SPS and PPS (arrays complete: the coded
/// frames carry none) and 4-byte NAL lengths, its profile/tier/level, chroma format, bit
/// depths and temporal layers taken from the SPS; `None` if the SPS does not parse or a
/// parameter set is shorter than its 2-byte header or too long for the record's 16-bit
/// lengths.
pub fn decoder_config_record(vps: &[u8], sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    let sets = [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)];
    if sets.iter().any(|(_, s)| s.len() < 2) {
        return None;
    }
    let info = parse_sps(sps).ok()?;
    let mut r = Vec::with_capacity(HVCC_HEADER_LEN + 15 + vps.len() + sps.len() + pps.len());
    r.push(1); // configurationVersion
    r.extend_from_slice(&info.profile_tier_level);
    // reserved 1111 + min_spatial_segmentation_idc 0, reserved 111111 + parallelismType 0.
    r.extend_from_slice(&[0xF0, 0x00, 0xFC]);
    r.push(0xFC | info.chroma_format_idc);
    r.push(0xF8 | info.bit_depth_luma_minus8);
    r.push(0xF8 | info.bit_depth_chroma_minus8);
    r.extend_from_slice(&[0, 0]); // avgFrameRate: unspecified
    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
    r.push(((info.max_sub_layers & 7) << 3) | (u8::from(info.temporal_id_nesting) << 2) | 3);
    r.push(3); // numOfArrays
    for (t, nal) in sets {
        r.push(0x80 | t); // array_completeness 1, reserved 0, NAL_unit_type
        r.extend_from_slice(&[0, 1]);
        r.extend_from_slice(&u16::try_from(nal.len()).ok()?.to_be_bytes());
        r.extend_from_slice(nal);
    }
    Some(r)
}

/// What a sequence parameter set says, as far as records and stream info need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    /// general_profile_space .. general_level_idc: the 12 bytes of the general
    /// profile_tier_level as in the SPS (and in an hvcC record).
    pub profile_tier_level: [u8; 12],
    /// sps_max_sub_layers_minus1 + 1.
    pub max_sub_layers: u8,
    /// sps_temporal_id_nesting_flag.
    pub temporal_id_nesting: bool,
    /// chroma_format_idc (0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4).
    pub chroma_format_idc: u8,
    /// separate_colour_plane_flag (4:4:4 coded as three monochrome planes).
    pub separate_colour_plane: bool,
    /// bit_depth_luma_minus8 (0..=8).
    pub bit_depth_luma_minus8: u8,
    /// bit_depth_chroma_minus8 (0..=8).
    pub bit_depth_chroma_minus8: u8,
    /// pic_width_in_luma_samples: the coded width, before the conformance window.
    pub coded_width: u32,
    /// pic_height_in_luma_samples: the coded height, before the conformance window.
    pub coded_height: u32,
    /// Picture width in luma samples after the conformance window.
    pub width: u32,
    /// Picture height in luma samples after the conformance window.
    pub height: u32,
}

/// Parses an SPS NAL unit (with its 2-byte header, type 33) up to the bit depths. At most
/// [`MAX_SPS_LEN`] bytes; the picture must not be empty after cropping.
pub fn parse_sps(nal: &[u8]) -> Result<Sps, MediaError> {
    const WHAT: &str = "H.265 SPS";
    let invalid = |reason| MediaError::InvalidCodecConfig { what: WHAT, reason };
    if nal.len() > MAX_SPS_LEN {
        return Err(invalid("longer than MAX_SPS_LEN"));
    }
    if nal.len() < 2 {
        return Err(invalid("truncated"));
    }
    if nal_type(nal) != Some(NAL_SPS) {
        return Err(invalid("not an SPS NAL unit"));
    }
    let rbsp = unescape_rbsp(nal);
    let body = rbsp.get(2..).unwrap_or_default();
    let mut b = BitReader::new(body, WHAT);
    b.skip(4)?; // sps_video_parameter_set_id
    let sub_layers_minus1 = b.bits_u8(3)?;
    let temporal_id_nesting = b.flag()?;
    let profile_tier_level: [u8; 12] = body
        .get(1..13)
        .and_then(|p| p.try_into().ok())
        .ok_or(invalid("truncated"))?;
    // profile_tier_level(1, sps_max_sub_layers_minus1): 96 bits of general profile and
    // level, the sub-layer flags, the alignment to 8 sub-layers, then each sub-layer's.
    b.skip(96)?;
    let mut present = [(false, false); 8];
    let sub_layers = usize::from(sub_layers_minus1);
    for p in present.iter_mut().take(sub_layers) {
        *p = (b.flag()?, b.flag()?);
    }
    if sub_layers > 0 {
        b.skip(2 * (8 - sub_layers))?;
    }
    for &(profile, level) in present.iter().take(sub_layers) {
        if profile {
            b.skip(88)?;
        }
        if level {
            b.skip(8)?;
        }
    }
    b.ue_max(15, "sps_seq_parameter_set_id above 15")?;
    let chroma_format_idc = b.ue_max(3, "chroma_format_idc above 3")? as u8;
    let separate_colour_plane = chroma_format_idc == 3 && b.flag()?;
    let coded_width = b.ue()?;
    let coded_height = b.ue()?;
    // H.265 Table 6-1: SubWidthC and SubHeightC (1 for 4:4:4 and separate planes).
    let (sub_w, sub_h) = match chroma_format_idc {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let (mut width, mut height) = (coded_width, coded_height);
    if b.flag()? {
        let (left, right, top, bottom) = (b.ue()?, b.ue()?, b.ue()?, b.ue()?);
        let crop_w = left.saturating_add(right).saturating_mul(sub_w);
        let crop_h = top.saturating_add(bottom).saturating_mul(sub_h);
        width = width.saturating_sub(crop_w);
        height = height.saturating_sub(crop_h);
    }
    if width == 0 || height == 0 {
        return Err(invalid("empty picture after the conformance window"));
    }
    let bit_depth_luma_minus8 = b.ue_max(8, "bit_depth_luma above 16")? as u8;
    let bit_depth_chroma_minus8 = b.ue_max(8, "bit_depth_chroma above 16")? as u8;
    Ok(Sps {
        profile_tier_level,
        max_sub_layers: sub_layers_minus1 + 1,
        temporal_id_nesting,
        chroma_format_idc,
        separate_colour_plane,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        coded_width,
        coded_height,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{HEVC_PPS, HEVC_VPS, hevc_record, hevc_sps};

    #[test]
    fn sps_fields_and_emulation_prevention() {
        let sps = hevc_sps(640, 360, None);
        assert!(
            sps.windows(4).any(|w| w == [0, 0, 3, 0]),
            "emulation prevention present"
        );
        let info = parse_sps(&sps).unwrap();
        assert_eq!(
            info.profile_tier_level,
            [0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93]
        );
        assert_eq!(
            (info.width, info.height, info.chroma_format_idc),
            (640, 360, 1)
        );
        assert_eq!((info.coded_width, info.coded_height), (640, 360));
        assert_eq!((info.max_sub_layers, info.temporal_id_nesting), (1, true));
        assert_eq!(
            (info.bit_depth_luma_minus8, info.bit_depth_chroma_minus8),
            (0, 0)
        );
    }

    #[test]
    fn cropping() {
        // 1920x1088 coded with a bottom crop of 4 chroma rows (x SubHeightC 2) = 1080.
        let s = parse_sps(&hevc_sps(1920, 1088, Some([0, 0, 0, 4]))).unwrap();
        assert_eq!((s.width, s.height), (1920, 1080));
        assert_eq!((s.coded_width, s.coded_height), (1920, 1088));
        // Left/right crops count twice too (SubWidthC 2).
        let s = parse_sps(&hevc_sps(1920, 1080, Some([1, 1, 0, 0]))).unwrap();
        assert_eq!((s.width, s.height), (1916, 1080));
        // A zero width, or a crop that eats the picture, is rejected.
        assert!(parse_sps(&hevc_sps(0, 720, None)).is_err());
        assert!(parse_sps(&hevc_sps(16, 16, Some([4, 4, 0, 0]))).is_err());
    }

    #[test]
    fn malformed_sps_is_refused() {
        assert!(parse_sps(&[0x42, 0x01]).is_err());
        assert!(parse_sps(&[]).is_err());
        let sps = hevc_sps(640, 360, None);
        for cut in 0..sps.len() - 1 {
            assert!(parse_sps(&sps[..cut]).is_err(), "cut at {cut}");
        }
        let mut pps_type = sps.clone();
        pps_type[0] = 0x44;
        assert!(parse_sps(&pps_type).is_err(), "not an SPS");
        assert!(parse_sps(&vec![0x42; MAX_SPS_LEN + 1]).is_err());
    }

    #[test]
    fn record_layout_and_parse_back() {
        let sps = hevc_sps(640, 360, None);
        let info = parse_sps(&sps).unwrap();
        let rec = decoder_config_record(HEVC_VPS, &sps, HEVC_PPS).unwrap();
        assert_eq!(rec[0], 1);
        assert_eq!(&rec[1..13], &info.profile_tier_level);
        assert_eq!(
            &rec[13..23],
            &[0xF0, 0x00, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0, 0x0F, 3]
        );
        assert_eq!(&rec[23..28], &[0xA0, 0, 1, 0, 6]);
        assert_eq!(&rec[28..34], HEVC_VPS);
        assert_eq!(&rec[34..37], &[0xA1, 0, 1]);
        let parsed = parse_hevc_decoder_config(&Bytes::from(rec)).unwrap();
        assert_eq!(parsed.nal_length_size, 4);
        assert_eq!(parsed.profile_tier_level, info.profile_tier_level);
        assert_eq!(
            parsed.parameter_sets().collect::<Vec<_>>(),
            [HEVC_VPS, &sps[..], HEVC_PPS]
        );
        assert_eq!(parsed.codec_string(), "hvc1.1.6.L93.90");
        let back = parsed.parse_sps().unwrap();
        assert_eq!((back.width, back.height), (640, 360));
        assert_eq!(decoder_config_record(&[], &sps, HEVC_PPS), None);
        assert_eq!(
            decoder_config_record(HEVC_VPS, &[0x42, 0x01, 0xFF], HEVC_PPS),
            None
        );
    }

    #[test]
    fn codec_string_variants() {
        let mut ptl = [0u8; 12];
        ptl[0] = 0x40 | 0x20 | 2; // space 1 (A), high tier, Main 10
        ptl[1..5].copy_from_slice(&0x2000_0000u32.to_be_bytes());
        ptl[11] = 120;
        // All-zero constraint bytes are omitted entirely.
        assert_eq!(codec_string(&ptl), "hvc1.A2.4.H120");
        ptl[5] = 0x90;
        ptl[7] = 0x01;
        assert_eq!(codec_string(&ptl), "hvc1.A2.4.H120.90.00.01");
        ptl[0] = 0x01;
        ptl[1..5].copy_from_slice(&0x6000_0000u32.to_be_bytes());
        ptl[5..].copy_from_slice(&[0xB0, 0, 0, 0, 0, 0, 93]);
        assert_eq!(codec_string(&ptl), "hvc1.1.6.L93.B0");
    }

    /// hvcC with 23 header bytes (length size 4) and arrays PPS, VPS, SEI, SPS (out of order).
    fn out_of_order_record() -> Bytes {
        let mut r = vec![0x01; 21];
        r.push(0xF3); // lengthSizeMinusOne 3
        r.push(4); // numOfArrays
        for (ty, nal) in [
            (34u8, &[0x44, 0x01, 0xC1][..]),
            (32, &[0x40, 0x01, 0x0C]),
            (39, &[0x4E, 0x01, 0x05]),
            (33, &[0x42, 0x01, 0x01]),
        ] {
            r.push(0x80 | ty);
            r.extend_from_slice(&[0, 1, 0, nal.len() as u8]);
            r.extend_from_slice(nal);
        }
        Bytes::from(r)
    }

    #[test]
    fn arrays_in_any_order_and_malformed_records() {
        let c = parse_hevc_decoder_config(&out_of_order_record()).unwrap();
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(
            c.parameter_sets().collect::<Vec<_>>(),
            [
                &[0x40, 0x01, 0x0C][..],
                &[0x42, 0x01, 0x01],
                &[0x44, 0x01, 0xC1]
            ]
        );
        let full = out_of_order_record();
        for end in 0..full.len() {
            assert!(
                parse_hevc_decoder_config(&full.slice(..end)).is_err(),
                "end {end}"
            );
        }
        let mut v0 = full.to_vec();
        v0[0] = 0;
        assert!(parse_hevc_decoder_config(&Bytes::from(v0)).is_err());
        let mut size3 = full.to_vec();
        size3[21] = 0xF2;
        assert!(parse_hevc_decoder_config(&Bytes::from(size3)).is_err());
        // No SPS array: the record parses, its SPS does not.
        let mut no_arrays = full.slice(..HVCC_HEADER_LEN).to_vec();
        no_arrays[HVCC_HEADER_LEN - 1] = 0;
        let c = parse_hevc_decoder_config(&Bytes::from(no_arrays)).unwrap();
        assert!(c.parse_sps().is_err());
        // The fixture record parses.
        let c = parse_hevc_decoder_config(&Bytes::from(hevc_record(1280, 720))).unwrap();
        assert_eq!(
            (c.parse_sps().unwrap().width, c.parse_sps().unwrap().height),
            (1280, 720)
        );
    }

    #[test]
    fn nal_types() {
        assert_eq!(nal_type(&[0x26, 0x01]), Some(19));
        assert!(is_irap(19) && is_irap(21) && !is_irap(1) && !is_irap(24));
        assert_eq!(nal_type(&[0x42, 0x01]), Some(NAL_SPS));
        assert_eq!(nal_type(&[]), None);
    }
}
