//! Fragmenter timing tests: held samples, flush bounds, audio resync, contiguous tfdt.

use bytes::Bytes;
use media::{Codec, Frame, FrameRole, MediaKind, WireCache};

use super::*;
use crate::config::tests::{demo_headers, header};
use crate::fragment::tests::{ParsedTraf, parse_fragment};
use crate::{SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC};

fn coded(kind: MediaKind, codec: Codec, dts: u64, cts: i32, keyframe: bool, data: &[u8]) -> Frame {
    Frame {
        kind,
        codec,
        role: FrameRole::Coded,
        dts,
        cts,
        keyframe,
        body: Bytes::copy_from_slice(data),
        payload_offset: 0,
        wire: WireCache::default(),
        arrival: None,
    }
}

fn video(dts: u64, cts: i32, keyframe: bool) -> Frame {
    let tag = (dts as u8).wrapping_add(1);
    coded(
        MediaKind::Video,
        Codec::H264,
        dts,
        cts,
        keyframe,
        &[0, 0, 0, 1, tag],
    )
}

fn aac(dts: u64) -> Frame {
    coded(
        MediaKind::Audio,
        Codec::Aac,
        dts,
        0,
        true,
        &[0x21, dts as u8],
    )
}

/// A fragmenter configured with the demo fixture's H.264 and/or AAC headers.
fn fragmenter(with_video: bool, with_audio: bool) -> Fragmenter {
    let (avcc, asc) = demo_headers();
    let mut f = Fragmenter::new();
    if with_video {
        let h = header(MediaKind::Video, Codec::H264, &avcc);
        assert_eq!(f.push(&h).unwrap(), Pushed::InitChanged);
    }
    if with_audio {
        let h = header(MediaKind::Audio, Codec::Aac, &asc);
        assert_eq!(f.push(&h).unwrap(), Pushed::InitChanged);
    }
    f
}

fn trafs(fragment: &Fragment) -> Vec<ParsedTraf> {
    parse_fragment(&fragment.bytes).1
}

fn durations(traf: &ParsedTraf) -> Vec<u32> {
    traf.samples.iter().map(|s| s.duration).collect()
}

#[test]
fn newest_video_sample_is_held() {
    let mut f = fragmenter(true, false);
    assert_eq!(f.push(&video(0, 0, true)).unwrap(), Pushed::Sample);
    assert_eq!(
        f.flush(None),
        None,
        "a lone held sample has no duration yet"
    );
    assert_eq!(f.buffered_duration_ms(), 0);
    f.push(&video(40, 40, false)).unwrap();
    f.push(&video(80, 0, false)).unwrap();
    assert_eq!(f.buffered_duration_ms(), 80);

    let frag = f.flush(None).unwrap();
    assert_eq!(frag.sequence_number, 1);
    assert_eq!((frag.start_ms, frag.duration_ms), (0, 80));
    assert_eq!((frag.video_samples, frag.audio_samples), (2, 0));
    assert!(frag.independent);
    let t = trafs(&frag);
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].track_id, t[0].base_decode_time), (1, 0));
    assert_eq!(durations(&t[0]), [3600, 3600]);
    assert_eq!(
        t[0].samples
            .iter()
            .map(|s| (s.flags, s.cts, s.size))
            .collect::<Vec<_>>(),
        [(SAMPLE_FLAGS_SYNC, 0, 5), (SAMPLE_FLAGS_NON_SYNC, 3600, 5)]
    );
    assert_eq!(f.flush(None), None);
    assert_eq!(
        f.flush(Some(1000)),
        None,
        "the held sample is never flushed"
    );

    // finish() completes the held sample with the previous duration.
    let last = f.finish().unwrap();
    assert_eq!(last.sequence_number, 2);
    assert_eq!(
        (last.start_ms, last.duration_ms, last.independent),
        (80, 40, false)
    );
    let t = trafs(&last);
    assert_eq!(
        (t[0].base_decode_time, durations(&t[0])),
        (7200, vec![3600])
    );
    assert_eq!(f.finish(), None);

    // After finish, a new frame never starts before the finished sample's end (120 ms)
    // even if its dts (100) is earlier; the next duration lets the timeline catch up.
    f.push(&video(100, 0, true)).unwrap();
    f.push(&video(140, 0, false)).unwrap();
    let t = trafs(&f.flush(None).unwrap());
    assert_eq!(
        (t[0].base_decode_time, durations(&t[0])),
        (10_800, vec![1800])
    );
}

#[test]
fn data_offset_points_at_the_payload() {
    let mut f = fragmenter(true, true);
    f.push(&video(0, 0, true)).unwrap();
    f.push(&aac(0)).unwrap();
    f.push(&video(40, 0, false)).unwrap();
    let frag = f.flush(None).unwrap();
    let (_, t, _) = parse_fragment(&frag.bytes);
    let v = t[0].data_offset as usize;
    assert_eq!(&frag.bytes[v..v + 5], &[0, 0, 0, 1, 1]);
    let a = t[1].data_offset as usize;
    assert_eq!(&frag.bytes[a..a + 2], &[0x21, 0]);
    assert_eq!(a + 2, frag.bytes.len());
}

#[test]
fn audio_and_video_cover_the_same_span() {
    let mut f = fragmenter(true, true);
    f.push(&video(0, 0, true)).unwrap();
    for dts in [0, 21, 43, 64, 85, 107] {
        f.push(&aac(dts)).unwrap();
    }
    f.push(&video(40, 0, false)).unwrap();
    f.push(&video(80, 0, false)).unwrap();
    // Held video at 80: audio with dts < 80 goes out (0, 21, 43, 64).
    let frag = f.flush(None).unwrap();
    assert_eq!((frag.video_samples, frag.audio_samples), (2, 4));
    // The span is the video's (audio at 64 ms ends at 85 ms, past the held video at 80).
    assert_eq!((frag.start_ms, frag.duration_ms), (0, 80));
    let t = trafs(&frag);
    assert_eq!((t[0].track_id, t[1].track_id), (1, 2));
    assert_eq!(t[1].base_decode_time, 0);
    assert_eq!(durations(&t[1]), [1024; 4]);
    assert!(t[1].samples.iter().all(|s| s.flags == SAMPLE_FLAGS_SYNC));
    // The rest of the audio is still buffered and starts at 4 x 1024.
    f.push(&video(120, 0, false)).unwrap();
    let t = trafs(&f.flush(None).unwrap());
    assert_eq!(t[1].base_decode_time, 4096);
    assert_eq!(t[1].samples.len(), 2);
    assert_eq!(t[0].base_decode_time, 7200);
}

#[test]
fn flush_before_keyframe_starts_next_fragment_with_it() {
    let mut f = fragmenter(true, true);
    for i in 0..5u64 {
        f.push(&video(i * 40, 0, i == 0)).unwrap();
        f.push(&aac(i * 40)).unwrap();
    }
    // The segmenter pushes keyframe K, then closes the segment before it.
    f.push(&video(200, 0, true)).unwrap();
    f.push(&aac(200)).unwrap();
    let seg = f.flush(Some(200)).unwrap();
    assert_eq!((seg.video_samples, seg.audio_samples), (5, 5));
    assert_eq!((seg.start_ms, seg.duration_ms), (0, 200));
    assert!(seg.independent);
    f.push(&video(240, 0, false)).unwrap();
    let next = f.flush(None).unwrap();
    assert!(next.independent);
    assert_eq!(next.start_ms, 200);
    let t = trafs(&next);
    assert_eq!(t[0].base_decode_time, 18_000);
    assert_eq!(t[0].samples[0].flags, SAMPLE_FLAGS_SYNC);
    assert_eq!(t[1].base_decode_time, 5 * 1024);
    // A fragment starting with a non-keyframe is not independent.
    f.push(&video(280, 0, false)).unwrap();
    assert!(!f.flush(None).unwrap().independent);
}

#[test]
fn audio_only_fragment_is_independent_with_track_id_1() {
    let mut f = fragmenter(false, true);
    f.push(&aac(0)).unwrap();
    f.push(&aac(21)).unwrap();
    let frag = f.flush(None).unwrap();
    assert!(frag.independent);
    assert_eq!((frag.video_samples, frag.audio_samples), (0, 2));
    assert_eq!(trafs(&frag)[0].track_id, 1);
    // 21 ms + round(1024 / 48 ms).
    assert_eq!(frag.duration_ms, 42);
}

#[test]
fn audio_resyncs_after_a_gap() {
    let mut f = fragmenter(false, true);
    for dts in [0, 21, 43] {
        f.push(&aac(dts)).unwrap();
    }
    // Rounding jitter (64 ms vs 3 x 1024 / 48 = 64.0) stays on the sample clock.
    f.push(&aac(65)).unwrap();
    // A 1 s publisher gap: the last buffered sample is stretched to meet the new dts.
    f.push(&aac(1000)).unwrap();
    let t = trafs(&f.flush(None).unwrap());
    assert_eq!(durations(&t[0]), [1024, 1024, 1024, 48_000 - 3072, 1024]);
    assert_eq!(t[0].base_decode_time, 0);

    // Nothing buffered: the next fragment's tfdt jumps to dts x rate / 1000.
    f.push(&aac(5000)).unwrap();
    let t = trafs(&f.flush(None).unwrap());
    assert_eq!(t[0].base_decode_time, 240_000);
    // Below the tolerance (50 ms late) the sample clock is kept.
    f.push(&aac(5071)).unwrap();
    let t = trafs(&f.flush(None).unwrap());
    assert_eq!(t[0].base_decode_time, 241_024);
    // Timestamps jumping backwards with nothing buffered never move tfdt back.
    f.push(&aac(1000)).unwrap();
    let t = trafs(&f.flush(None).unwrap());
    assert_eq!(t[0].base_decode_time, 242_048);
}

#[test]
fn audio_resync_backwards_shrinks_the_last_sample() {
    let mut f = fragmenter(false, true);
    f.push(&aac(0)).unwrap();
    f.push(&aac(500)).unwrap(); // gap: sample 0 stretched to 24000
    // 200 ms behind 24000 + 1024: the previous sample shrinks as far as it can (1 tick);
    // decode time never goes back behind a sample's start.
    f.push(&aac(300)).unwrap();
    let t = trafs(&f.flush(None).unwrap());
    assert_eq!(durations(&t[0]), [24_000, 1, 1024]);
    assert_eq!(t[0].base_decode_time, 0);
}

#[test]
fn non_advancing_video_dts_keeps_the_timeline_contiguous() {
    let mut f = fragmenter(true, false);
    f.push(&video(0, 0, true)).unwrap();
    f.push(&video(40, 0, false)).unwrap();
    f.push(&video(40, 0, false)).unwrap(); // same dts: previous duration
    f.push(&video(30, 0, false)).unwrap(); // backwards: previous duration again
    f.push(&video(200, 0, false)).unwrap(); // catches up
    let t = trafs(&f.finish().unwrap());
    assert_eq!(t[0].base_decode_time, 0);
    assert_eq!(durations(&t[0]), [3600, 3600, 3600, 18_000 - 10_800, 7200]);
}

#[test]
fn negative_composition_offsets() {
    let mut f = fragmenter(true, false);
    f.push(&video(0, -40, true)).unwrap();
    f.push(&video(40, 0, false)).unwrap();
    let t = trafs(&f.flush(None).unwrap());
    assert_eq!(t[0].samples[0].cts, -3600);
}

#[test]
fn configuration_changes() {
    let (avcc, asc) = demo_headers();
    let mut f = Fragmenter::default();
    assert_eq!(f.init_segment(), None);
    assert!(f.tracks().is_empty());
    let a = header(MediaKind::Audio, Codec::Aac, &asc);
    assert_eq!(f.push(&a).unwrap(), Pushed::InitChanged);
    assert_eq!(f.tracks().len(), 1);
    let audio_only = f.init_segment().unwrap();
    assert_eq!(f.push(&a).unwrap(), Pushed::Nothing, "identical header");
    let v = header(MediaKind::Video, Codec::H264, &avcc);
    assert_eq!(f.push(&v).unwrap(), Pushed::InitChanged);
    assert_eq!(
        f.tracks().iter().map(|t| t.kind).collect::<Vec<_>>(),
        [MediaKind::Video, MediaKind::Audio]
    );
    assert_ne!(f.init_segment().unwrap(), audio_only);
    // A different AAC config (mono) changes the init segment.
    let mono = header(MediaKind::Audio, Codec::Aac, &[0x11, 0x88]);
    assert_eq!(f.push(&mono).unwrap(), Pushed::InitChanged);
    assert_eq!(f.tracks()[1].channels, 1);
    // Changing config flushes nothing by itself.
    f.push(&aac(0)).unwrap();
    assert_eq!(f.push(&a).unwrap(), Pushed::InitChanged);
    assert_eq!(f.flush(None).unwrap().audio_samples, 1);
}

#[test]
fn ignored_frames() {
    let mut f = fragmenter(true, true);
    let mut meta = coded(MediaKind::Data, Codec::Script, 0, 0, false, b"\x02");
    assert_eq!(f.push(&meta).unwrap(), Pushed::Nothing);
    meta.role = FrameRole::Metadata;
    assert_eq!(f.push(&meta).unwrap(), Pushed::Nothing);
    let mut end = video(0, 0, false);
    end.role = FrameRole::SequenceEnd;
    assert_eq!(f.push(&end).unwrap(), Pushed::Nothing);
    let vp9 = coded(MediaKind::Video, Codec::Vp9, 0, 0, true, &[1, 2, 3]);
    assert_eq!(f.push(&vp9).unwrap(), Pushed::Nothing);
    let mut vp9_header = vp9.clone();
    vp9_header.role = FrameRole::SequenceHeader;
    assert_eq!(f.push(&vp9_header).unwrap(), Pushed::Nothing);
    let mp3 = coded(MediaKind::Audio, Codec::Mp3, 0, 0, true, &[0xFF, 0xFB]);
    assert_eq!(f.push(&mp3).unwrap(), Pushed::Nothing);
    let empty = coded(MediaKind::Video, Codec::H264, 0, 0, true, &[]);
    assert_eq!(f.push(&empty).unwrap(), Pushed::Nothing);
    assert_eq!(f.finish(), None);
}

#[test]
fn errors() {
    let mut f = Fragmenter::new();
    assert_eq!(
        f.push(&video(0, 0, true)).unwrap_err(),
        Fmp4Error::NotConfigured {
            kind: MediaKind::Video
        }
    );
    let mut f = fragmenter(true, true);
    let hevc = coded(MediaKind::Video, Codec::H265, 0, 0, true, &[1]);
    assert!(matches!(
        f.push(&hevc).unwrap_err(),
        Fmp4Error::CodecMismatch { .. }
    ));
    let big = coded(
        MediaKind::Audio,
        Codec::Aac,
        0,
        0,
        true,
        &vec![0; MAX_SAMPLE_SIZE + 1],
    );
    assert!(matches!(
        f.push(&big).unwrap_err(),
        Fmp4Error::SampleTooLarge { .. }
    ));
    let mut bad_header = header(MediaKind::Video, Codec::H264, &[1, 2]);
    bad_header.dts = 5;
    assert!(matches!(
        f.push(&bad_header).unwrap_err(),
        Fmp4Error::Codec(media::MediaError::InvalidCodecConfig { .. })
    ));
}

#[test]
fn buffer_limit_drops_the_frame_until_a_flush() {
    let mut f = fragmenter(false, true);
    for i in 0..MAX_BUFFERED_SAMPLES as u64 {
        f.push(&aac(i * 21)).unwrap();
    }
    assert!(matches!(
        f.push(&aac(999_999)).unwrap_err(),
        Fmp4Error::BufferFull {
            samples: MAX_BUFFERED_SAMPLES,
            ..
        }
    ));
    let frag = f.flush(None).unwrap();
    assert_eq!(frag.audio_samples as usize, MAX_BUFFERED_SAMPLES);
    assert_eq!(f.push(&aac(100_000)).unwrap(), Pushed::Sample);
}

#[test]
fn opus_durations_from_toc() {
    let mut f = Fragmenter::new();
    let h = header(MediaKind::Audio, Codec::Opus, &[]);
    assert_eq!(f.push(&h).unwrap(), Pushed::InitChanged);
    assert_eq!(f.tracks()[0].timescale, 48_000);
    let opus = |dts, data: &[u8]| coded(MediaKind::Audio, Codec::Opus, dts, 0, true, data);
    f.push(&opus(0, &[0xF8, 1, 2])).unwrap(); // CELT 20 ms
    f.push(&opus(20, &[0xFB, 0x02, 1])).unwrap(); // code 3, 2 frames of 20 ms
    f.push(&opus(60, &[0x08])).unwrap(); // SILK 20 ms... config 1
    assert!(matches!(
        f.push(&opus(80, &[0xFB])).unwrap_err(),
        Fmp4Error::Codec(media::MediaError::InvalidOpusPacket { .. })
    ));
    let t = trafs(&f.flush(None).unwrap());
    assert_eq!(durations(&t[0]), [960, 1920, 960]);
}

/// The demo fixture, flushed at every keyframe and every ~200 ms: per track, each fragment's
/// tfdt is the previous one's end (contiguous and monotonic), video tfdt is dts x 90, and
/// every coded frame comes out exactly once.
#[test]
fn demo_fixture_timeline_is_contiguous() {
    let tags = flv::read_all_tags(include_bytes!("../../../fixtures/demo.flv")).unwrap();
    let frames: Vec<Frame> = tags
        .into_iter()
        .map(|t| flv::frame_from_tag(t.tag_type, t.timestamp, t.body).unwrap())
        .collect();
    let mut f = Fragmenter::new();
    let mut fragments = Vec::new();
    let mut last_part = 0;
    let (mut fed_video, mut fed_audio) = (0, 0);
    for frame in &frames {
        let pushed = f.push(frame).unwrap();
        if pushed == Pushed::Sample {
            if frame.kind == MediaKind::Video {
                fed_video += 1;
            } else {
                fed_audio += 1;
            }
        }
        if frame.is_video_keyframe() {
            fragments.extend(f.flush(Some(frame.dts)));
            last_part = frame.dts;
        } else if frame.dts >= last_part + 200 {
            fragments.extend(f.flush(None));
            last_part = frame.dts;
        }
    }
    fragments.extend(f.finish());
    assert!(fragments.len() > 10);
    let mut ends = [None::<u64>; 2];
    let (mut video, mut audio) = (0, 0);
    for (i, frag) in fragments.iter().enumerate() {
        assert_eq!(frag.sequence_number as usize, i + 1);
        assert!(frag.duration_ms > 0);
        video += frag.video_samples;
        audio += frag.audio_samples;
        for t in trafs(frag) {
            let slot = &mut ends[t.track_id as usize - 1];
            if let Some(end) = *slot {
                assert_eq!(t.base_decode_time, end, "fragment {i} track {}", t.track_id);
            }
            let total: u64 = t.samples.iter().map(|s| u64::from(s.duration)).sum();
            *slot = Some(t.base_decode_time + total);
            if t.track_id == 1 {
                assert_eq!(t.base_decode_time, frag.start_ms * 90);
                assert!(t.samples.iter().all(|s| s.duration == 3600));
            }
        }
    }
    assert_eq!((video, audio), (fed_video, fed_audio));
    // Fragments tile the hub timeline: each starts where the previous one ends.
    for pair in fragments.windows(2) {
        assert_eq!(pair[0].start_ms + pair[0].duration_ms, pair[1].start_ms);
    }
}
