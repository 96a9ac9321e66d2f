//! Audio transcoding (work in progress).
