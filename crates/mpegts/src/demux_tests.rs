//! The demuxer against ffmpeg's transport streams (fixtures/make-ts.sh), our own muxer's
//! output, and damage: lost packets, wrapped timestamps, garbage.

use bytes::BytesMut;
use media::{Frame, FrameRole, MediaKind};

use super::*;
use crate::TsMuxer;
use crate::reader_tests::demo_frames;

const H264_AAC: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/h264-aac.ts"
));
const HEVC_OPUS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/hevc-opus.ts"
));

/// Demuxes `ts` in pieces of `chunk` bytes, flushing at the end.
fn demux(ts: &[u8], chunk: usize) -> (Vec<EsUnit>, DemuxStats) {
    let mut d = TsDemuxer::new();
    let mut out = Vec::new();
    for piece in ts.chunks(chunk) {
        d.push(piece, &mut out);
    }
    d.flush(&mut out);
    (out, d.stats())
}

fn of(units: &[EsUnit], codec: EsCodec) -> Vec<&EsUnit> {
    units.iter().filter(|u| u.codec == codec).collect()
}

/// Each decode timestamp is `step` 90 kHz ticks after the previous one (±2: a PES's first
/// unit carries the muxer's rounding, the next ones ours).
fn assert_steps(units: &[&EsUnit], step: u64) {
    for w in units.windows(2) {
        let d = w[1].dts - w[0].dts;
        assert!(d.abs_diff(step) <= 2, "step {d}, expected {step}");
    }
}

#[test]
fn ffmpeg_h264_and_aac_with_several_frames_per_pes() {
    // ffprobe counts 50 video packets (2 keyframes) and 88 AAC frames in this file.
    for chunk in [1316, 188, 1000, 7] {
        let (units, stats) = demux(H264_AAC, chunk);
        let video = of(&units, EsCodec::H264);
        let audio = of(&units, EsCodec::Aac);
        assert_eq!(video.len(), 50, "chunk {chunk}");
        assert_eq!(video.iter().filter(|u| u.keyframe).count(), 2);
        assert!(video[0].keyframe, "the stream starts on a keyframe");
        assert_eq!(audio.len(), 88);
        assert_steps(&video, 3600);
        assert_steps(&audio, 90_000 * 1024 / 44_100);
        // B-frames: presentation runs ahead of decode on some frames, never behind.
        assert!(video.iter().all(|u| u.pts >= u.dts));
        assert!(video.iter().any(|u| u.pts > u.dts));
        let Some(AudioParams::Aac(cfg)) = audio[0].audio else {
            panic!("AAC parameters")
        };
        assert_eq!(
            cfg.audio_specific_config(),
            [0x12, 0x08],
            "LC, 44.1 kHz, mono"
        );
        // Raw frames: no ADTS header left in front.
        assert!(audio.iter().all(|u| u.data.len() > 2 && u.data[0] != 0xFF));
        // Annex B access units with a start code.
        assert!(
            video
                .iter()
                .all(|u| u.data.starts_with(&[0, 0, 0, 1]) || u.data.starts_with(&[0, 0, 1]))
        );
        assert_eq!(stats.continuity_errors, 0);
        assert_eq!(stats.pes_dropped, 0);
        assert_eq!(stats.units, 138);
    }
}

#[test]
fn ffmpeg_hevc_and_opus_with_its_registration_descriptor() {
    // ffprobe counts 50 video packets (2 keyframes) and 101 Opus packets in this file.
    let (units, stats) = demux(HEVC_OPUS, 1316);
    let video = of(&units, EsCodec::H265);
    let audio = of(&units, EsCodec::Opus);
    assert_eq!(video.len(), 50);
    assert_eq!(video.iter().filter(|u| u.keyframe).count(), 2);
    assert_eq!(audio.len(), 101);
    assert_steps(&video, 3600);
    assert_steps(&audio, 1800);
    assert!(
        audio
            .iter()
            .all(|u| u.audio == Some(AudioParams::Opus { channels: 2 }))
    );
    assert!(
        audio
            .iter()
            .all(|u| opus_packet_duration(&u.data) == Ok(960))
    );
    assert_eq!(stats.pes_dropped, 0);
}

/// Our muxer's output of `frames`, with the tables before every keyframe (as the HLS
/// segmenter writes them).
fn mux(frames: &[Frame]) -> Vec<u8> {
    let mut m = TsMuxer::new();
    let mut out = BytesMut::new();
    let mut started = false;
    for f in frames {
        if f.role == FrameRole::Coded && (!started || f.is_video_keyframe()) {
            m.write_tables(&mut out);
            started = true;
        }
        m.push(f, &mut out).unwrap();
    }
    out.to_vec()
}

#[test]
fn our_muxer_round_trips_every_frame_with_its_payload_and_timestamps() {
    let frames = demo_frames();
    let coded = |kind| {
        frames
            .iter()
            .filter(move |f| f.kind == kind && f.role == FrameRole::Coded)
    };
    let (units, stats) = demux(&mux(&frames), 1316);
    let video = of(&units, EsCodec::H264);
    let audio = of(&units, EsCodec::Aac);
    assert_eq!(video.len(), coded(MediaKind::Video).count());
    assert_eq!(audio.len(), coded(MediaKind::Audio).count());
    // One offset (the muxer's and the unwrapper's) for both streams.
    let offset = video[0].dts - coded(MediaKind::Video).next().unwrap().dts * 90;
    for (u, f) in video.iter().zip(coded(MediaKind::Video)) {
        assert_eq!(u.keyframe, f.keyframe);
        assert_eq!(u.dts - offset, f.dts * 90, "video dts");
        assert_eq!(u.pts - offset, f.pts() * 90, "video pts");
    }
    for (u, f) in audio.iter().zip(coded(MediaKind::Audio)) {
        assert_eq!(u.data, f.payload(), "AAC bytes equal");
        assert_eq!(u.dts - offset, f.dts * 90, "audio dts");
    }
    assert_eq!(stats.continuity_errors, 0);
}

#[test]
fn a_lost_packet_is_counted_and_costs_only_its_pes() {
    let ts = H264_AAC;
    let (clean, _) = demux(ts, 1316);
    // Drop one packet in the middle of the video (a continuation of a large PES).
    let victim = (ts.len() / TS_PACKET_LEN / 2..)
        .find(|i| {
            let p = &ts[i * TS_PACKET_LEN..];
            let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
            pid == 0x100 && p[1] & 0x40 == 0
        })
        .unwrap();
    let mut lossy = ts[..victim * TS_PACKET_LEN].to_vec();
    lossy.extend_from_slice(&ts[(victim + 1) * TS_PACKET_LEN..]);
    let (units, stats) = demux(&lossy, 1316);
    assert_eq!(stats.continuity_errors, 1);
    assert_eq!(stats.pes_dropped, 1);
    assert_eq!(
        of(&units, EsCodec::H264).len(),
        of(&clean, EsCodec::H264).len() - 1
    );
    assert_eq!(
        of(&units, EsCodec::Aac).len(),
        of(&clean, EsCodec::Aac).len()
    );
}

#[test]
fn timestamps_unwrap_across_the_33_bit_wrap() {
    // Frames whose 90 kHz timestamps cross 2^33 (26.5 h): the muxer masks to 33 bits,
    // the demuxer must count on.
    let wrap_ms = (1u64 << 33) / 90;
    let frames: Vec<Frame> = demo_frames()
        .into_iter()
        .map(|mut f| {
            f.dts += wrap_ms - 2_000;
            f
        })
        .collect();
    let (units, _) = demux(&mux(&frames), 1316);
    let video = of(&units, EsCodec::H264);
    assert!(video.len() > 90);
    assert_steps(&video, 3600);
    let audio = of(&units, EsCodec::Aac);
    for w in audio.windows(2) {
        assert!(w[1].dts > w[0].dts, "audio dts monotonic across the wrap");
    }
}

#[test]
fn garbage_and_resync() {
    // Random bytes (a fixed xorshift): no unit, no panic, sync losses counted.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let (units, stats) = demux(&noise, 1316);
    assert!(units.is_empty());
    assert!(stats.sync_losses > 0);
    // Noise in front of a real stream: the demuxer finds the packets after it.
    let mut mixed = noise[..1000].to_vec();
    mixed.retain(|b| *b != SYNC_BYTE);
    mixed.extend_from_slice(H264_AAC);
    let (units, _) = demux(&mixed, 1316);
    assert_eq!(of(&units, EsCodec::H264).len(), 50);
}

#[test]
fn an_oversized_pes_is_dropped_and_bounded() {
    // A video PES that never ends: continuation packets far past MAX_PES_BYTES.
    let mut d = TsDemuxer::new();
    let mut out = Vec::new();
    // Tables from the fixture (its first packets), then one PES start and 50,000
    // continuation packets on the video PID with a running continuity counter.
    for p in H264_AAC.chunks(TS_PACKET_LEN).take(10) {
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        if pid == 0 || pid == 0x1000 {
            d.push(p, &mut out);
        }
    }
    assert_eq!(d.streams().count(), 2, "tables read");
    let mut cc = 0u8;
    let mut packet = |pusi: bool| {
        let mut p = vec![0xFFu8; TS_PACKET_LEN];
        p[0] = SYNC_BYTE;
        p[1] = if pusi { 0x41 } else { 0x01 };
        p[2] = 0x00;
        p[3] = 0x10 | cc;
        cc = (cc + 1) & 0x0F;
        if pusi {
            p[4..14].copy_from_slice(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21]);
        }
        p
    };
    d.push(&packet(true), &mut out);
    for _ in 0..50_000 {
        d.push(&packet(false), &mut out);
    }
    assert_eq!(d.stats().pes_dropped, 1);
    assert!(d.streams.iter().all(|s| s.pes.is_none()));
}
