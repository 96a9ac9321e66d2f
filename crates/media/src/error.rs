//! The crate's one error type.

/// Everything the codec helpers refuse.
///
/// Every variant describes hostile, corrupt or unsupported input; none of them is a bug in
/// this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// A codec configuration record or header (AVC/HEVC decoder configuration record, SPS,
    /// AudioSpecificConfig, AV1 sequence header, OpusHead, ...) is malformed, truncated or
    /// cannot be expressed where it is needed.
    #[error("invalid {what}: {reason}")]
    InvalidCodecConfig {
        /// Which structure.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A NAL unit length prefix runs past the end of the frame payload.
    #[error("NAL unit length {len} at offset {offset} overruns the {payload_len}-byte payload")]
    BadNalLength {
        /// Offset of the length prefix in the payload.
        offset: usize,
        /// The declared NAL unit length (0 when the prefix itself is truncated).
        len: usize,
        /// The payload length.
        payload_len: usize,
    },
    /// A frame carries more NAL units than [`crate::nal::MAX_NAL_UNITS`].
    #[error("more than {max} NAL units in one frame")]
    TooManyNalUnits {
        /// The limit.
        max: usize,
    },
    /// An AAC frame does not fit in one ADTS frame.
    #[error("AAC frame of {len} bytes exceeds the limit of {max}")]
    AacFrameTooLarge {
        /// The raw AAC frame length.
        len: usize,
        /// The limit ([`crate::aac::MAX_AAC_FRAME_LEN`]).
        max: usize,
    },
    /// An Opus packet whose TOC (RFC 6716 section 3.1) cannot be read.
    #[error("invalid Opus packet: {reason}")]
    InvalidOpusPacket {
        /// What is wrong with it.
        reason: &'static str,
    },
}
