//! Fragmented MP4 muxer (work in progress).
