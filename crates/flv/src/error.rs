//! The crate's one error type.

/// Everything that can go wrong while reading FLV data.
///
/// Every variant describes hostile or corrupt input; none of them is a bug in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// The file does not start with the `FLV` signature.
    #[error("bad FLV signature {found:02x?} (expected \"FLV\")")]
    BadSignature {
        /// The first three bytes found.
        found: [u8; 3],
    },
    /// The file header declares a version other than 1.
    #[error("unsupported FLV version {version}")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The file header's DataOffset is smaller than 9 or above [`crate::MAX_HEADER_LEN`].
    #[error("bad FLV header length {len}")]
    BadHeaderLength {
        /// The DataOffset found.
        len: u32,
    },
    /// A tag's DataSize is above [`crate::MAX_TAG_LEN`].
    #[error("FLV tag of {len} bytes exceeds the limit of {max}")]
    TagTooLarge {
        /// The declared body length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A tag has the Filter bit set (encrypted content), which Sluice does not support.
    #[error("encrypted (filtered) FLV tag of type {tag_type}")]
    EncryptedTag {
        /// The tag type (low five bits).
        tag_type: u8,
    },
    /// The PreviousTagSize after a tag does not match the tag's size.
    #[error("PreviousTagSize {found} does not match tag size {expected}")]
    BadPreviousTagSize {
        /// 11 + the tag's DataSize.
        expected: u32,
        /// The value on the wire.
        found: u32,
    },
    /// The input ended in the middle of a header or tag.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A tag body is empty where at least a one-byte media header is required.
    #[error("empty body in FLV tag of type {tag_type}")]
    EmptyBody {
        /// The tag type.
        tag_type: u8,
    },
    /// A tag type other than audio (8), video (9) or script data (18).
    #[error("unknown FLV tag type {tag_type}")]
    UnknownTagType {
        /// The tag type.
        tag_type: u8,
    },
    /// A reserved or undefined packet type (AVCPacketType, AACPacketType, Enhanced RTMP
    /// VideoPacketType/AudioPacketType, or a multitrack type).
    #[error("unknown {what} {value}")]
    UnknownPacketType {
        /// Which field.
        what: &'static str,
        /// The value found.
        value: u8,
    },
}
