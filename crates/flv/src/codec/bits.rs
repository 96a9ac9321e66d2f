//! An MSB-first bit reader with Exp-Golomb codes, and H.264 emulation-prevention removal.

use crate::FlvError;

/// Reads bits most significant first; every read is bounds-checked.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// A reader whose errors name `what` (the structure being parsed).
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, bit: 0, what }
    }

    pub(crate) fn error(&self, reason: &'static str) -> FlvError {
        FlvError::InvalidCodecConfig {
            what: self.what,
            reason,
        }
    }

    pub(crate) fn flag(&mut self) -> Result<bool, FlvError> {
        let byte = *self.data.get(self.bit / 8).ok_or(self.error("truncated"))?;
        let value = (byte >> (7 - self.bit % 8)) & 1;
        self.bit += 1;
        Ok(value == 1)
    }

    /// `n` bits (at most 32) as an unsigned integer.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, FlvError> {
        debug_assert!(n <= 32, "bits() reads at most 32 bits");
        let mut value: u64 = 0;
        for _ in 0..n.min(32) {
            value = (value << 1) | u64::from(self.flag()?);
        }
        u32::try_from(value).map_err(|_| self.error("field wider than 32 bits"))
    }

    /// `n` bits (at most 8) as a byte.
    pub(crate) fn bits_u8(&mut self, n: u32) -> Result<u8, FlvError> {
        u8::try_from(self.bits(n.min(8))?).map_err(|_| self.error("field wider than 8 bits"))
    }

    /// An unsigned Exp-Golomb code, ue(v). At most 31 leading zeros (values below 2^32 - 1).
    pub(crate) fn ue(&mut self) -> Result<u32, FlvError> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err(self.error("Exp-Golomb code longer than 32 bits"));
            }
        }
        let suffix = self.bits(zeros)?;
        // zeros <= 31: (2^zeros - 1) + suffix <= 2^32 - 2.
        Ok(((1u64 << zeros) - 1 + u64::from(suffix)) as u32)
    }

    /// A signed Exp-Golomb code, se(v).
    pub(crate) fn se(&mut self) -> Result<i32, FlvError> {
        let k = i64::from(self.ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |value| <= 2^31, and -2^31 fits; 2^31 cannot occur since k <= 2^32 - 2.
        i32::try_from(value).map_err(|_| self.error("se(v) out of range"))
    }

    /// A ue(v) that must not exceed `max`.
    pub(crate) fn ue_max(&mut self, max: u32, reason: &'static str) -> Result<u32, FlvError> {
        let value = self.ue()?;
        if value > max {
            return Err(self.error(reason));
        }
        Ok(value)
    }
}

/// Removes H.264/H.265 emulation prevention bytes (the `03` in `00 00 03`), NAL -> RBSP.
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 | 0001000 -> ue 0, 1, 2, 3; se(00101 = 4) = -2; ue 7.
        let data = [0b1010_0110, 0b0100_0010, 0b1000_1000];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert_eq!(r.se().unwrap(), -2);
        assert_eq!(r.ue().unwrap(), 7);
        assert!(r.flag().is_err());
    }

    #[test]
    fn exp_golomb_limits() {
        // 31 zeros, a one, 31 ones: the largest accepted code, 2^32 - 2.
        let mut data = vec![0, 0, 0, 1];
        data.extend_from_slice(&[0xFF; 4]);
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.ue().unwrap(), u32::MAX - 1);
        let zeros = [0u8; 8];
        assert!(BitReader::new(&zeros, "test").ue().is_err());
        assert!(BitReader::new(&[0x00, 0x00], "test").ue().is_err());
    }

    #[test]
    fn emulation_prevention() {
        assert_eq!(
            unescape_rbsp(&[0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03]),
            [0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]
        );
        assert_eq!(
            unescape_rbsp(&[0x00, 0x03, 0x00, 0x03]),
            [0x00, 0x03, 0x00, 0x03]
        );
    }
}
