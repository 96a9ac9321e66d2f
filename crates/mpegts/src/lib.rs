//! MPEG-TS muxer for classic HLS segments, and demuxer for TS ingest (sans-IO).
//!
//! [`TsMuxer`] turns hub [`media::Frame`]s into 188-byte transport stream packets: one
//! program with a PAT ([`psi`]), a PMT on [`PMT_PID`], H.264/H.265 video on [`VIDEO_PID`]
//! (Annex B with access unit delimiters and in-band parameter sets, [`video`]) and AAC audio
//! on [`AUDIO_PID`] (ADTS, [`media::aac::AdtsConfig`]). Each frame becomes one PES packet
//! ([`pes`]) split into transport packets ([`packet`]) with continuity counters, PCR and
//! random access flags. Decoder configuration records, NAL unit framing and ADTS headers
//! come from the `media` crate's codec modules.
//!
//! [`TsDemuxer`] reads transport streams (SRT ingest: OBS, ffmpeg, hardware encoders) into
//! elementary stream units: H.264/H.265 access units, AAC frames, Opus packets, with
//! timestamps unwrapped; damage from a lossy link is counted, not fatal ([`demux`]).
//!
//! Nothing here does IO or reads a clock: timestamps come from the frames (milliseconds,
//! converted to 90 kHz and masked to 33 bits). Every length from the input is checked before
//! use and no input can make the crate panic; the limits are media's
//! [`media::nal::MAX_NAL_UNITS`], [`media::nal::MAX_PARAMETER_SETS`] and
//! [`media::aac::MAX_AAC_FRAME_LEN`].
#![forbid(unsafe_code)]

pub mod crc;
pub mod demux;
mod error;
mod muxer;
pub mod packet;
pub mod pes;
pub mod psi;
pub mod video;

pub use crc::crc32_mpeg2;
pub use demux::{AudioParams, DemuxStats, EsCodec, EsUnit, TsDemuxer};
pub use error::TsError;
pub use muxer::{
    PCR_DELAY_90K, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, STREAM_TYPE_H265,
    TS_TIMESTAMP_OFFSET_90K, TsMuxer,
};
pub use packet::TS_PACKET_LEN;

/// PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the video elementary stream.
pub const VIDEO_PID: u16 = 0x100;
/// PID of the audio elementary stream.
pub const AUDIO_PID: u16 = 0x101;

#[cfg(test)]
mod muxer_tests;
#[cfg(test)]
mod reader_tests;
