//! The crate's one error type.

use media::{Codec, MediaError};

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
    /// A decoder configuration record, AudioSpecificConfig or coded frame is malformed
    /// (a NAL unit length past the end, too many NAL units) or cannot be carried (an AAC
    /// configuration ADTS cannot signal, an AAC frame too large for one ADTS frame).
    #[error(transparent)]
    Codec(#[from] MediaError),
}
