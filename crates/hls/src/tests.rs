//! Segmenter and playlist tests on the repository's demo clip (H.264 640x360 25 fps with a
//! 1 s GOP, AAC 48 kHz), looped onto one continuous timeline.

use bytes::Bytes;
use media::{Frame, FrameRole};

use crate::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/demo.flv");
/// The clip's length on the looped timeline (its last frame is at about 4.0 s).
const LOOP_MS: u64 = 4000;

/// Headers once, then the coded frames of `loops` passes of the clip.
fn frames(loops: u64) -> Vec<Frame> {
    let file = std::fs::read(FIXTURE).unwrap();
    let tags = flv::read_all_tags(&file).unwrap();
    let all: Vec<Frame> = tags
        .into_iter()
        .filter_map(|t| flv::frame_from_tag(t.tag_type, t.timestamp, t.body).ok())
        .collect();
    let mut out: Vec<Frame> = all
        .iter()
        .filter(|f| f.role == FrameRole::SequenceHeader)
        .cloned()
        .collect();
    for l in 0..loops {
        for f in all.iter().filter(|f| f.role == FrameRole::Coded) {
            let mut f = f.clone();
            f.dts += l * LOOP_MS;
            out.push(f);
        }
    }
    out
}

fn params(format: SegmentFormat) -> HlsParams {
    HlsParams {
        format,
        target_duration_ms: 2000,
        part_target_ms: if format == SegmentFormat::Fmp4 {
            200
        } else {
            0
        },
        window_segments: 8,
    }
}

fn feed(hls: &mut HlsStream, frames: &[Frame]) {
    for f in frames {
        hls.push(f, 1_795_305_600_000 + f.dts).unwrap();
    }
}

/// (EXTINF durations, media sequence, target duration) from a media playlist.
fn parse_media(p: &str) -> (Vec<f64>, u64, u64) {
    let mut durs = Vec::new();
    let (mut seq, mut td) = (0, 0);
    for line in p.lines() {
        if let Some(v) = line.strip_prefix("#EXTINF:") {
            durs.push(v.trim_end_matches(',').parse().unwrap());
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            seq = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            td = v.parse().unwrap();
        }
    }
    (durs, seq, td)
}

fn ready(l: Lookup) -> Vec<Bytes> {
    match l {
        Lookup::Ready(c) => c,
        other => panic!("not ready: {other:?}"),
    }
}

#[test]
fn fmp4_segments_follow_the_gop_and_parts_the_part_target() {
    let mut hls = HlsStream::new(params(SegmentFormat::Fmp4), "t-").unwrap();
    feed(&mut hls, &frames(3));
    let p = hls.media_playlist(false);
    let (durs, seq, td) = parse_media(&p);
    // 12 s of 1 s GOPs: 2 s segments, the last one still growing.
    assert!(durs.len() >= 5, "{p}");
    assert_eq!(seq, 0);
    assert_eq!(td, 2);
    for d in &durs {
        assert!((1.9..=2.1).contains(d), "segment of {d} s in\n{p}");
        assert!(d.round() as u64 <= td);
    }
    assert!(p.contains("#EXT-X-MAP:URI=\"t-init1.mp4\""), "{p}");
    assert!(p.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0"));
    assert!(p.contains("#EXT-X-PART-INF:PART-TARGET=0.200"), "{p}");
    assert!(
        p.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-22T00:00:00"),
        "{p}"
    );
    // Parts: never longer than the target, and the first of a segment is independent.
    let parts: Vec<&str> = p
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .collect();
    assert!(parts.len() > 10);
    for l in &parts {
        let d: f64 = l["#EXT-X-PART:DURATION=".len()..][..5].parse().unwrap();
        assert!(d > 0.0 && d <= 0.2, "{l}");
        if l.contains(".0.m4s") {
            assert!(l.ends_with("INDEPENDENT=YES"), "{l}");
        }
    }
    // The preload hint names the next part of the growing segment, which is worth waiting for.
    let hint = p
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .unwrap()
        .trim_end_matches('"');
    let file = HlsFile::parse(hint, "t-").unwrap();
    assert_eq!(hls.lookup(file), Lookup::Wait);
    let HlsFile::Part { msn, index } = file else {
        panic!("{hint}")
    };
    assert!(index > 0, "growing segment has parts");
    // Its listed parts are served; a segment equals its parts concatenated.
    let done = HlsFile::Segment { msn: msn - 1 };
    let seg: Vec<u8> = ready(hls.lookup(done)).concat();
    let mut joined = Vec::new();
    for i in 0.. {
        match hls.lookup(HlsFile::Part {
            msn: msn - 1,
            index: i,
        }) {
            Lookup::Ready(c) => joined.extend(c.concat()),
            _ => break,
        }
    }
    assert_eq!(seg, joined);
    assert_eq!(&seg[4..8], b"moof");
    let init = ready(hls.lookup(HlsFile::Init { version: 1 })).concat();
    assert_eq!(&init[4..8], b"ftyp");
    // Far ahead or long gone: not found, not waited for.
    assert_eq!(
        hls.lookup(HlsFile::Part {
            msn,
            index: index + 5
        }),
        Lookup::NotFound
    );
    assert_eq!(
        hls.lookup(HlsFile::Segment { msn: msn + 5 }),
        Lookup::NotFound
    );
    assert_eq!(hls.lookup(HlsFile::Init { version: 7 }), Lookup::NotFound);
}

#[test]
fn multivariant_has_measured_codecs_resolution_bandwidth_and_rate() {
    let mut hls = HlsStream::new(params(SegmentFormat::Fmp4), "t-").unwrap();
    assert!(hls.multivariant_playlist().is_none());
    feed(&mut hls, &frames(2));
    let m = hls.multivariant_playlist().unwrap();
    let inf = m
        .lines()
        .find(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .unwrap();
    assert!(inf.contains("CODECS=\"avc1.4d401e,mp4a.40.2\""), "{inf}");
    assert!(inf.contains("RESOLUTION=640x360"), "{inf}");
    assert!(inf.contains("FRAME-RATE=25.000"), "{inf}");
    let bw: u64 = inf
        .split(',')
        .find_map(|kv| kv.strip_prefix("#EXT-X-STREAM-INF:BANDWIDTH="))
        .unwrap()
        .parse()
        .unwrap();
    // The clip is about 300 kb/s video + 64 kb/s audio.
    assert!((200_000..800_000).contains(&bw), "{bw}");
    assert!(m.ends_with("media.m3u8\n"));
}

#[test]
fn blocking_reload_waits_for_the_part_asked_for() {
    let mut hls = HlsStream::new(params(SegmentFormat::Fmp4), "t-").unwrap();
    let all = frames(2);
    let q = |msn, part| PlaylistQuery {
        msn: Some(msn),
        part,
        skip: false,
    };
    assert_eq!(
        hls.playlist_readiness(&PlaylistQuery::default()),
        Readiness::Wait
    );
    let mut first_ready = None;
    for (i, f) in all.iter().enumerate() {
        hls.push(f, f.dts).unwrap();
        if first_ready.is_none() && hls.playlist_readiness(&q(1, Some(2))) == Readiness::Ready {
            first_ready = Some(i);
            // At that moment part 2 of segment 1 is listed, part 3 is not.
            let p = hls.media_playlist(false);
            assert!(
                p.contains("#EXT-X-PART:DURATION=0.200,URI=\"t-1.2.m4s\""),
                "{p}"
            );
            assert!(
                !p.lines()
                    .any(|l| l.starts_with("#EXT-X-PART:") && l.contains("t-1.3.m4s")),
                "{p}"
            );
            assert!(
                p.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"t-1.3.m4s\""),
                "{p}"
            );
            assert_eq!(hls.playlist_readiness(&q(1, Some(3))), Readiness::Wait);
            assert_eq!(hls.lookup(HlsFile::Part { msn: 1, index: 3 }), Lookup::Wait);
            assert_eq!(hls.playlist_readiness(&q(9, None)), Readiness::TooFar);
        }
    }
    assert!(first_ready.is_some());
    // A part index past a complete segment's last part means part 0 of the next segment.
    assert_eq!(hls.playlist_readiness(&q(0, Some(99))), Readiness::Ready);
    assert_eq!(hls.playlist_readiness(&q(1, None)), Readiness::Ready);
}

#[test]
fn delta_update_skips_old_segments() {
    let mut p = params(SegmentFormat::Fmp4);
    p.window_segments = 10;
    let mut hls = HlsStream::new(p, "t-").unwrap();
    feed(&mut hls, &frames(6));
    let full = hls.media_playlist(false);
    let delta = hls.media_playlist(true);
    let skipped: usize = delta
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .unwrap()
        .parse()
        .unwrap();
    let (full_durs, seq_full, _) = parse_media(&full);
    let (delta_durs, seq_delta, _) = parse_media(&delta);
    assert!(skipped > 0);
    assert_eq!(delta_durs.len() + skipped, full_durs.len());
    assert_eq!(
        seq_full, seq_delta,
        "the media sequence is the full playlist's"
    );
    // What is left covers at least CAN-SKIP-UNTIL (12 s) minus one segment.
    let kept: f64 = delta_durs.iter().sum();
    assert!(kept >= 10.0, "{kept}");
    assert!(
        delta.contains("#EXT-X-MAP:"),
        "the delta keeps the init segment"
    );
}

#[test]
fn discontinuity_after_a_reconnect_and_its_sequence_after_it_slides_out() {
    let mut hls = HlsStream::new(params(SegmentFormat::Fmp4), "t-").unwrap();
    let all = frames(8);
    let half = all.len() / 4;
    feed(&mut hls, &all[..half]);
    hls.mark_discontinuity();
    feed(&mut hls, &all[half..]);
    let p = hls.media_playlist(false);
    let (durs, seq, _) = parse_media(&p);
    assert!(seq > 0, "the window slid: {p}");
    assert!(durs.len() <= 8);
    let disc_in_window = p.contains("#EXT-X-DISCONTINUITY\n");
    let disc_seq = p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1");
    assert!(disc_in_window ^ disc_seq, "{p}");
    // Feeding more moves the discontinuity out of the window: the sequence counts it.
    let mut more = frames(4);
    more.retain(|f| f.role == FrameRole::Coded);
    for f in &mut more {
        f.dts += 8 * LOOP_MS;
    }
    feed(&mut hls, &more);
    let p = hls.media_playlist(false);
    assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1"), "{p}");
    assert!(!p.contains("#EXT-X-DISCONTINUITY\n"), "{p}");
}

#[test]
fn ts_segments_start_with_tables_and_are_whole_packets() {
    let mut hls = HlsStream::new(params(SegmentFormat::Ts), "t-").unwrap();
    feed(&mut hls, &frames(2));
    let p = hls.media_playlist(false);
    assert!(!p.contains("#EXT-X-PART"), "{p}");
    assert!(!p.contains("#EXT-X-MAP"), "{p}");
    assert!(p.contains("#EXT-X-VERSION:3"), "{p}");
    let (durs, _, td) = parse_media(&p);
    assert!(durs.len() >= 3);
    assert_eq!(td, 2);
    for msn in 0..durs.len() as u64 {
        let seg = ready(hls.lookup(HlsFile::Segment { msn })).concat();
        assert_eq!(seg.len() % 188, 0);
        // PAT first: sync byte, payload unit start, PID 0.
        assert_eq!(&seg[..3], &[0x47, 0x40, 0x00]);
    }
    assert_eq!(
        hls.lookup(HlsFile::Part { msn: 0, index: 0 }),
        Lookup::NotFound
    );
    let m = hls.multivariant_playlist().unwrap();
    assert!(m.contains("CODECS=\"avc1.4d401e,mp4a.40.2\""), "{m}");
}

#[test]
fn end_lists_the_last_segment_and_stops_waiting() {
    let mut hls = HlsStream::new(params(SegmentFormat::Fmp4), "t-").unwrap();
    feed(&mut hls, &frames(1));
    let before = parse_media(&hls.media_playlist(false)).0.len();
    let g = hls.generation();
    hls.end();
    assert!(hls.generation() > g);
    let p = hls.media_playlist(false);
    assert!(p.ends_with("#EXT-X-ENDLIST\n"), "{p}");
    assert!(!p.contains("PRELOAD-HINT"));
    let (durs, _, _) = parse_media(&p);
    assert_eq!(durs.len(), before + 1);
    let total: f64 = durs.iter().sum();
    assert!((total - 4.0).abs() < 0.15, "{total}");
    let q = PlaylistQuery {
        msn: Some(50),
        part: None,
        skip: false,
    };
    assert_eq!(hls.playlist_readiness(&q), Readiness::Ready);
    assert_eq!(
        hls.lookup(HlsFile::Segment {
            msn: durs.len() as u64
        }),
        Lookup::NotFound
    );
}

#[test]
fn a_codec_change_starts_a_new_init_segment_after_a_discontinuity() {
    let mut hls = HlsStream::new(params(SegmentFormat::Fmp4), "t-").unwrap();
    let all = frames(2);
    feed(&mut hls, &all);
    // The same headers again (a reconnecting publisher) change nothing.
    let headers: Vec<Frame> = all
        .iter()
        .filter(|f| f.role == FrameRole::SequenceHeader)
        .cloned()
        .collect();
    feed(&mut hls, &headers);
    assert!(!hls.media_playlist(false).contains("init2"));
    // A different AAC config (mono) is a new init segment.
    let mut mono = headers
        .iter()
        .find(|f| f.kind == media::MediaKind::Audio)
        .unwrap()
        .clone();
    let mut body = mono.body.to_vec();
    // FLV AAC header (2 bytes), then the AudioSpecificConfig: channels are bits 6..3 of
    // its second byte.
    body[3] = (body[3] & 0x87) | (1 << 3);
    mono.body = Bytes::from(body);
    hls.push(&mono, 0).unwrap();
    let mut more: Vec<Frame> = frames(1)
        .into_iter()
        .filter(|f| f.role == FrameRole::Coded)
        .collect();
    for f in &mut more {
        f.dts += 2 * LOOP_MS;
    }
    feed(&mut hls, &more);
    let p = hls.media_playlist(false);
    assert!(
        p.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"t-init2.mp4\""),
        "{p}"
    );
    // Segments in the window still use the first init segment: both are served.
    assert!(p.contains("#EXT-X-MAP:URI=\"t-init1.mp4\""), "{p}");
    ready(hls.lookup(HlsFile::Init { version: 1 }));
    ready(hls.lookup(HlsFile::Init { version: 2 }));
}

#[test]
fn bad_params_are_refused() {
    let mut p = params(SegmentFormat::Fmp4);
    p.part_target_ms = 1500;
    assert!(HlsStream::new(p.clone(), "x").is_err());
    p.part_target_ms = 200;
    p.window_segments = 1;
    assert!(HlsStream::new(p.clone(), "x").is_err());
    p.window_segments = 6;
    p.target_duration_ms = 10;
    assert!(HlsStream::new(p, "x").is_err());
}

#[test]
fn files_list_what_is_served() {
    let mut hls = HlsStream::new(params(SegmentFormat::Fmp4), "t-").unwrap();
    feed(&mut hls, &frames(2));
    let files = hls.files();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"t-init1.mp4"), "{names:?}");
    assert!(names.contains(&"t-0.m4s"), "{names:?}");
    // Every listed name is served with the same bytes.
    for (name, chunks) in &files {
        let file = HlsFile::parse(name, "t-").unwrap();
        assert_eq!(hls.lookup(file), Lookup::Ready(chunks.clone()), "{name}");
    }
    // And every URI of the playlist is among them.
    for line in hls.media_playlist(false).lines() {
        let uri = if let Some(u) = line.split("URI=\"").nth(1) {
            u.split('"').next().unwrap()
        } else if !line.starts_with('#') {
            line
        } else {
            continue;
        };
        if !line.starts_with("#EXT-X-PRELOAD-HINT") {
            assert!(names.contains(&uri), "{uri} not in {names:?}");
        }
    }
}
