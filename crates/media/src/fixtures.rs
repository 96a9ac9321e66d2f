//! Hand-built bitstreams for unit tests, here and in the crates that use the codec helpers
//! (with the `fixtures` feature, in their dev-dependencies only): a bit writer, and small
//! valid H.265 parameter sets and records and AV1 sequence headers whose fields the tests
//! know. Not for production use.

use crate::hevc;

/// Writes bits MSB first, with Exp-Golomb codes.
#[derive(Debug, Default, Clone)]
pub struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    /// Appends the low `n` bits of `value` (n at most 32), most significant first.
    pub fn put(&mut self, value: u32, n: u32) {
        for i in (0..n).rev() {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= bit << (7 - self.bits % 8);
            }
            self.bits += 1;
        }
    }

    /// Appends one bit.
    pub fn flag(&mut self, value: bool) {
        self.put(u32::from(value), 1);
    }

    /// Appends ue(v).
    pub fn ue(&mut self, v: u32) {
        let v1 = u64::from(v) + 1;
        let len = 64 - v1.leading_zeros();
        self.put(0, len - 1);
        self.put(v1 as u32, len);
    }

    /// Appends se(v).
    pub fn se(&mut self, v: i32) {
        self.ue(if v > 0 {
            (2 * v - 1) as u32
        } else {
            (-2 * v) as u32
        });
    }

    /// The bytes so far (the last one zero-padded).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, after an RBSP stop bit and zero padding (rbsp_trailing_bits()).
    pub fn finish(mut self) -> Vec<u8> {
        self.put(1, 1);
        self.bytes
    }
}

/// RBSP to NAL unit payload: emulation prevention bytes inserted as an encoder would (a
/// `03` before any byte of 0..=3 that follows two zero bytes).
pub fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 2);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// A placeholder H.265 VPS NAL unit (header type 32; its body is not parsed).
pub const HEVC_VPS: &[u8] = &[0x40, 0x01, 0x0C, 0x01, 0xFF, 0xFF];
/// A placeholder H.265 PPS NAL unit (header type 34; its body is not parsed).
pub const HEVC_PPS: &[u8] = &[0x44, 0x01, 0xC1, 0x72];

/// An H.265 SPS NAL unit (with its 2-byte header): Main profile, Main tier, level 3.1 (93),
/// 4:2:0 8-bit, `width` x `height` luma samples, one sub-layer with temporal id nesting,
/// and a conformance window of `crop` = [left, right, top, bottom] in chroma units. Its
/// general profile_tier_level is `01 60 00 00 00 90 00 00 00 00 00 5D` (compatibility with
/// Main and Main 10; progressive source and frame-only constraint): the `00 00 00` in it
/// makes the NAL unit carry an emulation prevention byte.
pub fn hevc_sps(width: u32, height: u32, crop: Option<[u32; 4]>) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.put(0, 4); // sps_video_parameter_set_id
    w.put(0, 3); // sps_max_sub_layers_minus1
    w.put(1, 1); // sps_temporal_id_nesting_flag
    w.put(0x01, 8); // profile_space 0, tier 0, profile_idc 1
    w.put(0x6000_0000, 32); // compatibility flags 1 and 2
    w.put(0x9000, 16); // progressive_source, frame_only_constraint
    w.put(0, 32); // the other constraint bits
    w.put(93, 8); // general_level_idc
    w.ue(0); // sps_seq_parameter_set_id
    w.ue(1); // chroma_format_idc
    w.ue(width);
    w.ue(height);
    match crop {
        None => w.flag(false),
        Some(c) => {
            w.flag(true);
            for v in c {
                w.ue(v);
            }
        }
    }
    w.ue(0); // bit_depth_luma_minus8
    w.ue(0); // bit_depth_chroma_minus8
    let mut nal = vec![0x42, 0x01];
    nal.extend_from_slice(&escape(&w.finish()));
    nal
}

/// An HEVCDecoderConfigurationRecord with [`HEVC_VPS`], [`hevc_sps`] (`width` x `height`,
/// no cropping) and [`HEVC_PPS`]; its RFC 6381 codec string is `hvc1.1.6.L93.90`.
pub fn hevc_record(width: u32, height: u32) -> Vec<u8> {
    hevc::decoder_config_record(HEVC_VPS, &hevc_sps(width, height, None), HEVC_PPS)
        .unwrap_or_default()
}

/// A sequence header OBU as libaom writes it for 640x360 profile 0 level 4.0 (8): header
/// 0x0A (type 1, has size), size 11, payload: seq_profile 000, still 0, reduced 0,
/// timing_info 0, initial_display_delay 0, operating_points_cnt_minus_1 00000, idc 0x000
/// (12), level 01000 (8 > 7: tier bit 0), frame_width_bits_minus_1 1001 (10 bits),
/// frame_height_bits_minus_1 1000 (9 bits), max_frame_width_minus_1 639 (10 bits),
/// max_frame_height_minus_1 359 (9 bits), frame_id_numbers 0, 128x128 0, filter_intra 1,
/// intra_edge 1, interintra 0, masked 0, warped 0, dual_filter 0, order_hint 1, jnt 0,
/// ref_frame_mvs 0, choose_screen_content 1, choose_integer_mv 1, order_hint_bits 110,
/// superres 0, cdef 1, restoration 1, high_bitdepth 0, mono 0, color_description 0,
/// color_range 0, chroma_sample_position 00, separate_uv_delta_q 0, film_grain 0, trailing
/// bits.
pub fn av1_sequence_header_obu() -> Vec<u8> {
    let mut w = BitWriter::default();
    w.put(0, 3); // seq_profile
    w.put(0, 1); // still_picture
    w.put(0, 1); // reduced_still_picture_header
    w.put(0, 1); // timing_info_present_flag
    w.put(0, 1); // initial_display_delay_present_flag
    w.put(0, 5); // operating_points_cnt_minus_1
    w.put(0, 12); // operating_point_idc[0]
    w.put(8, 5); // seq_level_idx[0]
    w.put(0, 1); // seq_tier[0]
    w.put(9, 4); // frame_width_bits_minus_1
    w.put(8, 4); // frame_height_bits_minus_1
    w.put(639, 10);
    w.put(359, 9);
    w.put(0, 1); // frame_id_numbers_present_flag
    w.put(0b011, 3); // 128x128, filter_intra, intra_edge
    w.put(0, 4); // interintra, masked, warped, dual filter
    w.put(1, 1); // enable_order_hint
    w.put(0, 2); // jnt_comp, ref_frame_mvs
    w.put(1, 1); // seq_choose_screen_content_tools
    w.put(1, 1); // seq_choose_integer_mv
    w.put(6, 3); // order_hint_bits_minus_1
    w.put(0b011, 3); // superres, cdef, restoration
    w.put(0, 1); // high_bitdepth
    w.put(0, 1); // mono_chrome
    w.put(0, 1); // color_description_present_flag
    w.put(0, 1); // color_range
    w.put(0, 2); // chroma_sample_position
    w.put(0, 1); // separate_uv_delta_q
    w.put(0, 1); // film_grain_params_present
    let payload = w.finish();
    let mut obu = vec![0x0A, u8::try_from(payload.len()).unwrap_or(0)];
    obu.extend_from_slice(&payload);
    obu
}

/// A small frame of `kind` and `role` at `dts` ms, as a unit test of a consumer needs one:
/// H.264 (an FLV video tag body with two payload bytes) for video, AAC for audio, script
/// data otherwise; a keyframe, no composition offset, no arrival time.
pub fn frame(kind: crate::MediaKind, role: crate::FrameRole, dts: u64) -> crate::Frame {
    use crate::{Codec, MediaKind};
    let (codec, body, payload_offset): (Codec, &'static [u8], usize) = match kind {
        MediaKind::Video => (Codec::H264, &[0x17, 1, 0, 0, 0, 0xAA, 0xBB], 5),
        MediaKind::Audio => (Codec::Aac, &[0xAF, 0x01, 0xAA], 2),
        MediaKind::Data => (Codec::Script, &[0x02, 0x00, 0x00], 0),
    };
    crate::Frame {
        kind,
        codec,
        role,
        dts,
        cts: 0,
        keyframe: true,
        body: bytes::Bytes::from_static(body),
        payload_offset,
        wire: Default::default(),
        arrival: None,
    }
}
