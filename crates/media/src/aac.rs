//! AAC: the AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), the body of an AAC sequence
//! header, and the ADTS header (ISO/IEC 13818-7 6.2 / 14496-3 1.A.2) that carries raw AAC
//! frames in MPEG-TS.

use crate::MediaError;
use crate::bits::BitReader;

/// Sampling frequencies by samplingFrequencyIndex (0..=12); 13 and 14 are reserved and 15
/// means an explicit 24-bit frequency follows.
pub const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// What an AudioSpecificConfig says, as far as stream info needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// audioObjectType as signalled first (2 = AAC LC, 5 = SBR / HE-AAC, 29 = PS / HE-AACv2, ...).
    pub object_type: u8,
    /// The core codec's object type: the one after the SBR/PS extension when explicitly
    /// signalled that way, else equal to [`object_type`](Self::object_type).
    pub core_object_type: u8,
    /// Core sampling rate in Hz.
    pub sample_rate: u32,
    /// channelConfiguration (0 = defined by a program config element).
    pub channel_config: u8,
    /// Output sampling rate of the SBR extension, for explicitly signalled HE-AAC.
    pub extension_sample_rate: Option<u32>,
}

impl AudioSpecificConfig {
    /// Number of output channels for the channel configuration, if it defines one.
    pub fn channels(&self) -> Option<u8> {
        match self.channel_config {
            1..=6 => Some(self.channel_config),
            7 | 12 | 14 => Some(8),
            11 => Some(7),
            13 => Some(24),
            _ => None,
        }
    }
}

/// Parses the start of an AudioSpecificConfig (object type, frequency, channels and the
/// explicit SBR/PS extension header). Trailing GASpecificConfig and extension bits are
/// ignored.
pub fn parse_audio_specific_config(data: &[u8]) -> Result<AudioSpecificConfig, MediaError> {
    let mut r = BitReader::new(data, "AAC AudioSpecificConfig");
    let object_type = object_type(&mut r)?;
    let sample_rate = sampling_frequency(&mut r)?;
    let channel_config = r.bits_u8(4)?;
    let (mut core_object_type, mut extension_sample_rate) = (object_type, None);
    if object_type == 5 || object_type == 29 {
        extension_sample_rate = Some(sampling_frequency(&mut r)?);
        core_object_type = self::object_type(&mut r)?;
    }
    Ok(AudioSpecificConfig {
        object_type,
        core_object_type,
        sample_rate,
        channel_config,
        extension_sample_rate,
    })
}

/// GetAudioObjectType(): 5 bits, or 32 + 6 more bits when the 5 bits are 31.
fn object_type(r: &mut BitReader<'_>) -> Result<u8, MediaError> {
    let value = match r.bits_u8(5)? {
        31 => 32 + r.bits_u8(6)?,
        value => value,
    };
    if value == 0 {
        return Err(r.error("audioObjectType 0 (null)"));
    }
    Ok(value)
}

/// samplingFrequencyIndex and, for index 15, the explicit 24-bit frequency.
fn sampling_frequency(r: &mut BitReader<'_>) -> Result<u32, MediaError> {
    let index = r.bits(4)?;
    if index == 15 {
        let rate = r.bits(24)?;
        if rate == 0 {
            return Err(r.error("explicit sampling frequency 0"));
        }
        return Ok(rate);
    }
    usize::try_from(index)
        .ok()
        .and_then(|i| SAMPLE_RATES.get(i).copied())
        .ok_or(r.error("reserved samplingFrequencyIndex"))
}

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
    pub fn from_audio_specific_config(asc: &[u8]) -> Result<Self, MediaError> {
        let parsed = parse_audio_specific_config(asc)?;
        let invalid = |reason| MediaError::InvalidCodecConfig { what: WHAT, reason };
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
    pub fn header(&self, aac_len: usize) -> Result<[u8; ADTS_HEADER_LEN], MediaError> {
        if aac_len > MAX_AAC_FRAME_LEN {
            return Err(MediaError::AacFrameTooLarge {
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

/// One ADTS header as read from a stream (MPEG-TS, raw `.aac`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// The fields an AudioSpecificConfig is made from.
    pub config: AdtsConfig,
    /// Header length: 7, or 9 with the CRC.
    pub header_len: usize,
    /// The whole frame's length, header included (`frame_length`).
    pub frame_len: usize,
    /// Raw data blocks in the frame (`number_of_raw_data_blocks_in_frame` + 1), each 1024
    /// samples.
    pub blocks: u8,
}

const ADTS_WHAT: &str = "ADTS header";

impl AdtsHeader {
    /// Reads the ADTS header at the start of `data`. Errors on a missing syncword, a
    /// reserved sampling frequency index, channel configuration 0 (a program config element
    /// ADTS readers here do not parse) and a frame length shorter than its header.
    pub fn parse(data: &[u8]) -> Result<Self, MediaError> {
        let invalid = |reason| MediaError::InvalidCodecConfig {
            what: ADTS_WHAT,
            reason,
        };
        let h: &[u8; ADTS_HEADER_LEN] = data
            .get(..ADTS_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(invalid("truncated"))?;
        if h[0] != 0xFF || h[1] & 0xF6 != 0xF0 {
            return Err(invalid("no syncword"));
        }
        let protection_absent = h[1] & 0x01 == 1;
        let profile = h[2] >> 6;
        let sampling_frequency_index = (h[2] >> 2) & 0x0F;
        if usize::from(sampling_frequency_index) >= SAMPLE_RATES.len() {
            return Err(invalid("reserved sampling frequency index"));
        }
        let channel_config = ((h[2] & 0x01) << 2) | (h[3] >> 6);
        if channel_config == 0 {
            return Err(invalid("channel configuration 0 (program config element)"));
        }
        let frame_len =
            (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let header_len = if protection_absent { 7 } else { 9 };
        if frame_len <= header_len {
            return Err(invalid("frame length shorter than the header"));
        }
        Ok(Self {
            config: AdtsConfig {
                profile,
                sampling_frequency_index,
                channel_config,
            },
            header_len,
            frame_len,
            blocks: (h[6] & 0x03) + 1,
        })
    }

    /// The sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATES[usize::from(self.config.sampling_frequency_index)]
    }
}

impl AdtsConfig {
    /// The two-byte AudioSpecificConfig these fields describe (object type = profile + 1).
    pub fn audio_specific_config(&self) -> [u8; 2] {
        let aot = u16::from(self.profile) + 1;
        let v = (aot << 11)
            | (u16::from(self.sampling_frequency_index & 0x0F) << 7)
            | (u16::from(self.channel_config & 0x0F) << 3);
        v.to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asc(
        object_type: u8,
        core_object_type: u8,
        sample_rate: u32,
        channel_config: u8,
        extension_sample_rate: Option<u32>,
    ) -> AudioSpecificConfig {
        AudioSpecificConfig {
            object_type,
            core_object_type,
            sample_rate,
            channel_config,
            extension_sample_rate,
        }
    }

    #[test]
    fn ffmpeg_lc() {
        // ffmpeg -c:a aac -ar 48000 -ac 2 (demo fixture), with the trailing 0x2b7 sync extension.
        let config = parse_audio_specific_config(&[0x11, 0x90, 0x56, 0xE5, 0x00]).unwrap();
        assert_eq!(config, asc(2, 2, 48_000, 2, None));
        assert_eq!(config.channels(), Some(2));
        // ffmpeg -c:a aac -ar 44100 -ac 1.
        let config = parse_audio_specific_config(&[0x12, 0x08, 0x56, 0xE5, 0x00]).unwrap();
        assert_eq!(config, asc(2, 2, 44_100, 1, None));
        assert_eq!(config.channels(), Some(1));
    }

    #[test]
    fn hand_built() {
        // HE-AAC: SBR (5), 24 kHz core, stereo, extension 48 kHz, core AAC LC.
        assert_eq!(
            parse_audio_specific_config(&[0x2B, 0x11, 0x88]).unwrap(),
            asc(5, 2, 24_000, 2, Some(48_000))
        );
        // Explicit frequency 44100 (index 15), mono.
        assert_eq!(
            parse_audio_specific_config(&[0x17, 0x80, 0x56, 0x22, 0x08]).unwrap(),
            asc(2, 2, 44_100, 1, None)
        );
        // Escaped object type 42 (USAC), 48 kHz, stereo.
        assert_eq!(
            parse_audio_specific_config(&[0xF9, 0x46, 0x40]).unwrap(),
            asc(42, 42, 48_000, 2, None)
        );
        // PS (29), 48 kHz, mono, explicit 96 kHz extension, core LC.
        assert_eq!(
            parse_audio_specific_config(&[0xE9, 0x8F, 0x80, 0xBB, 0x80, 0x08]).unwrap(),
            asc(29, 2, 48_000, 1, Some(96_000))
        );
        let seven_one = parse_audio_specific_config(&[0x11, 0xB8]).unwrap();
        assert_eq!(
            (seven_one.channel_config, seven_one.channels()),
            (7, Some(8))
        );
        assert_eq!(
            parse_audio_specific_config(&[0x11, 0x80])
                .unwrap()
                .channels(),
            None
        );
    }

    #[test]
    fn bad_configs() {
        assert!(parse_audio_specific_config(&[]).is_err());
        assert!(parse_audio_specific_config(&[0x11]).is_err());
        // Object type 0.
        assert!(parse_audio_specific_config(&[0x01, 0x90]).is_err());
        // Reserved frequency index 13.
        assert!(parse_audio_specific_config(&[0x16, 0x90]).is_err());
        // HE-AAC truncated before the core object type.
        assert!(parse_audio_specific_config(&[0x2B, 0x11]).is_err());
    }

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
            Err(MediaError::AacFrameTooLarge {
                len: MAX_AAC_FRAME_LEN + 1,
                max: MAX_AAC_FRAME_LEN
            })
        );
    }

    #[test]
    fn unsupported_configs() {
        // Channel configuration 0 (PCE): object 2, index 3, channels 0.
        assert_eq!(
            AdtsConfig::from_audio_specific_config(&[0x11, 0x80]),
            Err(MediaError::InvalidCodecConfig {
                what: WHAT,
                reason: "channel configuration cannot be signalled in ADTS"
            })
        );
        // Object type 0 is rejected by the parser; empty input is truncated.
        assert_eq!(
            AdtsConfig::from_audio_specific_config(&[]),
            Err(MediaError::InvalidCodecConfig {
                what: "AAC AudioSpecificConfig",
                reason: "truncated"
            })
        );
        // HE-AAC explicit (type 5, index 6 = 24 kHz core, 2 ch, ext index 3, core type 2).
        // Bits: 00101 0110 0010 0011 00010 -> 0x2B 0x11 0x88
        let c = AdtsConfig::from_audio_specific_config(&[0x2B, 0x11, 0x88]).unwrap();
        assert_eq!(
            (c.profile, c.sampling_frequency_index, c.channel_config),
            (1, 6, 2)
        );
    }

    #[test]
    fn adts_headers_round_trip_through_the_writer() {
        let cfg = AdtsConfig::from_audio_specific_config(&[0x12, 0x10]).unwrap(); // LC 44.1k stereo
        let h = cfg.header(300).unwrap();
        let parsed = AdtsHeader::parse(&h).unwrap();
        assert_eq!(parsed.config, cfg);
        assert_eq!(parsed.header_len, 7);
        assert_eq!(parsed.frame_len, 307);
        assert_eq!(parsed.blocks, 1);
        assert_eq!(parsed.sample_rate(), 44_100);
        assert_eq!(cfg.audio_specific_config(), [0x12, 0x10]);
    }

    #[test]
    fn adts_garbage_is_refused() {
        assert!(AdtsHeader::parse(&[0xFF, 0xF1, 0x50]).is_err(), "truncated");
        assert!(
            AdtsHeader::parse(&[0, 0, 0, 0, 0, 0, 0]).is_err(),
            "no syncword"
        );
        let mut h = AdtsConfig::from_audio_specific_config(&[0x12, 0x10])
            .unwrap()
            .header(0)
            .unwrap();
        h[1] &= 0xFE; // CRC present: a 7-byte frame is shorter than its 9-byte header
        assert!(AdtsHeader::parse(&h).is_err());
        h[1] |= 1;
        h[2] |= 0x3C; // sampling frequency index 15
        assert!(AdtsHeader::parse(&h).is_err());
    }
}
