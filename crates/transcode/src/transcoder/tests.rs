//! Unit tests of [`AacToOpus`] on the demo fixture's AAC frames and hand-written configs.

use super::*;
use crate::OPUS_FRAME_MS;
use media::{FrameRole, MediaKind};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/demo.flv");

/// AudioSpecificConfig: AAC-LC (2), 48 kHz (index 3), stereo (2), 1024-sample frames.
const ASC_LC_48K_STEREO: [u8; 2] = [0x11, 0x90];
/// AAC-LC, 44.1 kHz (index 4), mono.
const ASC_LC_44K_MONO: [u8; 2] = [0x12, 0x08];
/// A raw data block that starts with a program config element (id 5), which the decoder
/// refuses: a deterministic "corrupt" frame.
const PCE_FRAME: [u8; 4] = [0xA0, 0x00, 0x00, 0x00];

/// The fixture's AudioSpecificConfig and its coded AAC frames with their dts.
fn demo_audio() -> (Vec<u8>, Vec<(u64, Bytes)>) {
    let file = std::fs::read(DEMO).unwrap();
    let mut asc = None;
    let mut frames = Vec::new();
    for tag in flv::read_all_tags(&file).unwrap() {
        let frame = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body).unwrap();
        if frame.kind != MediaKind::Audio {
            continue;
        }
        match frame.role {
            FrameRole::SequenceHeader => asc = Some(frame.payload().to_vec()),
            FrameRole::Coded => frames.push((frame.dts, frame.payload())),
            _ => {}
        }
    }
    (asc.expect("fixture has an AAC sequence header"), frames)
}

fn assert_20ms_steps(packets: &[OpusPacket]) {
    for pair in packets.windows(2) {
        assert_eq!(pair[1].dts_ms, pair[0].dts_ms + OPUS_FRAME_MS, "{pair:?}");
    }
}

#[test]
fn transcoder_can_move_to_another_task() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<AacToOpus>();
    assert_send::<OpusPacket>();
    assert_send::<TranscodeError>();
}

#[test]
fn config_gives_rate_channels_and_default_bitrate() {
    let t = AacToOpus::new(&ASC_LC_48K_STEREO).unwrap();
    assert_eq!(
        (t.sample_rate_in(), t.channels(), t.bitrate()),
        (48_000, 2, 64_000)
    );
    let t = AacToOpus::new(&ASC_LC_44K_MONO).unwrap();
    assert_eq!(
        (t.sample_rate_in(), t.channels(), t.bitrate()),
        (44_100, 1, 32_000)
    );
    let t = AacToOpus::with_bitrate(&ASC_LC_44K_MONO, 24_000).unwrap();
    assert_eq!(t.bitrate(), 24_000);
}

#[test]
fn bad_configs_are_errors() {
    for asc in [
        &[][..],
        &[0x11],
        // HE-AAC (object type 5, SBR), 24 kHz core: not AAC-LC.
        &[0x2B, 0x92, 0x08, 0x00],
        // AAC-LC 48 kHz with channel configuration 6 (5.1).
        &[0x11, 0xB0],
        // Channel configuration 0 (layout in a PCE).
        &[0x11, 0x80],
        // Sampling frequency index 13 (reserved).
        &[0x16, 0x90],
        // Object type 0 (null) / garbage.
        &[0x00, 0x00],
        &[0xFF, 0xFF, 0xFF, 0xFF],
    ] {
        let err = AacToOpus::new(asc).expect_err(&format!("{asc:02x?} must be refused"));
        assert!(
            matches!(
                err,
                TranscodeError::InvalidConfig { .. }
                    | TranscodeError::UnsupportedChannels { .. }
                    | TranscodeError::UnsupportedSampleRate { .. }
            ),
            "{asc:02x?}: {err}"
        );
    }
    // Explicit 24-bit rate (index 15) of 44 101 Hz: parsed, but refused for resampling.
    // 00010 1111 <24 bits: 44101 = 0x00AC45> 0010 000
    let rate = 44_101u32;
    let bits: u64 = (2u64 << 35) | (15 << 31) | (u64::from(rate) << 7) | (2 << 3);
    let asc = &bits.to_be_bytes()[3..];
    assert!(
        matches!(
            AacToOpus::new(asc),
            Err(TranscodeError::UnsupportedSampleRate { rate: 44_101 })
                | Err(TranscodeError::InvalidConfig { .. })
        ),
        "{asc:02x?}"
    );
    assert!(matches!(
        AacToOpus::with_bitrate(&ASC_LC_48K_STEREO, 1_000),
        Err(TranscodeError::InvalidBitrate { bitrate: 1_000 })
    ));
    assert!(matches!(
        AacToOpus::with_bitrate(&ASC_LC_48K_STEREO, 600_000),
        Err(TranscodeError::InvalidBitrate { .. })
    ));
}

#[test]
fn fixture_frames_become_monotonic_20ms_packets() {
    let (asc, frames) = demo_audio();
    let mut t = AacToOpus::new(&asc).unwrap();
    let mut out = Vec::new();
    for (dts, aac) in &frames[..50] {
        t.push(aac, *dts, &mut out).unwrap();
    }
    // 50 frames × 1024 samples at 48 kHz = 1066 ms → 53 complete packets.
    assert_eq!(out.len(), 50 * 1024 / OPUS_FRAME_SAMPLES);
    assert_eq!(out[0].dts_ms, frames[0].0);
    assert_20ms_steps(&out);
    for p in &out {
        assert_eq!(p.samples, 960);
        assert!(!p.data.is_empty() && p.data.len() <= MAX_OPUS_PACKET_BYTES);
        // TOC byte: config ≥ 16 is CELT/hybrid fullband-capable; frame size code must be 20 ms.
        assert_eq!(
            opus::packet::get_samples_per_frame(&p.data, 48_000).unwrap(),
            960
        );
        assert_eq!(
            opus::packet::get_nb_channels(&p.data).unwrap(),
            opus::Channels::Stereo
        );
    }
}

#[test]
fn corrupt_frame_is_an_error_and_the_next_frame_works() {
    let (asc, frames) = demo_audio();
    let mut t = AacToOpus::new(&asc).unwrap();
    let mut out = Vec::new();
    for (dts, aac) in &frames[..10] {
        t.push(aac, *dts, &mut out).unwrap();
    }
    let dts = frames[10].0;
    let err = t.push(&PCE_FRAME, dts, &mut out).unwrap_err();
    assert!(
        matches!(err, TranscodeError::Decode { dts_ms, .. } if dts_ms == dts),
        "{err}"
    );
    assert!(matches!(
        t.push(&[], dts, &mut out),
        Err(TranscodeError::EmptyFrame { .. })
    ));
    let huge = vec![0u8; MAX_AAC_FRAME_BYTES + 1];
    assert!(matches!(
        t.push(&huge, dts, &mut out),
        Err(TranscodeError::FrameTooLarge { .. })
    ));
    // The corrupt frame was concealed by silence: the timeline continues without a reset.
    for (dts, aac) in &frames[11..40] {
        t.push(aac, *dts, &mut out).unwrap();
    }
    assert_eq!(out.len(), 40 * 1024 / OPUS_FRAME_SAMPLES);
    assert_20ms_steps(&out);
    // The frames after the corrupt one decode to real (non-silent) audio again.
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
    let mut pcm = vec![0f32; 960 * 2];
    let mut energy = 0.0f64;
    for p in &out[out.len() - 10..] {
        let n = dec.decode_float(&p.data, &mut pcm, false).unwrap();
        energy += pcm[..n * 2]
            .iter()
            .map(|s| f64::from(*s).powi(2))
            .sum::<f64>();
    }
    assert!(energy > 1.0, "energy {energy}");
}

#[test]
fn dts_gap_resets_the_timeline() {
    let (asc, frames) = demo_audio();
    let mut t = AacToOpus::new(&asc).unwrap();
    let mut out = Vec::new();
    for (dts, aac) in &frames[..20] {
        t.push(aac, *dts, &mut out).unwrap();
    }
    let before = out.len();
    assert_eq!(before, 20 * 1024 / OPUS_FRAME_SAMPLES);
    // The publisher jumps 10 s ahead.
    let jump = frames[20].0 + 10_000;
    for (i, (_, aac)) in frames[20..40].iter().enumerate() {
        let dts = jump + (i as u64 * 1024 * 1000) / 48_000;
        t.push(aac, dts, &mut out).unwrap();
    }
    // The partial packet before the gap was dropped; the new timeline starts at the new dts.
    assert_20ms_steps(&out[..before]);
    assert_eq!(out[before].dts_ms, jump);
    assert_20ms_steps(&out[before..]);
    assert_eq!(out.len() - before, 20 * 1024 / OPUS_FRAME_SAMPLES);

    // A jump backwards resets too.
    let back = 5;
    let n = out.len();
    t.push(&frames[40].1, back, &mut out).unwrap();
    t.push(&frames[41].1, back + 21, &mut out).unwrap();
    assert_eq!(out[n].dts_ms, back);
}

#[test]
fn dts_jitter_below_the_gap_limit_keeps_the_timeline() {
    let (asc, frames) = demo_audio();
    let mut t = AacToOpus::new(&asc).unwrap();
    let mut out = Vec::new();
    for (i, (dts, aac)) in frames[..40].iter().enumerate() {
        // ±30 ms of jitter on every other frame.
        let dts = if i % 2 == 1 { dts + 30 } else { *dts };
        t.push(aac, dts, &mut out).unwrap();
    }
    assert_eq!(out.len(), 40 * 1024 / OPUS_FRAME_SAMPLES);
    assert_eq!(out[0].dts_ms, frames[0].0);
    assert_20ms_steps(&out);
}

#[test]
fn explicit_reset_starts_a_new_timeline() {
    let (asc, frames) = demo_audio();
    let mut t = AacToOpus::new(&asc).unwrap();
    let mut out = Vec::new();
    for (dts, aac) in &frames[..5] {
        t.push(aac, *dts, &mut out).unwrap();
    }
    t.reset();
    let n = out.len();
    for (dts, aac) in &frames[5..10] {
        t.push(aac, *dts, &mut out).unwrap();
    }
    assert_eq!(out[n].dts_ms, frames[5].0);
    assert_20ms_steps(&out[n..]);
}

/// Deterministic xorshift so the mutation test is reproducible.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn mutated_frames_and_configs_never_panic() {
    let (asc, frames) = demo_audio();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut t = AacToOpus::new(&asc).unwrap();
    let mut out = Vec::new();
    let mut errors = 0;
    for round in 0..2000u64 {
        let (_, aac) = &frames[(next(&mut rng) as usize) % frames.len()];
        let mut bytes = aac.to_vec();
        // Flip 1..=8 random bits, sometimes truncate.
        for _ in 0..=(next(&mut rng) % 8) {
            let bit = (next(&mut rng) as usize) % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        if next(&mut rng).is_multiple_of(4) {
            bytes.truncate((next(&mut rng) as usize) % bytes.len() + 1);
        }
        if t.push(&bytes, round * 21, &mut out).is_err() {
            errors += 1;
        }
        out.clear();
    }
    assert!(errors > 0, "some mutations must be rejected");
    for _ in 0..2000 {
        let len = (next(&mut rng) % 8) as usize;
        let asc: Vec<u8> = (0..len).map(|_| next(&mut rng) as u8).collect();
        if let Ok(mut t) = AacToOpus::new(&asc) {
            let _ = t.push(&frames[0].1, 0, &mut out);
        }
    }
}
