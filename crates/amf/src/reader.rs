//! A tiny bounds-checked cursor over a byte slice.

use crate::AmfError;

/// Takes `n` bytes from the front of `buf`.
pub(crate) fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], AmfError> {
    if buf.len() < n {
        return Err(AmfError::Truncated {
            needed: n - buf.len(),
        });
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

/// Takes exactly `N` bytes as an array.
pub(crate) fn take_array<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], AmfError> {
    let s = take(buf, N)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Ok(a)
}

/// Reads one byte.
pub(crate) fn u8(buf: &mut &[u8]) -> Result<u8, AmfError> {
    Ok(take_array::<1>(buf)?[0])
}

/// Reads a big-endian u16.
pub(crate) fn u16(buf: &mut &[u8]) -> Result<u16, AmfError> {
    Ok(u16::from_be_bytes(take_array(buf)?))
}

/// Reads a big-endian u32.
pub(crate) fn u32(buf: &mut &[u8]) -> Result<u32, AmfError> {
    Ok(u32::from_be_bytes(take_array(buf)?))
}

/// Reads a big-endian f64.
pub(crate) fn f64(buf: &mut &[u8]) -> Result<f64, AmfError> {
    Ok(f64::from_be_bytes(take_array(buf)?))
}

/// Reads `len` bytes as text (invalid UTF-8 is replaced, never rejected).
pub(crate) fn string(buf: &mut &[u8], len: usize) -> Result<String, AmfError> {
    let s = take(buf, len)?;
    Ok(String::from_utf8_lossy(s).into_owned())
}
