//! The crate's one error type.

use media::Codec;

/// Everything that can make [`crate::TsMuxer::push`] refuse a frame.
///
/// Every variant describes hostile, corrupt or unsupported input; none of them is a bug in
/// this crate. After an error the muxer's state is unchanged (no bytes were written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsError {
    /// A coded frame arrived before a sequence header of the same codec.
    #[error("coded {codec:?} frame before its sequence header")]
    MissingSequenceHeader {
        /// The coded frame's codec.
        codec: Codec,
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
    /// A frame carries more NAL units than [`crate::MAX_NAL_UNITS`].
    #[error("more than {max} NAL units in one frame")]
    TooManyNalUnits {
        /// The limit.
        max: usize,
    },
    /// A decoder configuration record is malformed or unsupported.
    #[error("bad {what}: {reason}")]
    InvalidConfig {
        /// Which record (e.g. "HEVC decoder configuration record").
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The AAC AudioSpecificConfig could not be parsed.
    #[error("bad AAC AudioSpecificConfig: {0}")]
    AudioConfig(#[from] flv::FlvError),
    /// An AAC frame does not fit in one ADTS frame / audio PES.
    #[error("AAC frame of {len} bytes exceeds the limit of {max}")]
    AacFrameTooLarge {
        /// The raw AAC frame length.
        len: usize,
        /// The limit ([`crate::MAX_AAC_FRAME_LEN`]).
        max: usize,
    },
}
