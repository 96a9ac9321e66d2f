//! AAC AudioSpecificConfig.

use super::bits::BitReader;
use crate::FlvError;

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
pub fn parse_audio_specific_config(data: &[u8]) -> Result<AudioSpecificConfig, FlvError> {
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
fn object_type(r: &mut BitReader<'_>) -> Result<u8, FlvError> {
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
fn sampling_frequency(r: &mut BitReader<'_>) -> Result<u32, FlvError> {
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
}
