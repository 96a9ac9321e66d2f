//! Sluice's one internal media representation.
//!
//! Every ingest turns its wire data into [`Frame`]s and every egress turns frames back into
//! wire data. A frame's canonical bytes are its FLV tag body (what an RTMP audio/video/data
//! message carries), because that is what the live core's ingest and egress protocols speak:
//! RTMP and HTTP-FLV viewers can then be served without re-serialising anything. The codec
//! payload (AVCC NAL units, raw AAC, ...) is a zero-copy slice of that body ([`Frame::payload`]).
//! Ingests that do not speak FLV build the body once per frame, never once per viewer.
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use bytes::Bytes;

/// Which elementary stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Audio samples.
    Audio,
    /// Video pictures.
    Video,
    /// Script data such as `onMetaData`.
    Data,
}

/// The codec of a frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 / AVC (FLV codec id 7).
    H264,
    /// H.265 / HEVC (Enhanced RTMP `hvc1`, or the legacy codec id 12).
    H265,
    /// AV1 (Enhanced RTMP `av01`).
    Av1,
    /// VP9 (Enhanced RTMP `vp09`).
    Vp9,
    /// VP8 (Enhanced RTMP `vp08`).
    Vp8,
    /// AAC (FLV sound format 10).
    Aac,
    /// MP3 (FLV sound format 2).
    Mp3,
    /// Opus (Enhanced RTMP `Opus`).
    Opus,
    /// AMF0 script data.
    Script,
    /// Anything else: the FLV codec id (legacy) or FourCC (enhanced), passed through untouched.
    Other(u32),
}

/// Parameters a protocol needs to tell the hub's frames apart without parsing them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRole {
    /// A decoder configuration (AVC/HEVC decoder configuration record, AAC AudioSpecificConfig,
    /// Enhanced RTMP sequence start). Consumers must see the latest one before coded frames.
    SequenceHeader,
    /// Coded media.
    Coded,
    /// The end of a video sequence (AVC end of sequence, Enhanced RTMP sequence end).
    SequenceEnd,
    /// Stream metadata (`onMetaData`).
    Metadata,
}

/// One unit of media moving through the hub. Cloning never copies the payload.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Audio, video or data.
    pub kind: MediaKind,
    /// Payload codec.
    pub codec: Codec,
    /// What the frame is for (configuration, coded media, metadata).
    pub role: FrameRole,
    /// Decode timestamp in milliseconds. Ingest sets it to the publisher's (unwrapped) value;
    /// the hub rewrites it onto the stream's monotonic timeline that starts at zero.
    pub dts: u64,
    /// Composition time offset in milliseconds (pts = dts + cts); zero for audio.
    pub cts: i32,
    /// True for a video random access point (and for every audio frame and header).
    pub keyframe: bool,
    /// The FLV tag body: exactly what an RTMP media message or an FLV tag carries.
    pub body: Bytes,
    /// Where the codec payload starts inside `body` (after the FLV audio/video tag header).
    pub payload_offset: usize,
    /// Wire bytes derived from this frame once and shared by every viewer (see [`WireCache`]).
    pub wire: WireCache,
    /// When the frame entered the hub (set by the hub's publisher; `None` before), so egress
    /// can measure delivery latency. A value, not a clock read: codecs stay sans-IO.
    pub arrival: Option<std::time::Instant>,
}

impl Frame {
    /// The codec payload: a zero-copy slice of the FLV body after its tag header.
    pub fn payload(&self) -> Bytes {
        self.body.slice(self.payload_offset.min(self.body.len())..)
    }

    /// Presentation timestamp in milliseconds.
    pub fn pts(&self) -> u64 {
        self.dts.saturating_add_signed(i64::from(self.cts))
    }

    /// True when a new viewer may start decoding video at this frame.
    pub fn is_video_keyframe(&self) -> bool {
        self.kind == MediaKind::Video && self.keyframe && self.role == FrameRole::Coded
    }
}

/// Per-frame cache of serialised wire bytes, filled by the first viewer that needs them and
/// shared by all others ("serialise once, send to many").
#[derive(Debug, Clone, Default)]
pub struct WireCache {
    /// The RTMP chunked body (payload split at the given chunk size with type-3 separators).
    pub rtmp_chunks: OnceLock<(u32, Bytes)>,
}
