//! The crate's error type.

/// Everything that can go wrong while transcoding. A frame-level error (`Decode`,
/// `FrameTooLarge`, `EmptyFrame`) affects only that frame; the transcoder keeps working.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscodeError {
    /// The AudioSpecificConfig could not be parsed or describes a stream the AAC-LC decoder
    /// cannot handle (HE-AAC/SBR, PCE channel layouts, 960-sample frames, ...).
    #[error("unsupported or invalid AAC AudioSpecificConfig {asc:02x?}: {reason}")]
    InvalidConfig {
        /// The first bytes of the rejected config.
        asc: Vec<u8>,
        /// What the decoder said.
        reason: String,
    },
    /// The input sample rate is not one of the 13 rates of the AAC sampling frequency table.
    #[error("unsupported AAC sample rate {rate} Hz")]
    UnsupportedSampleRate {
        /// The rate from the config.
        rate: u32,
    },
    /// Zero or more than [`crate::MAX_CHANNELS`] channels.
    #[error("unsupported channel count {channels} (mono or stereo only)")]
    UnsupportedChannels {
        /// The channel count from the config.
        channels: usize,
    },
    /// The requested Opus bitrate is outside [`crate::MIN_BITRATE`]..=[`crate::MAX_BITRATE`].
    #[error("Opus bitrate {bitrate} b/s out of range")]
    InvalidBitrate {
        /// The rejected bitrate.
        bitrate: u32,
    },
    /// An empty AAC frame.
    #[error("empty AAC frame at dts {dts_ms} ms")]
    EmptyFrame {
        /// The frame's decode time.
        dts_ms: u64,
    },
    /// An AAC frame longer than [`crate::MAX_AAC_FRAME_BYTES`].
    #[error("AAC frame of {len} bytes at dts {dts_ms} ms exceeds {max}")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
        /// The frame's decode time.
        dts_ms: u64,
    },
    /// The AAC decoder rejected a frame (corrupt or unsupported syntax). The frame was replaced
    /// by silence so the output timeline stays continuous.
    #[error("AAC frame at dts {dts_ms} ms failed to decode: {reason}")]
    Decode {
        /// The frame's decode time.
        dts_ms: u64,
        /// What the decoder said.
        reason: String,
    },
    /// libopus refused a setting or failed to encode (not expected with valid settings).
    #[error("Opus encoder: {what}: {source}")]
    Opus {
        /// The operation that failed.
        what: &'static str,
        /// libopus's error.
        #[source]
        source: opus::Error,
    },
    /// A resampler between these rates would need more coefficients than
    /// [`crate::resample::MAX_RESAMPLER_COEFFS`].
    #[error("resampling {from} Hz to {to} Hz needs too large a filter bank")]
    ResamplerTooLarge {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
    },
    /// The AAC encoder refused a setting or failed (not expected with valid settings).
    #[error("AAC encoder: {what}: {reason}")]
    AacEncoder {
        /// The operation that failed.
        what: &'static str,
        /// What the encoder said.
        reason: String,
    },
}
