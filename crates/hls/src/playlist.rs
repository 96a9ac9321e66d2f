//! Rendering of the multivariant and media playlists (RFC 8216bis).

use std::fmt::Write;

use media::MediaKind;

use crate::request::MEDIA_PLAYLIST_NAME;
use crate::segmenter::{HlsStream, SegmentFormat};

/// CAN-SKIP-UNTIL is this many target durations (the spec's minimum is six).
const SKIP_TARGETS: u64 = 6;
/// PART-HOLD-BACK is this many part targets (the spec's minimum is three).
const PART_HOLD_BACK_PARTS: u64 = 3;

impl HlsStream {
    /// The EXT-X-TARGETDURATION in seconds: the configured target, raised to the longest
    /// segment in the window (a publisher's GOP can be longer than the target).
    pub fn target_duration_s(&self) -> u64 {
        let configured = self.params.target_duration_ms.div_ceil(1000);
        let longest = self.window().map(|s| s.duration_ms).max().unwrap_or(0);
        // EXTINF rounded to the nearest integer must not exceed the target duration.
        configured.max((longest + 500) / 1000).max(1)
    }

    /// The part target in ms: the configured one, raised to the longest part made (a
    /// frame interval longer than the target gives longer parts).
    fn part_target_ms(&self) -> u64 {
        self.params.part_target_ms.max(self.max_part_ms)
    }

    /// Peak and average bits per second over the window's segments, `None` before the
    /// first segment is complete.
    pub fn bandwidth(&self) -> Option<(u64, u64)> {
        let mut peak = 0u64;
        let (mut bytes, mut ms) = (0u64, 0u64);
        for s in self.window() {
            let b = s.bytes as u64;
            let d = s.duration_ms.max(1);
            peak = peak.max(b * 8000 / d);
            bytes += b;
            ms += d;
        }
        (ms > 0).then(|| (peak, bytes * 8000 / ms))
    }

    /// Video frames per second over the window, `None` without video.
    pub fn frame_rate(&self) -> Option<f64> {
        if !self.has_video() {
            return None;
        }
        let (mut frames, mut ms) = (0u64, 0u64);
        for s in self.window() {
            frames += u64::from(s.video_frames);
            ms += s.duration_ms;
        }
        (ms > 0 && frames > 0).then(|| frames as f64 * 1000.0 / ms as f64)
    }

    /// The multivariant playlist (`index.m3u8`): one variant today, with CODECS,
    /// RESOLUTION, BANDWIDTH and FRAME-RATE measured from the stream, so renditions added
    /// later slot in beside it. `None` until one segment is complete (the bandwidth is
    /// measured, not guessed).
    pub fn multivariant_playlist(&self) -> Option<String> {
        self.multivariant_playlist_with_query(None)
    }

    /// [`Self::multivariant_playlist`] with `?{query}` appended to the media playlist URI
    /// (players do not carry a playlist's query to the URIs inside it, so an access token
    /// given as a query must be written into them). `query` is written as given (already
    /// URL-encoded, without the `?`); `None` or an empty query appends nothing.
    pub fn multivariant_playlist_with_query(&self, query: Option<&str>) -> Option<String> {
        let suffix = query_suffix(query);
        let (peak, average) = self.bandwidth()?;
        let mut out = String::with_capacity(256);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:");
        let _ = writeln!(out, "{}", self.version());
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average}"
        );
        let codecs: Vec<&str> = self
            .tracks
            .iter()
            .map(|t| t.codec_string.as_str())
            .collect();
        if !codecs.is_empty() {
            let _ = write!(out, ",CODECS=\"{}\"", codecs.join(","));
        }
        if let Some(v) = self.tracks.iter().find(|t| t.kind == MediaKind::Video)
            && v.width > 0
            && v.height > 0
        {
            let _ = write!(out, ",RESOLUTION={}x{}", v.width, v.height);
        }
        if let Some(fps) = self.frame_rate() {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        out.push('\n');
        out.push_str(MEDIA_PLAYLIST_NAME);
        out.push_str(&suffix);
        out.push('\n');
        Some(out)
    }

    fn version(&self) -> u32 {
        match self.params.format {
            // EXT-X-SKIP needs version 9.
            SegmentFormat::Fmp4 if self.params.low_latency() => 9,
            // EXT-X-MAP in a playlist without I-frames only needs 6.
            SegmentFormat::Fmp4 => 6,
            SegmentFormat::Ts => 3,
        }
    }

    /// The media playlist (`media.m3u8`); `skip` asks for a delta update (`_HLS_skip=YES`,
    /// honoured only when low latency is on).
    pub fn media_playlist(&self, skip: bool) -> String {
        self.media_playlist_with_query(skip, None)
    }

    /// [`Self::media_playlist`] with `?{query}` appended to every URI it lists: segments,
    /// parts, the preload hint and the init map (see
    /// [`Self::multivariant_playlist_with_query`]).
    pub fn media_playlist_with_query(&self, skip: bool, query: Option<&str>) -> String {
        let q = query_suffix(query);
        let ll = self.params.low_latency();
        let td = self.target_duration_s();
        let ext = self.params.format.extension();
        let prefix = &self.prefix;
        let mut out = String::with_capacity(2048);
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version());
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{td}");
        let skip_until_ms = td * 1000 * SKIP_TARGETS;
        if ll {
            let part = self.part_target_ms();
            let _ = writeln!(
                out,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.1},PART-HOLD-BACK={}",
                skip_until_ms as f64 / 1000.0,
                secs(part * PART_HOLD_BACK_PARTS)
            );
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", secs(part));
        }
        let window: Vec<_> = self.window().collect();
        let first_msn = window
            .first()
            .map_or(self.open.as_ref().map_or(0, |s| s.msn), |s| s.msn);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
        let disc_seq = self.discontinuities_before_window();
        if disc_seq > 0 {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{disc_seq}");
        }
        // A delta update leaves out the segments more than CAN-SKIP-UNTIL before the end.
        let mut skipped = 0usize;
        if skip && ll {
            let total: u64 = window.iter().map(|s| s.duration_ms).sum::<u64>()
                + self
                    .open
                    .as_ref()
                    .map_or(0, |s| s.parts.iter().map(|p| p.duration_ms).sum());
            let mut from_end = total;
            for s in &window {
                if from_end.saturating_sub(s.duration_ms) > skip_until_ms {
                    skipped += 1;
                    from_end -= s.duration_ms;
                } else {
                    break;
                }
            }
            if skipped > 0 {
                let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
            }
        }
        let mut map_version = None;
        let mut first = true;
        let listed = window
            .iter()
            .skip(skipped)
            .copied()
            .chain(self.open.as_ref());
        for seg in listed {
            let is_open = self.open.as_ref().is_some_and(|o| o.msn == seg.msn);
            if is_open && (!ll || seg.parts.is_empty()) {
                break;
            }
            if seg.discontinuity && !first {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if self.params.format == SegmentFormat::Fmp4 && map_version != Some(seg.init_version) {
                let _ = writeln!(
                    out,
                    "#EXT-X-MAP:URI=\"{prefix}init{}.mp4{q}\"",
                    seg.init_version
                );
                map_version = Some(seg.init_version);
            }
            if first || seg.discontinuity {
                let _ = writeln!(
                    out,
                    "#EXT-X-PROGRAM-DATE-TIME:{}",
                    rfc3339_ms(seg.pdt_unix_ms)
                );
            }
            first = false;
            if ll && seg.parts_listed {
                for (i, p) in seg.parts.iter().enumerate() {
                    let _ = write!(
                        out,
                        "#EXT-X-PART:DURATION={},URI=\"{prefix}{}.{i}.m4s{q}\"",
                        secs(p.duration_ms),
                        seg.msn
                    );
                    out.push_str(if p.independent {
                        ",INDEPENDENT=YES\n"
                    } else {
                        "\n"
                    });
                }
            }
            if !is_open {
                let _ = writeln!(out, "#EXTINF:{},", secs(seg.duration_ms));
                let _ = writeln!(out, "{prefix}{}.{ext}{q}", seg.msn);
            }
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        } else if ll {
            let (msn, next) = match &self.open {
                Some(seg) => (seg.msn, seg.parts.len()),
                None => (first_msn, 0),
            };
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{prefix}{msn}.{next}.m4s{q}\""
            );
        }
        out
    }
}

/// `?query` for a non-empty query, else nothing. Characters that would end a quoted
/// attribute or a line (`"`, CR, LF) or that are not printable ASCII are dropped.
fn query_suffix(query: Option<&str>) -> String {
    let clean: String = query
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '#')
        .collect();
    if clean.is_empty() {
        String::new()
    } else {
        format!("?{clean}")
    }
}

/// Milliseconds as decimal seconds with three decimals.
fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Unix milliseconds as an RFC 3339 UTC timestamp with milliseconds.
pub(crate) fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (Howard Hinnant's
/// well-known civil calendar algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_and_seconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_795_305_600_000), "2026-11-22T00:00:00.000Z");
        assert_eq!(secs(2002), "2.002");
        assert_eq!(secs(40), "0.040");
    }

    #[test]
    fn query_is_appended_to_every_uri() {
        use crate::{HlsParams, SegmentFormat};
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/demo.flv"
        ))
        .unwrap();
        let params = HlsParams {
            format: SegmentFormat::Fmp4,
            target_duration_ms: 2000,
            part_target_ms: 200,
            window_segments: 8,
        };
        let mut hls = HlsStream::new(params, "q-").unwrap();
        for t in flv::read_all_tags(&file).unwrap() {
            if let Ok(f) = flv::frame_from_tag(t.tag_type, t.timestamp, t.body) {
                let _ = hls.push(&f, 1_795_305_600_000 + f.dts);
            }
        }
        let plain = hls.media_playlist(false);
        let with = hls.media_playlist_with_query(false, Some("token=a.b-c"));
        assert_eq!(with.replace("?token=a.b-c", ""), plain);
        let uris: Vec<&str> = with
            .lines()
            .filter_map(|l| {
                if l.starts_with('#') {
                    l.split("URI=\"").nth(1)?.split('"').next()
                } else {
                    Some(l)
                }
            })
            .collect();
        // Init map, parts, segments and the preload hint.
        assert!(uris.len() > 10, "{with}");
        assert!(uris.iter().any(|u| u.contains("init")));
        assert!(with.contains("#EXT-X-PRELOAD-HINT"));
        for u in &uris {
            assert!(u.ends_with("?token=a.b-c"), "{u} in {with}");
        }
        assert_eq!(hls.media_playlist_with_query(false, None), plain);
        assert_eq!(hls.media_playlist_with_query(false, Some("")), plain);
        // Nothing can break out of a quoted attribute or a line.
        let hostile = hls.media_playlist_with_query(false, Some("a=\"x\"\n#EXT-X-ENDLIST"));
        assert!(!hostile.contains("#EXT-X-ENDLIST"), "{hostile}");
        let mv = hls
            .multivariant_playlist_with_query(Some("expires=9&sign=ff"))
            .unwrap();
        assert!(mv.ends_with("media.m3u8?expires=9&sign=ff\n"), "{mv}");
        assert_eq!(
            mv.replace("?expires=9&sign=ff", ""),
            hls.multivariant_playlist().unwrap()
        );
    }
}
