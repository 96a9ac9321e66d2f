//! Audio transcoding for protocol bridges: AAC (what RTMP publishers send) to Opus (the only
//! audio codec every browser's WebRTC stack accepts), and back: Opus from WebRTC publishers to
//! AAC for RTMP, FLV and MPEG-TS players ([`OpusToAac`]).
//!
//! One engine runs per stream (not per viewer), as a derived track of the hub started when
//! the first subscriber wanting the other codec appears; [`frames`] adapts the engines to hub
//! frames (FLV-bodied `media::Frame`s), which is what the binary registers with the hub. It
//! is sans-IO: raw frames and their hub decode times go in, frames of the other codec with
//! decode times come out; no clock, socket or runtime is touched.
//!
//! Pipeline: `symphonia` AAC-LC decoder → [`resample`] (our own polyphase windowed-sinc resampler,
//! only when the input is not already 48 kHz) → libopus (`opus` crate) at 48 kHz, 20 ms frames.
#![forbid(unsafe_code)]

mod error;
pub mod frames;
mod opus_to_aac;
pub mod resample;
mod transcoder;

pub use error::TranscodeError;
pub use frames::{AacToOpusFrames, OpusToAacFrames};
pub use opus_to_aac::{
    AAC_BITRATE_MONO, AAC_BITRATE_STEREO, AacFrame, MAX_CONCEAL_MS, MAX_OPUS_PACKET_SAMPLES,
    MIN_CONCEAL_MS, OpusToAac,
};
pub use transcoder::{AacToOpus, OpusPacket};

/// Duration of every Opus packet produced, in milliseconds.
pub const OPUS_FRAME_MS: u64 = 20;
/// Opus's (and WebRTC's) sample rate: the output rate and the RTP clock rate.
pub const OPUS_SAMPLE_RATE: u32 = 48_000;
/// Samples per channel in one Opus packet (20 ms at 48 kHz).
pub const OPUS_FRAME_SAMPLES: usize = 960;
/// A jump between an AAC frame's dts and the time its predecessor's samples end that is larger
/// than this (either direction) resets the decoder, resampler, encoder and timeline. 100 ms is
/// far above dts rounding jitter (1 ms) yet small enough that a publisher pause or a seek is
/// followed within one AAC frame rather than drifting.
pub const MAX_GAP_MS: u64 = 100;
/// Largest raw AAC frame accepted, in bytes. ISO/IEC 14496-3 caps an AAC-LC raw data block at
/// 6144 bits per channel (768 bytes); two channels and generous slack for fill elements.
pub const MAX_AAC_FRAME_BYTES: usize = 4096;
/// Samples per channel in one AAC-LC frame; the decoder rejects other frame lengths (960).
pub const AAC_FRAME_SAMPLES: usize = 1024;
/// Most channels accepted (mono or stereo); the AAC decoder rejects more.
pub const MAX_CHANNELS: u16 = 2;
/// Largest Opus packet we let libopus write (RFC 6716 caps one 20 ms frame at 1275 bytes).
pub const MAX_OPUS_PACKET_BYTES: usize = 1500;
/// 48 kHz samples per channel that may wait for a complete Opus frame after a `push`:
/// less than one Opus frame is ever kept, so this is a hard bound checked in debug builds.
pub const MAX_PENDING_SAMPLES: usize = OPUS_FRAME_SAMPLES;
/// Default Opus bitrate for a stereo stream, bits per second.
pub const DEFAULT_BITRATE_STEREO: u32 = 64_000;
/// Default Opus bitrate for a mono stream, bits per second.
pub const DEFAULT_BITRATE_MONO: u32 = 32_000;
/// Lowest bitrate [`AacToOpus::with_bitrate`] accepts (libopus's own floor).
pub const MIN_BITRATE: u32 = 6_000;
/// Highest bitrate [`AacToOpus::with_bitrate`] accepts (libopus's own ceiling).
pub const MAX_BITRATE: u32 = 510_000;
/// libopus complexity (0–10). 5 roughly halves the encoder's CPU against the default 10 for a
/// quality loss that is inaudible at 64 kb/s; a server runs many transcoders.
pub const OPUS_COMPLEXITY: i32 = 5;
/// Packet loss the encoder plans for, in percent. In-band FEC only spends bits when this is
/// non-zero; 5 % is a typical WebRTC path without feedback-driven adaptation.
pub const EXPECTED_LOSS_PERCENT: i32 = 5;
