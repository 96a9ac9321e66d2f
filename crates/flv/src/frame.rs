//! FLV tag body -> [`media::Frame`]: the dispatcher, script data and shared helpers.

use bytes::Bytes;
use media::{Codec, Frame, FrameRole, MediaKind, WireCache};

use crate::mux::{TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use crate::{FlvError, audio, video};

/// The AMF0 string `"onMetaData"` as it begins a metadata script tag (marker 0x02, length 10).
pub const ON_METADATA_PREFIX: &[u8] = b"\x02\x00\x0AonMetaData";

/// Builds a [`Frame`] from one FLV tag (or RTMP audio/video/data message) without copying.
///
/// `dts` is `timestamp`; kind, codec, role, keyframe, cts and payload_offset come from the
/// body's audio/video tag header (legacy or Enhanced RTMP, see [`crate::video`] and
/// [`crate::audio`] docs for the exact mapping). Script data (tag 18) becomes a `Data` frame
/// with codec `Script`, role `Metadata` when it starts with [`ON_METADATA_PREFIX`], else
/// `Coded`. Empty or truncated headers, unknown tag types and reserved packet types are errors.
pub fn frame_from_tag(tag_type: u8, timestamp: u32, body: Bytes) -> Result<Frame, FlvError> {
    if body.is_empty() {
        return Err(FlvError::EmptyBody { tag_type });
    }
    let info = match tag_type {
        TAG_VIDEO => video::parse(&body)?,
        TAG_AUDIO => audio::parse(&body)?,
        TAG_SCRIPT => TagInfo {
            kind: MediaKind::Data,
            codec: Codec::Script,
            role: if body.starts_with(ON_METADATA_PREFIX) {
                FrameRole::Metadata
            } else {
                FrameRole::Coded
            },
            cts: 0,
            keyframe: false,
            payload_offset: 0,
        },
        tag_type => return Err(FlvError::UnknownTagType { tag_type }),
    };
    Ok(Frame {
        kind: info.kind,
        codec: info.codec,
        role: info.role,
        dts: u64::from(timestamp),
        cts: info.cts,
        keyframe: info.keyframe,
        body,
        payload_offset: info.payload_offset,
        wire: WireCache::default(),
        arrival: None,
    })
}

/// What the audio/video tag header says; everything of a [`Frame`] but the bytes and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagInfo {
    pub(crate) kind: MediaKind,
    pub(crate) codec: Codec,
    pub(crate) role: FrameRole,
    pub(crate) cts: i32,
    pub(crate) keyframe: bool,
    pub(crate) payload_offset: usize,
}

/// A bounds-checked forward reader over a tag body.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes, or a `Truncated` error naming `what`.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FlvError> {
        let end = self.pos.saturating_add(n);
        let out = self.data.get(self.pos..end).ok_or(FlvError::Truncated {
            what,
            need: end,
            have: self.data.len(),
        })?;
        self.pos = end;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], FlvError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, FlvError> {
        let [b] = self.array(what)?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, FlvError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// A big-endian signed 24-bit integer (FLV's SI24 composition time).
    pub(crate) fn si24(&mut self, what: &'static str) -> Result<i32, FlvError> {
        let [a, b, c] = self.array(what)?;
        // Place the 24 bits at the top, then shift back arithmetically to sign-extend.
        Ok(i32::from_be_bytes([a, b, c, 0]) >> 8)
    }

    /// A FourCC as its big-endian `u32` (e.g. `avc1` = 0x61766331).
    pub(crate) fn fourcc(&mut self) -> Result<u32, FlvError> {
        Ok(u32::from_be_bytes(self.array("FourCC")?))
    }

    /// The FourCC at the cursor without consuming it.
    pub(crate) fn peek_fourcc(&self) -> Result<u32, FlvError> {
        Cursor {
            data: self.data,
            pos: self.pos,
        }
        .fourcc()
    }
}

/// Skips Enhanced RTMP v2 ModEx prefixes while `packet_type == mod_ex` and returns the real
/// packet type. Each ModEx carries 1..=65536 bytes of data (UI8 size - 1, or UI16 size - 1
/// when the UI8 is 255) followed by one byte: ModExType (high nibble), next packet type (low
/// nibble). The only ModEx type defined so far, TimestampOffsetNano, is sub-millisecond and
/// is ignored. Every round consumes at least two bytes, so the loop is bounded by the body.
pub(crate) fn skip_mod_ex(
    c: &mut Cursor<'_>,
    mut packet_type: u8,
    mod_ex: u8,
) -> Result<u8, FlvError> {
    while packet_type == mod_ex {
        let mut size = usize::from(c.u8("ModEx data size")?) + 1;
        if size == 256 {
            size = usize::from(c.u16("ModEx data size")?) + 1;
        }
        c.take(size, "ModEx data")?;
        packet_type = c.u8("ModEx packet type")? & 0x0F;
    }
    Ok(packet_type)
}

/// AvMultitrackType value meaning each track carries its own FourCC.
pub(crate) const MULTITRACK_MANY_CODECS: u8 = 2;

/// Parses an Enhanced RTMP multitrack header (after the first byte announced Multitrack):
/// AvMultitrackType (high nibble), the tracks' packet type (low nibble, must not be
/// Multitrack), then the shared FourCC unless the type is ManyTracksManyCodecs.
/// Returns the FourCC (for ManyTracksManyCodecs, the first track's, peeked) and leaves the
/// cursor at the start of the track list.
pub(crate) fn multitrack_header(c: &mut Cursor<'_>, multitrack: u8) -> Result<u32, FlvError> {
    let b = c.u8("multitrack header")?;
    let multitrack_type = b >> 4;
    if multitrack_type > MULTITRACK_MANY_CODECS {
        return Err(FlvError::UnknownPacketType {
            what: "AvMultitrackType",
            value: multitrack_type,
        });
    }
    if b & 0x0F == multitrack {
        return Err(FlvError::UnknownPacketType {
            what: "packet type inside a multitrack packet",
            value: multitrack,
        });
    }
    if multitrack_type == MULTITRACK_MANY_CODECS {
        c.peek_fourcc()
    } else {
        c.fourcc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_metadata() {
        let body = Bytes::from_static(b"\x02\x00\x0AonMetaData\x08\x00\x00\x00\x00\x00\x00\x09");
        let f = frame_from_tag(TAG_SCRIPT, 7, body.clone()).unwrap();
        assert_eq!(
            (f.kind, f.codec, f.role),
            (MediaKind::Data, Codec::Script, FrameRole::Metadata)
        );
        assert_eq!((f.dts, f.cts, f.payload_offset), (7, 0, 0));
        assert_eq!(f.payload(), body);
    }

    #[test]
    fn script_other() {
        let f = frame_from_tag(TAG_SCRIPT, 0, Bytes::from_static(b"\x02\x00\x08onCuePnt")).unwrap();
        assert_eq!(f.role, FrameRole::Coded);
        // A prefix of "onMetaData" is not metadata.
        let f = frame_from_tag(TAG_SCRIPT, 0, Bytes::from_static(b"\x02\x00\x0AonMeta")).unwrap();
        assert_eq!(f.role, FrameRole::Coded);
    }

    #[test]
    fn empty_and_unknown() {
        for t in [TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT] {
            assert_eq!(
                frame_from_tag(t, 0, Bytes::new()).unwrap_err(),
                FlvError::EmptyBody { tag_type: t }
            );
        }
        assert_eq!(
            frame_from_tag(15, 0, Bytes::from_static(&[1])).unwrap_err(),
            FlvError::UnknownTagType { tag_type: 15 }
        );
    }

    #[test]
    fn si24_sign_extension() {
        let mut c = Cursor::new(&[0xFF, 0xFF, 0xD8, 0x00, 0x00, 0x50, 0x80, 0x00, 0x00]);
        assert_eq!(c.si24("x").unwrap(), -40);
        assert_eq!(c.si24("x").unwrap(), 80);
        assert_eq!(c.si24("x").unwrap(), -0x80_0000);
        assert!(matches!(
            c.si24("x"),
            Err(FlvError::Truncated {
                need: 12,
                have: 9,
                ..
            })
        ));
    }

    #[test]
    fn mod_ex_sizes() {
        // ModEx with 1 byte of data, then ModEx with 256 (UI8 255 -> UI16 255 + 1), then type 1.
        let mut body = vec![0x00, 0xAA, 0x07, 0xFF, 0x00, 0xFF];
        body.extend_from_slice(&[0; 256]);
        body.push(0x01);
        let mut c = Cursor::new(&body);
        assert_eq!(skip_mod_ex(&mut c, 7, 7).unwrap(), 1);
        assert_eq!(c.pos(), body.len());
        let mut c = Cursor::new(&body[..100]);
        assert!(matches!(
            skip_mod_ex(&mut c, 7, 7),
            Err(FlvError::Truncated {
                what: "ModEx data",
                ..
            })
        ));
    }
}
