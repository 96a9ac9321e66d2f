//! H.264 both ways between the hub and str0m:
//!
//! - [`AnnexB`] (WHEP): hub AVCC (length-prefixed NAL units) to the Annex B access units
//!   str0m's frame writer takes, with the SPS and PPS of the sequence header put in front of
//!   every keyframe so a viewer can start decoding at any keyframe.
//! - [`Avcc`] (WHIP): the Annex B access units str0m depacketizes to hub AVCC (4-byte
//!   lengths), with an AVCDecoderConfigurationRecord built from the in-band SPS/PPS.

use bytes::Bytes;

/// Most NAL units taken from one access unit (a hostile frame cannot make us loop long).
pub const MAX_NAL_UNITS: usize = 256;

/// Largest Annex B access unit converted for the hub (a 4K intra frame fits easily).
pub const MAX_ACCESS_UNIT_BYTES: usize = 4 * 1024 * 1024;
/// Largest SPS or PPS put into a configuration record (real ones are tens of bytes; the
/// record's 16-bit lengths would allow 64 KiB).
pub const MAX_PARAM_SET_BYTES: usize = 1024;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Parameter sets of the current sequence header.
#[derive(Debug, Clone, Default)]
pub(crate) struct AnnexB {
    /// Bytes of the NAL length prefix (1, 2 or 4).
    nal_length_size: usize,
    /// `00 00 00 01 SPS 00 00 00 01 PPS`, put before each keyframe.
    params: Vec<u8>,
}

impl AnnexB {
    /// Takes an AVCDecoderConfigurationRecord; false (state unchanged) if it is malformed.
    pub(crate) fn set_config(&mut self, record: &Bytes) -> bool {
        let Ok(rec) = flv::codec::parse_avc_decoder_config(record) else {
            return false;
        };
        let size = usize::from(rec.nal_length_size);
        if !matches!(size, 1 | 2 | 4) {
            return false;
        }
        let mut params =
            Vec::with_capacity(rec.sps.len() + 8 + rec.pps.as_ref().map_or(0, |p| p.len()));
        params.extend_from_slice(&START_CODE);
        params.extend_from_slice(&rec.sps);
        if let Some(pps) = &rec.pps {
            params.extend_from_slice(&START_CODE);
            params.extend_from_slice(pps);
        }
        self.nal_length_size = size;
        self.params = params;
        true
    }

    /// True once a valid sequence header was seen.
    pub(crate) fn ready(&self) -> bool {
        self.nal_length_size != 0
    }

    /// Converts one AVCC access unit to Annex B; `None` if it is malformed or empty (a
    /// truncated length, too many NAL units) or no sequence header was seen yet.
    pub(crate) fn convert(&self, avcc: &[u8], keyframe: bool) -> Option<Vec<u8>> {
        if !self.ready() {
            return None;
        }
        let mut out = Vec::with_capacity(avcc.len() + self.params.len() + 16);
        if keyframe {
            out.extend_from_slice(&self.params);
        }
        let mut rest = avcc;
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
            let Some(&header) = nal.first() else {
                continue;
            };
            // Parameter sets and AUDs in band are dropped: ours go before each keyframe.
            if keyframe && matches!(header & 0x1f, 7..=9) {
                continue;
            }
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
        (out.len() > if keyframe { self.params.len() } else { 0 }).then_some(out)
    }
}

/// The NAL units of an Annex B byte stream (3- or 4-byte start codes), without their start
/// codes and trailing zero bytes; `None` if there are more than [`MAX_NAL_UNITS`].
pub(crate) fn split_annexb(data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut units = Vec::new();
    // Start of the current NAL unit's payload, once a start code was seen.
    let mut start: Option<usize> = None;
    let mut i = 0;
    while let Some(w) = data.get(i..i + 3) {
        if w == [0, 0, 1] {
            if let Some(s) = start {
                push_unit(&mut units, data.get(s..i))?;
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_unit(&mut units, data.get(s..))?;
    }
    Some(units)
}

/// Adds one NAL unit (trailing zeros, i.e. the next 4-byte start code's first byte, cut).
fn push_unit<'a>(units: &mut Vec<&'a [u8]>, unit: Option<&'a [u8]>) -> Option<()> {
    let unit = unit.unwrap_or_default();
    let end = unit.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
    let unit = unit.get(..end).unwrap_or_default();
    if unit.is_empty() {
        return Some(());
    }
    if units.len() >= MAX_NAL_UNITS {
        return None;
    }
    units.push(unit);
    Some(())
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) with one SPS and one PPS and
/// 4-byte NAL lengths; `None` if a parameter set is too short or longer than
/// [`MAX_PARAM_SET_BYTES`].
pub(crate) fn config_record(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    if sps.len() < 4
        || pps.is_empty()
        || sps.len() > MAX_PARAM_SET_BYTES
        || pps.len() > MAX_PARAM_SET_BYTES
    {
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

/// One access unit converted for the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AvccUnit {
    /// A new configuration record, when the SPS/PPS appeared or changed with this unit: it
    /// goes to the hub as a sequence header before the coded frame.
    pub(crate) config: Option<Vec<u8>>,
    /// The coded slices with 4-byte lengths (parameter sets, AUD and SEI dropped).
    pub(crate) data: Vec<u8>,
    /// The unit contains an IDR slice.
    pub(crate) keyframe: bool,
}

/// Annex B (what str0m depacketizes from WebRTC) to AVCC for the hub.
#[derive(Debug, Clone, Default)]
pub(crate) struct Avcc {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// The configuration record last handed out.
    config: Option<Vec<u8>>,
}

impl Avcc {
    /// Converts one access unit. `None` when it is malformed (too big, too many NAL units),
    /// carries no slice, or no SPS/PPS were seen yet (a decoder could not use it).
    pub(crate) fn convert(&mut self, annexb: &[u8]) -> Option<AvccUnit> {
        if annexb.len() > MAX_ACCESS_UNIT_BYTES {
            return None;
        }
        let units = split_annexb(annexb)?;
        let mut data = Vec::with_capacity(annexb.len() + 4);
        let mut keyframe = false;
        for nal in units {
            let Some(&header) = nal.first() else { continue };
            match header & 0x1f {
                7 if nal.len() <= MAX_PARAM_SET_BYTES => self.sps = Some(nal.to_vec()),
                8 if nal.len() <= MAX_PARAM_SET_BYTES => self.pps = Some(nal.to_vec()),
                t @ 1..=5 => {
                    keyframe |= t == 5;
                    data.extend_from_slice(&u32::try_from(nal.len()).ok()?.to_be_bytes());
                    data.extend_from_slice(nal);
                }
                // AUD, SEI, end of sequence/stream, filler, ...: not needed by players.
                _ => {}
            }
        }
        let record = config_record(self.sps.as_deref()?, self.pps.as_deref()?)?;
        if data.is_empty() {
            return None;
        }
        let config = (self.config.as_ref() != Some(&record)).then(|| {
            self.config = Some(record.clone());
            record
        });
        Some(AvccUnit {
            config,
            data,
            keyframe,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AVCDecoderConfigurationRecord: version 1, profile 66, compat 0xC0, level 30,
    /// 4-byte lengths, one SPS `67 42 C0 1E`, one PPS `68 CE 3C 80`.
    const RECORD: &[u8] = &[
        1, 66, 0xC0, 30, 0xFF, 0xE1, 0, 4, 0x67, 0x42, 0xC0, 0x1E, 1, 0, 4, 0x68, 0xCE, 0x3C, 0x80,
    ];

    fn annexb() -> AnnexB {
        let mut a = AnnexB::default();
        assert!(a.set_config(&Bytes::from_static(RECORD)));
        a
    }

    #[test]
    fn keyframe_gets_parameter_sets_and_start_codes() {
        // IDR slice of 3 bytes and an in-band SPS (dropped: ours is prepended).
        let avcc = [0, 0, 0, 3, 0x65, 0x88, 0x84, 0, 0, 0, 2, 0x67, 0x42];
        let out = annexb().convert(&avcc, true).unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0x3C, 0x80, 0, 0, 0, 1,
                0x65, 0x88, 0x84
            ]
        );
    }

    #[test]
    fn delta_frame_is_converted_without_parameter_sets() {
        let avcc = [0, 0, 0, 2, 0x41, 0x9A, 0, 0, 0, 1, 0x01];
        let out = annexb().convert(&avcc, false).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x41, 0x9A, 0, 0, 0, 1, 0x01]);
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() {
        let a = annexb();
        assert!(
            a.convert(&[0, 0, 0, 9, 0x41], false).is_none(),
            "length past end"
        );
        assert!(a.convert(&[0, 0], false).is_none(), "truncated length");
        assert!(a.convert(&[], false).is_none(), "empty");
        assert!(
            AnnexB::default()
                .convert(&[0, 0, 0, 1, 0x41], false)
                .is_none(),
            "no config"
        );
        let many: Vec<u8> = std::iter::repeat_n([0u8, 0, 0, 1, 0x41], MAX_NAL_UNITS + 1)
            .flatten()
            .collect();
        assert!(a.convert(&many, false).is_none(), "too many NAL units");
        let mut b = AnnexB::default();
        assert!(!b.set_config(&Bytes::from_static(&[1, 66])));
        assert!(!b.ready());
    }

    #[test]
    fn demo_clip_converts_every_frame() {
        let mut a = AnnexB::default();
        let (mut keys, mut frames) = (0, 0);
        for tag in flv::read_all_tags(crate::DEMO_FLV).unwrap() {
            let f = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body).unwrap();
            if f.kind != media::MediaKind::Video {
                continue;
            }
            if f.role == media::FrameRole::SequenceHeader {
                assert!(a.set_config(&f.payload()));
                continue;
            }
            if f.role != media::FrameRole::Coded {
                continue;
            }
            let out = a.convert(&f.payload(), f.keyframe).unwrap();
            assert_eq!(&out[..4], &START_CODE);
            if f.keyframe {
                keys += 1;
                assert_eq!(out[4] & 0x1f, 7, "SPS first on a keyframe");
            }
            frames += 1;
        }
        // 4 s at 25 fps with a 1 s GOP.
        assert_eq!((keys, frames), (4, 100));
    }

    #[test]
    fn annexb_splits_on_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88, 0,
        ];
        let units = split_annexb(&data).unwrap();
        assert_eq!(units, vec![&[0x67, 0x42][..], &[0x68, 0xCE], &[0x65, 0x88]]);
        assert_eq!(split_annexb(&[1, 2, 3]).unwrap(), Vec::<&[u8]>::new());
        assert_eq!(split_annexb(&[]).unwrap(), Vec::<&[u8]>::new());
        let many: Vec<u8> = std::iter::repeat_n([0u8, 0, 1, 0x41], MAX_NAL_UNITS + 1)
            .flatten()
            .collect();
        assert!(split_annexb(&many).is_none(), "too many NAL units");
    }

    #[test]
    fn config_record_matches_the_spec_layout_and_parses() {
        let rec = config_record(&[0x67, 0x42, 0xC0, 0x1E], &[0x68, 0xCE, 0x3C, 0x80]).unwrap();
        assert_eq!(rec, RECORD);
        let parsed = flv::codec::parse_avc_decoder_config(&Bytes::from(rec)).unwrap();
        assert_eq!(parsed.nal_length_size, 4);
        assert!(config_record(&[0x67, 0x42], &[0x68]).is_none(), "short SPS");
        assert!(config_record(&[0x67; MAX_PARAM_SET_BYTES + 1], &[0x68]).is_none());
    }

    #[test]
    fn annexb_keyframe_becomes_config_and_avcc() {
        let mut a = Avcc::default();
        // AUD, SPS, PPS, SEI, IDR slice.
        let au = [
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE,
            0x3C, 0x80, 0, 0, 1, 0x06, 0x05, 0, 0, 1, 0x65, 0x88, 0x84,
        ];
        let u = a.convert(&au).unwrap();
        assert_eq!(u.config.as_deref(), Some(RECORD));
        assert!(u.keyframe);
        assert_eq!(u.data, [0, 0, 0, 3, 0x65, 0x88, 0x84]);
        // Same parameter sets again: no new sequence header.
        assert_eq!(a.convert(&au).unwrap().config, None);
        // A delta frame.
        let u = a.convert(&[0, 0, 1, 0x41, 0x9A]).unwrap();
        assert!(!u.keyframe && u.config.is_none());
        assert_eq!(u.data, [0, 0, 0, 2, 0x41, 0x9A]);
        // New SPS: a new record.
        let au2 = [
            0, 0, 1, 0x67, 0x64, 0, 0x1F, 0, 0, 1, 0x68, 0xCE, 0, 0, 1, 0x65, 1,
        ];
        let rec = a.convert(&au2).unwrap().config.unwrap();
        assert_eq!(&rec[..4], &[1, 0x64, 0, 0x1F]);
    }

    #[test]
    fn annexb_without_parameter_sets_or_slices_is_refused() {
        let mut a = Avcc::default();
        assert!(
            a.convert(&[0, 0, 1, 0x65, 0x88]).is_none(),
            "IDR before SPS/PPS"
        );
        assert!(
            a.convert(&[0, 0, 1, 0x67, 0x42, 0xC0, 0x1E]).is_none(),
            "no slice"
        );
        assert!(
            a.convert(&[0, 0, 1, 0x68, 0xCE]).is_none(),
            "still no slice"
        );
        assert!(
            a.convert(&[0, 0, 1, 0x41, 0x9A]).is_some(),
            "SPS and PPS now known"
        );
        assert!(a.convert(&[7, 7, 7]).is_none(), "garbage");
        assert!(
            a.convert(&vec![0; MAX_ACCESS_UNIT_BYTES + 1]).is_none(),
            "too big"
        );
    }

    #[test]
    fn demo_clip_round_trips_avcc_annexb_avcc() {
        let mut to_annexb = AnnexB::default();
        let mut back = Avcc::default();
        let mut record = None;
        let mut frames = 0;
        for tag in flv::read_all_tags(crate::DEMO_FLV).unwrap() {
            let f = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body).unwrap();
            if f.kind != media::MediaKind::Video {
                continue;
            }
            if f.role == media::FrameRole::SequenceHeader {
                assert!(to_annexb.set_config(&f.payload()));
                record = Some(f.payload());
                continue;
            }
            if f.role != media::FrameRole::Coded {
                continue;
            }
            let annexb = to_annexb.convert(&f.payload(), f.keyframe).unwrap();
            let u = back.convert(&annexb).unwrap();
            assert_eq!(u.keyframe, f.keyframe, "frame {frames}");
            // The coded slices come back byte for byte (the clip's SEI/AUD are dropped).
            let want: Vec<u8> = slices_of(&f.payload());
            assert_eq!(u.data, want, "frame {frames}");
            if frames == 0 {
                let rec =
                    flv::codec::parse_avc_decoder_config(&Bytes::from(u.config.unwrap())).unwrap();
                let orig = flv::codec::parse_avc_decoder_config(record.as_ref().unwrap()).unwrap();
                assert_eq!((rec.sps, rec.pps), (orig.sps, orig.pps));
            } else {
                assert!(u.config.is_none());
            }
            frames += 1;
        }
        assert_eq!(frames, 100);
    }

    /// The slice NAL units (types 1..=5) of a 4-byte-length AVCC frame, re-serialised.
    fn slices_of(avcc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = avcc;
        while rest.len() >= 4 {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let nal = &rest[4..4 + len];
            if matches!(nal[0] & 0x1f, 1..=5) {
                out.extend_from_slice(&rest[..4 + len]);
            }
            rest = &rest[4 + len..];
        }
        out
    }
}
