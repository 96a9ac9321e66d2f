//! The crate's one error type.

use media::{Codec, MediaError, MediaKind};

/// Everything that can go wrong while turning hub frames into fMP4.
///
/// Every variant describes unusable input (a malformed configuration, a frame that cannot be
/// placed, a limit reached); none of them is a bug in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fmp4Error {
    /// A sequence header or coded frame uses a codec this muxer cannot write.
    #[error("codec {codec:?} is not supported in fMP4 ({kind:?})")]
    UnsupportedCodec {
        /// Audio or video.
        kind: MediaKind,
        /// The codec found.
        codec: Codec,
    },
    /// `TrackConfig::from_sequence_header` was given a frame that is not a sequence header.
    #[error("expected a sequence header frame, got role {role}")]
    NotASequenceHeader {
        /// The frame's role, as text.
        role: &'static str,
    },
    /// A codec configuration record (avcC, hvcC, AudioSpecificConfig, OpusHead) or an Opus
    /// packet's TOC could not be read.
    #[error(transparent)]
    Codec(#[from] MediaError),
    /// A codec configuration record is longer than [`crate::MAX_CONFIG_SIZE`].
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    ConfigTooLarge {
        /// Which record.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A coded frame arrived for a kind whose sequence header has not been seen.
    #[error("coded {kind:?} frame before any {kind:?} sequence header")]
    NotConfigured {
        /// Audio or video.
        kind: MediaKind,
    },
    /// A coded frame's codec differs from the configured track's codec.
    #[error("coded {kind:?} frame is {found:?} but the track is {configured:?}")]
    CodecMismatch {
        /// Audio or video.
        kind: MediaKind,
        /// The track's codec.
        configured: Codec,
        /// The frame's codec.
        found: Codec,
    },
    /// A sample is larger than [`crate::MAX_SAMPLE_SIZE`].
    #[error("sample of {len} bytes exceeds the limit of {max}")]
    SampleTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The buffer is full ([`crate::MAX_BUFFERED_SAMPLES`] or [`crate::MAX_BUFFERED_BYTES`]);
    /// the frame was dropped. Call `flush` more often.
    #[error("fragmenter buffer full ({samples} samples, {bytes} bytes); frame dropped")]
    BufferFull {
        /// Samples buffered.
        samples: usize,
        /// Bytes buffered.
        bytes: usize,
    },
}
