//! [`Fragmenter`]: hub frames in, timed samples buffered, moof+mdat fragments out.
//!
//! Timing model (all decode times are per track, in the track's timescale):
//! * Video runs at 90 kHz; a sample's decode time is `dts_ms x 90`. Its duration is only known
//!   when the next video frame arrives, so the newest video sample is *held* until then.
//!   Durations are computed from decode times, so a track's timeline is contiguous and never
//!   goes backwards: a frame whose dts does not advance gets the previous duration
//!   (or [`DEFAULT_VIDEO_DURATION`]) and the timeline catches up when the dts does.
//! * Audio runs at the sample rate; AAC frames last 1024 samples, Opus packets what their TOC
//!   says. Decode time advances by the durations and is re-synced to `dts_ms x rate / 1000`
//!   when it drifts more than [`AUDIO_RESYNC_MS`] from a frame's dts: the last buffered
//!   sample is stretched (publisher gap) or shortened to meet the new time; with nothing
//!   buffered the next fragment's tfdt simply jumps forward.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use media::{Codec, Frame, FrameRole, MediaKind};

use crate::config::VIDEO_TIMESCALE;
use crate::{Fmp4Error, Sample, TrackConfig, TrackFragment, write_fragment, write_init_segment};
use media::opus::opus_packet_duration;

/// Most samples (all tracks, the held video sample included) buffered between flushes: about
/// 40 s of 25 fps video with 48 kHz AAC. Beyond it `push` fails with
/// [`Fmp4Error::BufferFull`] and drops the frame; callers flush at least every segment.
pub const MAX_BUFFERED_SAMPLES: usize = 4096;

/// Most payload bytes buffered between flushes (128 MiB: a 10 s GOP at 100 Mbit/s), which
/// also keeps every fragment far below the 2 GiB that trun data offsets can address.
pub const MAX_BUFFERED_BYTES: usize = 128 * 1024 * 1024;

/// Largest single sample accepted (16 MiB: far above any real 4K keyframe).
pub const MAX_SAMPLE_SIZE: usize = 16 * 1024 * 1024;

/// Audio decode time is re-synced to the frame's dts when it drifts by more than this.
pub const AUDIO_RESYNC_MS: u64 = 100;

/// Duration (90 kHz ticks, 1/30 s) for a video sample when no better one is known: the
/// held sample at [`Fragmenter::finish`] before any duration was seen, or a frame whose dts
/// does not advance before any duration was seen.
pub const DEFAULT_VIDEO_DURATION: u32 = 3_000;

/// Samples per AAC frame (AAC-LC and the core of HE-AAC).
const AAC_FRAME_SAMPLES: u32 = 1024;

/// What [`Fragmenter::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Nothing: metadata, sequence end, an unsupported codec, an empty payload or a sequence
    /// header identical to the current one.
    Nothing,
    /// A sequence header configured or reconfigured a track: fetch the new
    /// [`Fragmenter::init_segment`].
    InitChanged,
    /// A coded frame was buffered as a sample.
    Sample,
}

/// One moof + mdat produced by [`Fragmenter::flush`] or [`Fragmenter::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// moof + mdat.
    pub bytes: Bytes,
    /// The mfhd sequence number (1 for the first fragment, then +1 each).
    pub sequence_number: u32,
    /// Hub dts (ms) of the earliest sample.
    pub start_ms: u64,
    /// End of the last video sample (of the last audio sample when there is no video) minus
    /// `start_ms`, in ms; at least 1. Video ends exactly at the flush bound, so consecutive
    /// fragments tile the timeline (start + duration = the next fragment's start).
    pub duration_ms: u64,
    /// True when the first video sample is a keyframe, or there is no video sample.
    pub independent: bool,
    /// Number of video samples.
    pub video_samples: u32,
    /// Number of audio samples.
    pub audio_samples: u32,
}

/// A buffered sample with its place on both timelines.
#[derive(Debug, Clone)]
struct Pending {
    dts_ms: u64,
    decode_time: u64,
    duration: u32,
    cts_offset: i32,
    keyframe: bool,
    data: Bytes,
}

/// One track's configuration and buffered samples.
#[derive(Debug, Clone)]
struct TrackState {
    config: TrackConfig,
    /// Complete samples (duration known), in decode order.
    pending: VecDeque<Pending>,
    /// Video only: the newest sample, waiting for the next frame to learn its duration.
    held: Option<Pending>,
    /// Audio: decode time of the next sample. Video: decode time of the held sample, or the
    /// end of the last complete one; later samples never start before it.
    next_decode_time: Option<u64>,
    /// The last complete video sample's duration.
    last_duration: Option<u32>,
}

impl TrackState {
    fn new(config: TrackConfig) -> Self {
        Self {
            config,
            pending: VecDeque::new(),
            held: None,
            next_decode_time: None,
            last_duration: None,
        }
    }

    fn duration_ms(&self, ticks: u64) -> u64 {
        let ts = u64::from(self.config.timescale.max(1));
        ticks.saturating_mul(1000).saturating_add(ts / 2) / ts
    }

    /// Completes the held video sample with `duration` and moves it to `pending`.
    fn complete_held(&mut self, duration: u32) {
        if let Some(mut held) = self.held.take() {
            held.duration = duration;
            self.last_duration = Some(duration);
            self.next_decode_time = Some(held.decode_time.saturating_add(u64::from(duration)));
            self.pending.push_back(held);
        }
    }
}

/// Turns hub frames into timed samples and fragments (used by LL-HLS parts, segments and
/// recordings). Sans-IO: time comes only from the frames.
#[derive(Debug, Clone)]
pub struct Fragmenter {
    video: Option<TrackState>,
    audio: Option<TrackState>,
    /// Track configurations in init-segment order: video first when present, then audio.
    configs: Vec<TrackConfig>,
    init: Option<Bytes>,
    next_sequence: u32,
    buffered_samples: usize,
    buffered_bytes: usize,
}

impl Default for Fragmenter {
    fn default() -> Self {
        Self::new()
    }
}

impl Fragmenter {
    /// An empty fragmenter with no tracks.
    pub fn new() -> Self {
        Self {
            video: None,
            audio: None,
            configs: Vec::new(),
            init: None,
            next_sequence: 1,
            buffered_samples: 0,
            buffered_bytes: 0,
        }
    }

    /// Feeds one frame. Sequence headers (re)configure a track and return
    /// [`Pushed::InitChanged`] when the init segment changed ([`Pushed::Nothing`] for an
    /// identical repeat); coded frames are buffered ([`Pushed::Sample`]); metadata, sequence
    /// ends, unsupported codecs and empty payloads return [`Pushed::Nothing`]. A config change
    /// flushes nothing: flush first if the old samples must go out with the old init.
    ///
    /// Errors: an invalid sequence header, a coded frame before its kind's sequence header
    /// or with a codec other than the track's, an oversized sample, a full buffer (the frame
    /// is dropped) or an unreadable Opus TOC.
    pub fn push(&mut self, frame: &Frame) -> Result<Pushed, Fmp4Error> {
        let supported = matches!(
            (frame.kind, frame.codec),
            (MediaKind::Video, Codec::H264 | Codec::H265)
                | (MediaKind::Audio, Codec::Aac | Codec::Opus)
        );
        if !supported {
            return Ok(Pushed::Nothing);
        }
        match frame.role {
            FrameRole::SequenceHeader => self.configure(frame),
            FrameRole::Coded => self.push_coded(frame),
            FrameRole::SequenceEnd | FrameRole::Metadata => Ok(Pushed::Nothing),
        }
    }

    fn configure(&mut self, frame: &Frame) -> Result<Pushed, Fmp4Error> {
        let config = TrackConfig::from_sequence_header(frame)?;
        let slot = match frame.kind {
            MediaKind::Video => &mut self.video,
            _ => &mut self.audio,
        };
        match slot {
            Some(state) if state.config == config => return Ok(Pushed::Nothing),
            Some(state) => {
                if state.config.timescale != config.timescale {
                    // A new clock: restart the decode timeline from the next frame's dts.
                    state.next_decode_time = None;
                }
                state.config = config;
            }
            None => *slot = Some(TrackState::new(config)),
        }
        self.configs = self
            .video
            .iter()
            .chain(self.audio.iter())
            .map(|t| t.config.clone())
            .collect();
        let mut out = BytesMut::new();
        write_init_segment(&self.configs, &mut out);
        self.init = Some(out.freeze());
        Ok(Pushed::InitChanged)
    }

    fn push_coded(&mut self, frame: &Frame) -> Result<Pushed, Fmp4Error> {
        let state = match frame.kind {
            MediaKind::Video => self.video.as_mut(),
            _ => self.audio.as_mut(),
        }
        .ok_or(Fmp4Error::NotConfigured { kind: frame.kind })?;
        if state.config.codec != frame.codec {
            return Err(Fmp4Error::CodecMismatch {
                kind: frame.kind,
                configured: state.config.codec,
                found: frame.codec,
            });
        }
        let data = frame.payload();
        if data.is_empty() {
            return Ok(Pushed::Nothing);
        }
        if data.len() > MAX_SAMPLE_SIZE {
            return Err(Fmp4Error::SampleTooLarge {
                len: data.len(),
                max: MAX_SAMPLE_SIZE,
            });
        }
        if self.buffered_samples >= MAX_BUFFERED_SAMPLES
            || self.buffered_bytes.saturating_add(data.len()) > MAX_BUFFERED_BYTES
        {
            return Err(Fmp4Error::BufferFull {
                samples: self.buffered_samples,
                bytes: self.buffered_bytes,
            });
        }
        let len = data.len();
        if frame.kind == MediaKind::Video {
            push_video(state, frame, data);
        } else {
            push_audio(state, frame, data)?;
        }
        self.buffered_samples += 1;
        self.buffered_bytes += len;
        Ok(Pushed::Sample)
    }

    /// The configured tracks in init-segment order: video first when present, then audio.
    /// Track ids are index + 1.
    pub fn tracks(&self) -> &[TrackConfig] {
        &self.configs
    }

    /// The current init segment (ftyp + moov), or `None` until a track is configured.
    /// Built once per configuration change; cloning is cheap.
    pub fn init_segment(&self) -> Option<Bytes> {
        self.init.clone()
    }

    /// Emits one moof + mdat with every buffered complete sample whose dts is below
    /// `before_ms`, across tracks; with `None`, below the held video sample's dts (so audio
    /// and video cover the same span), or everything complete when no video is held.
    /// Returns `None` when no sample qualifies.
    pub fn flush(&mut self, before_ms: Option<u64>) -> Option<Fragment> {
        let bound = before_ms.or_else(|| self.video.as_ref()?.held.as_ref().map(|h| h.dts_ms));
        self.take_fragment(bound)
    }

    /// Completes the held video sample (with the previous sample's duration, or
    /// [`DEFAULT_VIDEO_DURATION`]) and emits everything buffered: the end of a stream or
    /// recording.
    pub fn finish(&mut self) -> Option<Fragment> {
        if let Some(video) = self.video.as_mut() {
            let duration = video.last_duration.unwrap_or(DEFAULT_VIDEO_DURATION);
            video.complete_held(duration);
        }
        self.take_fragment(None)
    }

    /// Span (ms) of the complete samples waiting to be flushed: the longest track's.
    pub fn buffered_duration_ms(&self) -> u64 {
        self.video
            .iter()
            .chain(self.audio.iter())
            .map(|t| {
                let ticks = t
                    .pending
                    .iter()
                    .fold(0u64, |sum, s| sum.saturating_add(u64::from(s.duration)));
                t.duration_ms(ticks)
            })
            .max()
            .unwrap_or(0)
    }

    /// Takes complete samples with dts below `bound` (all when `None`) into one fragment.
    fn take_fragment(&mut self, bound: Option<u64>) -> Option<Fragment> {
        let below = |s: &Pending| bound.is_none_or(|b| s.dts_ms < b);
        let mut parts: Vec<(u32, u64, Vec<Sample>, MediaKind)> = Vec::with_capacity(2);
        let (mut start_ms, mut video_end, mut audio_end) = (u64::MAX, None, 0u64);
        let mut track_id = 0u32;
        for state in [self.video.as_mut(), self.audio.as_mut()]
            .into_iter()
            .flatten()
        {
            track_id += 1;
            let mut samples = Vec::new();
            let mut base = None;
            while let Some(s) = state.pending.front() {
                if !below(s) {
                    break;
                }
                let Some(s) = state.pending.pop_front() else {
                    break;
                };
                base.get_or_insert(s.decode_time);
                start_ms = start_ms.min(s.dts_ms);
                let end = s
                    .dts_ms
                    .saturating_add(state.duration_ms(u64::from(s.duration)));
                // Video sets the span when present (its samples end exactly where the next
                // fragment starts); audio only when the fragment has no video.
                if state.config.kind == MediaKind::Video {
                    video_end = Some(end);
                } else {
                    audio_end = audio_end.max(end);
                }
                self.buffered_samples = self.buffered_samples.saturating_sub(1);
                self.buffered_bytes = self.buffered_bytes.saturating_sub(s.data.len());
                samples.push(Sample {
                    duration: s.duration,
                    cts_offset: s.cts_offset,
                    keyframe: s.keyframe,
                    data: s.data,
                });
            }
            if let Some(base) = base {
                parts.push((track_id, base, samples, state.config.kind));
            }
        }
        if parts.is_empty() {
            return None;
        }
        let count = |kind| {
            parts
                .iter()
                .filter(|p| p.3 == kind)
                .map(|p| u32::try_from(p.2.len()).unwrap_or(u32::MAX))
                .sum::<u32>()
        };
        let (video_samples, audio_samples) = (count(MediaKind::Video), count(MediaKind::Audio));
        let independent = parts
            .iter()
            .find(|p| p.3 == MediaKind::Video)
            .and_then(|p| p.2.first())
            .is_none_or(|s| s.keyframe);
        let tracks: Vec<TrackFragment<'_>> = parts
            .iter()
            .map(|(track_id, base, samples, _)| TrackFragment {
                track_id: *track_id,
                base_decode_time: *base,
                samples,
            })
            .collect();
        let mut out = BytesMut::new();
        let sequence_number = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);
        write_fragment(sequence_number, &tracks, &mut out);
        Some(Fragment {
            bytes: out.freeze(),
            sequence_number,
            start_ms,
            duration_ms: video_end
                .unwrap_or(audio_end)
                .saturating_sub(start_ms)
                .max(1),
            independent,
            video_samples,
            audio_samples,
        })
    }
}

/// Buffers a video frame: completes the held sample and holds this one.
fn push_video(state: &mut TrackState, frame: &Frame, data: Bytes) {
    let decode = frame.dts.saturating_mul(u64::from(VIDEO_TIMESCALE) / 1000);
    let decode_time = if let Some(held_decode) = state.held.as_ref().map(|h| h.decode_time) {
        let duration = decode
            .checked_sub(held_decode)
            .filter(|d| *d > 0)
            .map(|d| u32::try_from(d).unwrap_or(u32::MAX))
            .or(state.last_duration)
            .unwrap_or(DEFAULT_VIDEO_DURATION);
        state.complete_held(duration);
        held_decode.saturating_add(u64::from(duration))
    } else {
        decode.max(state.next_decode_time.unwrap_or(0))
    };
    state.next_decode_time = Some(decode_time);
    let cts = i64::from(frame.cts) * i64::from(VIDEO_TIMESCALE / 1000);
    state.held = Some(Pending {
        dts_ms: frame.dts,
        decode_time,
        duration: 0,
        // Clamped: cts is at most 24 bits of ms, so x 90 always fits; kept for safety.
        cts_offset: i32::try_from(cts).unwrap_or(if cts < 0 { i32::MIN } else { i32::MAX }),
        keyframe: frame.keyframe,
        data,
    });
}

/// Buffers an audio frame with its duration, re-syncing the decode time after a drift.
fn push_audio(state: &mut TrackState, frame: &Frame, data: Bytes) -> Result<(), Fmp4Error> {
    let duration = match state.config.codec {
        Codec::Opus => opus_packet_duration(&data)?,
        _ => AAC_FRAME_SAMPLES,
    };
    let rate = u64::from(state.config.timescale);
    let expected = frame.dts.saturating_mul(rate) / 1000;
    let tolerance = AUDIO_RESYNC_MS.saturating_mul(rate) / 1000;
    let decode_time = match state.next_decode_time {
        None => expected,
        Some(next) if next.abs_diff(expected) <= tolerance => next,
        Some(next) => match state.pending.back_mut() {
            // Stretch or shrink the last buffered sample so the timeline stays contiguous.
            Some(last) => {
                let floor = last.decode_time.saturating_add(1);
                let gap = expected.max(floor).saturating_sub(last.decode_time);
                last.duration = u32::try_from(gap).unwrap_or(u32::MAX);
                last.decode_time.saturating_add(u64::from(last.duration))
            }
            // Nothing buffered: jump forward (never back behind what was emitted).
            None => expected.max(next),
        },
    };
    state.next_decode_time = Some(decode_time.saturating_add(u64::from(duration)));
    state.pending.push_back(Pending {
        dts_ms: frame.dts,
        decode_time,
        duration,
        cts_offset: 0,
        keyframe: true,
        data,
    });
    Ok(())
}

#[cfg(test)]
#[path = "fragmenter_tests.rs"]
mod tests;
