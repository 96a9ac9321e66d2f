//! H.264 from the hub (AVCC, length-prefixed NAL units) to what str0m's frame writer takes:
//! Annex B access units, with the SPS and PPS of the sequence header put in front of every
//! keyframe so a viewer can start decoding at any keyframe.

use bytes::Bytes;

/// Most NAL units taken from one access unit (a hostile frame cannot make us loop long).
pub const MAX_NAL_UNITS: usize = 256;

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
}
