//! ADTS headers for raw AAC frames (ISO/IEC 13818-7 6.2 / 14496-3 1.A.2).

use flv::codec::{SAMPLE_RATES, parse_audio_specific_config};

use crate::TsError;

/// Length of an ADTS header without CRC.
pub const ADTS_HEADER_LEN: usize = 7;
/// Largest ADTS frame (13-bit frame_length, header included).
pub const MAX_ADTS_FRAME_LEN: usize = 0x1FFF;
/// Largest raw AAC frame that fits one ADTS frame.
pub const MAX_AAC_FRAME_LEN: usize = MAX_ADTS_FRAME_LEN - ADTS_HEADER_LEN;

const WHAT: &str = "AAC AudioSpecificConfig for ADTS";

/// What an ADTS header needs from the AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsConfig {
    /// ADTS profile: audioObjectType - 1 (0 Main, 1 LC, 2 SSR, 3 LTP).
    pub profile: u8,
    /// sampling_frequency_index (0..=12).
    pub sampling_frequency_index: u8,
    /// channel_configuration (1..=7).
    pub channel_config: u8,
}

impl AdtsConfig {
    /// Derives the ADTS fields from an AudioSpecificConfig. Explicitly signalled HE-AAC
    /// (SBR/PS) uses the core object type and core rate (implicit signalling in ADTS).
    /// Object types above 4, explicit frequencies outside the table and channel
    /// configuration 0 (program config element) cannot be expressed in ADTS and are errors.
    pub fn from_audio_specific_config(asc: &[u8]) -> Result<Self, TsError> {
        let parsed = parse_audio_specific_config(asc)?;
        let invalid = |reason| TsError::InvalidConfig { what: WHAT, reason };
        if !(1..=4).contains(&parsed.core_object_type) {
            return Err(invalid("object type cannot be signalled in ADTS"));
        }
        let index = SAMPLE_RATES
            .iter()
            .position(|&r| r == parsed.sample_rate)
            .ok_or(invalid("sampling frequency has no ADTS index"))?;
        if !(1..=7).contains(&parsed.channel_config) {
            return Err(invalid("channel configuration cannot be signalled in ADTS"));
        }
        Ok(Self {
            profile: parsed.core_object_type - 1,
            sampling_frequency_index: index as u8,
            channel_config: parsed.channel_config,
        })
    }

    /// The 7-byte ADTS header (MPEG-4, no CRC, one raw data block) for a raw AAC frame of
    /// `aac_len` bytes.
    pub fn header(&self, aac_len: usize) -> Result<[u8; ADTS_HEADER_LEN], TsError> {
        if aac_len > MAX_AAC_FRAME_LEN {
            return Err(TsError::AacFrameTooLarge {
                len: aac_len,
                max: MAX_AAC_FRAME_LEN,
            });
        }
        let len = (aac_len + ADTS_HEADER_LEN) as u16;
        let ch = self.channel_config & 0x07;
        Ok([
            0xFF,
            // syncword low nibble, ID 0 (MPEG-4), layer 00, protection_absent 1.
            0xF1,
            ((self.profile & 0x03) << 6)
                | ((self.sampling_frequency_index & 0x0F) << 2)
                | (ch >> 2),
            ((ch & 0x03) << 6) | ((len >> 11) as u8 & 0x03),
            (len >> 3) as u8,
            // frame_length low 3 bits, adts_buffer_fullness 0x7FF (VBR).
            ((len as u8 & 0x07) << 5) | 0x1F,
            // buffer fullness low 6 bits, number_of_raw_data_blocks_in_frame 0.
            0xFC,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_48k_stereo() {
        // AudioSpecificConfig 0x11 0x90: object type 2 (LC), index 3 (48 kHz), 2 channels.
        let c = AdtsConfig::from_audio_specific_config(&[0x11, 0x90]).unwrap();
        assert_eq!(
            c,
            AdtsConfig {
                profile: 1,
                sampling_frequency_index: 3,
                channel_config: 2
            }
        );
        let h = c.header(100).unwrap();
        assert_eq!(h, [0xFF, 0xF1, 0x4C, 0x80, 0x0D, 0x7F, 0xFC]);
        // Decode the fields back.
        assert_eq!(u16::from_be_bytes([h[0], h[1]]) >> 4, 0xFFF);
        assert_eq!(h[1] & 0x01, 1, "protection_absent");
        assert_eq!(h[2] >> 6, 1);
        assert_eq!((h[2] >> 2) & 0x0F, 3);
        assert_eq!(((h[2] & 1) << 2) | (h[3] >> 6), 2);
        let frame_len =
            (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        assert_eq!(frame_len, 107);
        assert_eq!(h[6] & 0x03, 0, "one raw data block");
    }

    #[test]
    fn largest_frame_and_limits() {
        let c = AdtsConfig::from_audio_specific_config(&[0x12, 0x10]).unwrap(); // LC 44.1k stereo
        assert_eq!(c.sampling_frequency_index, 4);
        let h = c.header(MAX_AAC_FRAME_LEN).unwrap();
        assert_eq!((h[3] & 0x03, h[4], h[5] >> 5), (0x03, 0xFF, 0x07));
        assert_eq!(
            c.header(MAX_AAC_FRAME_LEN + 1),
            Err(TsError::AacFrameTooLarge {
                len: MAX_AAC_FRAME_LEN + 1,
                max: MAX_AAC_FRAME_LEN
            })
        );
    }

    #[test]
    fn unsupported_configs() {
        // Channel configuration 0 (PCE): object 2, index 3, channels 0.
        assert!(matches!(
            AdtsConfig::from_audio_specific_config(&[0x11, 0x80]),
            Err(TsError::InvalidConfig { .. })
        ));
        // Object type 0 is rejected by the parser; empty input is truncated.
        assert!(matches!(
            AdtsConfig::from_audio_specific_config(&[]),
            Err(TsError::AudioConfig(_))
        ));
        // HE-AAC explicit (type 5, index 6 = 24 kHz core, 2 ch, ext index 3, core type 2).
        // Bits: 00101 0110 0010 0011 00010 -> 0x2B 0x11 0x88
        let c = AdtsConfig::from_audio_specific_config(&[0x2B, 0x11, 0x88]).unwrap();
        assert_eq!(
            (c.profile, c.sampling_frequency_index, c.channel_config),
            (1, 6, 2)
        );
    }
}
