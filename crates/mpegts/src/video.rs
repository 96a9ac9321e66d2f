//! H.264/H.265 decoder configuration records and AVCC (length-prefixed) to Annex B.

use bytes::Bytes;
use media::Codec;

use crate::TsError;

/// Most parameter sets (VPS + SPS + PPS) kept from one decoder configuration record.
/// Real streams carry one to three; more are ignored rather than stored without bound.
pub const MAX_PARAMETER_SETS: usize = 16;
/// Most NAL units accepted in one coded frame (slices, SEI, ...); real frames carry a few.
pub const MAX_NAL_UNITS: usize = 1024;
/// The Annex B start code written before every NAL unit.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// H.264 access unit delimiter: NAL type 9, primary_pic_type 7 (any slice type).
pub const H264_AUD: [u8; 2] = [0x09, 0xF0];
/// H.265 access unit delimiter: NAL type 35, layer 0, TemporalId 0, pic_type 2 (any).
pub const H265_AUD: [u8; 3] = [0x46, 0x01, 0x50];

/// H.264 NAL unit types used here.
mod h264 {
    pub const IDR: u8 = 5;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
}

/// H.265 NAL unit types used here.
mod h265 {
    pub const IRAP_FIRST: u8 = 16;
    pub const IRAP_LAST: u8 = 23;
    pub const VPS: u8 = 32;
    pub const SPS: u8 = 33;
    pub const PPS: u8 = 34;
    pub const AUD: u8 = 35;
}

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

/// A bounds-checked reader over a configuration record.
struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
    what: &'static str,
}

impl Reader<'_> {
    fn truncated(&self) -> TsError {
        TsError::InvalidConfig {
            what: self.what,
            reason: "truncated",
        }
    }

    fn take(&mut self, n: usize) -> Result<Bytes, TsError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.truncated())?;
        if end > self.data.len() {
            return Err(self.truncated());
        }
        let out = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, TsError> {
        let b = self.take(1)?;
        b.first().copied().ok_or_else(|| self.truncated())
    }

    fn u16(&mut self) -> Result<u16, TsError> {
        Ok(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }

    /// `count` NAL units each with a 16-bit length, kept in `sets` up to the limit.
    fn nal_list(
        &mut self,
        count: usize,
        sets: &mut Vec<(u8, Bytes)>,
        nal_type: impl Fn(&[u8]) -> u8,
    ) -> Result<(), TsError> {
        for _ in 0..count {
            let len = usize::from(self.u16()?);
            let nal = self.take(len)?;
            if !nal.is_empty() && sets.len() < MAX_PARAMETER_SETS {
                sets.push((nal_type(&nal), nal));
            }
        }
        Ok(())
    }
}

/// NAL unit type of an H.264 NAL unit (0 for an empty slice).
fn h264_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1F)
}

/// NAL unit type of an H.265 NAL unit (0 for an empty slice).
fn h265_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3F)
}

fn length_size(byte: u8, what: &'static str) -> Result<u8, TsError> {
    match (byte & 0x03) + 1 {
        3 => Err(TsError::InvalidConfig {
            what,
            reason: "NAL length size 3 is not allowed",
        }),
        n => Ok(n),
    }
}

/// Parses an AVCDecoderConfigurationRecord, keeping every SPS and PPS (up to
/// [`MAX_PARAMETER_SETS`]).
pub fn parse_avcc(record: &Bytes) -> Result<VideoConfig, TsError> {
    const WHAT: &str = "AVC decoder configuration record";
    let mut r = Reader {
        data: record,
        pos: 0,
        what: WHAT,
    };
    let header = r.take(6)?;
    let nal_length_size = length_size(header.get(4).copied().unwrap_or(0), WHAT)?;
    let sps_count = usize::from(header.get(5).copied().unwrap_or(0) & 0x1F);
    let mut sets = Vec::new();
    r.nal_list(sps_count, &mut sets, h264_type)?;
    // The PPS list is optional in practice (some encoders send PPS in band only).
    if let Ok(pps_count) = r.u8() {
        r.nal_list(usize::from(pps_count), &mut sets, h264_type)?;
    }
    let parameter_sets = ordered(sets, &[h264::SPS, h264::PPS]);
    Ok(VideoConfig {
        codec: Codec::H264,
        nal_length_size,
        parameter_sets,
    })
}

/// Parses an HEVCDecoderConfigurationRecord, keeping the VPS, SPS and PPS arrays (up to
/// [`MAX_PARAMETER_SETS`] in all); other arrays (SEI) are skipped.
pub fn parse_hvcc(record: &Bytes) -> Result<VideoConfig, TsError> {
    const WHAT: &str = "HEVC decoder configuration record";
    let mut r = Reader {
        data: record,
        pos: 0,
        what: WHAT,
    };
    let header = r.take(23)?;
    let nal_length_size = length_size(header.get(21).copied().unwrap_or(0), WHAT)?;
    let arrays = header.get(22).copied().unwrap_or(0);
    let mut sets = Vec::new();
    for _ in 0..arrays {
        let _array_type = r.u8()?;
        let count = usize::from(r.u16()?);
        r.nal_list(count, &mut sets, h265_type)?;
    }
    let parameter_sets = ordered(sets, &[h265::VPS, h265::SPS, h265::PPS]);
    Ok(VideoConfig {
        codec: Codec::H265,
        nal_length_size,
        parameter_sets,
    })
}

/// Keeps the NAL units whose type is in `order`, sorted by that order (stable).
fn ordered(sets: Vec<(u8, Bytes)>, order: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(sets.len());
    for &t in order {
        out.extend(
            sets.iter()
                .filter(|(ty, _)| *ty == t)
                .map(|(_, nal)| nal.clone()),
        );
    }
    out
}

/// Splits an AVCC payload into its NAL units (empty ones are skipped). Every length prefix
/// must lie inside the payload and every NAL unit must end inside it.
pub fn split_avcc(payload: &[u8], length_size: u8) -> Result<Vec<&[u8]>, TsError> {
    let size = usize::from(length_size);
    let mut nals = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        let bad = |len| TsError::BadNalLength {
            offset: pos,
            len,
            payload_len: payload.len(),
        };
        let prefix = payload.get(pos..pos + size).ok_or(bad(0))?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        let start = pos + size;
        let nal = start
            .checked_add(len)
            .and_then(|end| payload.get(start..end))
            .ok_or(bad(len))?;
        if !nal.is_empty() {
            if nals.len() == MAX_NAL_UNITS {
                return Err(TsError::TooManyNalUnits { max: MAX_NAL_UNITS });
            }
            nals.push(nal);
        }
        pos = start + len;
    }
    Ok(nals)
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
    let nals = split_avcc(payload, config.nal_length_size)?;
    let hevc = config.codec == Codec::H265;
    let nal_type = if hevc { h265_type } else { h264_type };
    let (aud_type, param_types): (u8, &[u8]) = if hevc {
        (h265::AUD, &[h265::VPS, h265::SPS, h265::PPS])
    } else {
        (h264::AUD, &[h264::SPS, h264::PPS])
    };
    let is_irap = |t: u8| {
        if hevc {
            (h265::IRAP_FIRST..=h265::IRAP_LAST).contains(&t)
        } else {
            t == h264::IDR
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
        _ if hevc => out.extend_from_slice(&H265_AUD),
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
    fn avcc_record() {
        let c = avc_config();
        assert_eq!(c.codec, Codec::H264);
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(
            c.parameter_sets,
            [&[0x67, 0x4D, 0x00, 0x1E][..], &[0x68, 0xEE, 0x3C, 0x80][..]]
        );
        // Without the PPS list the record is still valid.
        let c = parse_avcc(&Bytes::copy_from_slice(&AVCC[..12])).unwrap();
        assert_eq!(c.parameter_sets.len(), 1);
        for end in [0, 5, 8, 11, 14, 18] {
            assert!(
                matches!(
                    parse_avcc(&Bytes::copy_from_slice(&AVCC[..end])),
                    Err(TsError::InvalidConfig {
                        reason: "truncated",
                        ..
                    })
                ),
                "end {end}"
            );
        }
        let mut bad = AVCC.to_vec();
        bad[4] = 0xFE; // length size 3
        assert!(parse_avcc(&Bytes::from(bad)).is_err());
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
            Err(TsError::BadNalLength {
                offset: 6,
                len: 5,
                payload_len: 13
            })
        );
        assert!(out.is_empty(), "nothing written on error");
        // A truncated prefix.
        assert_eq!(
            split_avcc(&[0, 0, 0, 1, 0x41, 0, 0], 4),
            Err(TsError::BadNalLength {
                offset: 5,
                len: 0,
                payload_len: 7
            })
        );
        // A prefix near usize::MAX cannot overflow.
        assert!(split_avcc(&[0xFF; 8], 4).is_err());
        // 2-byte and 1-byte prefixes.
        assert_eq!(split_avcc(&[0, 1, 7, 0, 0], 2).unwrap(), [&[7][..]]);
        assert_eq!(split_avcc(&[2, 8, 9, 0], 1).unwrap(), [&[8, 9][..]]);
    }

    #[test]
    fn too_many_nal_units() {
        let payload: Vec<u8> = (0..=MAX_NAL_UNITS).flat_map(|_| [1, 0x41]).collect();
        assert_eq!(
            split_avcc(&payload, 1),
            Err(TsError::TooManyNalUnits { max: MAX_NAL_UNITS })
        );
        assert_eq!(split_avcc(&payload[2..], 1).unwrap().len(), MAX_NAL_UNITS);
    }

    /// hvcC with 23 header bytes (length size 4) and arrays PPS, VPS, SEI, SPS (out of order).
    fn hvcc() -> Bytes {
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
    fn hevc_record_and_keyframe() {
        let c = parse_hvcc(&hvcc()).unwrap();
        assert_eq!((c.codec, c.nal_length_size), (Codec::H265, 4));
        assert_eq!(
            c.parameter_sets,
            [
                &[0x40, 0x01, 0x0C][..],
                &[0x42, 0x01, 0x01],
                &[0x44, 0x01, 0xC1]
            ]
        );
        // IDR_W_RADL (19): header 0x26 0x01.
        let payload = [0, 0, 0, 3, 0x26, 0x01, 0xAF];
        let mut out = Vec::new();
        assert!(avcc_to_annexb(&c, &payload, false, &mut out).unwrap());
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x46, 0x01, 0x50, // AUD
                0, 0, 0, 1, 0x40, 0x01, 0x0C, // VPS
                0, 0, 0, 1, 0x42, 0x01, 0x01, // SPS
                0, 0, 0, 1, 0x44, 0x01, 0xC1, // PPS
                0, 0, 0, 1, 0x26, 0x01, 0xAF,
            ]
        );
        // TRAIL_R (1): AUD only.
        let mut out = Vec::new();
        assert!(!avcc_to_annexb(&c, &[0, 0, 0, 2, 0x02, 0x01], false, &mut out).unwrap());
        assert_eq!(out, [0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 0, 1, 0x02, 0x01]);
        // Truncated records are errors.
        let full = hvcc();
        for end in [0, 22, 23, 26, 30] {
            assert!(parse_hvcc(&full.slice(..end)).is_err(), "end {end}");
        }
    }

    #[test]
    fn parameter_set_limit() {
        let mut r = vec![0x01, 0x4D, 0x00, 0x1E, 0xFF, 0xFF]; // 31 SPS
        for _ in 0..31 {
            r.extend_from_slice(&[0, 2, 0x67, 0x00]);
        }
        let c = parse_avcc(&Bytes::from(r)).unwrap();
        assert_eq!(c.parameter_sets.len(), MAX_PARAMETER_SETS);
    }
}
