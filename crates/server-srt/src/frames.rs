//! MPEG-TS elementary stream units to hub frames (FLV tag bodies, as every ingest hands
//! them to the hub). Pure: no IO, no clock.
//!
//! - H.264: legacy FLV AVC tags; the AVCDecoderConfigurationRecord is built from in-band
//!   SPS/PPS ([`rtp::h264::Avcc`]), published when it first appears or changes, so an
//!   encoder that sends its parameter sets only once still plays.
//! - H.265: Enhanced RTMP `hvc1` tags, the HEVCDecoderConfigurationRecord likewise.
//! - AAC: FLV AAC tags; the AudioSpecificConfig comes from the ADTS header.
//! - Opus: Enhanced RTMP `Opus` tags, the `OpusHead` made from the PMT's channel count.
//!
//! The first video and the first audio stream of the program are taken; video starts at its
//! first keyframe. A transport stream interleaves its tracks loosely (ffmpeg lets audio run
//! up to 0.7 s apart from video), while the hub and its viewers expect frames in decode
//! order across tracks (a late joiner starts at a keyframe, and audio older than it would
//! land before its start): frames are released in decode order once both tracks the PMT
//! lists have frames waiting, or when one track has waited [`MAX_INTERLEAVE_MS`] (the other
//! stalled or never comes). Timestamps: 90 kHz decode times become milliseconds from the first unit
//! (less [`START_MARGIN_90K`], so a stream whose audio starts a little before its video
//! keeps both), composition offsets from PTS - DTS.

use std::collections::VecDeque;

use bytes::Bytes;
use flv::audio::{ExAudioPacket, FOURCC_OPUS, aac_body, ex_audio_body};
use flv::mux::{TAG_AUDIO, TAG_VIDEO};
use flv::video::{ExVideoPacket, FOURCC_HVC1, ex_video_body};
use media::Frame;
use media::aac::AdtsConfig;
use media::opus::OpusHead;
use mpegts::{AudioParams, EsCodec, EsUnit};
use rtp::h264::{Avcc, AvccUnit};
use rtp::hevc::Hvcc;

/// How far before the first unit's decode time the stream's clock starts (1 s at 90 kHz):
/// units up to this much earlier than the first one are kept.
pub const START_MARGIN_90K: u64 = 90_000;

/// Longest stretch (ms of stream time) frames of one track wait for the other track's.
pub const MAX_INTERLEAVE_MS: u64 = 1_000;
/// Most frames and bytes waiting for the other track (whatever the timestamps say: a
/// publisher's times cannot make the queue grow without bound).
pub const MAX_INTERLEAVE_FRAMES: usize = 512;
/// See [`MAX_INTERLEAVE_FRAMES`].
pub const MAX_INTERLEAVE_BYTES: usize = 16 * 1024 * 1024;

/// The video converter of the stream's codec.
#[derive(Debug)]
enum VideoConv {
    H264(Avcc),
    H265(Hvcc),
}

/// One SRT publisher's converter.
#[derive(Debug, Default)]
pub struct TsToFrames {
    video_pid: Option<u16>,
    audio_pid: Option<u16>,
    video: Option<VideoConv>,
    /// Dropping video until the first keyframe.
    started_video: bool,
    /// The AAC configuration last published.
    aac: Option<AdtsConfig>,
    /// The Opus channel count last published.
    opus: Option<u8>,
    /// The 90 kHz time of millisecond 0.
    base: Option<u64>,
    /// Frames made.
    frames: u64,
    /// The last millisecond time given to a video and to an audio frame.
    last_video_ms: Option<u64>,
    last_audio_ms: Option<u64>,
    /// Frames waiting for the other track, per track.
    video_q: VecDeque<Frame>,
    audio_q: VecDeque<Frame>,
    /// Body bytes waiting in both queues.
    queued_bytes: usize,
    /// The tracks the PMT lists (a track it does not list is never waited for).
    has_video: bool,
    has_audio: bool,
}

impl TsToFrames {
    /// A converter waiting for its first unit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames made so far (sequence headers included).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Says which tracks the program has (from the demuxer's PMT).
    pub fn set_tracks(&mut self, video: bool, audio: bool) {
        self.has_video = video;
        self.has_audio = audio;
    }

    /// Converts one unit and appends the frames now due, in decode order, to `out` (a
    /// sequence header goes just before the frame it configures).
    pub fn convert(&mut self, u: &EsUnit, out: &mut Vec<Frame>) {
        let mut made = Vec::new();
        self.make(u, &mut made);
        self.frames += made.len() as u64;
        for f in made {
            self.queued_bytes += f.body.len();
            match f.kind {
                media::MediaKind::Video => self.video_q.push_back(f),
                _ => self.audio_q.push_back(f),
            }
        }
        self.release(out, false);
    }

    /// Appends every frame still waiting, in decode order (the publisher left).
    pub fn flush(&mut self, out: &mut Vec<Frame>) {
        self.release(out, true);
    }

    /// Moves the frames that are due from the queues to `out`.
    fn release(&mut self, out: &mut Vec<Frame>, all: bool) {
        let full = self.video_q.len() + self.audio_q.len() > MAX_INTERLEAVE_FRAMES
            || self.queued_bytes > MAX_INTERLEAVE_BYTES;
        let span = |q: &VecDeque<Frame>| match (q.front(), q.back()) {
            (Some(a), Some(b)) if !full => b.dts.saturating_sub(a.dts),
            (Some(_), Some(_)) => u64::MAX,
            _ => 0,
        };
        loop {
            let take_video = match (self.video_q.front(), self.audio_q.front()) {
                (Some(v), Some(a)) => v.dts <= a.dts,
                (Some(_), None)
                    if all || !self.has_audio || span(&self.video_q) > MAX_INTERLEAVE_MS =>
                {
                    true
                }
                (None, Some(_))
                    if all || !self.has_video || span(&self.audio_q) > MAX_INTERLEAVE_MS =>
                {
                    false
                }
                _ => break,
            };
            let q = if take_video {
                &mut self.video_q
            } else {
                &mut self.audio_q
            };
            match q.pop_front() {
                Some(f) => {
                    self.queued_bytes -= f.body.len();
                    out.push(f);
                }
                None => break,
            }
        }
    }

    /// Converts one unit into its frames (unordered across tracks).
    fn make(&mut self, u: &EsUnit, out: &mut Vec<Frame>) {
        let video = matches!(u.codec, EsCodec::H264 | EsCodec::H265);
        let pid = if video {
            &mut self.video_pid
        } else {
            &mut self.audio_pid
        };
        if *pid.get_or_insert(u.pid) != u.pid {
            return;
        }
        let base = *self
            .base
            .get_or_insert(u.dts.saturating_sub(START_MARGIN_90K));
        let Some(dts) = u.dts.checked_sub(base) else {
            return;
        };
        // Each track's times strictly increase (an encoder looping its input, or two AAC
        // frames rounding to one millisecond, would repeat one): a repeat moves 1 ms on.
        let last = if video {
            &mut self.last_video_ms
        } else {
            &mut self.last_audio_ms
        };
        let ms = match *last {
            Some(l) if dts / 90 <= l => l + 1,
            _ => dts / 90,
        };
        *last = Some(ms);
        let pts_ms = u.pts.saturating_sub(base) / 90;
        let cts = i32::try_from(pts_ms.saturating_sub(ms)).unwrap_or(i32::MAX);
        match (u.codec, u.audio) {
            (EsCodec::H264 | EsCodec::H265, _) => self.video(u, ms, cts, out),
            (EsCodec::Aac, Some(AudioParams::Aac(cfg))) => {
                if self.aac != Some(cfg) {
                    self.aac = Some(cfg);
                    push(
                        out,
                        TAG_AUDIO,
                        ms,
                        aac_body(true, &cfg.audio_specific_config()),
                    );
                }
                push(out, TAG_AUDIO, ms, aac_body(false, &u.data));
            }
            (EsCodec::Opus, Some(AudioParams::Opus { channels })) => {
                if self.opus != Some(channels) {
                    self.opus = Some(channels);
                    let head = OpusHead {
                        channels,
                        ..OpusHead::default_stereo()
                    };
                    let header = ex_audio_body(
                        FOURCC_OPUS,
                        ExAudioPacket::SequenceStart,
                        &head.identification_header(),
                    );
                    push(out, TAG_AUDIO, ms, header);
                }
                let body = ex_audio_body(FOURCC_OPUS, ExAudioPacket::CodedFrames, &u.data);
                push(out, TAG_AUDIO, ms, body);
            }
            _ => {}
        }
    }

    fn video(&mut self, u: &EsUnit, ms: u64, cts: i32, out: &mut Vec<Frame>) {
        let conv = self.video.get_or_insert_with(|| match u.codec {
            EsCodec::H265 => VideoConv::H265(Hvcc::default()),
            _ => VideoConv::H264(Avcc::default()),
        });
        let unit = match conv {
            VideoConv::H264(c) => c.convert(&u.data),
            VideoConv::H265(c) => c.convert(&u.data),
        };
        let Some(AvccUnit {
            config,
            data,
            keyframe,
        }) = unit
        else {
            return;
        };
        let keyframe = keyframe || u.keyframe;
        if !self.started_video && !keyframe {
            return;
        }
        self.started_video = true;
        let hevc = matches!(conv, VideoConv::H265(_));
        if let Some(record) = config {
            let header = if hevc {
                ex_video_body(FOURCC_HVC1, true, ExVideoPacket::SequenceStart, &record)
            } else {
                avc_tag(true, 0, 0, &record)
            };
            push(out, TAG_VIDEO, ms, header);
        }
        let body = if hevc {
            ex_video_body(
                FOURCC_HVC1,
                keyframe,
                ExVideoPacket::CodedFrames { cts },
                &data,
            )
        } else {
            avc_tag(keyframe, 1, cts, &data)
        };
        push(out, TAG_VIDEO, ms, body);
    }
}

/// A legacy FLV AVC tag body: frame type, codec 7, packet type, SI24 composition time.
fn avc_tag(keyframe: bool, packet_type: u8, cts: i32, payload: &[u8]) -> Vec<u8> {
    let cts = cts.clamp(-0x80_0000, 0x7F_FFFF).to_be_bytes();
    let mut b = Vec::with_capacity(payload.len() + 5);
    b.push(if keyframe { 0x17 } else { 0x27 });
    b.extend_from_slice(&[packet_type, cts[1], cts[2], cts[3]]);
    b.extend_from_slice(payload);
    b
}

/// Builds the frame of one tag body (the hub takes 32-bit RTMP time and unwraps it).
fn push(out: &mut Vec<Frame>, tag_type: u8, ms: u64, body: Vec<u8>) {
    let ts = (ms & 0xFFFF_FFFF) as u32;
    match flv::frame_from_tag(tag_type, ts, Bytes::from(body)) {
        Ok(f) => out.push(f),
        Err(e) => tracing::debug!("srt: frame not built: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::{Codec, FrameRole, MediaKind};
    use mpegts::TsDemuxer;

    fn frames_of(ts: &[u8]) -> Vec<Frame> {
        let mut d = TsDemuxer::new();
        let mut units = Vec::new();
        for chunk in ts.chunks(1316) {
            d.push(chunk, &mut units);
        }
        d.flush(&mut units);
        let mut c = TsToFrames::new();
        c.set_tracks(true, true);
        let mut out = Vec::new();
        for u in &units {
            c.convert(u, &mut out);
        }
        c.flush(&mut out);
        // Released in decode order across tracks.
        for w in out.windows(2) {
            assert!(w[1].dts >= w[0].dts, "{} after {}", w[1].dts, w[0].dts);
        }
        out
    }

    fn check(frames: &[Frame], video: Codec, audio: Codec, audio_frames: usize) {
        let vid: Vec<&Frame> = frames
            .iter()
            .filter(|f| f.kind == MediaKind::Video)
            .collect();
        let aud: Vec<&Frame> = frames
            .iter()
            .filter(|f| f.kind == MediaKind::Audio)
            .collect();
        assert!(vid.iter().all(|f| f.codec == video), "{:?}", vid[0].codec);
        assert!(aud.iter().all(|f| f.codec == audio));
        assert_eq!(vid[0].role, FrameRole::SequenceHeader);
        assert!(vid[1].keyframe && vid[1].role == FrameRole::Coded);
        let coded = |v: &[&Frame]| v.iter().filter(|f| f.role == FrameRole::Coded).count();
        assert_eq!(coded(&vid), 50, "every access unit");
        assert_eq!(
            vid.iter()
                .filter(|f| f.role == FrameRole::SequenceHeader)
                .count(),
            1,
            "parameter sets repeat with every keyframe, the record is published once"
        );
        assert_eq!(aud[0].role, FrameRole::SequenceHeader);
        assert_eq!(coded(&aud), audio_frames);
        for w in vid.windows(2).skip(1) {
            assert!(w[1].dts >= w[0].dts, "video dts monotonic");
        }
        // B-frames: some composition offsets are positive, none negative.
        assert!(vid.iter().all(|f| f.cts >= 0));
        // Video and audio share the clock: both start near the margin (1 s).
        assert!(vid[0].dts.abs_diff(aud[0].dts) < 200);
    }

    #[test]
    fn h264_and_aac_from_ffmpeg() {
        let ts = include_bytes!("../../../fixtures/h264-aac.ts");
        let frames = frames_of(ts);
        check(&frames, Codec::H264, Codec::Aac, 88);
        assert!(
            frames.iter().any(|f| f.cts > 0),
            "B-frames keep their offsets"
        );
    }

    #[test]
    fn hevc_and_opus_from_ffmpeg() {
        let ts = include_bytes!("../../../fixtures/hevc-opus.ts");
        check(&frames_of(ts), Codec::H265, Codec::Opus, 101);
    }

    #[test]
    fn a_track_waiting_for_a_silent_one_is_bounded() {
        // The PMT lists audio that never comes, and every video unit has the same time:
        // frames still leave once the queue holds MAX_INTERLEAVE_FRAMES.
        let ts = include_bytes!("../../../fixtures/h264-aac.ts");
        let mut d = TsDemuxer::new();
        let mut units = Vec::new();
        d.push(ts, &mut units);
        d.flush(&mut units);
        let key = units
            .iter()
            .find(|u| u.codec == EsCodec::H264 && u.keyframe)
            .unwrap()
            .clone();
        let mut c = TsToFrames::new();
        c.set_tracks(true, true);
        let mut out = Vec::new();
        for _ in 0..2_000 {
            c.convert(&key, &mut out);
        }
        assert!(c.video_q.len() + c.audio_q.len() <= MAX_INTERLEAVE_FRAMES + 2);
        assert!(out.len() > 1_000, "{} frames out", out.len());
    }

    #[test]
    fn video_waits_for_a_keyframe() {
        let ts = include_bytes!("../../../fixtures/h264-aac.ts");
        let mut d = TsDemuxer::new();
        let mut units = Vec::new();
        d.push(ts, &mut units);
        d.flush(&mut units);
        // Start after the first keyframe: the first video frame out is the second keyframe.
        let second_key = units
            .iter()
            .filter(|u| u.codec == EsCodec::H264 && u.keyframe)
            .nth(1)
            .map(|u| u.dts)
            .unwrap();
        let first_video = units.iter().position(|u| u.codec == EsCodec::H264).unwrap();
        let mut c = TsToFrames::new();
        let mut out = Vec::new();
        for u in units.iter().skip(first_video + 1) {
            c.convert(u, &mut out);
        }
        c.flush(&mut out);
        let v = out
            .iter()
            .find(|f| f.kind == MediaKind::Video && f.role == FrameRole::Coded)
            .unwrap();
        assert!(v.keyframe);
        let base = units[first_video + 1].dts - START_MARGIN_90K;
        assert_eq!(v.dts, (second_key - base) / 90);
    }
}
