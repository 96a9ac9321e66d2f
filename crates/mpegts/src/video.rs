//! H.264/H.265 coded frames, AVCC (length-prefixed) to Annex B with access unit delimiters
//! and in-band parameter sets. The decoder configuration records are parsed by
//! [`media::avc`] and [`media::hevc`].

use bytes::Bytes;
use media::nal::{START_CODE, split_length_prefixed};
use media::{Codec, avc, hevc};

use crate::TsError;

/// H.264 access unit delimiter: NAL type 9, primary_pic_type 7 (any slice type).
pub const H264_AUD: [u8; 2] = [0x09, 0xF0];
/// H.265 access unit delimiter: NAL type 35, layer 0, TemporalId 0, pic_type 2 (any).
pub const H265_AUD: [u8; 3] = [0x46, 0x01, 0x50];

/// What the muxer keeps from a video sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// [`Codec::H264`] or [`Codec::H265`].
    pub codec: Codec,
    /// Bytes per NAL unit length prefix in coded frames (1, 2 or 4).
    pub nal_length_size: u8,
    /// Parameter sets to put before keyframes, in decoding order (VPS, SPS, PPS).
    pub parameter_sets: Vec<Bytes>,
}

/// The muxer's view of an AVCDecoderConfigurationRecord: its SPS and PPS (at most
/// [`media::nal::MAX_PARAMETER_SETS`]) and NAL length size.
pub fn parse_avcc(record: &Bytes) -> Result<VideoConfig, TsError> {
    let c = avc::parse_avc_decoder_config(record)?;
    Ok(VideoConfig {
        codec: Codec::H264,
        nal_length_size: c.nal_length_size,
        parameter_sets: c.parameter_sets().cloned().collect(),
    })
}

/// The muxer's view of an HEVCDecoderConfigurationRecord: its VPS, SPS and PPS (at most
/// [`media::nal::MAX_PARAMETER_SETS`]; other arrays such as SEI are skipped) and NAL length
/// size.
pub fn parse_hvcc(record: &Bytes) -> Result<VideoConfig, TsError> {
    let c = hevc::parse_hevc_decoder_config(record)?;
    Ok(VideoConfig {
        codec: Codec::H265,
        nal_length_size: c.nal_length_size,
        parameter_sets: c.parameter_sets().cloned().collect(),
    })
}

/// Converts one coded frame to an Annex B access unit appended to `out`.
///
/// Order: the access unit delimiter (the frame's own when it leads, else a synthesised one;
/// further AUDs are dropped), then, for a keyframe (`keyframe` or an IDR/IRAP NAL unit)
/// that carries no parameter set of its own, the configuration's parameter sets, then the
/// frame's NAL units, each after a 4-byte start code. Returns whether the access unit is a
/// random access point. Writes nothing and returns an error when a length prefix overruns.
pub fn avcc_to_annexb(
    config: &VideoConfig,
    payload: &[u8],
    keyframe: bool,
    out: &mut Vec<u8>,
) -> Result<bool, TsError> {
    let nals = split_length_prefixed(payload, config.nal_length_size)?;
    let is_hevc = config.codec == Codec::H265;
    // split_length_prefixed never returns an empty NAL unit; 0 stands for none.
    let nal_type = |nal: &[u8]| {
        if is_hevc {
            hevc::nal_type(nal).unwrap_or(0)
        } else {
            avc::nal_type(nal).unwrap_or(0)
        }
    };
    let (aud_type, param_types): (u8, &[u8]) = if is_hevc {
        (
            hevc::NAL_AUD,
            &[hevc::NAL_VPS, hevc::NAL_SPS, hevc::NAL_PPS],
        )
    } else {
        (avc::NAL_AUD, &[avc::NAL_SPS, avc::NAL_PPS])
    };
    let is_irap = |t: u8| {
        if is_hevc {
            hevc::is_irap(t)
        } else {
            t == avc::NAL_IDR
        }
    };
    let random_access = keyframe || nals.iter().any(|n| is_irap(nal_type(n)));
    let has_params = nals.iter().any(|n| param_types.contains(&nal_type(n)));

    let extra: usize = config.parameter_sets.iter().map(|p| p.len() + 4).sum();
    out.reserve(payload.len() + nals.len() * 4 + extra + 8);
    let mut rest = &nals[..];
    out.extend_from_slice(&START_CODE);
    match nals.first() {
        Some(first) if nal_type(first) == aud_type => {
            out.extend_from_slice(first);
            rest = nals.get(1..).unwrap_or(&[]);
        }
        _ if is_hevc => out.extend_from_slice(&H265_AUD),
        _ => out.extend_from_slice(&H264_AUD),
    }
    if random_access && !has_params {
        for set in &config.parameter_sets {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(set);
        }
    }
    for nal in rest.iter().filter(|n| nal_type(n) != aud_type) {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
    Ok(random_access)
}

#[cfg(test)]
mod tests {
    use media::MediaError;
    use media::fixtures::{HEVC_PPS, HEVC_VPS, hevc_record, hevc_sps};

    use super::*;

    /// avcC: version 1, Main@3.0, length size 4, one SPS (67 4D 00 1E), one PPS (68 EE 3C 80).
    const AVCC: &[u8] = &[
        0x01, 0x4D, 0x00, 0x1E, 0xFF, 0xE1, 0x00, 0x04, 0x67, 0x4D, 0x00, 0x1E, 0x01, 0x00, 0x04,
        0x68, 0xEE, 0x3C, 0x80,
    ];

    fn avc_config() -> VideoConfig {
        parse_avcc(&Bytes::from_static(AVCC)).unwrap()
    }

    #[test]
    fn avcc_record_keeps_sps_and_pps() {
        let c = avc_config();
        assert_eq!(c.codec, Codec::H264);
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(
            c.parameter_sets,
            [&[0x67, 0x4D, 0x00, 0x1E][..], &[0x68, 0xEE, 0x3C, 0x80][..]]
        );
    }

    #[test]
    fn keyframe_gets_aud_sps_pps() {
        let c = avc_config();
        // Length-prefixed SEI (6) and IDR slice (5).
        let payload = [0, 0, 0, 2, 0x06, 0xAA, 0, 0, 0, 3, 0x65, 0x88, 0x84];
        let mut out = Vec::new();
        assert!(avcc_to_annexb(&c, &payload, true, &mut out).unwrap());
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x09, 0xF0, // AUD
                0, 0, 0, 1, 0x67, 0x4D, 0x00, 0x1E, // SPS
                0, 0, 0, 1, 0x68, 0xEE, 0x3C, 0x80, // PPS
                0, 0, 0, 1, 0x06, 0xAA, // SEI
                0, 0, 0, 1, 0x65, 0x88, 0x84, // IDR
            ]
        );
        // An IDR NAL makes it a keyframe even when the flag is unset.
        let mut out2 = Vec::new();
        assert!(avcc_to_annexb(&c, &payload, false, &mut out2).unwrap());
        assert_eq!(out, out2);
    }

    #[test]
    fn inter_frame_gets_aud_only() {
        let c = avc_config();
        let payload = [0, 0, 0, 2, 0x41, 0x9A];
        let mut out = Vec::new();
        assert!(!avcc_to_annexb(&c, &payload, false, &mut out).unwrap());
        assert_eq!(out, [0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x41, 0x9A]);
    }

    #[test]
    fn no_double_insertion() {
        let c = avc_config();
        // The frame carries its own AUD, SPS and PPS before the IDR slice.
        let payload = [
            0, 0, 0, 2, 0x09, 0x10, 0, 0, 0, 2, 0x67, 0x01, 0, 0, 0, 2, 0x68, 0x02, 0, 0, 0, 2,
            0x65, 0x03,
        ];
        let mut out = Vec::new();
        assert!(avcc_to_annexb(&c, &payload, true, &mut out).unwrap());
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x09, 0x10, 0, 0, 0, 1, 0x67, 0x01, 0, 0, 0, 1, 0x68, 0x02, 0, 0, 0, 1,
                0x65, 0x03
            ]
        );
    }

    #[test]
    fn truncated_avcc_is_an_error() {
        let c = avc_config();
        // The prefix says 5 bytes, 3 follow.
        let payload = [0, 0, 0, 2, 0x41, 0x9A, 0, 0, 0, 5, 1, 2, 3];
        let mut out = Vec::new();
        assert_eq!(
            avcc_to_annexb(&c, &payload, false, &mut out),
            Err(TsError::Codec(MediaError::BadNalLength {
                offset: 6,
                len: 5,
                payload_len: 13
            }))
        );
        assert!(out.is_empty(), "nothing written on error");
    }

    #[test]
    fn hevc_record_and_keyframe() {
        let sps = hevc_sps(640, 360, None);
        let full = Bytes::from(hevc_record(640, 360));
        let c = parse_hvcc(&full).unwrap();
        assert_eq!((c.codec, c.nal_length_size), (Codec::H265, 4));
        assert_eq!(c.parameter_sets, [HEVC_VPS, &sps, HEVC_PPS]);
        // IDR_W_RADL (19): header 0x26 0x01.
        let idr = [0x26, 0x01, 0xAF];
        let mut out = Vec::new();
        assert!(avcc_to_annexb(&c, &[0, 0, 0, 3, 0x26, 0x01, 0xAF], false, &mut out).unwrap());
        let mut want = H265_AUD.to_vec();
        for nal in [HEVC_VPS, &sps, HEVC_PPS, &idr] {
            want.extend_from_slice(&START_CODE);
            want.extend_from_slice(nal);
        }
        assert_eq!(&out[..4], &START_CODE);
        assert_eq!(&out[4..], &want[..]);
        // TRAIL_R (1): AUD only.
        let mut out = Vec::new();
        assert!(!avcc_to_annexb(&c, &[0, 0, 0, 2, 0x02, 0x01], false, &mut out).unwrap());
        assert_eq!(out, [0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 0, 1, 0x02, 0x01]);
        // Truncated records are errors.
        for end in [0, 22, 23, 26, 30] {
            assert!(
                matches!(
                    parse_hvcc(&full.slice(..end)),
                    Err(TsError::Codec(MediaError::InvalidCodecConfig {
                        reason: "truncated",
                        ..
                    }))
                ),
                "end {end}"
            );
        }
    }
}
