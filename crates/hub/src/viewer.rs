//! What every viewer does with its subscription, whatever its protocol: its own timeline
//! starting at zero, holding trailing audio for the next video frame so both leave in one
//! write, and (for consumers that write an init segment or file header once: HLS, MP4
//! recordings) holding the first coded frames until the audio's sequence header arrives.
//! Pure; the protocol servers use it.

use std::collections::VecDeque;
use std::sync::Arc;

use media::{Frame, FrameRole, MediaKind};

/// Most frames taken from the hub for one batch before writing.
pub const MAX_BATCH_FRAMES: usize = 128;

/// A viewer's timeline: its first coded frame is at 0 and everything follows from there, so
/// every player sees monotonic timestamps starting near zero whenever it joined.
#[derive(Debug, Default)]
pub struct ViewerClock {
    base: Option<u64>,
}

impl ViewerClock {
    /// The timestamp this viewer should see for `frame` (32-bit wrap as RTMP and FLV do).
    pub fn timestamp(&mut self, frame: &Frame) -> u32 {
        if self.base.is_none() && frame.role == FrameRole::Coded && frame.kind != MediaKind::Data {
            self.base = Some(frame.dts);
        }
        match self.base {
            // Truncation to 32 bits is the wire format's own wrap-around.
            Some(base) => frame.dts.saturating_sub(base) as u32,
            None => 0,
        }
    }
}

/// Tracks whether a viewer's pending bytes are audio only, on a stream that has video: such
/// audio may wait for the next video frame (up to `hub.audio_coalesce_ms`) so both go out in
/// one write. Video itself is never held. At 25 fps with AAC this halves a viewer's writes,
/// and writes are the cost.
#[derive(Debug, Default)]
pub struct AudioHold {
    has_video: bool,
    pending_video: bool,
    pending_audio: bool,
}

impl AudioHold {
    /// Notes a frame queued for the viewer.
    pub fn saw(&mut self, f: &Frame) {
        if f.role != FrameRole::Coded {
            return;
        }
        match f.kind {
            MediaKind::Video => {
                self.has_video = true;
                self.pending_video = true;
            }
            MediaKind::Audio => self.pending_audio = true,
            MediaKind::Data => {}
        }
    }

    /// The pending bytes are being written.
    pub fn flushed(&mut self) {
        self.pending_video = false;
        self.pending_audio = false;
    }

    /// True when the pending bytes may wait for the next video frame.
    pub fn should_hold(&self) -> bool {
        self.has_video && self.pending_audio && !self.pending_video
    }
}

/// Longest stretch of stream time (dts span of the frames held) [`AudioHeaderWait`] holds
/// for an audio sequence header: a derived track's header comes a frame or so after the
/// published video of the same time (an encoder's delay, about 0.1 s), and a stream whose
/// audio does not come by then is taken as it is (video-only, or audio joining later).
pub const AUDIO_HEADER_WAIT_MS: u64 = 1_000;

/// Most frames [`AudioHeaderWait`] holds (bounds its memory whatever the timestamps).
pub const AUDIO_HEADER_WAIT_FRAMES: usize = 256;

/// Holds a consumer's first coded frames until an audio sequence header arrives, for
/// consumers that describe every track once, up front (an fMP4 init segment, an MP4
/// recording's `moov`, the PMT of HLS TS segments): a derived audio track (the AAC of a
/// WHIP publisher's Opus) starts a frame or so after the stream's video, and without the wait
/// its track would be missing from the init (or arrive as a discontinuity).
///
/// Headers and metadata pass at once; coded frames wait until an audio header arrives (it is
/// passed first, then the held frames in order), or an audio frame arrives without one, or
/// the held frames span [`AUDIO_HEADER_WAIT_MS`] or number [`AUDIO_HEADER_WAIT_FRAMES`].
/// After that everything passes as it comes. A stream whose audio header is among the
/// subscriber's first frames (headers come before the GOP) is never held.
#[derive(Debug, Default)]
pub struct AudioHeaderWait {
    done: bool,
    held: VecDeque<Arc<Frame>>,
}

impl AudioHeaderWait {
    /// Takes the next frame of the subscription; appends the frames to hand on now to
    /// `out`, in order.
    pub fn push(&mut self, f: Arc<Frame>, out: &mut Vec<Arc<Frame>>) {
        if self.done {
            out.push(f);
            return;
        }
        let audio = f.kind == MediaKind::Audio;
        match f.role {
            FrameRole::SequenceHeader if audio => {
                out.push(f);
                self.release(out);
            }
            FrameRole::Coded if audio => {
                self.release(out);
                out.push(f);
            }
            FrameRole::Coded => {
                self.held.push_back(f);
                let span = match (self.held.front(), self.held.back()) {
                    (Some(a), Some(b)) => b.dts.saturating_sub(a.dts),
                    _ => 0,
                };
                if span >= AUDIO_HEADER_WAIT_MS || self.held.len() >= AUDIO_HEADER_WAIT_FRAMES {
                    self.release(out);
                }
            }
            _ => out.push(f),
        }
    }

    /// Hands on whatever is held (at the end of the stream) and stops waiting.
    pub fn release(&mut self, out: &mut Vec<Arc<Frame>>) {
        self.done = true;
        out.extend(self.held.drain(..));
    }

    /// True while frames are held.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use media::fixtures::frame;

    #[test]
    fn viewer_clock_starts_at_first_coded_frame() {
        let mut c = ViewerClock::default();
        assert_eq!(
            c.timestamp(&frame(MediaKind::Video, FrameRole::SequenceHeader, 9000)),
            0
        );
        assert_eq!(
            c.timestamp(&frame(MediaKind::Video, FrameRole::Coded, 10_000)),
            0
        );
        assert_eq!(
            c.timestamp(&frame(MediaKind::Audio, FrameRole::Coded, 9_990)),
            0
        );
        assert_eq!(
            c.timestamp(&frame(MediaKind::Video, FrameRole::Coded, 10_040)),
            40
        );
    }

    fn audio(role: FrameRole, dts: u64) -> Arc<Frame> {
        Arc::new(Frame {
            codec: media::Codec::Aac,
            ..frame(MediaKind::Audio, role, dts)
        })
    }

    fn video(role: FrameRole, dts: u64) -> Arc<Frame> {
        Arc::new(frame(MediaKind::Video, role, dts))
    }

    fn kinds(out: &[Arc<Frame>]) -> Vec<(MediaKind, FrameRole, u64)> {
        out.iter().map(|f| (f.kind, f.role, f.dts)).collect()
    }

    /// A late audio header goes out before the video held for it; then nothing is held.
    #[test]
    fn coded_frames_wait_for_the_audio_header() {
        let mut w = AudioHeaderWait::default();
        let mut out = Vec::new();
        w.push(video(FrameRole::SequenceHeader, 0), &mut out);
        w.push(video(FrameRole::Coded, 0), &mut out);
        w.push(video(FrameRole::Coded, 40), &mut out);
        assert_eq!(
            kinds(&out),
            [(MediaKind::Video, FrameRole::SequenceHeader, 0)]
        );
        assert!(w.holding());
        out.clear();
        w.push(audio(FrameRole::SequenceHeader, 10), &mut out);
        w.push(audio(FrameRole::Coded, 10), &mut out);
        w.push(video(FrameRole::Coded, 80), &mut out);
        assert_eq!(
            kinds(&out),
            [
                (MediaKind::Audio, FrameRole::SequenceHeader, 10),
                (MediaKind::Video, FrameRole::Coded, 0),
                (MediaKind::Video, FrameRole::Coded, 40),
                (MediaKind::Audio, FrameRole::Coded, 10),
                (MediaKind::Video, FrameRole::Coded, 80),
            ]
        );
        assert!(!w.holding());
    }

    /// Headers first (as a join gives them): nothing is ever held.
    #[test]
    fn an_audio_header_up_front_holds_nothing() {
        let mut w = AudioHeaderWait::default();
        let mut out = Vec::new();
        for f in [
            video(FrameRole::SequenceHeader, 0),
            audio(FrameRole::SequenceHeader, 0),
            video(FrameRole::Coded, 0),
        ] {
            w.push(f, &mut out);
        }
        assert_eq!(out.len(), 3);
        assert!(!w.holding());
    }

    /// Without audio the wait is bounded by stream time and by count, and ends at the end.
    #[test]
    fn the_wait_is_bounded() {
        let mut w = AudioHeaderWait::default();
        let mut out = Vec::new();
        for i in 0..25 {
            w.push(video(FrameRole::Coded, i * 40), &mut out);
        }
        assert!(out.is_empty(), "960 ms: still waiting");
        w.push(video(FrameRole::Coded, AUDIO_HEADER_WAIT_MS), &mut out);
        assert_eq!(out.len(), 26, "1 s of video: released in order");
        assert!(out.windows(2).all(|p| p[0].dts < p[1].dts));
        let mut w = AudioHeaderWait::default();
        out.clear();
        for _ in 0..AUDIO_HEADER_WAIT_FRAMES {
            w.push(video(FrameRole::Coded, 5), &mut out);
        }
        assert_eq!(out.len(), AUDIO_HEADER_WAIT_FRAMES);
        let mut w = AudioHeaderWait::default();
        out.clear();
        w.push(video(FrameRole::Coded, 0), &mut out);
        w.release(&mut out);
        assert_eq!(out.len(), 1);
        w.push(video(FrameRole::Coded, 40), &mut out);
        assert_eq!(out.len(), 2, "nothing held after the end of the wait");
    }

    #[test]
    fn audio_waits_for_video_only_on_streams_with_video() {
        let mut h = AudioHold::default();
        let audio = frame(MediaKind::Audio, FrameRole::Coded, 0);
        let video = frame(MediaKind::Video, FrameRole::Coded, 0);
        h.saw(&audio);
        assert!(!h.should_hold(), "audio-only stream so far: never held");
        h.saw(&video);
        h.saw(&audio);
        assert!(
            !h.should_hold(),
            "video pending: write now, with the audio after it"
        );
        h.flushed();
        h.saw(&audio);
        assert!(
            h.should_hold(),
            "only audio pending: wait for the next video frame"
        );
        h.saw(&video);
        assert!(!h.should_hold());
    }
}
