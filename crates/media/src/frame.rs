//! The frame model: [`Frame`], its [`MediaKind`], [`Codec`] and [`FrameRole`], and the
//! per-frame [`WireCache`].

use std::borrow::Cow;
use std::fmt;
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

impl Codec {
    /// The codec's name as players and people know it (`H.264`, `AAC`, `Opus`, ...), for
    /// error messages and logs. [`Codec::Other`] shows its FourCC when it is one (`'fLaC'`),
    /// else its FLV codec id (`codec id 12`). This is also the [`Display`](fmt::Display) form.
    pub fn name(self) -> Cow<'static, str> {
        match self.names() {
            Ok((_, name)) => Cow::Borrowed(name),
            Err(id) => match id.to_be_bytes() {
                fourcc
                    if id > 0xFF && fourcc.iter().all(|b| b.is_ascii_graphic() || *b == b' ') =>
                {
                    Cow::Owned(format!("'{}'", String::from_utf8_lossy(&fourcc)))
                }
                _ => Cow::Owned(format!("codec id {id}")),
            },
        }
    }

    /// The lower-case label used by metrics labels and API fields (`h264`, `aac`, ...);
    /// [`Codec::Other`] is `other-<id>` (the FLV codec id or the FourCC as a number).
    pub fn label(self) -> Cow<'static, str> {
        match self.names() {
            Ok((label, _)) => Cow::Borrowed(label),
            Err(id) => Cow::Owned(format!("other-{id}")),
        }
    }

    /// (label, name) of a known codec, or the id of an [`Codec::Other`].
    fn names(self) -> Result<(&'static str, &'static str), u32> {
        Ok(match self {
            Codec::H264 => ("h264", "H.264"),
            Codec::H265 => ("h265", "H.265"),
            Codec::Av1 => ("av1", "AV1"),
            Codec::Vp9 => ("vp9", "VP9"),
            Codec::Vp8 => ("vp8", "VP8"),
            Codec::Aac => ("aac", "AAC"),
            Codec::Mp3 => ("mp3", "MP3"),
            Codec::Opus => ("opus", "Opus"),
            Codec::Script => ("script", "script data"),
            Codec::Other(id) => return Err(id),
        })
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_and_labels() {
        assert_eq!(Codec::H264.name(), "H.264");
        assert_eq!(Codec::Vp9.to_string(), "VP9");
        assert_eq!(Codec::Aac.name(), "AAC");
        assert_eq!(Codec::H264.label(), "h264");
        assert_eq!(Codec::Opus.label(), "opus");
        assert_eq!(Codec::Other(12).label(), "other-12");
        assert_eq!(Codec::Other(12).name(), "codec id 12");
        let flac = u32::from_be_bytes(*b"fLaC");
        assert_eq!(Codec::Other(flac).name(), "'fLaC'");
        assert_eq!(Codec::Other(flac).label(), format!("other-{flac}"));
        // Not printable: the number.
        assert_eq!(Codec::Other(0x0100_0000).name(), "codec id 16777216");
    }
}
