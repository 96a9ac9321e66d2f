//! The GOP cache: the frames a late joiner needs to start decoding at once.

use std::collections::VecDeque;
use std::sync::Arc;

use media::{Frame, FrameRole, MediaKind};

use crate::track::{PUBLISHED, TrackId};

/// For audio-only streams the cache keeps a sliding window of this duration.
pub const AUDIO_ONLY_WINDOW_MS: u64 = 1_000;

/// Limits of the GOP cache (taken from [`crate::HubConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GopLimits {
    pub(crate) max_frames: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_duration_ms: u64,
}

/// From the latest video keyframe on, every coded audio and video frame; for audio-only
/// streams, the last [`AUDIO_ONLY_WINDOW_MS`] of audio. Frames of every track (published and
/// derived) share the cache and its limits; each entry says which track it belongs to.
///
/// A derived track runs behind the published ones (it is made from them), so its frames
/// arrive after newer published frames: a derived frame older than the GOP's keyframe is not
/// cached, and the audio-only window is measured against the newest frame cached (frames
/// already outside it are not cached).
#[derive(Debug)]
pub(crate) struct GopCache {
    limits: GopLimits,
    frames: VecDeque<(TrackId, Arc<Frame>)>,
    bytes: usize,
    /// True once any video frame (or video header) has been seen.
    has_video: bool,
    /// True while the cache starts on a video keyframe (video streams only).
    started: bool,
    /// Times the cache was cleared because the current GOP exceeded a limit.
    overflows: u64,
    /// Dts of the last video keyframe and the interval to the one before it.
    last_keyframe: Option<u64>,
    keyframe_interval: Option<u64>,
    /// Largest dts cached since the last clear.
    newest: u64,
}

impl GopCache {
    /// An empty cache.
    pub(crate) fn new(limits: GopLimits) -> Self {
        Self {
            limits,
            frames: VecDeque::new(),
            bytes: 0,
            has_video: false,
            started: false,
            overflows: 0,
            last_keyframe: None,
            keyframe_interval: None,
            newest: 0,
        }
    }

    /// True once the stream has carried video.
    #[cfg(test)]
    pub(crate) fn has_video(&self) -> bool {
        self.has_video
    }

    /// True when a joiner would have to wait for a keyframe (video stream, nothing cached).
    #[cfg(test)]
    pub(crate) fn needs_keyframe(&self) -> bool {
        self.has_video && !self.started
    }

    /// Cached frames in order, with their tracks.
    pub(crate) fn frames(&self) -> impl Iterator<Item = (TrackId, &Arc<Frame>)> {
        self.frames.iter().map(|(t, f)| (*t, f))
    }

    /// Number of cached frames.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Bytes (FLV bodies) cached.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many times a limit cleared the cache.
    pub(crate) fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Interval between the last two video keyframes, in ms.
    pub(crate) fn keyframe_interval(&self) -> Option<u64> {
        self.keyframe_interval
    }

    /// Drops everything (stream end).
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.started = false;
        self.newest = 0;
    }

    /// Offers a (normalised) frame of `track` to the cache.
    pub(crate) fn push(&mut self, track: TrackId, frame: &Arc<Frame>) {
        if frame.kind == MediaKind::Video && !self.has_video {
            // The stream turned out to carry video: drop the audio-only window.
            self.has_video = true;
            self.clear();
        }
        if frame.role != FrameRole::Coded || frame.kind == MediaKind::Data {
            return;
        }
        if frame.is_video_keyframe() {
            if let Some(prev) = self.last_keyframe {
                self.keyframe_interval = Some(frame.dts.saturating_sub(prev));
            }
            self.last_keyframe = Some(frame.dts);
            self.clear();
            self.started = true;
        } else if self.has_video && !self.started {
            return;
        }
        if self.has_video {
            if track != PUBLISHED && self.last_keyframe.is_some_and(|k| frame.dts < k) {
                return;
            }
        } else if frame.dts.saturating_add(self.audio_window()) < self.newest {
            return;
        }
        self.newest = self.newest.max(frame.dts);
        self.bytes = self.bytes.saturating_add(frame.body.len());
        self.frames.push_back((track, Arc::clone(frame)));
        if self.has_video {
            if self.over_limit() {
                self.overflows += 1;
                tracing::debug!(
                    frames = self.frames.len(),
                    bytes = self.bytes,
                    "GOP cache over limit, cleared"
                );
                self.clear();
            }
        } else {
            self.trim_audio_window();
        }
    }

    fn duration(&self) -> u64 {
        match (self.frames.front(), self.frames.back()) {
            (Some((_, a)), Some((_, b))) => b.dts.saturating_sub(a.dts),
            _ => 0,
        }
    }

    /// Audio-only: from the oldest frame to the newest.
    fn audio_span(&self) -> u64 {
        self.frames
            .front()
            .map_or(0, |(_, f)| self.newest.saturating_sub(f.dts))
    }

    fn audio_window(&self) -> u64 {
        AUDIO_ONLY_WINDOW_MS.min(self.limits.max_duration_ms)
    }

    fn over_limit(&self) -> bool {
        self.frames.len() > self.limits.max_frames
            || self.bytes > self.limits.max_bytes
            || self.duration() > self.limits.max_duration_ms
    }

    /// Audio-only: slide the window (by duration and by the frame/byte limits).
    fn trim_audio_window(&mut self) {
        let window = self.audio_window();
        while self.frames.len() > 1
            && (self.audio_span() > window
                || self.frames.len() > self.limits.max_frames
                || self.bytes > self.limits.max_bytes)
        {
            if let Some((_, f)) = self.frames.pop_front() {
                self.bytes = self.bytes.saturating_sub(f.body.len());
            }
        }
        if self.frames.len() > self.limits.max_frames || self.bytes > self.limits.max_bytes {
            self.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use media::Codec;

    fn f(kind: MediaKind, key: bool, dts: u64, len: usize) -> Arc<Frame> {
        Arc::new(Frame {
            kind,
            codec: if kind == MediaKind::Video {
                Codec::H264
            } else {
                Codec::Aac
            },
            role: FrameRole::Coded,
            dts,
            cts: 0,
            keyframe: key || kind == MediaKind::Audio,
            body: Bytes::from(vec![0u8; len]),
            payload_offset: 0,
            wire: Default::default(),
            arrival: None,
        })
    }

    fn limits() -> GopLimits {
        GopLimits {
            max_frames: 10,
            max_bytes: 1000,
            max_duration_ms: 1_000,
        }
    }

    #[test]
    fn starts_on_keyframe_and_resets() {
        let mut g = GopCache::new(limits());
        g.push(0, &f(MediaKind::Video, false, 0, 10));
        assert_eq!(g.len(), 0);
        assert!(g.needs_keyframe());
        g.push(0, &f(MediaKind::Video, true, 40, 10));
        g.push(0, &f(MediaKind::Audio, false, 50, 5));
        g.push(0, &f(MediaKind::Video, false, 80, 10));
        assert_eq!(g.len(), 3);
        assert_eq!(g.bytes(), 25);
        g.push(0, &f(MediaKind::Video, true, 120, 10));
        assert_eq!(g.len(), 1);
        assert_eq!(g.keyframe_interval(), Some(80));
        assert!(
            g.frames()
                .next()
                .is_some_and(|(_, x)| x.is_video_keyframe())
        );
    }

    #[test]
    fn frame_limit_clears() {
        let mut g = GopCache::new(limits());
        g.push(0, &f(MediaKind::Video, true, 0, 1));
        for i in 1..=10 {
            g.push(0, &f(MediaKind::Video, false, i, 1));
        }
        assert_eq!(g.len(), 0);
        assert_eq!(g.overflows(), 1);
        assert!(g.needs_keyframe());
        // Frames before the next keyframe are not cached.
        g.push(0, &f(MediaKind::Video, false, 20, 1));
        assert_eq!(g.len(), 0);
        g.push(0, &f(MediaKind::Video, true, 30, 1));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn byte_and_duration_limits_clear() {
        let mut g = GopCache::new(limits());
        g.push(0, &f(MediaKind::Video, true, 0, 600));
        g.push(0, &f(MediaKind::Video, false, 40, 600));
        assert_eq!((g.len(), g.overflows()), (0, 1));
        g.push(0, &f(MediaKind::Video, true, 100, 1));
        g.push(0, &f(MediaKind::Video, false, 1_101, 1));
        assert_eq!((g.len(), g.overflows()), (0, 2));
    }

    #[test]
    fn derived_frames_older_than_the_gop_or_window_are_not_cached() {
        let mut g = GopCache::new(limits());
        g.push(0, &f(MediaKind::Video, true, 1_000, 1));
        g.push(1, &f(MediaKind::Audio, false, 990, 1)); // derived, made before the keyframe
        g.push(0, &f(MediaKind::Audio, false, 990, 1)); // published audio a bit behind: kept
        g.push(1, &f(MediaKind::Audio, false, 1_000, 1));
        let cached: Vec<(TrackId, u64)> = g.frames().map(|(t, x)| (t, x.dts)).collect();
        assert_eq!(cached, vec![(0, 1_000), (0, 990), (1, 1_000)]);

        let mut g = GopCache::new(limits());
        for i in 0..5 {
            g.push(0, &f(MediaKind::Audio, false, 2_000 + i * 200, 1));
        }
        // A derived frame far behind: outside the window already.
        g.push(1, &f(MediaKind::Audio, false, 1_500, 1));
        g.push(1, &f(MediaKind::Audio, false, 2_100, 1));
        let cached: Vec<(TrackId, u64)> = g.frames().map(|(t, x)| (t, x.dts)).collect();
        assert_eq!(
            cached,
            vec![
                (0, 2_000),
                (0, 2_200),
                (0, 2_400),
                (0, 2_600),
                (0, 2_800),
                (1, 2_100)
            ]
        );
        // The window slides against the newest frame, whatever the order.
        g.push(0, &f(MediaKind::Audio, false, 3_150, 1));
        assert_eq!(g.frames().next().map(|(_, x)| x.dts), Some(2_200));
    }

    #[test]
    fn audio_only_window() {
        let mut g = GopCache::new(limits());
        for i in 0..100 {
            g.push(0, &f(MediaKind::Audio, false, i * 23, 4));
        }
        assert!(!g.has_video());
        assert!(!g.needs_keyframe());
        let first = g.frames().next().map(|(_, x)| x.dts).unwrap_or(0);
        let last = g.frames().last().map(|(_, x)| x.dts).unwrap_or(0);
        assert!(last - first <= AUDIO_ONLY_WINDOW_MS);
        assert!(g.len() <= 10, "frame limit applies to the window too");
        assert_eq!(last, 99 * 23);
        // Video appears: the audio window goes, the cache waits for a keyframe.
        g.push(0, &f(MediaKind::Video, false, 3000, 4));
        assert_eq!(g.len(), 0);
        assert!(g.needs_keyframe());
    }
}
