//! Sluice's one internal media representation, and every codec bitstream helper.
//!
//! Every ingest turns its wire data into [`Frame`]s and every egress turns frames back into
//! wire data. A frame's canonical bytes are its FLV tag body (what an RTMP audio/video/data
//! message carries), because that is what the live core's ingest and egress protocols speak:
//! RTMP and HTTP-FLV viewers can then be served without re-serialising anything. The codec
//! payload (AVCC NAL units, raw AAC, ...) is a zero-copy slice of that body ([`Frame::payload`]).
//! Ingests that do not speak FLV build the body once per frame, never once per viewer.
//!
//! The codec helpers every container and protocol crate shares live here, once:
//!
//! * [`bits`]: an MSB-first bit reader with Exp-Golomb and AV1 uvlc codes; [`rbsp`]:
//!   emulation prevention removal; [`nal`]: length-prefixed and Annex B NAL unit framing.
//! * [`avc`]: H.264 decoder configuration record (both ways), SPS, RFC 6381 codec string.
//! * [`hevc`]: H.265 decoder configuration record (both ways), SPS, codec string.
//! * [`av1`]: OBUs, the sequence header and the `av1C` record; [`vp`]: VP8/VP9 key frame
//!   headers and the `vpcC` record.
//! * [`aac`]: AudioSpecificConfig and ADTS headers; [`opus`]: `OpusHead`, `dOps` and packet
//!   durations.
//!
//! Nothing here does IO or reads a clock; every parser of wire data is bounded by a named
//! limit, returns [`MediaError`] (or `None` where "not this kind of frame" is the answer)
//! instead of panicking, and has unit tests beside it.
#![forbid(unsafe_code)]

pub mod aac;
pub mod av1;
pub mod avc;
pub mod bits;
mod error;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
mod frame;
pub mod hevc;
pub mod nal;
pub mod opus;
pub mod rbsp;
mod record;
pub mod vp;

pub use error::MediaError;
pub use frame::{Codec, Frame, FrameRole, MediaKind, WireCache};
