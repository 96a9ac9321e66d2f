//! Track identity inside a stream: which entries of the ring and the GOP cache belong to
//! the published tracks and which to a derived one.

/// Which track of a stream a ring or GOP entry belongs to: [`PUBLISHED`] for everything the
/// publisher pushed, a fresh number for each derived track (never reused within a stream).
pub(crate) type TrackId = u32;

/// The publisher's own tracks.
pub(crate) const PUBLISHED: TrackId = 0;
