//! HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) and the few SPS fields
//! (ITU-T H.265 7.3.2.2) needed for the sample entry size and the RFC 6381 codec string.

use crate::Fmp4Error;

/// The NAL unit type of a sequence parameter set.
const NAL_SPS: u8 = 33;

/// Fixed part of an hvcC record before the NAL unit arrays.
const HVCC_HEADER_LEN: usize = 23;

/// What the sample entry and the HLS `CODECS` attribute need from an hvcC record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HevcInfo {
    /// RFC 6381 / ISO/IEC 14496-15 Annex E codec string, e.g. `hvc1.1.6.L93.B0`.
    pub(crate) codec_string: String,
    /// Cropped picture width from the SPS.
    pub(crate) width: u32,
    /// Cropped picture height from the SPS.
    pub(crate) height: u32,
}

fn invalid(reason: impl Into<String>) -> Fmp4Error {
    Fmp4Error::InvalidConfig {
        what: "HEVCDecoderConfigurationRecord",
        reason: reason.into(),
    }
}

/// Parses an hvcC record: the profile/tier/level fields for the codec string and the first
/// SPS for the picture size.
pub(crate) fn parse_hvcc(record: &[u8]) -> Result<HevcInfo, Fmp4Error> {
    let header: &[u8; HVCC_HEADER_LEN] = record
        .get(..HVCC_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| {
            invalid(format!(
                "{} bytes, need at least {HVCC_HEADER_LEN}",
                record.len()
            ))
        })?;
    if header[0] != 1 {
        return Err(invalid(format!("configurationVersion {}", header[0])));
    }
    let codec_string = codec_string(header);
    let sps = find_sps(record)?;
    let (width, height) = sps_size(sps)?;
    Ok(HevcInfo {
        codec_string,
        width,
        height,
    })
}

/// `hvc1.<space><profile>.<compat reversed, hex>.<L|H><level>[.<constraint bytes>]`.
fn codec_string(h: &[u8; HVCC_HEADER_LEN]) -> String {
    let space = match h[1] >> 6 {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let profile = h[1] & 0x1F;
    let tier = if h[1] & 0x20 != 0 { 'H' } else { 'L' };
    let compat = u32::from_be_bytes([h[2], h[3], h[4], h[5]]).reverse_bits();
    let level = h[12];
    let mut s = format!("hvc1.{space}{profile}.{compat:X}.{tier}{level}");
    let constraints = &h[6..12];
    let used = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    for b in constraints.iter().take(used) {
        s.push_str(&format!(".{b:02X}"));
    }
    s
}

/// The first SPS NAL unit in the record's arrays.
fn find_sps(record: &[u8]) -> Result<&[u8], Fmp4Error> {
    let num_arrays = record.get(HVCC_HEADER_LEN - 1).copied().unwrap_or(0);
    let mut pos = HVCC_HEADER_LEN;
    let truncated = || invalid("truncated NAL unit array");
    for _ in 0..num_arrays {
        let nal_type = record.get(pos).ok_or_else(truncated)? & 0x3F;
        let count = u16::from_be_bytes([
            *record.get(pos + 1).ok_or_else(truncated)?,
            *record.get(pos + 2).ok_or_else(truncated)?,
        ]);
        pos += 3;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([
                *record.get(pos).ok_or_else(truncated)?,
                *record.get(pos + 1).ok_or_else(truncated)?,
            ]));
            let nal = record.get(pos + 2..pos + 2 + len).ok_or_else(truncated)?;
            if nal_type == NAL_SPS {
                return Ok(nal);
            }
            pos += 2 + len;
        }
    }
    Err(invalid("no SPS NAL unit"))
}

/// A big-endian bit reader over an RBSP (emulation prevention bytes already removed).
struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn bit(&mut self) -> Result<u32, Fmp4Error> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| invalid("SPS truncated"))?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Result<u32, Fmp4Error> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    fn skip(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n);
    }

    /// Exp-Golomb ue(v), limited to 31 leading zeros (values up to 2^32 - 2).
    fn ue(&mut self) -> Result<u32, Fmp4Error> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(invalid("Exp-Golomb code too long"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }
}

/// Removes emulation prevention bytes (00 00 03 -> 00 00) after the 2-byte NAL header.
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal.iter().skip(2) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Cropped width and height from an SPS NAL unit.
fn sps_size(nal: &[u8]) -> Result<(u32, u32), Fmp4Error> {
    let mut r = Bits {
        data: rbsp(nal),
        pos: 0,
    };
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)? as usize;
    r.bits(1)?; // sps_temporal_id_nesting_flag
    // profile_tier_level(1, max_sub_layers_minus1): 96 bits of general profile and level.
    r.skip(96);
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1) {
        *p = (r.bit()? == 1, r.bit()? == 1);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1));
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1) {
        if profile {
            r.skip(88);
        }
        if level {
            r.skip(8);
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    let mut separate_planes = false;
    if chroma_format_idc == 3 {
        separate_planes = r.bit()? == 1;
    }
    let width = r.ue()?;
    let height = r.ue()?;
    let (sub_w, sub_h) = match (chroma_format_idc, separate_planes) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let (mut w, mut h) = (width, height);
    if r.bit()? == 1 {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let crop_w = left.saturating_add(right).saturating_mul(sub_w);
        let crop_h = top.saturating_add(bottom).saturating_mul(sub_h);
        w = w.saturating_sub(crop_w);
        h = h.saturating_sub(crop_h);
    }
    if w == 0 || h == 0 {
        return Err(invalid(format!("picture size {w}x{h}")));
    }
    Ok((w, h))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hand-made Main-profile level 3.1 (93) SPS NAL unit, 4:2:0.
    /// Bits after the NAL header: vps_id 0000, max_sub_layers_minus1 000, nesting 1,
    /// profile_tier_level (space 0, tier 0, profile 1, compat 0x60000000, progressive +
    /// frame_only flags 0xB0.., level 93), sps_id ue 0 = "1", chroma ue 1 = "010",
    /// width, height, the conformance window, then a stop bit.
    pub(crate) fn sps(width: u32, height: u32, crop: Option<[u32; 4]>) -> Vec<u8> {
        let mut bits = String::new();
        bits.push_str("0000"); // vps id
        bits.push_str("000"); // max_sub_layers_minus1
        bits.push('1'); // temporal_id_nesting
        bits.push_str("00"); // profile space
        bits.push('0'); // tier
        bits.push_str("00001"); // profile idc 1
        bits.push_str(&format!("{:032b}", 0x6000_0000u32));
        bits.push_str(&format!("{:048b}", 0xB000_0000_0000u64));
        bits.push_str(&format!("{:08b}", 93));
        bits.push('1'); // sps id 0
        bits.push_str("010"); // chroma 1
        bits.push_str(&ue(width));
        bits.push_str(&ue(height));
        match crop {
            None => bits.push('0'),
            Some(c) => {
                bits.push('1');
                for v in c {
                    bits.push_str(&ue(v));
                }
            }
        }
        bits.push('1'); // stop bit (rest ignored)
        while !bits.len().is_multiple_of(8) {
            bits.push('0');
        }
        let mut nal = vec![0x42, 0x01];
        for chunk in bits.as_bytes().chunks(8) {
            nal.push(u8::from_str_radix(std::str::from_utf8(chunk).unwrap(), 2).unwrap());
        }
        nal
    }

    fn ue(v: u32) -> String {
        let x = format!("{:b}", v + 1);
        format!("{}{x}", "0".repeat(x.len() - 1))
    }

    /// An hvcC record with a VPS placeholder and the SPS above.
    pub(crate) fn main_hvcc() -> Vec<u8> {
        let sps = sps(1280, 720, None);
        let mut r = vec![
            1,    // configurationVersion
            0x01, // space 0, tier 0, profile 1
            0x60, 0x00, 0x00, 0x00, // compatibility flags
            0xB0, 0, 0, 0, 0, 0,  // constraint flags
            93, // level
            0xF0, 0x00, // min_spatial_segmentation
            0xFC, // parallelism
            0xFD, // chroma 4:2:0
            0xF8, 0xF8, // bit depths 8
            0, 0,    // avgFrameRate
            0x0F, // lengthSizeMinusOne 3
            2,    // two arrays
        ];
        r.extend_from_slice(&[0x80 | 32, 0, 1, 0, 2, 0x40, 0x01]); // VPS (2 bytes, placeholder)
        r.extend_from_slice(&[0x80 | 33, 0, 1]);
        r.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        r.extend_from_slice(&sps);
        r
    }

    #[test]
    fn main_profile_codec_string_and_size() {
        let info = parse_hvcc(&main_hvcc()).unwrap();
        assert_eq!(info.codec_string, "hvc1.1.6.L93.B0");
        assert_eq!((info.width, info.height), (1280, 720));
    }

    #[test]
    fn codec_string_variants() {
        let mut h = [0u8; HVCC_HEADER_LEN];
        h[0] = 1;
        h[1] = 0x40 | 0x20 | 2; // space 1 (A), high tier, Main 10
        h[2..6].copy_from_slice(&0x2000_0000u32.to_be_bytes());
        h[12] = 120;
        // All-zero constraint bytes are omitted entirely.
        assert_eq!(codec_string(&h), "hvc1.A2.4.H120");
        h[6] = 0x90;
        h[8] = 0x01;
        assert_eq!(codec_string(&h), "hvc1.A2.4.H120.90.00.01");
    }

    #[test]
    fn cropping_and_emulation_prevention() {
        // 1920x1088 coded with a bottom crop of 4 chroma rows (x SubHeightC 2) = 1080.
        assert_eq!(
            sps_size(&sps(1920, 1088, Some([0, 0, 0, 4]))).unwrap(),
            (1920, 1080)
        );
        // Left/right crops count twice too (SubWidthC 2).
        assert_eq!(
            sps_size(&sps(1920, 1080, Some([1, 1, 0, 0]))).unwrap(),
            (1916, 1080)
        );
        // Hand check of rbsp(): 00 00 03 01 -> 00 00 01.
        assert_eq!(rbsp(&[0x42, 0x01, 0, 0, 3, 1, 5]), vec![0, 0, 1, 5]);
        // A zero width is rejected.
        assert!(sps_size(&sps(0, 720, None)).is_err());
    }

    #[test]
    fn malformed_records() {
        assert!(parse_hvcc(&[]).is_err());
        let mut r = main_hvcc();
        r[0] = 0;
        assert!(parse_hvcc(&r).is_err());
        let r = main_hvcc();
        for cut in 0..r.len() {
            assert!(parse_hvcc(&r[..cut]).is_err(), "cut at {cut}");
        }
        // No SPS array.
        let mut r = main_hvcc()[..HVCC_HEADER_LEN].to_vec();
        r[HVCC_HEADER_LEN - 1] = 0;
        assert!(parse_hvcc(&r).is_err());
    }
}
