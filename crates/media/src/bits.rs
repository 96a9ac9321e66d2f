//! An MSB-first bit reader with the variable-length codes of the video specifications:
//! Exp-Golomb ue(v)/se(v) (H.264 9.1, H.265 9.2) and AV1's uvlc() (AV1 4.10.3).
//!
//! Every read is bounds-checked: past the end, or on a code longer than 32 bits, it returns
//! [`MediaError::InvalidCodecConfig`] naming the structure being parsed, so hostile input
//! ends a parse instead of panicking.

use crate::MediaError;

/// Reads bits most significant first; every read is bounds-checked.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data` whose errors name `what` (the structure being
    /// parsed, e.g. "H.264 SPS").
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, bit: 0, what }
    }

    /// An [`MediaError::InvalidCodecConfig`] about this reader's structure.
    pub fn error(&self, reason: &'static str) -> MediaError {
        MediaError::InvalidCodecConfig {
            what: self.what,
            reason,
        }
    }

    /// Bits read (or skipped) so far.
    pub fn position(&self) -> usize {
        self.bit
    }

    /// One bit.
    pub fn flag(&mut self) -> Result<bool, MediaError> {
        let byte = *self.data.get(self.bit / 8).ok_or(self.error("truncated"))?;
        let value = (byte >> (7 - self.bit % 8)) & 1;
        self.bit += 1;
        Ok(value == 1)
    }

    /// `n` bits (at most 32; more is an error) as an unsigned integer.
    pub fn bits(&mut self, n: u32) -> Result<u32, MediaError> {
        if n > 32 {
            return Err(self.error("field wider than 32 bits"));
        }
        let mut value: u64 = 0;
        for _ in 0..n {
            value = (value << 1) | u64::from(self.flag()?);
        }
        u32::try_from(value).map_err(|_| self.error("field wider than 32 bits"))
    }

    /// `n` bits (at most 8; more is an error) as a byte.
    pub fn bits_u8(&mut self, n: u32) -> Result<u8, MediaError> {
        if n > 8 {
            return Err(self.error("field wider than 8 bits"));
        }
        u8::try_from(self.bits(n)?).map_err(|_| self.error("field wider than 8 bits"))
    }

    /// Skips `n` bits; an error (and nothing skipped) if fewer are left.
    pub fn skip(&mut self, n: usize) -> Result<(), MediaError> {
        let end = self
            .bit
            .checked_add(n)
            .filter(|end| *end <= self.data.len().saturating_mul(8))
            .ok_or(self.error("truncated"))?;
        self.bit = end;
        Ok(())
    }

    /// An unsigned Exp-Golomb code, ue(v). At most 31 leading zeros (values below 2^32 - 1).
    pub fn ue(&mut self) -> Result<u32, MediaError> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err(self.error("Exp-Golomb code longer than 32 bits"));
            }
        }
        let suffix = self.bits(zeros)?;
        // zeros <= 31: (2^zeros - 1) + suffix <= 2^32 - 2.
        u32::try_from((1u64 << zeros) - 1 + u64::from(suffix))
            .map_err(|_| self.error("Exp-Golomb code longer than 32 bits"))
    }

    /// A signed Exp-Golomb code, se(v).
    pub fn se(&mut self) -> Result<i32, MediaError> {
        let k = i64::from(self.ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |value| <= 2^31, and -2^31 fits; 2^31 cannot occur since k <= 2^32 - 2.
        i32::try_from(value).map_err(|_| self.error("se(v) out of range"))
    }

    /// A ue(v) that must not exceed `max`; `reason` names the violation.
    pub fn ue_max(&mut self, max: u32, reason: &'static str) -> Result<u32, MediaError> {
        let value = self.ue()?;
        if value > max {
            return Err(self.error(reason));
        }
        Ok(value)
    }

    /// AV1 uvlc() (AV1 spec 4.10.3): leading zeros, then that many bits; 32 or more leading
    /// zeros mean 2^32 - 1, as the specification says.
    pub fn uvlc(&mut self) -> Result<u32, MediaError> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros >= 32 {
                return Ok(u32::MAX);
            }
        }
        let suffix = self.bits(zeros)?;
        u32::try_from((1u64 << zeros) - 1 + u64::from(suffix))
            .map_err(|_| self.error("uvlc() longer than 32 bits"))
    }
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
        assert_eq!(r.position(), 24);
        assert_eq!(
            r.flag(),
            Err(MediaError::InvalidCodecConfig {
                what: "test",
                reason: "truncated"
            })
        );
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
        assert!(BitReader::new(&[0, 0, 0, 0, 0], "test").ue().is_err());
        assert_eq!(BitReader::new(&[0b0100_0000], "test").uvlc(), Ok(1));
        assert_eq!(BitReader::new(&zeros, "test").uvlc(), Ok(u32::MAX));
    }

    #[test]
    fn reads_bits_and_stops_at_the_end() {
        let mut b = BitReader::new(&[0b1010_0110, 0b0100_0000], "test");
        assert_eq!(b.flag(), Ok(true));
        assert_eq!(b.bits(3), Ok(0b010));
        // 0110 0100: ue "011" = 2, then "00100" = 3.
        assert_eq!(b.ue(), Ok(2));
        assert_eq!(b.ue(), Ok(3));
        assert!(b.bits(33).is_err());
        assert!(b.bits_u8(9).is_err());
        assert_eq!(b.position(), 12);
        assert!(b.skip(5).is_err(), "only 4 bits left");
        assert_eq!(b.position(), 12, "a failed skip skips nothing");
        assert!(b.skip(4).is_ok());
        assert!(b.flag().is_err());
        assert!(b.skip(usize::MAX).is_err());
        // 0000 1 1110: ue 15 + 14.
        let mut r = BitReader::new(&[0b0000_1111, 0], "test");
        assert_eq!(r.ue_max(30, "too big"), Ok(29));
        let mut r = BitReader::new(&[0b0000_1111, 0], "test");
        assert_eq!(r.ue_max(28, "too big"), Err(r.error("too big")));
    }
}
