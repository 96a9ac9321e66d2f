//! FLV header and tag mux/demux, including Enhanced RTMP codecs (sans-IO).
//!
//! * [`mux`]: [`file_header`], [`tag_header`], [`write_tag`].
//! * [`reader`]: [`FlvReader`], a push-bytes / pull-tags demuxer, and [`read_all_tags`].
//! * [`frame_from_tag`]: an FLV tag body (or RTMP audio/video/data message) to a
//!   [`media::Frame`]; the header mapping is documented in [`video`] and [`audio`].
//!
//! Codec payloads (decoder configuration records, SPS, AudioSpecificConfig, ...) are not
//! parsed here: the `media` crate's codec modules do that for every container.
//!
//! Nothing here does IO or reads a clock; every length from the wire is checked against a
//! named limit before use, and no input can make the crate panic.
#![forbid(unsafe_code)]

pub mod audio;
mod error;
mod frame;
pub mod mux;
pub mod reader;
pub mod video;

pub use error::FlvError;
pub use frame::{ON_METADATA_PREFIX, frame_from_tag};
pub use mux::{
    FLV_HEADER_LEN, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO, file_header, tag_header, write_tag,
};
pub use reader::{FileHeader, FlvReader, MAX_HEADER_LEN, MAX_TAG_LEN, Tag, read_all_tags};

#[cfg(test)]
mod fixture_tests;
