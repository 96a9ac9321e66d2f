//! An MSB-first bit reader for the codec headers WHIP ingest parses (VP9 uncompressed
//! header, AV1 sequence header OBU, H.265 SPS): every read is bounds-checked and returns
//! `None` past the end, so hostile input ends a parse instead of panicking.

/// Reads bits most significant first.
pub struct Bits<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> Bits<'a> {
    /// A reader at the first bit of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, bit: 0 }
    }

    /// One bit.
    pub fn flag(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.bit / 8)?;
        let value = (byte >> (7 - self.bit % 8)) & 1;
        self.bit += 1;
        Some(value == 1)
    }

    /// `n` bits (at most 32; more is refused) as an unsigned integer.
    pub fn bits(&mut self, n: u32) -> Option<u32> {
        if n > 32 {
            return None;
        }
        let mut value: u64 = 0;
        for _ in 0..n {
            value = (value << 1) | u64::from(self.flag()?);
        }
        u32::try_from(value).ok()
    }

    /// `n` bits (at most 8) as a byte.
    pub fn byte(&mut self, n: u32) -> Option<u8> {
        u8::try_from(self.bits(n.min(8))?).ok()
    }

    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.bit.checked_add(n)?;
        if end > self.data.len().saturating_mul(8) {
            return None;
        }
        self.bit = end;
        Some(())
    }

    /// An unsigned Exp-Golomb code, ue(v) (H.265 7.2), at most 31 leading zeros.
    pub fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let suffix = self.bits(zeros)?;
        u32::try_from((1u64 << zeros) - 1 + u64::from(suffix)).ok()
    }

    /// AV1 uvlc() (AV1 spec 4.10.3): leading zeros, then that many bits.
    pub fn uvlc(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros >= 32 {
                return Some(u32::MAX);
            }
        }
        let suffix = self.bits(zeros)?;
        u32::try_from((1u64 << zeros) - 1 + u64::from(suffix)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bits_codes_and_stops_at_the_end() {
        let mut b = Bits::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(b.flag(), Some(true));
        assert_eq!(b.bits(3), Some(0b010));
        // 0110 0100: ue "011" = 2, then "00100" = 3.
        assert_eq!(b.ue(), Some(2));
        assert_eq!(b.ue(), Some(3));
        assert_eq!(b.bits(33), None);
        assert!(b.skip(4).is_some());
        assert_eq!(b.flag(), None);
        assert_eq!(Bits::new(&[0, 0, 0, 0, 0]).ue(), None);
        assert_eq!(Bits::new(&[0b0100_0000]).uvlc(), Some(1));
    }
}
