//! The per-stream segmenter: frames in, segments and parts out, with the window kept in
//! memory and the readiness rules for blocking requests.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use fmp4::{Fragment, Fragmenter, Pushed, TrackConfig};
use media::{Codec, Frame, FrameRole, MediaKind};
use mpegts::TsMuxer;

use crate::HlsError;
use crate::request::{HlsFile, PlaylistQuery};

/// Largest segment we build; a stream that sends this much without a keyframe gets a
/// segment cut anyway, so memory per stream stays bounded.
pub const MAX_SEGMENT_BYTES: usize = 64 * 1024 * 1024;
/// Most parts in one segment (a 200 ms part target and a 20 s GOP stay far below).
pub const MAX_PARTS_PER_SEGMENT: usize = 256;
/// Largest sliding window accepted.
pub const MAX_WINDOW_SEGMENTS: usize = 100;
/// Segments kept in memory after they leave the playlist, for clients a little behind.
pub const EXTRA_SEGMENTS_KEPT: usize = 2;
/// Without LL-HLS, fMP4 segments are still built from fragments of about this long (never
/// listed as parts), so memory waiting to be muxed stays small.
pub const UNLISTED_CHUNK_MS: u64 = 1000;
/// Init segment versions kept (codec changes are rare; the window rarely spans two).
pub const MAX_INIT_VERSIONS: usize = 4;
/// Completed segments whose parts stay listed (RFC 8216bis asks to drop parts more than
/// three target durations from the live edge).
pub const PART_SEGMENTS_LISTED: usize = 3;
/// A segment grows past this many target durations without a keyframe only if the
/// publisher sends none: we then cut a non-independent segment.
pub const MAX_SEGMENT_TARGETS: u64 = 3;

/// Container of the media segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentFormat {
    /// Fragmented MP4 / CMAF, with LL-HLS parts when `part_target_ms > 0`.
    Fmp4,
    /// MPEG-TS (classic HLS, no parts).
    Ts,
}

impl SegmentFormat {
    /// File extension of media segments.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Fmp4 => "m4s",
            Self::Ts => "ts",
        }
    }

    /// Content-Type of media segments and parts.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Fmp4 => "video/mp4",
            Self::Ts => "video/mp2t",
        }
    }
}

/// How one stream is segmented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsParams {
    /// Segment container.
    pub format: SegmentFormat,
    /// Target segment duration; segments are cut on the first keyframe at or after about
    /// this long, so the real duration follows the publisher's GOP.
    pub target_duration_ms: u64,
    /// LL-HLS part target (fMP4 only); 0 turns parts off.
    pub part_target_ms: u64,
    /// Segments listed in the media playlist.
    pub window_segments: usize,
}

impl HlsParams {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), HlsError> {
        if !(500..=30_000).contains(&self.target_duration_ms) {
            return Err(HlsError::BadParams(
                "target_duration_ms must be 500..=30000",
            ));
        }
        if self.part_target_ms != 0
            && !(50..=self.target_duration_ms / 2).contains(&self.part_target_ms)
        {
            return Err(HlsError::BadParams(
                "part_target_ms must be 0 or between 50 and half the target duration",
            ));
        }
        if !(3..=MAX_WINDOW_SEGMENTS).contains(&self.window_segments) {
            return Err(HlsError::BadParams("window_segments must be 3..=100"));
        }
        Ok(())
    }

    /// True when partial segments are produced.
    pub fn low_latency(&self) -> bool {
        self.format == SegmentFormat::Fmp4 && self.part_target_ms > 0
    }
}

/// One partial segment.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) duration_ms: u64,
    pub(crate) independent: bool,
}

/// A media segment, complete or still growing.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) msn: u64,
    pub(crate) start_ms: u64,
    pub(crate) duration_ms: u64,
    pub(crate) pdt_unix_ms: u64,
    pub(crate) discontinuity: bool,
    pub(crate) init_version: u32,
    /// fMP4: one chunk per part. TS: one chunk.
    pub(crate) chunks: Vec<Bytes>,
    pub(crate) parts: Vec<Part>,
    /// Parts are still listed in the playlist and served by name.
    pub(crate) parts_listed: bool,
    pub(crate) bytes: usize,
    pub(crate) video_frames: u32,
    /// TS only: the segment's bytes while it grows.
    ts: BytesMut,
}

/// Is a playlist the client asked for ready?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Render and send it.
    Ready,
    /// Not yet: wait for [`HlsStream::generation`] to change (bounded by the server).
    Wait,
    /// The request is too far ahead (RFC 8216bis: more than two segments): answer 400.
    TooFar,
}

/// Where a requested media file stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Here are its bytes (a segment may be several chunks, sent in order).
    Ready(Vec<Bytes>),
    /// It is the next thing to be produced: wait for it.
    Wait,
    /// Unknown, expired or never coming.
    NotFound,
}

/// Figures for the API and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HlsStats {
    /// Segments held in memory (complete ones plus the growing one).
    pub segments: usize,
    /// Media bytes held in memory.
    pub bytes: usize,
    /// Segments completed since the start.
    pub segments_total: u64,
    /// Parts completed since the start.
    pub parts_total: u64,
}

enum Muxer {
    Fmp4(Box<Fragmenter>),
    Ts(TsMuxer),
}

/// The HLS state of one live stream.
pub struct HlsStream {
    pub(crate) params: HlsParams,
    pub(crate) prefix: String,
    muxer: Muxer,
    pub(crate) tracks: Vec<TrackConfig>,
    /// Init segments by version, newest last (older ones stay while segments use them).
    inits: VecDeque<(u32, Bytes)>,
    pub(crate) init_version: u32,
    /// Complete segments, oldest first (the window plus a few expired ones).
    pub(crate) segments: VecDeque<Segment>,
    pub(crate) open: Option<Segment>,
    next_msn: u64,
    /// Discontinuities that have left memory (EXT-X-DISCONTINUITY-SEQUENCE counts them).
    pub(crate) discontinuity_sequence: u64,
    pending_discontinuity: bool,
    media_since_init: bool,
    anchor: Option<(u64, u64)>,
    last_video_dts: Option<u64>,
    last_audio_dts: Option<u64>,
    interval_ms: u64,
    /// Where the next part starts (the end of the last one, or the segment start).
    part_start_ms: u64,
    pub(crate) ended: bool,
    generation: u64,
    pub(crate) max_part_ms: u64,
    stats: HlsStats,
}

impl std::fmt::Debug for HlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsStream")
            .field("params", &self.params)
            .field("prefix", &self.prefix)
            .field("segments", &self.segments.len())
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl HlsStream {
    /// A new stream. `prefix` starts every segment, part and init name; give each muxer
    /// instance a unique one (the server uses its start time) so caches never mix two
    /// instances' files.
    pub fn new(params: HlsParams, prefix: impl Into<String>) -> Result<HlsStream, HlsError> {
        params.validate()?;
        let muxer = match params.format {
            SegmentFormat::Fmp4 => Muxer::Fmp4(Box::new(Fragmenter::new())),
            SegmentFormat::Ts => Muxer::Ts(TsMuxer::new()),
        };
        Ok(HlsStream {
            params,
            prefix: prefix.into(),
            muxer,
            tracks: Vec::new(),
            inits: VecDeque::new(),
            init_version: 0,
            segments: VecDeque::new(),
            open: None,
            next_msn: 0,
            discontinuity_sequence: 0,
            pending_discontinuity: false,
            media_since_init: false,
            anchor: None,
            last_video_dts: None,
            last_audio_dts: None,
            interval_ms: 40,
            part_start_ms: 0,
            ended: false,
            generation: 0,
            max_part_ms: 0,
            stats: HlsStats::default(),
        })
    }

    /// The parameters in force.
    pub fn params(&self) -> &HlsParams {
        &self.params
    }

    /// The name prefix of this instance.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Changes whenever something new can be listed or served (a part, a segment, the end).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True once [`HlsStream::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The codec configurations known (video first).
    pub fn tracks(&self) -> &[TrackConfig] {
        &self.tracks
    }

    /// Memory and progress figures.
    pub fn stats(&self) -> HlsStats {
        let mut s = self.stats;
        s.segments = self.segments.len() + usize::from(self.open.is_some());
        s.bytes = self.segments.iter().map(|g| g.bytes).sum::<usize>()
            + self.open.as_ref().map_or(0, |g| g.bytes);
        s
    }

    /// Starts the next segment with EXT-X-DISCONTINUITY (the server calls this when the
    /// publisher reconnected). The cut happens at the next keyframe.
    pub fn mark_discontinuity(&mut self) {
        if self.open.is_some() || !self.segments.is_empty() {
            self.pending_discontinuity = true;
        }
    }

    /// Feeds one hub frame received at wall-clock `now_unix_ms`. Returns true when a new
    /// part or segment became available. A muxer error concerns this frame only; the
    /// stream goes on with the next one.
    pub fn push(&mut self, frame: &Frame, now_unix_ms: u64) -> Result<bool, HlsError> {
        if self.ended || !self.supported(frame.codec) {
            return Ok(false);
        }
        match frame.role {
            FrameRole::SequenceHeader => return self.on_header(frame),
            FrameRole::Coded => {}
            FrameRole::SequenceEnd | FrameRole::Metadata => return Ok(false),
        }
        let has_track = self.tracks.iter().any(|t| t.kind == frame.kind);
        if !has_track {
            return Ok(false);
        }
        let has_video = self.has_video();
        let is_video = frame.kind == MediaKind::Video;
        if has_video && self.open.is_none() && !frame.is_video_keyframe() {
            // A video stream's first segment starts on a keyframe.
            return Ok(false);
        }
        let cut = match &self.open {
            None => true,
            Some(seg) => self.should_cut(seg, frame, has_video),
        };
        let driver = is_video || !has_video;
        if driver {
            let last = if is_video {
                &mut self.last_video_dts
            } else {
                &mut self.last_audio_dts
            };
            if let Some(prev) = *last {
                let d = frame.dts.saturating_sub(prev);
                if (1..=1000).contains(&d) {
                    self.interval_ms = d;
                }
            }
            *last = Some(frame.dts);
        }
        let mut changed = false;
        match &mut self.muxer {
            Muxer::Fmp4(frag) => {
                frag.push(frame)?;
                if cut {
                    if self.open.is_some() {
                        if let Some(f) = frag.flush(Some(frame.dts)) {
                            self.add_part(f);
                        }
                        self.close_segment(frame.dts);
                        changed = true;
                    }
                    self.open_segment(frame.dts, now_unix_ms);
                }
                // Parts: LL-HLS's partial segments, or (LL off) internal chunks of about a
                // second, so the fragmenter never buffers a whole long GOP.
                let chunk_target = self.chunk_target_ms();
                if driver {
                    let Muxer::Fmp4(frag) = &mut self.muxer else {
                        return Ok(changed);
                    };
                    // Video: the complete samples span from the end of the last part to
                    // this (held) frame. Audio-only: every sample is complete at once.
                    let buffered = if is_video {
                        frame.dts.saturating_sub(self.part_start_ms)
                    } else {
                        frag.buffered_duration_ms()
                    };
                    if buffered > 0
                        && buffered.saturating_add(self.interval_ms) > chunk_target
                        && let Some(f) = frag.flush(None)
                    {
                        self.add_part(f);
                        changed = true;
                    }
                }
            }
            Muxer::Ts(_) => {
                if cut {
                    if self.open.is_some() {
                        self.close_segment(frame.dts);
                        changed = true;
                    }
                    self.open_segment(frame.dts, now_unix_ms);
                }
                let (Muxer::Ts(ts), Some(seg)) = (&mut self.muxer, self.open.as_mut()) else {
                    return Ok(changed);
                };
                if cut {
                    ts.write_tables(&mut seg.ts);
                }
                ts.push(frame, &mut seg.ts)?;
                seg.bytes = seg.ts.len();
            }
        }
        if is_video && let Some(seg) = self.open.as_mut() {
            seg.video_frames = seg.video_frames.saturating_add(1);
        }
        self.media_since_init = true;
        if changed {
            self.generation += 1;
        }
        Ok(changed)
    }

    /// Ends the stream: the growing segment is completed and the playlist gets
    /// EXT-X-ENDLIST. Blocked requests stop waiting.
    pub fn end(&mut self) {
        if self.ended {
            return;
        }
        if self.open.is_some() {
            let tail = match &mut self.muxer {
                Muxer::Fmp4(frag) => frag.finish(),
                Muxer::Ts(_) => None,
            };
            if let Some(f) = tail {
                self.add_part(f);
            }
            let end = self.last_end_ms();
            self.close_segment(end);
        }
        self.ended = true;
        self.generation += 1;
    }

    /// Duration of the fragments a segment is built from.
    fn chunk_target_ms(&self) -> u64 {
        if self.params.low_latency() {
            self.params.part_target_ms
        } else {
            UNLISTED_CHUNK_MS
        }
    }

    fn supported(&self, codec: Codec) -> bool {
        match self.params.format {
            SegmentFormat::Fmp4 => {
                matches!(codec, Codec::H264 | Codec::H265 | Codec::Aac | Codec::Opus)
            }
            SegmentFormat::Ts => matches!(codec, Codec::H264 | Codec::H265 | Codec::Aac),
        }
    }

    pub(crate) fn has_video(&self) -> bool {
        self.tracks.iter().any(|t| t.kind == MediaKind::Video)
    }

    fn on_header(&mut self, frame: &Frame) -> Result<bool, HlsError> {
        let config = TrackConfig::from_sequence_header(frame)?;
        let changed = match &mut self.muxer {
            Muxer::Fmp4(frag) => {
                let pushed = frag.push(frame)?;
                self.tracks = frag.tracks().to_vec();
                matches!(pushed, Pushed::InitChanged)
            }
            Muxer::Ts(ts) => {
                ts.push(frame, &mut BytesMut::new())?;
                let same = self
                    .tracks
                    .iter()
                    .any(|t| t.kind == config.kind && same_track(t, &config));
                if !same {
                    self.tracks.retain(|t| t.kind != config.kind);
                    self.tracks.push(config);
                    self.tracks.sort_by_key(|t| t.kind != MediaKind::Video);
                }
                !same
            }
        };
        if !changed {
            return Ok(false);
        }
        // New codec parameters after media: the next segment starts a new timeline for the
        // decoder and, for fMP4, uses a new init segment version. Headers before any media
        // (video then audio at the start) refine the current version instead.
        let new_version = self.media_since_init || self.inits.is_empty();
        if self.media_since_init {
            self.pending_discontinuity = true;
            self.media_since_init = false;
        }
        if let Muxer::Fmp4(frag) = &self.muxer
            && let Some(init) = frag.init_segment()
        {
            if new_version {
                self.init_version = self.init_version.wrapping_add(1);
                self.inits.push_back((self.init_version, init));
                while self.inits.len() > MAX_INIT_VERSIONS {
                    self.inits.pop_front();
                }
            } else if let Some(last) = self.inits.back_mut() {
                last.1 = init;
            }
        }
        Ok(false)
    }

    fn should_cut(&self, seg: &Segment, frame: &Frame, has_video: bool) -> bool {
        let elapsed = frame.dts.saturating_sub(seg.start_ms);
        let target = self.params.target_duration_ms;
        let forced = elapsed >= target.saturating_mul(MAX_SEGMENT_TARGETS)
            || seg.bytes >= MAX_SEGMENT_BYTES
            || seg.parts.len() >= MAX_PARTS_PER_SEGMENT;
        if has_video {
            if frame.kind != MediaKind::Video {
                return false;
            }
            if frame.is_video_keyframe() {
                // Within a tenth of the target counts as reached, so timestamp jitter does
                // not double a segment.
                return self.pending_discontinuity || elapsed.saturating_mul(10) >= target * 9;
            }
            return forced;
        }
        self.pending_discontinuity
            || elapsed.saturating_add(self.interval_ms / 2) >= target
            || forced
    }

    fn open_segment(&mut self, start_ms: u64, now_unix_ms: u64) {
        let discontinuity = std::mem::take(&mut self.pending_discontinuity);
        if discontinuity || self.anchor.is_none() {
            self.anchor = Some((start_ms, now_unix_ms));
        }
        self.part_start_ms = start_ms;
        let (adts, aunix) = self.anchor.unwrap_or((start_ms, now_unix_ms));
        let pdt = aunix.saturating_add(start_ms.saturating_sub(adts));
        self.open = Some(Segment {
            msn: self.next_msn,
            start_ms,
            duration_ms: 0,
            pdt_unix_ms: pdt,
            discontinuity,
            init_version: self.init_version,
            chunks: Vec::new(),
            parts: Vec::new(),
            parts_listed: true,
            bytes: 0,
            video_frames: 0,
            ts: BytesMut::new(),
        });
        self.next_msn += 1;
    }

    fn add_part(&mut self, f: Fragment) {
        let Some(seg) = self.open.as_mut() else {
            return;
        };
        let independent = f.independent;
        let duration_ms = f.duration_ms;
        self.part_start_ms = f.start_ms.saturating_add(f.duration_ms);
        seg.bytes = seg.bytes.saturating_add(f.bytes.len());
        seg.chunks.push(f.bytes);
        seg.parts.push(Part {
            duration_ms,
            independent,
        });
        self.max_part_ms = self.max_part_ms.max(duration_ms);
        self.stats.parts_total += 1;
    }

    fn last_end_ms(&self) -> u64 {
        let last = self.last_video_dts.max(self.last_audio_dts).unwrap_or(0);
        last.saturating_add(self.interval_ms)
    }

    fn close_segment(&mut self, end_ms: u64) {
        let Some(mut seg) = self.open.take() else {
            return;
        };
        if let Muxer::Ts(_) = self.muxer {
            let ts = std::mem::take(&mut seg.ts).freeze();
            if !ts.is_empty() {
                seg.chunks.push(ts);
            }
        }
        if !self.params.low_latency() {
            seg.parts.clear();
            seg.parts_listed = false;
        }
        seg.duration_ms = end_ms.saturating_sub(seg.start_ms).max(1);
        if seg.chunks.is_empty() {
            // Nothing was muxed (for example only unsupported frames): reuse the number.
            self.next_msn = seg.msn;
            return;
        }
        self.segments.push_back(seg);
        self.stats.segments_total += 1;
        let listed = self.segments.len();
        for (i, s) in self.segments.iter_mut().enumerate() {
            if i + PART_SEGMENTS_LISTED < listed {
                s.parts_listed = false;
            }
        }
        while self.segments.len() > self.params.window_segments + EXTRA_SEGMENTS_KEPT {
            if let Some(old) = self.segments.pop_front()
                && old.discontinuity
            {
                self.discontinuity_sequence += 1;
            }
        }
    }

    /// Segments listed in the media playlist (the window), oldest first.
    pub(crate) fn window(&self) -> impl Iterator<Item = &Segment> {
        let skip = self
            .segments
            .len()
            .saturating_sub(self.params.window_segments);
        self.segments.iter().skip(skip)
    }

    /// Discontinuities among held segments that are before the window (they count in
    /// EXT-X-DISCONTINUITY-SEQUENCE too).
    pub(crate) fn discontinuities_before_window(&self) -> u64 {
        let skip = self
            .segments
            .len()
            .saturating_sub(self.params.window_segments);
        self.segments
            .iter()
            .take(skip)
            .filter(|s| s.discontinuity)
            .count() as u64
            + self.discontinuity_sequence
    }

    /// The media sequence number of the growing segment, or of the next one.
    fn edge_msn(&self) -> u64 {
        self.open.as_ref().map_or(self.next_msn, |s| s.msn)
    }

    fn complete(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        let i = usize::try_from(msn.checked_sub(first)?).ok()?;
        self.segments.get(i)
    }

    /// True when the playlist has something to list.
    pub fn has_media(&self) -> bool {
        self.window().next().is_some()
    }

    /// Is the playlist for `query` ready? Without `_HLS_msn` it is as soon as one segment is
    /// complete; with it, when that segment (or part) exists (RFC 8216bis §6.2.5.2).
    pub fn playlist_readiness(&self, query: &PlaylistQuery) -> Readiness {
        if self.ended {
            return Readiness::Ready;
        }
        let Some(msn) = query.msn.filter(|_| self.params.low_latency()) else {
            return if self.has_media() {
                Readiness::Ready
            } else {
                Readiness::Wait
            };
        };
        let edge = self.edge_msn();
        if msn > edge.saturating_add(2) {
            return Readiness::TooFar;
        }
        let ready = match query.part {
            None => msn < edge,
            Some(p) => self.part_exists(msn, p),
        };
        if ready && self.has_media() {
            Readiness::Ready
        } else {
            Readiness::Wait
        }
    }

    fn part_exists(&self, msn: u64, part: u32) -> bool {
        if let Some(seg) = self.complete(msn) {
            if (part as usize) < seg.parts.len() {
                return true;
            }
            // Past the segment's last part means part 0 of the next one.
            return self.part_exists(msn + 1, 0);
        }
        if self.segments.front().is_some_and(|s| msn < s.msn) {
            return true;
        }
        match &self.open {
            Some(seg) if seg.msn == msn => (part as usize) < seg.parts.len(),
            _ => false,
        }
    }

    /// Every media file that can be served now, by name: init segments, complete segments
    /// and listed parts (of complete segments and the growing one). For mirroring the
    /// stream to a directory that an HTTP cache or nginx serves.
    pub fn files(&self) -> Vec<(String, Vec<Bytes>)> {
        let p = &self.prefix;
        let ext = self.params.format.extension();
        let mut out: Vec<(String, Vec<Bytes>)> = self
            .inits
            .iter()
            .map(|(v, b)| (format!("{p}init{v}.mp4"), vec![b.clone()]))
            .collect();
        for seg in &self.segments {
            out.push((format!("{p}{}.{ext}", seg.msn), seg.chunks.clone()));
        }
        let ll = self.params.low_latency();
        let listed = self.segments.iter().filter(|s| s.parts_listed);
        for seg in listed.chain(self.open.as_ref()).filter(|_| ll) {
            for (i, c) in seg.chunks.iter().enumerate() {
                out.push((format!("{p}{}.{i}.m4s", seg.msn), vec![c.clone()]));
            }
        }
        out
    }

    /// Where a requested file stands. Playlists are not files here: render them with
    /// [`HlsStream::media_playlist`] and [`HlsStream::multivariant_playlist`].
    pub fn lookup(&self, file: HlsFile) -> Lookup {
        let found = match file {
            HlsFile::Multivariant | HlsFile::MediaPlaylist => return Lookup::NotFound,
            HlsFile::Init { version } => {
                if let Some((_, init)) = self.inits.iter().find(|(v, _)| *v == version) {
                    return Lookup::Ready(vec![init.clone()]);
                }
                // The first init segment is worth waiting for; a later one is named in a
                // playlist only once it exists.
                self.inits.is_empty() && version == 1 && self.params.format == SegmentFormat::Fmp4
            }
            HlsFile::Segment { msn } => {
                if let Some(seg) = self.complete(msn) {
                    return Lookup::Ready(seg.chunks.clone());
                }
                let edge = self.edge_msn();
                msn == edge || (self.open.is_some() && msn == edge + 1)
            }
            HlsFile::Part { msn, index } => {
                if self.params.format != SegmentFormat::Fmp4 {
                    return Lookup::NotFound;
                }
                if let Some(seg) = self.complete(msn) {
                    return match seg.chunks.get(index as usize) {
                        Some(c) if seg.parts_listed => Lookup::Ready(vec![c.clone()]),
                        _ => Lookup::NotFound,
                    };
                }
                match &self.open {
                    Some(seg) if seg.msn == msn => {
                        if let Some(c) = seg.chunks.get(index as usize) {
                            return Lookup::Ready(vec![c.clone()]);
                        }
                        // Only the preload hint (the next part) is worth waiting for.
                        index as usize == seg.chunks.len()
                    }
                    Some(seg) => msn == seg.msn + 1 && index == 0,
                    None => msn == self.next_msn && index == 0,
                }
            }
        };
        if found && !self.ended {
            Lookup::Wait
        } else {
            Lookup::NotFound
        }
    }
}

fn same_track(a: &TrackConfig, b: &TrackConfig) -> bool {
    a.codec == b.codec
        && a.codec_string == b.codec_string
        && a.width == b.width
        && a.height == b.height
        && a.sample_rate == b.sample_rate
        && a.channels == b.channels
}
