//! Fragmented MP4 (CMAF) muxer for LL-HLS parts, segments and recordings (sans-IO).
//!
//! * [`TrackConfig`]: a track's codec configuration from a hub sequence header (H.264 avcC,
//!   H.265 hvcC, AAC AudioSpecificConfig, Opus `OpusHead`, all parsed by `media`'s codec
//!   modules), with the RFC 6381 codec string.
//! * [`write_init_segment`]: `ftyp` + `moov` for a set of tracks.
//! * [`write_fragment`]: one `moof` + `mdat` from per-track [`Sample`]s.
//! * [`Fragmenter`]: hub [`media::Frame`]s in, timed [`Fragment`]s out (see its module docs
//!   for the timing rules).
//!
//! Boxes follow ISO/IEC 14496-12 (ISOBMFF), 14496-15 (avc1/hvc1), 14496-14 (mp4a/esds) and
//! the Opus-in-ISOBMFF mapping (Opus/dOps). Nothing here does IO or reads a clock; every
//! input length is bounded by a named limit and no input can make the crate panic.
#![forbid(unsafe_code)]

mod boxes;
mod config;
mod error;
mod fragment;
mod fragmenter;
mod init;

pub use config::{MAX_CONFIG_SIZE, TrackConfig, VIDEO_TIMESCALE};
pub use error::Fmp4Error;
pub use fragment::{
    SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC, Sample, TrackFragment, write_fragment,
};
pub use fragmenter::{
    AUDIO_RESYNC_MS, DEFAULT_VIDEO_DURATION, Fragment, Fragmenter, MAX_BUFFERED_BYTES,
    MAX_BUFFERED_SAMPLES, MAX_SAMPLE_SIZE, Pushed,
};
pub use init::write_init_segment;
