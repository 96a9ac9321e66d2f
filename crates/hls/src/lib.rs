//! HLS (work in progress).
