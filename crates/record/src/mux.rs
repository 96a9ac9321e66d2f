//! What goes into a recording file, without IO: frames in, bytes to append to the media
//! file (and, for MP4, lines to append to its HLS VOD playlist) out.
//!
//! MP4 recordings are fragmented MP4 (an init segment, then one moof+mdat per GOP of about
//! [`FRAGMENT_MS`]): every player opens them, they are valid after a crash up to the last
//! whole fragment, and nothing but the current fragment is held in memory. The sidecar
//! playlist lists each fragment as a byte range of the file, so the recording also plays as
//! HLS VOD. FLV recordings are the FLV tags as they came, with timestamps from zero.

use std::fmt::Write;

use bytes::{Bytes, BytesMut};
use fmp4::{Fragment, Fragmenter};
use media::{Frame, FrameRole, MediaKind};

use config::RecordFormat;

/// MP4 fragments are cut on the first keyframe after this long.
pub(crate) const FRAGMENT_MS: u64 = 2_000;
/// A fragment is cut without a keyframe once this long (a publisher that sends none), so the
/// memory held stays bounded and the playlist's target duration holds.
pub(crate) const MAX_FRAGMENT_MS: u64 = 10_000;
/// EXT-X-TARGETDURATION of the sidecar playlist (written first, so it must bound every
/// fragment: [`MAX_FRAGMENT_MS`] rounded up).
const PLAYLIST_TARGET_S: u64 = MAX_FRAGMENT_MS / 1000;

/// Bytes for the media file and text for the playlist, to append in this order.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) media: Vec<Bytes>,
    pub(crate) playlist: String,
}

impl Output {
    pub(crate) fn is_empty(&self) -> bool {
        self.media.is_empty() && self.playlist.is_empty()
    }
}

/// The recording of one file.
pub(crate) struct FileMuxer {
    format: RecordFormat,
    /// The media file's name, for the playlist's URIs.
    file_name: String,
    fragmenter: Fragmenter,
    /// Hub dts of the file's first frame: timestamps in the file start at zero.
    base: Option<u64>,
    frag_start: Option<u64>,
    last_dts: u64,
    bytes: u64,
    started_header: bool,
    playlist_started: bool,
    flv: BytesMut,
}

impl FileMuxer {
    /// A muxer for a file named `file_name`, that must start with `headers` (the stream's
    /// current sequence headers and metadata).
    pub(crate) fn new(format: RecordFormat, file_name: String) -> Self {
        Self {
            format,
            file_name,
            fragmenter: Fragmenter::new(),
            base: None,
            frag_start: None,
            last_dts: 0,
            bytes: 0,
            started_header: false,
            playlist_started: false,
            flv: BytesMut::new(),
        }
    }

    /// Bytes written to the media file so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Media time recorded so far, in ms.
    pub(crate) fn duration_ms(&self) -> u64 {
        self.base.map_or(0, |b| self.last_dts.saturating_sub(b))
    }

    /// Feeds a frame. `has_video` says whether the stream has a video track (fragments then
    /// start on keyframes).
    pub(crate) fn push(
        &mut self,
        frame: &Frame,
        has_video: bool,
    ) -> Result<Output, fmp4::Fmp4Error> {
        let mut out = Output::default();
        if frame.role == FrameRole::Coded && self.base.is_none() {
            if has_video && !frame.is_video_keyframe() {
                // A file starts on a keyframe.
                return Ok(out);
            }
            self.base = Some(frame.dts);
        }
        let base = self.base.unwrap_or(frame.dts);
        let mut f = frame.clone();
        f.dts = frame.dts.saturating_sub(base);
        if frame.role == FrameRole::Coded {
            self.last_dts = self.last_dts.max(frame.dts);
        }
        match self.format {
            RecordFormat::Flv => self.push_flv(&f, &mut out),
            RecordFormat::Mp4 => self.push_mp4(&f, has_video, &mut out)?,
        }
        Ok(out)
    }

    fn push_flv(&mut self, f: &Frame, out: &mut Output) {
        if !self.started_header {
            self.flv.extend_from_slice(&flv::file_header(true, true));
            self.started_header = true;
        }
        if f.role == FrameRole::Coded
            || f.role == FrameRole::SequenceHeader
            || f.role == FrameRole::Metadata
        {
            let tag = match f.kind {
                MediaKind::Audio => flv::TAG_AUDIO,
                MediaKind::Video => flv::TAG_VIDEO,
                MediaKind::Data => flv::TAG_SCRIPT,
            };
            // FLV timestamps are 32-bit ms: a recording rotates long before they wrap.
            flv::write_tag(&mut self.flv, tag, f.dts as u32, &f.body);
        }
        // Appended per keyframe (or every 256 KiB): a write per GOP, not per frame.
        if f.is_video_keyframe() || self.flv.len() >= 256 * 1024 {
            self.take_flv(out);
        }
    }

    fn take_flv(&mut self, out: &mut Output) {
        if !self.flv.is_empty() {
            let b = self.flv.split().freeze();
            self.bytes += b.len() as u64;
            out.media.push(b);
        }
    }

    fn push_mp4(
        &mut self,
        f: &Frame,
        has_video: bool,
        out: &mut Output,
    ) -> Result<(), fmp4::Fmp4Error> {
        if f.role == FrameRole::SequenceHeader {
            self.fragmenter.push(f)?;
            return Ok(());
        }
        if f.role != FrameRole::Coded {
            return Ok(());
        }
        if !self.started_header {
            let Some(init) = self.fragmenter.init_segment() else {
                return Ok(());
            };
            self.start_playlist(init.len(), out);
            self.bytes += init.len() as u64;
            out.media.push(init);
            self.started_header = true;
        }
        self.fragmenter.push(f)?;
        let start = *self.frag_start.get_or_insert(f.dts);
        let elapsed = f.dts.saturating_sub(start);
        let cut = if has_video {
            f.kind == MediaKind::Video
                && ((f.is_video_keyframe() && elapsed >= FRAGMENT_MS) || elapsed >= MAX_FRAGMENT_MS)
        } else {
            elapsed >= FRAGMENT_MS
        };
        if cut && let Some(frag) = self.fragmenter.flush(Some(f.dts)) {
            self.frag_start = Some(f.dts);
            self.append_fragment(frag, out);
        }
        Ok(())
    }

    fn start_playlist(&mut self, init_len: usize, out: &mut Output) {
        let _ = write!(
            out.playlist,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{PLAYLIST_TARGET_S}\n\
             #EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-MAP:URI=\"{}\",BYTERANGE=\"{init_len}@0\"\n",
            self.file_name
        );
        self.playlist_started = true;
    }

    fn append_fragment(&mut self, frag: Fragment, out: &mut Output) {
        let len = frag.bytes.len();
        let _ = write!(
            out.playlist,
            "#EXTINF:{}.{:03},\n#EXT-X-BYTERANGE:{len}@{}\n{}\n",
            frag.duration_ms / 1000,
            frag.duration_ms % 1000,
            self.bytes,
            self.file_name
        );
        self.bytes += len as u64;
        out.media.push(frag.bytes);
    }

    /// Completes the file: the last fragment (or FLV tags) and the playlist's end.
    pub(crate) fn finish(&mut self) -> Output {
        let mut out = Output::default();
        match self.format {
            RecordFormat::Flv => self.take_flv(&mut out),
            RecordFormat::Mp4 => {
                if let Some(frag) = self.fragmenter.finish() {
                    self.append_fragment(frag, &mut out);
                }
                if self.playlist_started {
                    out.playlist.push_str("#EXT-X-ENDLIST\n");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_frames() -> Vec<Frame> {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/demo.flv"
        ))
        .unwrap();
        flv::read_all_tags(&file)
            .unwrap()
            .into_iter()
            .filter_map(|t| flv::frame_from_tag(t.tag_type, t.timestamp, t.body).ok())
            .collect()
    }

    #[test]
    fn mp4_recording_lists_every_fragment_as_a_byte_range() {
        let mut m = FileMuxer::new(RecordFormat::Mp4, "r.mp4".into());
        let mut file = Vec::new();
        let mut playlist = String::new();
        for f in fixture_frames() {
            let o = m.push(&f, true).unwrap();
            file.extend(o.media.concat());
            playlist.push_str(&o.playlist);
        }
        let o = m.finish();
        file.extend(o.media.concat());
        playlist.push_str(&o.playlist);
        assert_eq!(m.bytes(), file.len() as u64);
        assert_eq!(&file[4..8], b"ftyp");
        assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
        // Byte ranges tile the file after the init segment, each one a moof.
        let mut next = None;
        let mut total_ms = 0.0;
        for line in playlist.lines() {
            if let Some(r) = line.strip_prefix("#EXT-X-BYTERANGE:") {
                let (len, off) = r.split_once('@').unwrap();
                let (len, off): (usize, usize) = (len.parse().unwrap(), off.parse().unwrap());
                if let Some(n) = next {
                    assert_eq!(off, n);
                }
                assert_eq!(&file[off + 4..off + 8], b"moof");
                next = Some(off + len);
            }
            if let Some(d) = line.strip_prefix("#EXTINF:") {
                let d: f64 = d.trim_end_matches(',').parse().unwrap();
                assert!(d <= PLAYLIST_TARGET_S as f64);
                total_ms += d * 1000.0;
            }
        }
        assert_eq!(next, Some(file.len()));
        assert!((total_ms - 4000.0).abs() < 100.0, "{total_ms}");
    }

    #[test]
    fn flv_recording_starts_at_zero_with_headers() {
        let mut m = FileMuxer::new(RecordFormat::Flv, "r.flv".into());
        let mut file = Vec::new();
        for mut f in fixture_frames() {
            f.dts += 50_000;
            file.extend(m.push(&f, true).unwrap().media.concat());
        }
        file.extend(m.finish().media.concat());
        let tags = flv::read_all_tags(&file).unwrap();
        assert!(tags.len() > 250);
        assert_eq!(tags[0].timestamp, 0);
        let last = tags.iter().map(|t| t.timestamp).max().unwrap();
        assert!((3900..4100).contains(&last), "{last}");
        assert_eq!(m.duration_ms(), u64::from(last));
    }
}
