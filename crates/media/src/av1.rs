//! AV1: OBUs in the low overhead bitstream format (AV1 spec 5.3), the sequence header OBU
//! (AV1 spec 5.5, parsed as far as color_config), and the AV1CodecConfigurationRecord
//! (`av1C`, "AV1 Codec ISO Media File Format Binding" 2.3) that Enhanced RTMP `av01`
//! SequenceStart and MP4 carry: marker/version `0x81`, seq_profile (3) | seq_level_idx_0
//! (5), seq_tier_0 | high_bitdepth | twelve_bit | monochrome | chroma_subsampling_x |
//! chroma_subsampling_y | chroma_sample_position (2), a zero byte (no initial presentation
//! delay), then configOBUs: the sequence header OBU.

use crate::MediaError;
use crate::bits::BitReader;

/// Most OBUs taken from one temporal unit (a hostile frame cannot make us loop long).
pub const MAX_OBUS: usize = 512;

/// OBU_SEQUENCE_HEADER.
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU_TEMPORAL_DELIMITER.
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// One OBU of a temporal unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
    /// obu_type (1 sequence header, 2 temporal delimiter, 6 frame, ...).
    pub obu_type: u8,
    /// The whole OBU (header, size field, payload).
    pub bytes: &'a [u8],
    /// Its payload.
    pub payload: &'a [u8],
}

/// Reads a leb128 value (AV1 spec 4.10.5: at most 8 bytes) at the start of `data`: the value
/// and the bytes it took.
fn leb128(data: &[u8]) -> Option<(usize, usize)> {
    let mut value: u64 = 0;
    for i in 0..8 {
        let b = *data.get(i)?;
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, i + 1));
        }
    }
    None
}

/// The OBUs of a temporal unit; an error if one is malformed (forbidden bit, a size past
/// the end) or there are more than [`MAX_OBUS`]. An OBU without a size field runs to the end.
pub fn obus(data: &[u8]) -> Result<Vec<Obu<'_>>, MediaError> {
    let invalid = |reason| MediaError::InvalidCodecConfig {
        what: "AV1 OBU",
        reason,
    };
    let truncated = invalid("truncated");
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(&header) = rest.first() {
        if header & 0x80 != 0 {
            return Err(invalid("forbidden bit set"));
        }
        if out.len() >= MAX_OBUS {
            return Err(invalid("more than MAX_OBUS in one temporal unit"));
        }
        let obu_type = (header >> 3) & 0x0F;
        let header_len = if header & 0x04 != 0 { 2 } else { 1 };
        let after_header = rest.get(header_len..).ok_or(truncated.clone())?;
        let (payload_len, size_len) = if header & 0x02 != 0 {
            leb128(after_header).ok_or(invalid("bad obu_size"))?
        } else {
            (after_header.len(), 0)
        };
        let total = header_len
            .checked_add(size_len)
            .and_then(|n| n.checked_add(payload_len))
            .ok_or(truncated.clone())?;
        let bytes = rest.get(..total).ok_or(truncated.clone())?;
        let payload = bytes.get(header_len + size_len..).unwrap_or_default();
        out.push(Obu {
            obu_type,
            bytes,
            payload,
        });
        rest = rest.get(total..).unwrap_or_default();
    }
    Ok(out)
}

/// What the `av1C` record takes from a sequence header, and the maximum frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SequenceInfo {
    /// seq_profile (0 Main, 1 High, 2 Professional).
    pub profile: u8,
    /// seq_level_idx of operating point 0.
    pub level: u8,
    /// seq_tier of operating point 0 (true: High tier).
    pub tier: bool,
    /// high_bitdepth (10 or 12 bits).
    pub high_bitdepth: bool,
    /// twelve_bit (profile 2 only).
    pub twelve_bit: bool,
    /// mono_chrome.
    pub monochrome: bool,
    /// subsampling_x.
    pub subsampling_x: bool,
    /// subsampling_y.
    pub subsampling_y: bool,
    /// chroma_sample_position (4:2:0 only).
    pub chroma_sample_position: u8,
    /// max_frame_width_minus_1 + 1.
    pub width: u32,
    /// max_frame_height_minus_1 + 1.
    pub height: u32,
}

/// Parses a sequence header OBU's payload (AV1 spec 5.5.1) up to color_config; an error if
/// it is truncated or malformed.
pub fn parse_sequence_header(payload: &[u8]) -> Result<SequenceInfo, MediaError> {
    let mut b = BitReader::new(payload, "AV1 sequence header");
    let mut s = SequenceInfo {
        profile: b.bits_u8(3)?,
        ..SequenceInfo::default()
    };
    if s.profile > 2 {
        return Err(b.error("seq_profile above 2"));
    }
    b.skip(1)?; // still_picture
    let reduced = b.flag()?;
    if reduced {
        s.level = b.bits_u8(5)?;
    } else {
        let timing_info = b.flag()?;
        let mut decoder_model = false;
        let mut buffer_delay_len = 0;
        if timing_info {
            b.skip(64)?; // num_units_in_display_tick, time_scale
            if b.flag()? {
                b.uvlc()?; // num_ticks_per_picture_minus_1
            }
            decoder_model = b.flag()?;
            if decoder_model {
                buffer_delay_len = b.bits(5)? + 1;
                b.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay = b.flag()?;
        let operating_points = b.bits(5)? + 1;
        for i in 0..operating_points {
            b.skip(12)?; // operating_point_idc
            let level = b.bits_u8(5)?;
            let tier = level > 7 && b.flag()?;
            if i == 0 {
                s.level = level;
                s.tier = tier;
            }
            if decoder_model && b.flag()? {
                // decoder_buffer_delay, encoder_buffer_delay, low_delay_mode_flag.
                b.skip(2 * buffer_delay_len as usize + 1)?;
            }
            if initial_display_delay && b.flag()? {
                b.skip(4)?;
            }
        }
    }
    let width_bits = b.bits(4)? + 1;
    let height_bits = b.bits(4)? + 1;
    s.width = b.bits(width_bits)?.saturating_add(1);
    s.height = b.bits(height_bits)?.saturating_add(1);
    if !reduced && b.flag()? {
        b.skip(4 + 3)?; // delta_frame_id_length_minus_2, additional_frame_id_length_minus_1
    }
    b.skip(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced {
        b.skip(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = b.flag()?;
        if order_hint {
            b.skip(2)?; // enable_jnt_comp, enable_ref_frame_mvs
        }
        let force_screen_content = if b.flag()? { 2 } else { u8::from(b.flag()?) };
        if force_screen_content > 0 && !b.flag()? {
            b.skip(1)?; // seq_force_integer_mv
        }
        if order_hint {
            b.skip(3)?; // order_hint_bits_minus_1
        }
    }
    b.skip(3)?; // enable_superres, enable_cdef, enable_restoration
    color_config(&mut b, &mut s)?;
    Ok(s)
}

/// color_config() (AV1 spec 5.5.2).
fn color_config(b: &mut BitReader<'_>, s: &mut SequenceInfo) -> Result<(), MediaError> {
    s.high_bitdepth = b.flag()?;
    if s.profile == 2 && s.high_bitdepth {
        s.twelve_bit = b.flag()?;
    }
    s.monochrome = s.profile != 1 && b.flag()?;
    let (mut primaries, mut transfer, mut matrix) = (2, 2, 2);
    if b.flag()? {
        primaries = b.bits(8)?;
        transfer = b.bits(8)?;
        matrix = b.bits(8)?;
    }
    if s.monochrome {
        (s.subsampling_x, s.subsampling_y) = (true, true);
        return Ok(());
    }
    // sRGB: BT.709 primaries, sRGB transfer, identity matrix (4:4:4, full range).
    if primaries == 1 && transfer == 13 && matrix == 0 {
        return Ok(());
    }
    b.skip(1)?; // color_range
    (s.subsampling_x, s.subsampling_y) = match s.profile {
        0 => (true, true),
        1 => (false, false),
        _ if s.twelve_bit => {
            let x = b.flag()?;
            (x, x && b.flag()?)
        }
        _ => (true, false),
    };
    if s.subsampling_x && s.subsampling_y {
        s.chroma_sample_position = b.bits_u8(2)?;
    }
    Ok(())
}

/// The `av1C` record for a sequence header OBU (`obu`: the whole OBU, with its size field).
pub fn av1c(s: &SequenceInfo, obu: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(4 + obu.len());
    r.push(0x81);
    r.push((s.profile << 5) | (s.level & 0x1F));
    r.push(
        (u8::from(s.tier) << 7)
            | (u8::from(s.high_bitdepth) << 6)
            | (u8::from(s.twelve_bit) << 5)
            | (u8::from(s.monochrome) << 4)
            | (u8::from(s.subsampling_x) << 3)
            | (u8::from(s.subsampling_y) << 2)
            | (s.chroma_sample_position & 3),
    );
    r.push(0);
    r.extend_from_slice(obu);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::av1_sequence_header_obu;

    #[test]
    fn parses_a_sequence_header_and_builds_av1c() {
        let obu = av1_sequence_header_obu();
        let units = obus(&obu).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].obu_type, OBU_SEQUENCE_HEADER);
        let info = parse_sequence_header(units[0].payload).unwrap();
        assert_eq!((info.profile, info.level, info.tier), (0, 8, false));
        assert_eq!((info.width, info.height), (640, 360));
        assert!(info.subsampling_x && info.subsampling_y && !info.high_bitdepth);
        let rec = av1c(&info, &obu);
        // 0x81, profile 0 << 5 | level 8, 4:2:0 (x, y set), no delay, then the OBU.
        assert_eq!(&rec[..4], &[0x81, 0x08, 0x0C, 0x00]);
        assert_eq!(&rec[4..], obu.as_slice());
    }

    #[test]
    fn malformed_obus_are_refused() {
        assert!(obus(&[0x80]).is_err(), "forbidden bit");
        assert!(obus(&[0x32, 0x05, 1]).is_err(), "size past the end");
        assert!(obus(&[0x32, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(obus(&[0x36]).is_err(), "extension byte missing");
        // No size field: the OBU runs to the end.
        assert_eq!(obus(&[0x30, 1, 2]).unwrap()[0].payload, &[1, 2]);
        let many: Vec<u8> = std::iter::repeat_n([0x12u8, 0x00], MAX_OBUS + 1)
            .flatten()
            .collect();
        assert!(obus(&many).is_err());
        assert_eq!(obus(&many[2..]).unwrap().len(), MAX_OBUS);
        assert!(parse_sequence_header(&[]).is_err());
        assert_eq!(
            parse_sequence_header(&[0xE0]),
            Err(MediaError::InvalidCodecConfig {
                what: "AV1 sequence header",
                reason: "seq_profile above 2"
            })
        );
        let obu = av1_sequence_header_obu();
        assert!(parse_sequence_header(&obu[2..6]).is_err(), "truncated");
    }
}
