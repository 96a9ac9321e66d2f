//! H.265 both ways between the hub and str0m (as [`super::h264`] does for H.264, with the
//! same shared pieces):
//!
//! - [`Hvcc`] (WHIP): the Annex B access units str0m depacketizes (RFC 7798) to
//!   length-prefixed NAL units (4-byte lengths) for Enhanced RTMP `hvc1` CodedFrames, with a
//!   HEVCDecoderConfigurationRecord ([`media::hevc::decoder_config_record`]) built from the
//!   in-band VPS/SPS/PPS. Keyframes are access units with an IRAP picture (NAL types
//!   16..=23).
//! - [`HevcAnnexB`] (WHEP): hub `hvc1` frames back to Annex B with the record's parameter
//!   sets before every keyframe.

use std::sync::Arc;

use bytes::Bytes;
use media::hevc::{self, NAL_AUD, NAL_PPS, NAL_SPS, NAL_VPS};

use crate::h264::{AvccUnit, InBand, ParamSets, annexb_params, to_annexb};

/// The SPS parser the server's fuzzing used from here; it lives in [`media::hevc`].
pub use media::hevc::parse_sps;

/// One access unit converted for the hub: the same as H.264's.
pub type HvccUnit = AvccUnit;

/// Annex B (what str0m depacketizes) to length-prefixed H.265 for the hub.
#[derive(Debug, Clone, Default)]
pub struct Hvcc {
    /// VPS, SPS and PPS.
    sets: ParamSets<3>,
}

impl Hvcc {
    /// Converts one access unit. `None` when it is malformed, has no picture, or no
    /// VPS/SPS/PPS were seen yet.
    pub fn convert(&mut self, annexb: &[u8]) -> Option<HvccUnit> {
        self.sets.convert(
            annexb,
            |nal| match hevc::nal_type(nal) {
                Some(NAL_VPS) => InBand::ParamSet(0),
                Some(NAL_SPS) => InBand::ParamSet(1),
                Some(NAL_PPS) => InBand::ParamSet(2),
                Some(t @ 0..=31) => InBand::Slice {
                    key: hevc::is_irap(t),
                },
                _ => InBand::Drop,
            },
            |sets| match sets {
                [vps, sps, pps] => hevc::decoder_config_record(vps, sps, pps),
                _ => None,
            },
        )
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
        let Ok(rec) = hevc::parse_hevc_decoder_config(&Bytes::copy_from_slice(record)) else {
            return false;
        };
        self.nal_length_size = usize::from(rec.nal_length_size);
        self.params = annexb_params(rec.parameter_sets());
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
        // In-band parameter sets and AUDs are dropped on keyframes: ours go first.
        to_annexb(data, self.nal_length_size, keyframe, &self.params, |nal| {
            matches!(hevc::nal_type(nal), Some(NAL_VPS..=NAL_AUD))
        })
    }
}

#[cfg(test)]
mod tests {
    use media::fixtures::{HEVC_PPS as PPS, HEVC_VPS as VPS, hevc_sps};
    use media::nal::START_CODE;

    use super::*;

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| START_CODE.iter().chain(n.iter()).copied())
            .collect()
    }

    #[test]
    fn access_units_both_ways() {
        let sps = hevc_sps(640, 360, None);
        let idr: &[u8] = &[0x26, 0x01, 0xAF, 0x10]; // IDR_W_RADL (19)
        let trail: &[u8] = &[0x02, 0x01, 0xD0]; // TRAIL_R (1)
        let aud: &[u8] = &[0x46, 0x01, 0x50];
        let mut h = Hvcc::default();
        assert_eq!(h.convert(&annexb(&[trail])), None, "no parameter sets yet");
        let u = h.convert(&annexb(&[aud, VPS, &sps, PPS, idr])).unwrap();
        assert!(u.keyframe);
        assert_eq!(u.data, [0, 0, 0, 4, 0x26, 0x01, 0xAF, 0x10]);
        let record = u.config.unwrap();
        assert_eq!(
            Some(&record),
            hevc::decoder_config_record(VPS, &sps, PPS).as_ref()
        );
        let u2 = h.convert(&annexb(&[trail])).unwrap();
        assert_eq!((u2.keyframe, u2.config), (false, None));
        let mut out = HevcAnnexB::default();
        assert_eq!(out.convert(&u.data, true), None, "no record yet");
        assert!(out.set_config(&record));
        assert_eq!(out.inputs().0, 4);
        let key = out.convert(&u.data, true).unwrap();
        assert_eq!(key, annexb(&[VPS, &sps, PPS, idr]));
        assert_eq!(out.convert(&u2.data, false).unwrap(), annexb(&[trail]));
        // In-band parameter sets and AUDs of a keyframe give way to the record's.
        let mut in_band = Vec::new();
        for nal in [aud, VPS, idr] {
            in_band.extend_from_slice(&u32::try_from(nal.len()).unwrap().to_be_bytes());
            in_band.extend_from_slice(nal);
        }
        assert_eq!(out.convert(&in_band, true).unwrap(), key);
    }

    #[test]
    fn malformed_input_is_refused() {
        let sps = hevc_sps(640, 360, None);
        let rec = hevc::decoder_config_record(VPS, &sps, PPS).unwrap();
        let mut out = HevcAnnexB::default();
        assert!(!out.set_config(&[2, 0, 0]));
        assert!(!out.set_config(&rec[..rec.len() - 1]), "truncated array");
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
            None,
            "an SPS that does not parse makes no record"
        );
    }
}
