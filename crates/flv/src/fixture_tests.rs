//! The demo fixture (fixtures/demo.flv, made by fixtures/make-demo.sh) parsed end to end.

use media::aac::parse_audio_specific_config;
use media::avc::parse_avc_decoder_config;
use media::{Codec, Frame, FrameRole, MediaKind};

use crate::{FlvReader, frame_from_tag, read_all_tags};

const DEMO: &[u8] = include_bytes!("../../../fixtures/demo.flv");

fn demo_frames() -> Vec<Frame> {
    read_all_tags(DEMO)
        .unwrap()
        .into_iter()
        .map(|tag| frame_from_tag(tag.tag_type, tag.timestamp, tag.body).unwrap())
        .collect()
}

#[test]
fn demo_fixture() {
    let frames = demo_frames();
    let media: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.kind != MediaKind::Data)
        .collect();
    // ffmpeg writes onMetaData first.
    assert_eq!(
        (frames[0].kind, frames[0].role),
        (MediaKind::Data, FrameRole::Metadata)
    );

    // Sequence headers come before any coded frame.
    let first_coded = media
        .iter()
        .position(|f| f.role == FrameRole::Coded)
        .unwrap();
    let headers = &media[..first_coded];
    let avc = headers
        .iter()
        .find(|f| f.codec == Codec::H264 && f.role == FrameRole::SequenceHeader)
        .unwrap();
    let aac = headers
        .iter()
        .find(|f| f.codec == Codec::Aac && f.role == FrameRole::SequenceHeader)
        .unwrap();

    let record = parse_avc_decoder_config(&avc.payload()).unwrap();
    assert_eq!((record.profile, record.nal_length_size), (77, 4));
    let sps = record.parse_sps().unwrap();
    assert_eq!((sps.width, sps.height), (640, 360));
    let asc = parse_audio_specific_config(&aac.payload()).unwrap();
    assert_eq!(
        (asc.object_type, asc.sample_rate, asc.channels()),
        (2, 48_000, Some(2))
    );

    let video: Vec<&&Frame> = media
        .iter()
        .filter(|f| f.kind == MediaKind::Video && f.role == FrameRole::Coded)
        .collect();
    assert!(
        (95..=105).contains(&video.len()),
        "{} video frames",
        video.len()
    );
    assert!(video[0].is_video_keyframe());
    for (i, f) in video.iter().enumerate() {
        assert_eq!(f.codec, Codec::H264);
        assert_eq!(f.keyframe, i % 25 == 0, "frame {i}");
        assert_eq!(f.cts, 0, "no B-frames");
        // 25 fps: 40 ms per frame (the first is not at 0: ffmpeg shifts everything by the
        // AAC encoder delay).
        assert_eq!(f.dts - video[0].dts, i as u64 * 40, "frame {i}");
        // The payload is length-prefixed NAL units that fill it exactly.
        let payload = f.payload();
        let mut rest = &payload[..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4 + len..];
        }
    }

    let audio: Vec<&&Frame> = media
        .iter()
        .filter(|f| f.kind == MediaKind::Audio && f.role == FrameRole::Coded)
        .collect();
    // 4 s of 1024-sample frames at 48 kHz is about 188.
    assert!(
        (180..=195).contains(&audio.len()),
        "{} audio frames",
        audio.len()
    );
    assert!(
        audio
            .iter()
            .all(|f| f.codec == Codec::Aac && f.keyframe && f.payload_offset == 2)
    );

    for kind in [MediaKind::Audio, MediaKind::Video] {
        let dts: Vec<u64> = frames
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.dts)
            .collect();
        assert!(
            dts.windows(2).all(|w| w[0] <= w[1]),
            "{kind:?} timestamps go back"
        );
    }
}

#[test]
fn demo_fixture_in_odd_chunks() {
    let whole = read_all_tags(DEMO).unwrap();
    let mut reader = FlvReader::new();
    let mut tags = Vec::new();
    for chunk in DEMO.chunks(997) {
        reader.push(chunk);
        while let Some(tag) = reader.next_tag().unwrap() {
            tags.push(tag);
        }
    }
    assert_eq!(tags, whole);
    assert_eq!(reader.buffered(), 0);
    let header = reader.header().unwrap();
    assert!(header.has_audio && header.has_video);
}

#[test]
fn truncated_and_corrupted_demo_never_panics() {
    let tags = read_all_tags(DEMO).unwrap();
    for tag in tags.iter().take(40) {
        for len in 0..tag.body.len().min(64) {
            for tag_type in [crate::TAG_AUDIO, crate::TAG_VIDEO, crate::TAG_SCRIPT] {
                if let Ok(f) = frame_from_tag(tag_type, 0, tag.body.slice(..len)) {
                    assert!(f.payload_offset <= len);
                }
            }
        }
    }
    // Flip bytes across the header and the first tags: errors are fine, panics are not.
    let mut file = DEMO[..4096].to_vec();
    for i in 0..file.len() {
        file[i] ^= 0xA5;
        let _ = read_all_tags(&file);
        file[i] ^= 0xA5;
    }
}
