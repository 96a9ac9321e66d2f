//! H.265 both ways between the hub and str0m (as [`super::h264`] does for H.264):
//!
//! - [`Hvcc`] (WHIP): the Annex B access units str0m depacketizes (RFC 7798) to
//!   length-prefixed NAL units (4-byte lengths) for Enhanced RTMP `hvc1` CodedFrames, with a
//!   HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) built from the in-band
//!   VPS/SPS/PPS. Keyframes are access units with an IRAP picture (NAL types 16..=23).
//! - [`HevcAnnexB`] (WHEP): hub `hvc1` frames back to Annex B with the record's parameter
//!   sets before every keyframe.
//!
//! The record's profile/tier/level bytes are the SPS's general profile_tier_level copied as
//! they are (the record lays them out bit for bit like H.265 7.3.3), chroma format and bit
//! depths come from the SPS (H.265 7.3.2.2).

use std::sync::Arc;

use crate::bits::Bits;
use crate::h264::{MAX_ACCESS_UNIT_BYTES, MAX_NAL_UNITS, MAX_PARAM_SET_BYTES, split_annexb};
use media::rbsp::unescape_rbsp as rbsp;

/// NAL unit types (H.265 Table 7-1).
const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;
const NAL_AUD: u8 = 35;
/// Bytes of the record before its arrays.
const HVCC_HEADER_LEN: usize = 23;
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The NAL unit type of a NAL unit (first header byte, bits 1..6).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| (h >> 1) & 0x3F)
}

/// IRAP pictures (BLA, IDR, CRA and the reserved IRAP types): random access points.
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// What the record takes from an SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// general_profile_space .. general_level_idc: 12 bytes as in the SPS.
    pub ptl: [u8; 12],
    pub max_sub_layers: u8,
    pub temporal_id_nesting: bool,
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    pub width: u32,
    pub height: u32,
}

/// Parses an SPS NAL unit (with its 2-byte header) up to the bit depths.
pub fn parse_sps(nal: &[u8]) -> Option<SpsInfo> {
    let data = rbsp(nal.get(..nal.len().min(MAX_PARAM_SET_BYTES))?);
    let body = data.get(2..)?;
    let mut b = Bits::new(body);
    b.skip(4)?; // sps_video_parameter_set_id
    let sub_layers_minus1 = b.byte(3)?;
    let temporal_id_nesting = b.flag()?;
    let ptl: [u8; 12] = body.get(1..13)?.try_into().ok()?;
    b.skip(96)?;
    // Sub-layer flags, the alignment to 8 sub-layers, then each sub-layer's PTL.
    let mut present = Vec::with_capacity(usize::from(sub_layers_minus1));
    for _ in 0..sub_layers_minus1 {
        present.push((b.flag()?, b.flag()?));
    }
    if sub_layers_minus1 > 0 {
        b.skip(2 * (8 - usize::from(sub_layers_minus1)))?;
    }
    for (profile, level) in present {
        if profile {
            b.skip(88)?;
        }
        if level {
            b.skip(8)?;
        }
    }
    b.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = u8::try_from(b.ue()?).ok().filter(|c| *c <= 3)?;
    if chroma_format_idc == 3 {
        b.skip(1)?; // separate_colour_plane_flag
    }
    let width = b.ue()?;
    let height = b.ue()?;
    if b.flag()? {
        for _ in 0..4 {
            b.ue()?; // conformance window offsets
        }
    }
    let bit_depth_luma_minus8 = u8::try_from(b.ue()?).ok().filter(|d| *d <= 8)?;
    let bit_depth_chroma_minus8 = u8::try_from(b.ue()?).ok().filter(|d| *d <= 8)?;
    Some(SpsInfo {
        ptl,
        max_sub_layers: sub_layers_minus1 + 1,
        temporal_id_nesting,
        chroma_format_idc,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        width,
        height,
    })
}

/// A HEVCDecoderConfigurationRecord with one VPS, SPS and PPS (arrays complete: the coded
/// frames carry none) and 4-byte NAL lengths; `None` if the SPS does not parse or a
/// parameter set is empty or longer than [`MAX_PARAM_SET_BYTES`].
pub fn config_record(vps: &[u8], sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    let sets = [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)];
    if sets
        .iter()
        .any(|(_, s)| s.len() < 2 || s.len() > MAX_PARAM_SET_BYTES)
    {
        return None;
    }
    let info = parse_sps(sps)?;
    let mut r = Vec::with_capacity(HVCC_HEADER_LEN + 15 + vps.len() + sps.len() + pps.len());
    r.push(1); // configurationVersion
    r.extend_from_slice(&info.ptl);
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

/// One access unit converted for the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HvccUnit {
    /// A new configuration record, when the parameter sets appeared or changed.
    pub config: Option<Vec<u8>>,
    /// The VCL NAL units with 4-byte lengths (parameter sets, AUD, SEI dropped).
    pub data: Vec<u8>,
    /// The unit contains an IRAP picture.
    pub keyframe: bool,
}

/// Annex B (what str0m depacketizes) to length-prefixed H.265 for the hub.
#[derive(Debug, Clone, Default)]
pub struct Hvcc {
    vps: Option<Vec<u8>>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    config: Option<Vec<u8>>,
}

impl Hvcc {
    /// Converts one access unit. `None` when it is malformed, has no picture, or no
    /// VPS/SPS/PPS were seen yet.
    pub fn convert(&mut self, annexb: &[u8]) -> Option<HvccUnit> {
        if annexb.len() > MAX_ACCESS_UNIT_BYTES {
            return None;
        }
        let mut data = Vec::with_capacity(annexb.len() + 4);
        let mut keyframe = false;
        for nal in split_annexb(annexb)? {
            let Some(t) = nal_type(nal) else { continue };
            let small = nal.len() <= MAX_PARAM_SET_BYTES;
            match t {
                NAL_VPS if small => self.vps = Some(nal.to_vec()),
                NAL_SPS if small => self.sps = Some(nal.to_vec()),
                NAL_PPS if small => self.pps = Some(nal.to_vec()),
                0..=31 => {
                    keyframe |= is_irap(t);
                    data.extend_from_slice(&u32::try_from(nal.len()).ok()?.to_be_bytes());
                    data.extend_from_slice(nal);
                }
                _ => {}
            }
        }
        let record = config_record(
            self.vps.as_deref()?,
            self.sps.as_deref()?,
            self.pps.as_deref()?,
        )?;
        if data.is_empty() {
            return None;
        }
        let config = (self.config.as_ref() != Some(&record)).then(|| {
            self.config = Some(record.clone());
            record
        });
        Some(HvccUnit {
            config,
            data,
            keyframe,
        })
    }
}

/// Hub `hvc1` frames to the Annex B access units str0m's H.265 packetizer takes.
#[derive(Debug, Clone, Default)]
pub struct HevcAnnexB {
    nal_length_size: usize,
    /// Start code + each parameter set of the record, put before each keyframe.
    params: Arc<[u8]>,
}

impl HevcAnnexB {
    /// Takes a HEVCDecoderConfigurationRecord; false (state unchanged) if it is malformed.
    pub fn set_config(&mut self, record: &[u8]) -> bool {
        let Some((size, params)) = parse_record(record) else {
            return false;
        };
        self.nal_length_size = size;
        self.params = params.into();
        true
    }

    /// The NAL length size and parameter sets conversions depend on (for the shared cache).
    pub fn inputs(&self) -> (usize, &Arc<[u8]>) {
        (self.nal_length_size, &self.params)
    }

    /// Converts one length-prefixed access unit; `None` if it is malformed or empty or no
    /// record was seen yet.
    pub fn convert(&self, data: &[u8], keyframe: bool) -> Option<Vec<u8>> {
        if self.nal_length_size == 0 {
            return None;
        }
        let mut out = Vec::with_capacity(data.len() + self.params.len() + 16);
        if keyframe {
            out.extend_from_slice(&self.params);
        }
        let mut rest = data;
        let mut n = 0;
        while !rest.is_empty() {
            n += 1;
            if n > MAX_NAL_UNITS {
                return None;
            }
            let (len_bytes, tail) = rest.split_at_checked(self.nal_length_size)?;
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            let (nal, tail) = tail.split_at_checked(len)?;
            rest = tail;
            let Some(t) = nal_type(nal) else { continue };
            // In-band parameter sets and AUDs are dropped on keyframes: ours go first.
            if keyframe && (NAL_VPS..=NAL_AUD).contains(&t) {
                continue;
            }
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
        (out.len() > if keyframe { self.params.len() } else { 0 }).then_some(out)
    }
}

/// A record's NAL length size and its parameter sets in Annex B; `None` if malformed.
fn parse_record(record: &[u8]) -> Option<(usize, Vec<u8>)> {
    if *record.first()? != 1 {
        return None;
    }
    let size = usize::from(record.get(21)? & 3) + 1;
    if size == 3 {
        return None;
    }
    let arrays = *record.get(22)?;
    let mut rest = record.get(HVCC_HEADER_LEN..)?;
    let mut params = Vec::new();
    let mut total = 0;
    for _ in 0..arrays {
        let (head, tail) = rest.split_at_checked(3)?;
        let t = head.first()? & 0x3F;
        let count = u16::from_be_bytes([*head.get(1)?, *head.get(2)?]);
        rest = tail;
        for _ in 0..count {
            total += 1;
            if total > MAX_NAL_UNITS {
                return None;
            }
            let (len, tail) = rest.split_at_checked(2)?;
            let len = usize::from(u16::from_be_bytes([*len.first()?, *len.get(1)?]));
            let (nal, tail) = tail.split_at_checked(len)?;
            rest = tail;
            if matches!(t, NAL_VPS | NAL_SPS | NAL_PPS) && !nal.is_empty() {
                params.extend_from_slice(&START_CODE);
                params.extend_from_slice(nal);
            }
        }
    }
    Some((size, params))
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Bits to bytes (MSB first), then emulation prevention inserted as an encoder would.
    fn nal(header: [u8; 2], fields: &[(u32, u32)]) -> Vec<u8> {
        let mut bits: Vec<bool> = Vec::new();
        for &(v, n) in fields {
            for i in (0..n).rev() {
                bits.push((v >> i) & 1 == 1);
            }
        }
        bits.push(true); // rbsp_stop_one_bit
        let mut raw = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.iter().enumerate() {
            if *b {
                raw[i / 8] |= 0x80 >> (i % 8);
            }
        }
        let mut out = header.to_vec();
        let mut zeros = 0;
        for b in raw {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }

    /// ue(v) as (value, bits) pairs: leading zeros, then value + 1 in binary.
    fn ue(v: u32) -> [(u32, u32); 2] {
        let n = 32 - (v + 1).leading_zeros();
        [(0, n - 1), (v + 1, n)]
    }

    /// An SPS of Main profile, Main tier, level 3.1 (93), 4:2:0 8-bit 640x360, one sub-layer
    /// with temporal id nesting; its compatibility and constraint flags contain `00 00 00`,
    /// so the NAL carries an emulation prevention byte.
    pub fn sps() -> Vec<u8> {
        let mut f: Vec<(u32, u32)> = vec![
            (0, 4),            // sps_video_parameter_set_id
            (0, 3),            // sps_max_sub_layers_minus1
            (1, 1),            // sps_temporal_id_nesting_flag
            (0x01, 8),         // profile_space 0, tier 0, profile_idc 1
            (0x6000_0000, 32), // compatibility flags 1 and 2
            (0x9000, 16),      // progressive_source, frame_only_constraint
            (0, 32),           // the other constraint bits
            (93, 8),           // general_level_idc
        ];
        f.extend(ue(0)); // sps_seq_parameter_set_id
        f.extend(ue(1)); // chroma_format_idc
        f.extend(ue(640));
        f.extend(ue(360));
        f.push((0, 1)); // conformance_window_flag
        f.extend(ue(0)); // bit_depth_luma_minus8
        f.extend(ue(0)); // bit_depth_chroma_minus8
        nal([0x42, 0x01], &f)
    }

    pub const VPS: &[u8] = &[0x40, 0x01, 0x0C, 0x01, 0xFF, 0xFF];
    pub const PPS: &[u8] = &[0x44, 0x01, 0xC1, 0x72];

    #[test]
    fn sps_fields_and_record_layout() {
        let sps = sps();
        assert!(
            sps.windows(4).any(|w| w == [0, 0, 3, 0]),
            "emulation prevention present"
        );
        let info = parse_sps(&sps).unwrap();
        assert_eq!(info.ptl, [0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93]);
        assert_eq!(
            (info.width, info.height, info.chroma_format_idc),
            (640, 360, 1)
        );
        assert_eq!((info.max_sub_layers, info.temporal_id_nesting), (1, true));
        let rec = config_record(VPS, &sps, PPS).unwrap();
        assert_eq!(rec[0], 1);
        assert_eq!(&rec[1..13], &info.ptl);
        assert_eq!(
            &rec[13..23],
            &[0xF0, 0x00, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0, 0x0F, 3]
        );
        assert_eq!(&rec[23..28], &[0xA0, 0, 1, 0, 6]);
        assert_eq!(&rec[28..34], VPS);
        assert_eq!(&rec[34..37], &[0xA1, 0, 1]);
        // And back to Annex B parameter sets.
        let (size, params) = parse_record(&rec).unwrap();
        assert_eq!(size, 4);
        let mut want = Vec::new();
        for p in [VPS, &sps, PPS] {
            want.extend_from_slice(&START_CODE);
            want.extend_from_slice(p);
        }
        assert_eq!(params, want);
    }

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| START_CODE.iter().chain(n.iter()).copied())
            .collect()
    }

    #[test]
    fn access_units_both_ways() {
        let sps = sps();
        let idr: &[u8] = &[0x26, 0x01, 0xAF, 0x10]; // IDR_W_RADL (19)
        let trail: &[u8] = &[0x02, 0x01, 0xD0]; // TRAIL_R (1)
        let aud: &[u8] = &[0x46, 0x01, 0x50];
        let mut h = Hvcc::default();
        assert_eq!(h.convert(&annexb(&[trail])), None, "no parameter sets yet");
        let u = h.convert(&annexb(&[aud, VPS, &sps, PPS, idr])).unwrap();
        assert!(u.keyframe);
        assert_eq!(u.data, [0, 0, 0, 4, 0x26, 0x01, 0xAF, 0x10]);
        let record = u.config.unwrap();
        let u2 = h.convert(&annexb(&[trail])).unwrap();
        assert_eq!((u2.keyframe, u2.config), (false, None));
        let mut out = HevcAnnexB::default();
        assert_eq!(out.convert(&u.data, true), None, "no record yet");
        assert!(out.set_config(&record));
        let key = out.convert(&u.data, true).unwrap();
        assert_eq!(key, annexb(&[VPS, &sps, PPS, idr]));
        assert_eq!(out.convert(&u2.data, false).unwrap(), annexb(&[trail]));
    }

    #[test]
    fn malformed_input_is_refused() {
        assert_eq!(parse_sps(&[0x42, 0x01]), None);
        assert_eq!(parse_sps(&[]), None);
        let sps = sps();
        assert_eq!(parse_sps(&sps[..10]), None, "truncated");
        assert_eq!(config_record(&[], &sps, PPS), None);
        assert_eq!(parse_record(&[1; 10]), None);
        assert_eq!(parse_record(&[]), None);
        let rec = config_record(VPS, &sps, PPS).unwrap();
        assert_eq!(parse_record(&rec[..rec.len() - 1]), None, "truncated array");
        let mut out = HevcAnnexB::default();
        assert!(!out.set_config(&[2, 0, 0]));
        assert!(out.set_config(&rec));
        assert_eq!(
            out.convert(&[0, 0, 0, 9, 1], false),
            None,
            "length past end"
        );
        assert_eq!(out.convert(&[0, 0], false), None);
        let mut h = Hvcc::default();
        assert_eq!(h.convert(&[0, 0, 1]), None);
        assert_eq!(
            h.convert(&annexb(&[VPS, &[0x42, 0x01, 0xFF], PPS, &[0x26, 1]])),
            None
        );
    }
}
