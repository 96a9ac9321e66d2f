//! HLS and Low-Latency HLS (RFC 8216bis) for one live stream, as a sans-IO state machine.
//!
//! [`HlsStream`] takes the hub's frames (with the wall-clock time passed in), cuts media
//! segments on keyframes, cuts LL-HLS partial segments of about `part_target_ms` inside them,
//! keeps a sliding window in memory, and renders the multivariant and media playlists. It
//! also answers the two questions a server needs for blocking requests: is the playlist a
//! client asked for (`_HLS_msn` / `_HLS_part`) ready yet ([`HlsStream::playlist_readiness`]),
//! and is the segment, part or init segment it asked for ready, coming, or gone
//! ([`HlsStream::lookup`]). Waiting itself is the server's business: it re-asks whenever
//! [`HlsStream::generation`] changes.
//!
//! Two segment formats: fMP4/CMAF (with parts, via the `fmp4` crate) and MPEG-TS (classic
//! HLS, via the `mpegts` crate). Segment data is kept as shared [`bytes::Bytes`] chunks: an
//! fMP4 segment is the list of its parts, so parts and segments never hold the same bytes
//! twice.
#![forbid(unsafe_code)]

mod playlist;
pub mod request;
mod segmenter;
#[cfg(test)]
mod tests;

pub use request::{HlsFile, MEDIA_PLAYLIST_NAME, MULTIVARIANT_NAME, PlaylistQuery};
pub use segmenter::{
    HlsParams, HlsStats, HlsStream, Lookup, MAX_PARTS_PER_SEGMENT, MAX_SEGMENT_BYTES,
    MAX_WINDOW_SEGMENTS, Readiness, SegmentFormat,
};

/// Errors of the HLS crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HlsError {
    /// A requested file name is not one of this stream's files.
    #[error("bad HLS file name: {0}")]
    BadName(&'static str),
    /// A playlist query has a malformed delivery directive.
    #[error("bad HLS query: {0}")]
    BadQuery(&'static str),
    /// The parameters make no sense (the message names the field).
    #[error("bad HLS parameters: {0}")]
    BadParams(&'static str),
    /// The fMP4 muxer refused a frame.
    #[error("fMP4: {0}")]
    Fmp4(#[from] fmp4::Fmp4Error),
    /// The MPEG-TS muxer refused a frame.
    #[error("MPEG-TS: {0}")]
    Ts(#[from] mpegts::TsError),
}
