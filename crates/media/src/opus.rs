//! Opus: the identification header (RFC 7845 section 5.1), read and written, and turned
//! into an ISOBMFF `dOps` box payload ("Encapsulation of Opus in ISO Base Media File Format"
//! 4.3.2), and packet durations from the TOC byte (RFC 6716 section 3.1).

use bytes::{BufMut, BytesMut};

use crate::MediaError;

/// Opus always runs at 48 kHz in ISOBMFF: the track timescale and the unit of durations.
pub const OPUS_RATE: u32 = 48_000;

/// The longest legal Opus packet: 120 ms at 48 kHz (RFC 6716 section 3.2.5).
pub const MAX_OPUS_PACKET_SAMPLES: u32 = 5_760;

/// Magic signature that starts an identification header.
pub const OPUS_HEAD_MAGIC: &[u8; 8] = b"OpusHead";

/// The fields of an Opus identification header (`OpusHead`) that `dOps` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channel count (1..=255; at most 2 for mapping family 0).
    pub channels: u8,
    /// Samples (at 48 kHz) to discard from the decoder output at the start.
    pub pre_skip: u16,
    /// The encoder's input sample rate in Hz (informational; Opus always decodes at 48 kHz).
    pub input_sample_rate: u32,
    /// Output gain in Q7.8 dB.
    pub output_gain: i16,
    /// Channel mapping family (0: mono or stereo, 1: Vorbis order, 255: undefined).
    pub mapping_family: u8,
    /// Stream count, coupled count and channel mapping, for mapping families other than 0.
    pub mapping: Option<(u8, u8, Vec<u8>)>,
}

impl OpusHead {
    /// Stereo, 48 kHz, no pre-skip: used when a sequence header carries no `OpusHead`.
    pub fn default_stereo() -> Self {
        Self {
            channels: 2,
            pre_skip: 0,
            input_sample_rate: OPUS_RATE,
            output_gain: 0,
            mapping_family: 0,
            mapping: None,
        }
    }

    /// Parses an identification header if `data` starts with `OpusHead`; `Ok(None)` if not.
    pub fn parse(data: &[u8]) -> Result<Option<Self>, MediaError> {
        if !data.starts_with(OPUS_HEAD_MAGIC) {
            return Ok(None);
        }
        let invalid = |reason| MediaError::InvalidCodecConfig {
            what: "OpusHead",
            reason,
        };
        let fixed: &[u8; 19] = data
            .get(..19)
            .and_then(|d| d.try_into().ok())
            .ok_or(invalid("shorter than 19 bytes"))?;
        if fixed[8] & 0xF0 != 0 {
            return Err(invalid("unsupported major version"));
        }
        let channels = fixed[9];
        if channels == 0 {
            return Err(invalid("zero channels"));
        }
        let mapping_family = fixed[18];
        let mapping = if mapping_family == 0 {
            if channels > 2 {
                return Err(invalid("mapping family 0 with more than 2 channels"));
            }
            None
        } else {
            let table = data
                .get(19..21 + usize::from(channels))
                .ok_or(invalid("truncated channel mapping table"))?;
            let (counts, map) = table.split_at(2);
            Some((counts[0], counts[1], map.to_vec()))
        };
        Ok(Some(Self {
            channels,
            pre_skip: u16::from_le_bytes([fixed[10], fixed[11]]),
            input_sample_rate: u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]),
            output_gain: i16::from_le_bytes([fixed[16], fixed[17]]),
            mapping_family,
            mapping,
        }))
    }

    /// The identification header itself (RFC 7845 section 5.1: little-endian, version 1):
    /// what an Enhanced RTMP Opus sequence header carries. [`OpusHead::parse`] reads it back.
    pub fn identification_header(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(21 + usize::from(self.channels));
        out.put_slice(OPUS_HEAD_MAGIC);
        out.put_u8(1);
        out.put_u8(self.channels);
        out.put_u16_le(self.pre_skip);
        out.put_u32_le(self.input_sample_rate);
        out.put_i16_le(self.output_gain);
        out.put_u8(self.mapping_family);
        if let Some((streams, coupled, map)) = &self.mapping {
            out.put_u8(*streams);
            out.put_u8(*coupled);
            out.put_slice(map);
        }
        out
    }

    /// The `dOps` box payload (big-endian, version 0).
    pub fn dops(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(11 + usize::from(self.channels));
        out.put_u8(0);
        out.put_u8(self.channels);
        out.put_u16(self.pre_skip);
        out.put_u32(self.input_sample_rate);
        out.put_i16(self.output_gain);
        out.put_u8(self.mapping_family);
        if let Some((streams, coupled, map)) = &self.mapping {
            out.put_u8(*streams);
            out.put_u8(*coupled);
            out.put_slice(map);
        }
        out
    }
}

/// Duration of one Opus packet in 48 kHz samples, from its TOC byte (and, for frame count
/// code 3, the frame count byte). Errors on an empty packet, a code-3 packet without its
/// count byte or with zero frames, and packets longer than 120 ms.
pub fn opus_packet_duration(packet: &[u8]) -> Result<u32, MediaError> {
    let toc = *packet.first().ok_or(MediaError::InvalidOpusPacket {
        reason: "empty packet",
    })?;
    let config = toc >> 3;
    let frame = match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = packet.get(1).ok_or(MediaError::InvalidOpusPacket {
                reason: "code 3 packet without a frame count byte",
            })? & 0x3F;
            if count == 0 {
                return Err(MediaError::InvalidOpusPacket {
                    reason: "code 3 packet with zero frames",
                });
            }
            u32::from(count)
        }
    };
    let total = frame * frames;
    if total > MAX_OPUS_PACKET_SAMPLES {
        return Err(MediaError::InvalidOpusPacket {
            reason: "packet longer than 120 ms",
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_durations() {
        let toc = |config: u8, code: u8| (config << 3) | code;
        // SILK NB 10/20/40/60 ms, one frame.
        for (config, samples) in [(0, 480), (1, 960), (2, 1920), (3, 2880), (11, 2880)] {
            assert_eq!(opus_packet_duration(&[toc(config, 0)]).unwrap(), samples);
        }
        // Hybrid 10/20 ms.
        assert_eq!(opus_packet_duration(&[toc(12, 0)]).unwrap(), 480);
        assert_eq!(opus_packet_duration(&[toc(15, 0)]).unwrap(), 960);
        // CELT 2.5/5/10/20 ms.
        for (config, samples) in [(16, 120), (17, 240), (18, 480), (31, 960)] {
            assert_eq!(opus_packet_duration(&[toc(config, 0)]).unwrap(), samples);
        }
        // Stereo flag does not matter; codes 1 and 2 are two frames.
        assert_eq!(opus_packet_duration(&[toc(31, 0) | 0x04]).unwrap(), 960);
        assert_eq!(opus_packet_duration(&[toc(31, 1)]).unwrap(), 1920);
        assert_eq!(opus_packet_duration(&[toc(31, 2), 0, 0]).unwrap(), 1920);
        // Code 3: the count byte's low 6 bits (VBR and padding flags ignored).
        assert_eq!(opus_packet_duration(&[toc(16, 3), 0xC0 | 6]).unwrap(), 720);
        assert_eq!(opus_packet_duration(&[toc(31, 3), 6]).unwrap(), 5760);
    }

    #[test]
    fn toc_errors() {
        assert!(opus_packet_duration(&[]).is_err());
        assert!(opus_packet_duration(&[(31 << 3) | 3]).is_err());
        assert!(opus_packet_duration(&[(31 << 3) | 3, 0]).is_err());
        // 7 x 20 ms = 140 ms > 120 ms.
        assert!(opus_packet_duration(&[(31 << 3) | 3, 7]).is_err());
        // 3 x 60 ms = 180 ms.
        assert!(opus_packet_duration(&[(3 << 3) | 3, 3]).is_err());
    }

    fn head(channels: u8, family: u8, extra: &[u8]) -> Vec<u8> {
        let mut h = b"OpusHead".to_vec();
        h.push(1);
        h.push(channels);
        h.extend_from_slice(&312u16.to_le_bytes());
        h.extend_from_slice(&44_100u32.to_le_bytes());
        h.extend_from_slice(&(-256i16).to_le_bytes());
        h.push(family);
        h.extend_from_slice(extra);
        h
    }

    /// The header written parses back to itself and has RFC 7845's bytes.
    #[test]
    fn identification_header_round_trips() {
        for bytes in [head(2, 0, &[]), head(3, 1, &[2, 1, 0, 2, 1])] {
            let h = OpusHead::parse(&bytes).unwrap().unwrap();
            assert_eq!(&h.identification_header()[..], &bytes[..]);
        }
        let h = OpusHead::default_stereo().identification_header();
        assert_eq!(
            &h[..],
            b"OpusHead\x01\x02\x00\x00\x80\xBB\x00\x00\x00\x00\x00"
        );
        assert_eq!(
            OpusHead::parse(&h).unwrap(),
            Some(OpusHead::default_stereo())
        );
    }

    #[test]
    fn opus_head_to_dops() {
        let h = OpusHead::parse(&head(2, 0, &[])).unwrap().unwrap();
        assert_eq!(
            &h.dops()[..],
            &[0, 2, 0x01, 0x38, 0, 0, 0xAC, 0x44, 0xFF, 0x00, 0]
        );
        let h = OpusHead::parse(&head(3, 1, &[2, 1, 0, 2, 1]))
            .unwrap()
            .unwrap();
        assert_eq!(
            &h.dops()[..],
            &[
                0, 3, 0x01, 0x38, 0, 0, 0xAC, 0x44, 0xFF, 0x00, 1, 2, 1, 0, 2, 1
            ]
        );
        assert_eq!(OpusHead::parse(b"\xF8\xFF\xFE").unwrap(), None);
    }

    #[test]
    fn opus_head_errors() {
        assert!(OpusHead::parse(&head(2, 0, &[])[..18]).is_err());
        assert!(OpusHead::parse(&head(0, 0, &[])).is_err());
        assert!(OpusHead::parse(&head(3, 0, &[])).is_err());
        assert!(OpusHead::parse(&head(3, 1, &[2, 1, 0])).is_err());
        let mut v = head(2, 0, &[]);
        v[8] = 0x10;
        assert!(OpusHead::parse(&v).is_err());
    }
}
