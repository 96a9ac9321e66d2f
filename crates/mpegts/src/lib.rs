//! MPEG-TS muxer (work in progress).
