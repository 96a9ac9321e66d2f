//! What every viewer does with its subscription, whatever its protocol: its own timeline
//! starting at zero, and holding trailing audio for the next video frame so both leave in
//! one write. Pure; the protocol servers use it.

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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(kind: MediaKind, role: FrameRole, dts: u64) -> Frame {
        Frame {
            kind,
            codec: media::Codec::H264,
            role,
            dts,
            cts: 0,
            keyframe: true,
            body: Bytes::from_static(&[0x17, 1, 0, 0, 0, 0xAA, 0xBB]),
            payload_offset: 5,
            wire: Default::default(),
            arrival: None,
        }
    }

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
