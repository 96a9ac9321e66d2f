//! The clip, its real-time schedule (looping, monotonic timestamps) and batching windows.
//!
//! Everything here is a pure function of the clip and a time in milliseconds since the
//! floor started; the server only reads the clock and writes.

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use media::{FrameRole, MediaKind};

/// Largest batching window, in ms (SRS's largest merged-write setting is in the hundreds).
pub const MAX_BATCH_MS: u64 = 10_000;
/// Frame interval assumed for the gap between a loop's last tag and the next loop's first.
pub const DEFAULT_FRAME_MS: u64 = 40;

/// One media tag of the clip, played at `offset_ms` into each loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTag {
    /// Milliseconds from the loop's start (the first media tag is at 0).
    pub offset_ms: u64,
    /// FLV tag type (audio or video).
    pub tag_type: u8,
    /// True for a video keyframe: where a new or resynchronised player may start.
    pub keyframe: bool,
    /// The tag body, shared.
    pub body: Bytes,
}

/// A clip prepared for looping.
#[derive(Debug, Clone)]
pub struct Clip {
    /// What every player gets first: FLV file header, metadata and sequence-header tags.
    pub preamble: Bytes,
    /// The coded audio and video tags, in file order.
    pub tags: Vec<MediaTag>,
    /// Length of one loop in ms (the next loop starts this long after the previous one).
    pub loop_ms: u64,
}

impl Clip {
    /// Splits an FLV file into preamble (metadata, sequence headers) and media tags.
    ///
    /// Fails on a corrupt file or one without video keyframes (players could never start).
    pub fn from_flv(file: &[u8]) -> anyhow::Result<Clip> {
        let tags = flv::read_all_tags(file).context("reading the FLV file")?;
        let mut preamble = BytesMut::new();
        let mut media = Vec::new();
        let (mut has_audio, mut has_video) = (false, false);
        let mut first_ts = None;
        for tag in tags {
            let Ok(frame) = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body.clone())
            else {
                continue; // Not something a player needs (unknown or empty tag).
            };
            has_audio |= frame.kind == MediaKind::Audio;
            has_video |= frame.kind == MediaKind::Video;
            match frame.role {
                FrameRole::Metadata | FrameRole::SequenceHeader => {
                    flv::write_tag(&mut preamble, tag.tag_type, 0, &tag.body);
                }
                FrameRole::Coded if frame.kind != MediaKind::Data => {
                    let t0 = *first_ts.get_or_insert(u64::from(tag.timestamp));
                    media.push(MediaTag {
                        offset_ms: u64::from(tag.timestamp).saturating_sub(t0),
                        tag_type: tag.tag_type,
                        keyframe: frame.is_video_keyframe(),
                        body: tag.body,
                    });
                }
                _ => {}
            }
        }
        if !media.iter().any(|t| t.keyframe) {
            bail!("the clip has no video keyframe");
        }
        let mut head = BytesMut::from(&flv::file_header(has_audio, has_video)[..]);
        head.extend_from_slice(&preamble);
        let loop_ms = loop_length(&media);
        Ok(Clip {
            preamble: head.freeze(),
            tags: media,
            loop_ms,
        })
    }
}

/// One loop's length: the last tag's offset plus the last video frame interval
/// ([`DEFAULT_FRAME_MS`] when it cannot be told), at least 1 ms.
pub fn loop_length(tags: &[MediaTag]) -> u64 {
    let last = tags.iter().map(|t| t.offset_ms).max().unwrap_or(0);
    let mut video = tags.iter().rev().filter(|t| t.tag_type == flv::TAG_VIDEO);
    let step = match (video.next(), video.next()) {
        (Some(a), Some(b)) if a.offset_ms > b.offset_ms => a.offset_ms - b.offset_ms,
        _ => DEFAULT_FRAME_MS,
    };
    (last + step).max(1)
}

/// When a tag due at `due_ms` is written: at once without batching, else at the end of its
/// `batch_ms` window (windows are aligned to the floor's start: `[k*N, (k+1)*N)`).
pub fn write_time(due_ms: u64, batch_ms: u64) -> u64 {
    match due_ms.checked_div(batch_ms) {
        None => due_ms,
        Some(window) => window.saturating_add(1).saturating_mul(batch_ms),
    }
}

/// A tag taken from the schedule: which one and when it was due (its output timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Index into [`Clip::tags`].
    pub index: usize,
    /// Milliseconds since the floor started; monotonic across loops.
    pub due_ms: u64,
}

/// Walks the clip in a loop, in real time, in batches.
#[derive(Debug, Clone)]
pub struct Schedule {
    batch_ms: u64,
    loops: u64,
    next: usize,
}

impl Schedule {
    /// A schedule at the clip's start; `batch_ms` is clamped to [`MAX_BATCH_MS`].
    pub fn new(batch_ms: u64) -> Self {
        Self {
            batch_ms: batch_ms.min(MAX_BATCH_MS),
            loops: 0,
            next: 0,
        }
    }

    /// The batching window in use.
    pub fn batch_ms(&self) -> u64 {
        self.batch_ms
    }

    /// The next tag and when it is due; `None` only for an empty clip.
    pub fn peek(&self, clip: &Clip) -> Option<Due> {
        let tag = clip.tags.get(self.next)?;
        Some(Due {
            index: self.next,
            due_ms: self
                .loops
                .saturating_mul(clip.loop_ms)
                .saturating_add(tag.offset_ms),
        })
    }

    /// When the next batch is to be written (ms since start); `None` for an empty clip.
    pub fn next_write_ms(&self, clip: &Clip) -> Option<u64> {
        self.peek(clip).map(|d| write_time(d.due_ms, self.batch_ms))
    }

    /// Takes the next batch if its write time has come (`now_ms`), else returns it empty.
    ///
    /// Without batching a batch is exactly one tag; with a window it is every tag due within
    /// the window of the next tag. A schedule running late gets one batch per call, so it
    /// catches up window by window.
    pub fn take_batch(&mut self, clip: &Clip, now_ms: u64) -> Vec<Due> {
        let mut out = Vec::new();
        let Some(at) = self.next_write_ms(clip) else {
            return out;
        };
        if at > now_ms {
            return out;
        }
        while let Some(d) = self.peek(clip) {
            if write_time(d.due_ms, self.batch_ms) != at || (self.batch_ms == 0 && !out.is_empty())
            {
                break;
            }
            out.push(d);
            self.advance(clip);
        }
        out
    }

    fn advance(&mut self, clip: &Clip) {
        self.next += 1;
        if self.next >= clip.tags.len() {
            self.next = 0;
            self.loops += 1;
        }
    }
}

/// The bytes of one batch, shared by every player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The batch's tags, back to back.
    pub bytes: Bytes,
    /// Offset in `bytes` of the first video keyframe tag, where a waiting player starts.
    pub keyframe_at: Option<usize>,
}

/// Serialises a batch once: each tag stamped with its due time (wrapping at 32 bits, as FLV
/// timestamps do).
pub fn build_batch(clip: &Clip, items: &[Due]) -> Batch {
    let mut out = BytesMut::new();
    let mut keyframe_at = None;
    for d in items {
        let Some(tag) = clip.tags.get(d.index) else {
            continue;
        };
        if tag.keyframe && keyframe_at.is_none() {
            keyframe_at = Some(out.len());
        }
        flv::write_tag(&mut out, tag.tag_type, d.due_ms as u32, &tag.body);
    }
    Batch {
        bytes: out.freeze(),
        keyframe_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flv::{TAG_AUDIO, TAG_VIDEO};

    fn tag(offset_ms: u64, tag_type: u8, keyframe: bool) -> MediaTag {
        MediaTag {
            offset_ms,
            tag_type,
            keyframe,
            body: Bytes::from(vec![if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0xAB]),
        }
    }

    /// Video at 0, 40, 80 (keyframe at 0), audio at 10 and 50: loop length 80 + 40 = 120.
    fn clip() -> Clip {
        let tags = vec![
            tag(0, TAG_VIDEO, true),
            tag(10, TAG_AUDIO, false),
            tag(40, TAG_VIDEO, false),
            tag(50, TAG_AUDIO, false),
            tag(80, TAG_VIDEO, false),
        ];
        Clip {
            preamble: Bytes::new(),
            loop_ms: loop_length(&tags),
            tags,
        }
    }

    fn run(batch_ms: u64, until_ms: u64) -> Vec<(u64, Vec<u64>)> {
        let clip = clip();
        let mut s = Schedule::new(batch_ms);
        let mut out = Vec::new();
        while let Some(at) = s.next_write_ms(&clip) {
            if at > until_ms {
                break;
            }
            if at > 0 {
                assert!(s.take_batch(&clip, at - 1).is_empty(), "early at {at}");
            }
            let b = s.take_batch(&clip, at);
            out.push((at, b.iter().map(|d| d.due_ms).collect()));
        }
        out
    }

    #[test]
    fn loop_length_adds_one_frame_interval() {
        assert_eq!(clip().loop_ms, 120);
        assert_eq!(loop_length(&[tag(0, TAG_VIDEO, true)]), 40);
        assert_eq!(loop_length(&[]), DEFAULT_FRAME_MS);
    }

    #[test]
    fn unbatched_writes_each_tag_when_due_and_loops_monotonically() {
        let got = run(0, 250);
        let times: Vec<u64> = got.iter().map(|(at, _)| *at).collect();
        assert_eq!(
            times,
            [0, 10, 40, 50, 80, 120, 130, 160, 170, 200, 240, 250]
        );
        assert!(got.iter().all(|(at, dues)| dues == &[*at]));
    }

    #[test]
    fn batched_windows_gather_tags() {
        let got = run(30, 250);
        assert_eq!(
            got,
            [
                (30, vec![0, 10]),
                (60, vec![40, 50]),
                (90, vec![80]),
                (150, vec![120, 130]),
                (180, vec![160, 170]),
                (210, vec![200]),
            ]
        );
        // A window longer than the loop spans loops.
        let got = run(200, 400);
        assert_eq!(got[0], (200, vec![0, 10, 40, 50, 80, 120, 130, 160, 170]));
        assert_eq!(got[1], (400, vec![200, 240, 250, 280, 290, 320, 360, 370]));
    }

    #[test]
    fn late_schedule_catches_up_batch_by_batch() {
        let clip = clip();
        let mut s = Schedule::new(0);
        assert_eq!(s.take_batch(&clip, 1_000).len(), 1);
        assert_eq!(s.take_batch(&clip, 1_000)[0].due_ms, 10);
        let mut s = Schedule::new(30);
        let first = s.take_batch(&clip, 1_000);
        assert_eq!(first.iter().map(|d| d.due_ms).collect::<Vec<_>>(), [0, 10]);
    }

    #[test]
    fn write_time_windows() {
        assert_eq!(write_time(17, 0), 17);
        assert_eq!(write_time(0, 20), 20);
        assert_eq!(write_time(19, 20), 20);
        assert_eq!(write_time(20, 20), 40);
        assert_eq!(write_time(u64::MAX, 20), u64::MAX);
    }

    #[test]
    fn batch_bytes_and_keyframe_offset() {
        let clip = clip();
        let items = [
            Due {
                index: 3,
                due_ms: 170,
            },
            Due {
                index: 0,
                due_ms: 0x0100_0120,
            },
        ];
        let b = build_batch(&clip, &items);
        // Tag 1: audio, 6-byte body, timestamp 170 (0xAA); 11 + 6 + 4 = 21 bytes.
        assert_eq!(&b.bytes[..11], &[8, 0, 0, 6, 0, 0, 0xAA, 0, 0, 0, 0]);
        assert_eq!(&b.bytes[17..21], &[0, 0, 0, 17]);
        assert_eq!(b.keyframe_at, Some(21));
        // Tag 2: video keyframe, timestamp with the extended byte.
        assert_eq!(
            &b.bytes[21..32],
            &[9, 0, 0, 6, 0, 0x01, 0x20, 0x01, 0, 0, 0]
        );
        assert_eq!(b.bytes.len(), 42);
        assert_eq!(build_batch(&clip, &items[..1]).keyframe_at, None);
    }

    #[test]
    fn demo_clip_splits_into_preamble_and_media() {
        let file = include_bytes!("../../../fixtures/demo.flv");
        let clip = Clip::from_flv(file).expect("fixture parses");
        assert!(clip.preamble.starts_with(b"FLV\x01\x05"));
        let mut r = flv::FlvReader::new();
        r.push(&clip.preamble);
        let mut pre = Vec::new();
        while let Some(t) = r.next_tag().expect("valid preamble") {
            pre.push(t.tag_type);
        }
        assert_eq!(pre, [flv::TAG_SCRIPT, TAG_VIDEO, TAG_AUDIO]);
        let first_video = clip.tags.iter().find(|t| t.tag_type == TAG_VIDEO);
        assert!(first_video.is_some_and(|t| t.keyframe && t.offset_ms < 100));
        assert_eq!(clip.tags.iter().filter(|t| t.keyframe).count(), 4);
        assert!((3_900..=4_100).contains(&clip.loop_ms), "{}", clip.loop_ms);
    }
}
