//! A bounds-checked forward reader over a configuration record, handing out zero-copy
//! [`Bytes`] slices (the parameter sets of avcC and hvcC records).

use bytes::Bytes;

use crate::MediaError;

/// Reads a record front to back; every error names the record.
pub(crate) struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a Bytes, what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    pub(crate) fn invalid(&self, reason: &'static str) -> MediaError {
        MediaError::InvalidCodecConfig {
            what: self.what,
            reason,
        }
    }

    /// The next `n` bytes as a slice of the record.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, MediaError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or(self.invalid("truncated"))?;
        let out = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], MediaError> {
        let b = self.take(N)?;
        <[u8; N]>::try_from(b.as_ref()).map_err(|_| self.invalid("truncated"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, MediaError> {
        let [b] = self.array()?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, MediaError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// One NAL unit with its 16-bit length.
    pub(crate) fn nal(&mut self) -> Result<Bytes, MediaError> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }
}

/// NAL length size from the low two bits of a record's lengthSizeMinusOne byte: 1, 2 or 4.
pub(crate) fn nal_length_size(byte: u8, what: &'static str) -> Result<u8, MediaError> {
    match (byte & 0x03) + 1 {
        3 => Err(MediaError::InvalidCodecConfig {
            what,
            reason: "NAL length size 3 is not allowed",
        }),
        n => Ok(n),
    }
}
