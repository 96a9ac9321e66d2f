//! PES packet headers (ISO/IEC 13818-1 2.4.3.6) and 90 kHz timestamps.

use crate::packet::TIMESTAMP_MASK;

/// stream_id of the first video stream.
pub const STREAM_ID_VIDEO: u8 = 0xE0;
/// stream_id of the first audio stream.
pub const STREAM_ID_AUDIO: u8 = 0xC0;
/// Largest PES header this crate writes (PTS and DTS).
pub const MAX_PES_HEADER_LEN: usize = 19;

/// Milliseconds to a 33-bit 90 kHz timestamp (wrapping like the wire field does).
pub fn ms_to_90k(ms: u64) -> u64 {
    ms.wrapping_mul(90) & TIMESTAMP_MASK
}

/// Encodes a 33-bit timestamp in the 5-byte PTS/DTS layout with the 4-bit `prefix`
/// ('0010' PTS only, '0011' PTS with DTS, '0001' DTS) and marker bits.
pub fn encode_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & TIMESTAMP_MASK;
    [
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8 & 0x7F) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8 & 0x7F) << 1) | 1,
    ]
}

/// Decodes a 5-byte PTS/DTS field (the inverse of [`encode_timestamp`], ignoring the prefix
/// and marker bits).
pub fn decode_timestamp(b: [u8; 5]) -> u64 {
    (u64::from(b[0] >> 1 & 0x07) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1)
}

/// Writes a PES header: start code, `stream_id`, PES_packet_length (`packet_length`, 0 =
/// unbounded, video only), data_alignment_indicator, and PTS (plus DTS when given).
pub fn pes_header(
    out: &mut Vec<u8>,
    stream_id: u8,
    packet_length: u16,
    pts: u64,
    dts: Option<u64>,
) {
    out.extend_from_slice(&[0, 0, 1, stream_id]);
    out.extend_from_slice(&packet_length.to_be_bytes());
    // '10', not scrambled, no priority, data_alignment_indicator 1, no copyright, copy.
    out.push(0x84);
    match dts {
        Some(dts) => {
            out.extend_from_slice(&[0xC0, 10]);
            out.extend_from_slice(&encode_timestamp(0b0011, pts));
            out.extend_from_slice(&encode_timestamp(0b0001, dts));
        }
        None => {
            out.extend_from_slice(&[0x80, 5]);
            out.extend_from_slice(&encode_timestamp(0b0010, pts));
        }
    }
}

/// Header bytes that PES_packet_length counts for a PTS-only header (flags, length, PTS).
pub const PTS_ONLY_HEADER_TAIL: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_bits() {
        // All ones: every value bit and marker set, prefix 0011.
        assert_eq!(
            encode_timestamp(0b0011, TIMESTAMP_MASK),
            [0x3F, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(encode_timestamp(0b0010, 0), [0x21, 0x00, 0x01, 0x00, 0x01]);
        // 1.4 s at 90 kHz = 126000 = 0x1_EC30.
        assert_eq!(
            encode_timestamp(0b0001, 126_000),
            [0x11, 0x00, 0x07, 0xD8, 0x61]
        );
        for ts in [
            0,
            1,
            126_000,
            0x1_2345_6789,
            TIMESTAMP_MASK,
            1 << 32,
            1 << 15,
        ] {
            assert_eq!(decode_timestamp(encode_timestamp(0b0010, ts)), ts);
        }
        // Values above 33 bits wrap.
        assert_eq!(decode_timestamp(encode_timestamp(0b0010, (1 << 33) + 5)), 5);
    }

    #[test]
    fn ms_conversion_wraps_at_33_bits() {
        assert_eq!(ms_to_90k(1000), 90_000);
        // 2^33 / 90 ms is about 26.5 hours.
        let wrap_ms = 95_443_718; // ceil(2^33 / 90)
        assert!(ms_to_90k(wrap_ms) < 90);
        assert_eq!(
            ms_to_90k(u64::MAX),
            u64::MAX.wrapping_mul(90) & TIMESTAMP_MASK
        );
    }

    #[test]
    fn header_layouts() {
        let mut v = Vec::new();
        pes_header(&mut v, STREAM_ID_VIDEO, 0, 3600, Some(0));
        assert_eq!(
            v,
            [
                0, 0, 1, 0xE0, 0, 0, 0x84, 0xC0, 10, 0x31, 0x00, 0x01, 0x1C, 0x21, 0x11, 0x00,
                0x01, 0x00, 0x01
            ]
        );
        assert_eq!(v.len(), MAX_PES_HEADER_LEN);
        let mut a = Vec::new();
        pes_header(&mut a, STREAM_ID_AUDIO, 0x0123, 90_000, None);
        assert_eq!(&a[..9], &[0, 0, 1, 0xC0, 0x01, 0x23, 0x84, 0x80, 5]);
        assert_eq!(decode_timestamp([a[9], a[10], a[11], a[12], a[13]]), 90_000);
        assert_eq!(a.len(), 6 + PTS_ONLY_HEADER_TAIL);
    }
}
