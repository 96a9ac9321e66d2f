//! AV1 for WHIP ingest. str0m depacketizes an AV1 temporal unit (RFC: "RTP Payload Format
//! For AV1", AOM) into OBUs in the low overhead bitstream format, each with its size field
//! (AV1 spec 5.3). Enhanced RTMP v2 `av01` CodedFrames carry "one or more OBUs which
//! represent a single temporal unit" and SequenceStart the AV1CodecConfigurationRecord
//! (`av1C`, "AV1 Codec ISO Media File Format Binding" 2.3): marker/version `0x81`,
//! seq_profile (3) | seq_level_idx_0 (5), seq_tier_0 | high_bitdepth | twelve_bit |
//! monochrome | chroma_subsampling_x | chroma_subsampling_y | chroma_sample_position (2), a
//! zero byte (no initial presentation delay), then configOBUs: the sequence header OBU.
//!
//! The fields come from the sequence header OBU (AV1 spec 5.5, sequence_header_obu and
//! color_config), parsed here as far as color_config. A temporal unit with a sequence header
//! is a random access point (WebRTC encoders send one with every key frame); temporal
//! delimiters are dropped from coded data as the ISO binding asks.

use crate::bits::Bits;

/// Most OBUs taken from one temporal unit (a hostile frame cannot make us loop long).
pub const MAX_OBUS: usize = 512;
/// Largest sequence header OBU put into a configuration record (real ones are ~12 bytes).
pub const MAX_SEQUENCE_HEADER_BYTES: usize = 1024;

/// OBU_SEQUENCE_HEADER.
const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU_TEMPORAL_DELIMITER.
const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// One OBU of a temporal unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
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

/// The OBUs of a temporal unit; `None` if one is malformed (forbidden bit, a size past the
/// end) or there are more than [`MAX_OBUS`]. An OBU without a size field runs to the end.
pub fn obus(data: &[u8]) -> Option<Vec<Obu<'_>>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(&header) = rest.first() {
        if header & 0x80 != 0 || out.len() >= MAX_OBUS {
            return None;
        }
        let obu_type = (header >> 3) & 0x0F;
        let header_len = if header & 0x04 != 0 { 2 } else { 1 };
        let after_header = rest.get(header_len..)?;
        let (payload_len, size_len) = if header & 0x02 != 0 {
            leb128(after_header)?
        } else {
            (after_header.len(), 0)
        };
        let total = header_len.checked_add(size_len)?.checked_add(payload_len)?;
        let bytes = rest.get(..total)?;
        let payload = bytes.get(header_len + size_len..)?;
        out.push(Obu {
            obu_type,
            bytes,
            payload,
        });
        rest = rest.get(total..)?;
    }
    Some(out)
}

/// What the `av1C` record takes from a sequence header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SequenceInfo {
    pub profile: u8,
    pub level: u8,
    pub tier: bool,
    pub high_bitdepth: bool,
    pub twelve_bit: bool,
    pub monochrome: bool,
    pub subsampling_x: bool,
    pub subsampling_y: bool,
    pub chroma_sample_position: u8,
    pub width: u32,
    pub height: u32,
}

/// Parses a sequence header OBU's payload (AV1 spec 5.5.1) up to color_config; `None` if it
/// is truncated or malformed.
pub fn parse_sequence_header(payload: &[u8]) -> Option<SequenceInfo> {
    let mut b = Bits::new(payload);
    let mut s = SequenceInfo {
        profile: b.byte(3)?,
        ..SequenceInfo::default()
    };
    if s.profile > 2 {
        return None;
    }
    b.skip(1)?; // still_picture
    let reduced = b.flag()?;
    if reduced {
        s.level = b.byte(5)?;
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
            let level = b.byte(5)?;
            let tier = level > 7 && b.flag()?;
            if i == 0 {
                s.level = level;
                s.tier = tier;
            }
            if decoder_model && b.flag()? {
                b.skip(usize::try_from(2 * buffer_delay_len + 1).ok()?)?;
            }
            if initial_display_delay && b.flag()? {
                b.skip(4)?;
            }
        }
    }
    let width_bits = b.bits(4)? + 1;
    let height_bits = b.bits(4)? + 1;
    s.width = b.bits(width_bits)?.checked_add(1)?;
    s.height = b.bits(height_bits)?.checked_add(1)?;
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
    Some(s)
}

/// color_config() (AV1 spec 5.5.2).
fn color_config(b: &mut Bits<'_>, s: &mut SequenceInfo) -> Option<()> {
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
        return Some(());
    }
    // sRGB: BT.709 primaries, sRGB transfer, identity matrix (4:4:4, full range).
    if primaries == 1 && transfer == 13 && matrix == 0 {
        return Some(());
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
        s.chroma_sample_position = b.byte(2)?;
    }
    Some(())
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

/// One temporal unit converted for the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Unit {
    /// A new `av1C` record, when a sequence header appeared or changed: it goes to the hub
    /// as a sequence header before the coded frame.
    pub config: Option<Vec<u8>>,
    /// The OBUs without temporal delimiters.
    pub data: Vec<u8>,
    /// The unit starts with a sequence header (a random access point).
    pub keyframe: bool,
}

/// AV1 temporal units from str0m to the hub, remembering the configuration record.
#[derive(Debug, Clone, Default)]
pub struct Av1In {
    config: Option<Vec<u8>>,
}

impl Av1In {
    /// Converts one temporal unit; `None` when it is malformed, empty, or no sequence
    /// header was seen yet.
    pub fn convert(&mut self, data: &[u8]) -> Option<Av1Unit> {
        let obus = obus(data)?;
        let mut out = Vec::with_capacity(data.len());
        let mut keyframe = false;
        let mut changed = false;
        for obu in &obus {
            match obu.obu_type {
                OBU_TEMPORAL_DELIMITER => continue,
                OBU_SEQUENCE_HEADER if obu.bytes.len() <= MAX_SEQUENCE_HEADER_BYTES => {
                    let info = parse_sequence_header(obu.payload)?;
                    let record = av1c(&info, obu.bytes);
                    keyframe = true;
                    if self.config.as_ref() != Some(&record) {
                        self.config = Some(record);
                        changed = true;
                    }
                }
                _ => {}
            }
            out.extend_from_slice(obu.bytes);
        }
        if self.config.is_none() || out.is_empty() {
            return None;
        }
        let config = if changed { self.config.clone() } else { None };
        Some(Av1Unit {
            config,
            data: out,
            keyframe,
        })
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A sequence header OBU as libaom writes it for 640x360 profile 0 level 4.0 (8):
    /// header 0x0A (type 1, has size), size 11, payload:
    /// seq_profile 000, still 0, reduced 0, timing_info 0, initial_display_delay 0,
    /// operating_points_cnt_minus_1 00000, idc 0x000 (12), level 01000 (8 > 7: tier bit 0),
    /// frame_width_bits_minus_1 1001 (10 bits), frame_height_bits_minus_1 1000 (9 bits),
    /// max_frame_width_minus_1 639 (10 bits), max_frame_height_minus_1 359 (9 bits),
    /// frame_id_numbers 0, 128x128 0, filter_intra 1, intra_edge 1, interintra 0, masked 0,
    /// warped 0, dual_filter 0, order_hint 1, jnt 0, ref_frame_mvs 0,
    /// choose_screen_content 1, choose_integer_mv 1, order_hint_bits 110, superres 0, cdef 1,
    /// restoration 1, high_bitdepth 0, mono 0, color_description 0, color_range 0,
    /// chroma_sample_position 00, separate_uv_delta_q 0, film_grain 0, trailing bits.
    pub fn sequence_header_obu() -> Vec<u8> {
        let mut bits: Vec<bool> = Vec::new();
        let mut push = |v: u32, n: u32| {
            for i in (0..n).rev() {
                bits.push((v >> i) & 1 == 1);
            }
        };
        push(0, 3); // seq_profile
        push(0, 1); // still_picture
        push(0, 1); // reduced_still_picture_header
        push(0, 1); // timing_info_present_flag
        push(0, 1); // initial_display_delay_present_flag
        push(0, 5); // operating_points_cnt_minus_1
        push(0, 12); // operating_point_idc[0]
        push(8, 5); // seq_level_idx[0]
        push(0, 1); // seq_tier[0]
        push(9, 4); // frame_width_bits_minus_1
        push(8, 4); // frame_height_bits_minus_1
        push(639, 10);
        push(359, 9);
        push(0, 1); // frame_id_numbers_present_flag
        push(0b011, 3); // 128x128, filter_intra, intra_edge
        push(0, 4); // interintra, masked, warped, dual filter
        push(1, 1); // enable_order_hint
        push(0, 2); // jnt_comp, ref_frame_mvs
        push(1, 1); // seq_choose_screen_content_tools
        push(1, 1); // seq_choose_integer_mv
        push(6, 3); // order_hint_bits_minus_1
        push(0b011, 3); // superres, cdef, restoration
        push(0, 1); // high_bitdepth
        push(0, 1); // mono_chrome
        push(0, 1); // color_description_present_flag
        push(0, 1); // color_range
        push(0, 2); // chroma_sample_position
        push(0, 1); // separate_uv_delta_q
        push(0, 1); // film_grain_params_present
        push(1, 1); // trailing one bit
        let mut payload = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.iter().enumerate() {
            if *b {
                payload[i / 8] |= 0x80 >> (i % 8);
            }
        }
        let mut obu = vec![0x0A, u8::try_from(payload.len()).unwrap()];
        obu.extend_from_slice(&payload);
        obu
    }

    #[test]
    fn parses_a_sequence_header_and_builds_av1c() {
        let obu = sequence_header_obu();
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
    fn temporal_units_become_hub_frames() {
        let mut a = Av1In::default();
        // Temporal delimiter (0x12 0x00) + a frame OBU (type 6, 0x32) of 2 bytes.
        let delta = [0x12, 0x00, 0x32, 0x02, 0xAA, 0xBB];
        assert_eq!(a.convert(&delta), None, "no sequence header yet");
        let mut key = vec![0x12, 0x00];
        key.extend_from_slice(&sequence_header_obu());
        key.extend_from_slice(&[0x32, 0x01, 0xCC]);
        let u = a.convert(&key).unwrap();
        assert!(u.keyframe);
        assert_eq!(&u.data[..2], &[0x0A, 0x0B], "temporal delimiter dropped");
        assert_eq!(&u.config.unwrap()[..4], &[0x81, 0x08, 0x0C, 0x00]);
        let u = a.convert(&delta).unwrap();
        assert_eq!(
            (u.keyframe, u.config, u.data),
            (false, None, vec![0x32, 0x02, 0xAA, 0xBB])
        );
        // The same sequence header again: a keyframe, no new record.
        let u = a.convert(&key).unwrap();
        assert!(u.keyframe && u.config.is_none());
    }

    #[test]
    fn malformed_obus_are_refused() {
        assert_eq!(obus(&[0x80]), None, "forbidden bit");
        assert_eq!(obus(&[0x32, 0x05, 1]), None, "size past the end");
        assert_eq!(
            obus(&[0x32, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            None
        );
        assert_eq!(obus(&[0x36]), None, "extension byte missing");
        // No size field: the OBU runs to the end.
        assert_eq!(obus(&[0x30, 1, 2]).unwrap()[0].payload, &[1, 2]);
        let many: Vec<u8> = std::iter::repeat_n([0x12u8, 0x00], MAX_OBUS + 1)
            .flatten()
            .collect();
        assert_eq!(obus(&many), None);
        assert_eq!(parse_sequence_header(&[]), None);
        assert_eq!(parse_sequence_header(&[0xE0]), None, "profile 7");
        let obu = sequence_header_obu();
        assert_eq!(parse_sequence_header(&obu[2..6]), None, "truncated");
        let mut a = Av1In::default();
        assert_eq!(
            a.convert(&[0x0A, 0x01, 0x00]),
            None,
            "truncated sequence header"
        );
    }
}
