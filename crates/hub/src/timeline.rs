//! Timestamp normalisation: maps a publisher's raw 32-bit RTMP timestamps onto the stream's
//! monotonic timeline, which starts at zero and survives publisher takeovers.

use media::{Frame, FrameRole, MediaKind};

/// A forward jump (against the newest output timestamp of any kind) larger than this is a
/// discontinuity: the timeline is re-based so the frame lands just after the last output.
pub const MAX_TIMESTAMP_GAP_MS: u64 = 10_000;

/// A per-kind backwards step up to this size is treated as jitter and clamped (the frame keeps
/// the kind's last timestamp); a larger step is a discontinuity and re-bases the timeline.
pub const MAX_BACKWARD_JITTER_MS: u64 = 500;

/// The largest step (frame duration) remembered for placing a frame after a discontinuity;
/// longer observed durations are treated as gaps, not as frame durations.
pub const MAX_STEP_MS: u64 = 1_000;

/// Index of a media kind in the per-kind arrays.
fn kind_index(kind: MediaKind) -> usize {
    match kind {
        MediaKind::Audio => 0,
        MediaKind::Video => 1,
        MediaKind::Data => 2,
    }
}

/// The stream's timeline: state kept across publisher sessions (takeovers).
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Last raw (32-bit) timestamp of the current publisher session and its unwrapped value;
    /// `None` until the session's first coded audio/video frame.
    session: Option<(u32, i64)>,
    /// Output = unwrapped publisher timestamp + offset.
    offset: i64,
    /// Last output dts per kind (audio, video, data).
    last_out: [Option<u64>; 3],
    /// Largest output dts of any kind; `None` before the first output.
    max_out: Option<u64>,
    /// Last observed positive frame duration per kind, in ms.
    last_step: [Option<u64>; 3],
    /// Number of discontinuities re-based (jumps, not takeovers).
    discontinuities: u64,
    /// True once a coded audio/video frame has been output (headers alone do not start the
    /// timeline, so the first coded frame still lands at 0).
    coded_seen: bool,
}

impl Timeline {
    /// Starts a new publisher session (takeover): the next frame continues after the last
    /// output, whatever its own timestamps are.
    pub(crate) fn new_session(&mut self) {
        self.session = None;
    }

    /// How many discontinuities have been re-based so far.
    pub(crate) fn discontinuities(&self) -> u64 {
        self.discontinuities
    }

    /// The step placed between the last output and a re-based frame of `kind`.
    fn step(&self, kind: usize) -> u64 {
        self.last_step[kind]
            .or(self.last_step[1])
            .or(self.last_step[0])
            .unwrap_or(1)
    }

    /// Rewrites `frame.dts` (a raw 32-bit RTMP timestamp; higher bits are ignored) onto the
    /// stream timeline.
    pub(crate) fn normalise(&mut self, frame: &mut Frame) {
        let raw = (frame.dts & u64::from(u32::MAX)) as u32;
        let k = kind_index(frame.kind);
        let active = frame.role == FrameRole::Coded && frame.kind != MediaKind::Data;
        let out = if active {
            self.stamp_coded(raw, k)
        } else {
            self.stamp_passive(raw, k)
        };
        if let Some(prev) = self.last_out[k] {
            let d = out.saturating_sub(prev);
            if active && d > 0 && d <= MAX_STEP_MS {
                self.last_step[k] = Some(d);
            }
        }
        self.last_out[k] = Some(out);
        self.max_out = Some(self.max_out.map_or(out, |m| m.max(out)));
        frame.dts = out;
    }

    /// Coded audio/video: unwraps, maps, detects discontinuities.
    fn stamp_coded(&mut self, raw: u32, k: usize) -> u64 {
        let unwrapped = match self.session {
            Some((last_raw, last_unwrapped)) => {
                // Wrapping delta interpreted as i32 unwraps the 32-bit rollover.
                last_unwrapped + i64::from(raw.wrapping_sub(last_raw) as i32)
            }
            None => {
                let start = match self.max_out {
                    Some(m) if self.coded_seen => clamp_i64(m.saturating_add(self.step(k))),
                    _ => 0,
                };
                self.offset = start - i64::from(raw);
                i64::from(raw)
            }
        };
        self.session = Some((raw, unwrapped));
        self.coded_seen = true;
        let candidate = unwrapped.saturating_add(self.offset);
        let max_out = self.max_out.map_or(0, clamp_i64);
        // A kind not seen yet is compared against zero (the timeline's start).
        let last = self.last_out[k].map_or(0, clamp_i64);
        let backwards = candidate < last.saturating_sub(clamp_i64(MAX_BACKWARD_JITTER_MS));
        let forward = self.max_out.is_some()
            && candidate > max_out.saturating_add(clamp_i64(MAX_TIMESTAMP_GAP_MS));
        let candidate = if backwards || forward {
            self.discontinuities += 1;
            let target = match self.max_out {
                Some(m) => clamp_i64(m.saturating_add(self.step(k))),
                None => 0,
            };
            self.offset = target - unwrapped;
            target
        } else {
            candidate
        };
        // Small backwards jitter: keep the kind non-decreasing.
        let floor = self.last_out[k].unwrap_or(0);
        u64::try_from(candidate).unwrap_or(0).max(floor)
    }

    /// Headers, metadata, sequence ends and script data take the current timeline: the kind's
    /// last output, or for a kind not seen yet the frame's own mapped time clamped into
    /// `[0, newest output]`. They never move the mapping.
    fn stamp_passive(&self, raw: u32, k: usize) -> u64 {
        if let Some(last) = self.last_out[k] {
            return last;
        }
        let max_out = self.max_out.unwrap_or(0);
        match self.session {
            Some((last_raw, last_unwrapped)) => {
                let mapped =
                    last_unwrapped + i64::from(raw.wrapping_sub(last_raw) as i32) + self.offset;
                u64::try_from(mapped).unwrap_or(0).min(max_out)
            }
            None => max_out,
        }
    }
}

/// Converts to i64, saturating (timeline values never get near `i64::MAX` in practice).
fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    use media::fixtures::frame;

    fn run(tl: &mut Timeline, input: &[(MediaKind, u64)]) -> Vec<u64> {
        input
            .iter()
            .map(|&(k, d)| {
                let mut f = frame(k, FrameRole::Coded, d);
                tl.normalise(&mut f);
                f.dts
            })
            .collect()
    }

    fn assert_monotonic_per_kind(input: &[(MediaKind, u64)], out: &[u64]) {
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let v: Vec<u64> = input
                .iter()
                .zip(out)
                .filter(|(i, _)| i.0 == kind)
                .map(|(_, o)| *o)
                .collect();
            assert!(
                v.windows(2).all(|w| w[0] <= w[1]),
                "{kind:?} not monotonic: {v:?}"
            );
        }
    }

    /// Interleaved A/V at 40 ms video / 23 ms audio with audio lagging a bit behind video.
    fn av(start: u64, n: u64) -> Vec<(MediaKind, u64)> {
        let mut v = Vec::new();
        for i in 0..n {
            v.push((MediaKind::Video, start.wrapping_add(i * 40) & 0xFFFF_FFFF));
            v.push((
                MediaKind::Audio,
                start.wrapping_add(i * 40).wrapping_sub(30) & 0xFFFF_FFFF,
            ));
        }
        v
    }

    #[test]
    fn starts_at_zero_from_large_timestamp() {
        let mut tl = Timeline::default();
        let input = av(1_000_000, 50);
        let out = run(&mut tl, &input);
        assert_eq!(out[0], 0);
        // The audio 30 ms behind video is jitter within the jitter window, clamped to 0.
        assert_eq!(out[1], 0);
        assert_eq!(out[2], 40);
        assert_eq!(out[3], 10);
        assert_eq!(out[98], 49 * 40);
        assert_monotonic_per_kind(&input, &out);
        assert_eq!(tl.discontinuities(), 0);
    }

    #[test]
    fn unwraps_32_bit_rollover() {
        let mut tl = Timeline::default();
        let start = u64::from(u32::MAX) - 1_000;
        let input = av(start, 100);
        let out = run(&mut tl, &input);
        assert_eq!(out[0], 0);
        for (i, o) in out.iter().enumerate().step_by(2) {
            assert_eq!(*o, (i as u64 / 2) * 40);
        }
        assert_monotonic_per_kind(&input, &out);
        assert_eq!(tl.discontinuities(), 0);
    }

    #[test]
    fn backwards_jump_is_rebased() {
        let mut tl = Timeline::default();
        let mut input = av(500_000, 10);
        input.extend(av(100, 10));
        let out = run(&mut tl, &input);
        assert_monotonic_per_kind(&input, &out);
        // Frame 20 (video at raw 100) lands just after the last output (360 + 40).
        assert_eq!(out[20], 400);
        assert_eq!(out[22], 440);
        assert_eq!(tl.discontinuities(), 1);
    }

    #[test]
    fn forward_jump_of_an_hour_is_rebased() {
        let mut tl = Timeline::default();
        let mut input = av(0, 10);
        input.extend(av(3_600_000, 10));
        let out = run(&mut tl, &input);
        assert_monotonic_per_kind(&input, &out);
        assert_eq!(out[20], 400);
        assert!(*out.last().unwrap_or(&0) < 1_000);
        assert_eq!(tl.discontinuities(), 1);
    }

    #[test]
    fn normal_gap_is_kept() {
        let mut tl = Timeline::default();
        let input = vec![(MediaKind::Video, 0), (MediaKind::Video, 5_000)];
        assert_eq!(run(&mut tl, &input), vec![0, 5_000]);
    }

    #[test]
    fn takeover_continues_after_last_output() {
        let mut tl = Timeline::default();
        let first = av(77_000, 10);
        let mut out = run(&mut tl, &first);
        tl.new_session();
        let second = av(0, 10);
        out.extend(run(&mut tl, &second));
        let all: Vec<_> = first.iter().chain(&second).copied().collect();
        assert_monotonic_per_kind(&all, &out);
        assert_eq!(out[0], 0);
        assert_eq!(out[20], 360 + 40);
        assert_eq!(tl.discontinuities(), 0);
    }

    #[test]
    fn headers_take_current_timeline() {
        let mut tl = Timeline::default();
        let mut h = frame(MediaKind::Video, FrameRole::SequenceHeader, 999_000);
        tl.normalise(&mut h);
        assert_eq!(h.dts, 0);
        run(&mut tl, &av(1_000_000, 10));
        let mut h = frame(MediaKind::Video, FrameRole::SequenceHeader, 0);
        tl.normalise(&mut h);
        assert_eq!(h.dts, 360);
        let mut m = frame(MediaKind::Data, FrameRole::Metadata, 0);
        tl.normalise(&mut m);
        assert_eq!(
            m.dts, 0,
            "first metadata with a raw ts far behind is clamped to 0"
        );
        // Headers never re-base the timeline.
        assert_eq!(tl.discontinuities(), 0);
        let out = run(&mut tl, &[(MediaKind::Video, 1_000_400)]);
        assert_eq!(out, vec![400]);
    }

    #[test]
    fn garbage_timestamps_stay_monotonic() {
        let mut tl = Timeline::default();
        let mut x: u64 = 12345;
        let mut input = Vec::new();
        for i in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let kind = if i % 3 == 0 {
                MediaKind::Audio
            } else {
                MediaKind::Video
            };
            input.push((kind, x >> 7));
        }
        let out = run(&mut tl, &input);
        assert_monotonic_per_kind(&input, &out);
    }
}
