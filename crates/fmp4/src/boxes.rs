//! ISO BMFF box writing helpers (ISO/IEC 14496-12 4.2): a box is a 32-bit big-endian size
//! covering the whole box, a FourCC type, then (for a "full box") a version byte and 24 bits
//! of flags, then the payload. Sizes are patched in once the payload is written.

use bytes::{BufMut, BytesMut};

/// Starts a box of type `fourcc` at the end of `out` and returns its start offset, to be
/// passed to [`end_box`] when the payload has been written.
pub(crate) fn begin_box(out: &mut BytesMut, fourcc: &[u8; 4]) -> usize {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(fourcc);
    start
}

/// Starts a full box (version and flags follow the type).
pub(crate) fn begin_full_box(
    out: &mut BytesMut,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
) -> usize {
    let start = begin_box(out, fourcc);
    out.put_u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
    start
}

/// Writes the size of the box that starts at `start`. Boxes written by this crate stay far
/// below 4 GiB (every input is bounded by the crate's limits); a larger one gets the
/// saturated size rather than a panic.
pub(crate) fn end_box(out: &mut BytesMut, start: usize) {
    let size = u32::try_from(out.len().saturating_sub(start)).unwrap_or(u32::MAX);
    if let Some(slot) = out.get_mut(start..start.saturating_add(4)) {
        slot.copy_from_slice(&size.to_be_bytes());
    }
}

/// The unity transformation matrix of mvhd and tkhd (16.16 and 2.30 fixed point).
pub(crate) fn put_unity_matrix(out: &mut BytesMut) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        out.put_u32(v);
    }
}

/// A tiny box walker used by the tests to parse this crate's own output back.
#[cfg(test)]
pub(crate) mod walk {
    /// One parsed box: its type, its whole bytes and its payload (after the 8-byte header).
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Bx<'a> {
        pub(crate) kind: [u8; 4],
        pub(crate) whole: &'a [u8],
        pub(crate) body: &'a [u8],
        /// Offset of the box inside the buffer given to [`boxes`].
        pub(crate) offset: usize,
    }

    impl<'a> Bx<'a> {
        /// The type as text.
        pub(crate) fn name(&self) -> &str {
            std::str::from_utf8(&self.kind).unwrap()
        }
        /// Children of a container box whose children start `skip` bytes into the payload.
        pub(crate) fn children(&self, skip: usize) -> Vec<Bx<'a>> {
            boxes(&self.body[skip..])
        }
        /// The only child named `name` (panics if there is not exactly one).
        pub(crate) fn child(&self, name: &str) -> Bx<'a> {
            one(&self.children(0), name)
        }
    }

    /// Splits `data` into boxes, asserting that sizes nest exactly.
    pub(crate) fn boxes(data: &[u8]) -> Vec<Bx<'_>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            assert!(data.len() - pos >= 8, "truncated box header at {pos}");
            let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            assert!(
                size >= 8 && pos + size <= data.len(),
                "bad box size {size} at {pos}"
            );
            let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
            out.push(Bx {
                kind,
                whole: &data[pos..pos + size],
                body: &data[pos + 8..pos + size],
                offset: pos,
            });
            pos += size;
        }
        out
    }

    /// The only box named `name` in `list`.
    pub(crate) fn one<'a>(list: &[Bx<'a>], name: &str) -> Bx<'a> {
        let found: Vec<_> = list.iter().filter(|b| b.name() == name).collect();
        assert_eq!(found.len(), 1, "expected one {name} in {:?}", names(list));
        *found[0]
    }

    /// Every box named `name` in `list`.
    pub(crate) fn all<'a>(list: &[Bx<'a>], name: &str) -> Vec<Bx<'a>> {
        list.iter().filter(|b| b.name() == name).copied().collect()
    }

    /// The types of `list`, in order.
    pub(crate) fn names(list: &[Bx<'_>]) -> Vec<String> {
        list.iter().map(|b| b.name().to_owned()).collect()
    }

    /// Big-endian u16 / u32 / u64 at `at`.
    pub(crate) fn u16_at(d: &[u8], at: usize) -> u16 {
        u16::from_be_bytes(d[at..at + 2].try_into().unwrap())
    }
    pub(crate) fn u32_at(d: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
    }
    pub(crate) fn u64_at(d: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(d[at..at + 8].try_into().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_sizes() {
        let mut out = BytesMut::new();
        let outer = begin_box(&mut out, b"moov");
        let inner = begin_full_box(&mut out, b"mvhd", 1, 0x0102_0304);
        out.put_u8(9);
        end_box(&mut out, inner);
        end_box(&mut out, outer);
        assert_eq!(
            &out[..],
            b"\x00\x00\x00\x15moov\x00\x00\x00\x0dmvhd\x01\x02\x03\x04\x09"
        );
    }
}
