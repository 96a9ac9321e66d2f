//! CRC-32/MPEG-2 as used by PSI sections (ISO/IEC 13818-1 Annex A).
//!
//! Polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no bit reflection, no final XOR. Running
//! it over a whole section including its CRC_32 field yields zero.

/// The CRC generator polynomial.
const POLY: u32 = 0x04C1_1DB7;

/// Byte-at-a-time lookup table, built at compile time.
const TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// CRC-32/MPEG-2 of `data`.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-by-bit reference straight from the polynomial definition.
    fn reference(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            for i in (0..8).rev() {
                let bit = (b >> i) & 1 == 1;
                let top = crc & 0x8000_0000 != 0;
                crc <<= 1;
                if bit != top {
                    crc ^= POLY;
                }
            }
        }
        crc
    }

    #[test]
    fn check_value() {
        // The standard check value of CRC-32/MPEG-2 for the ASCII string "123456789".
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
        assert_eq!(reference(b"123456789"), 0x0376_E6E7);
        assert_eq!(crc32_mpeg2(&[]), 0xFFFF_FFFF);
    }

    #[test]
    fn table_matches_reference() {
        let data: Vec<u8> = (0..=255u8)
            .chain((0..100u8).map(|i| i.wrapping_mul(7)))
            .collect();
        for end in [0, 1, 5, 100, data.len()] {
            assert_eq!(crc32_mpeg2(&data[..end]), reference(&data[..end]));
        }
    }

    #[test]
    fn residue_is_zero() {
        let mut data = b"section bytes".to_vec();
        let crc = crc32_mpeg2(&data);
        data.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(crc32_mpeg2(&data), 0);
    }
}
