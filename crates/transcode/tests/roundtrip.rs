//! End to end: real AAC (the demo fixture, and a 44.1 kHz tone made by ffmpeg) through
//! [`AacToOpus`], decoded back with libopus and compared with the AAC-decoded signal.

use std::path::PathBuf;
use std::process::Command;

use media::{FrameRole, MediaKind};
use symphonia::core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::packet::PacketRef;
use symphonia::core::units::{Duration, Timestamp};
use symphonia::default::codecs::AacDecoder;
use transcode::{AacToOpus, OPUS_FRAME_MS, OpusPacket};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/demo.flv");

/// The fixture's AudioSpecificConfig and coded AAC frames with their dts.
fn demo_audio() -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
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
            FrameRole::Coded => frames.push((frame.dts, frame.payload().to_vec())),
            _ => {}
        }
    }
    (asc.expect("AAC sequence header"), frames)
}

/// Decodes AAC frames with symphonia directly (the reference signal), interleaved.
fn decode_aac(asc: &[u8], frames: &[(u64, Vec<u8>)]) -> Vec<f32> {
    let mut params = AudioCodecParameters::new();
    params
        .for_codec(CODEC_ID_AAC)
        .with_extra_data(asc.to_vec().into_boxed_slice());
    let mut dec = AacDecoder::try_new(&params, &AudioDecoderOptions::default()).unwrap();
    let mut all = Vec::new();
    let mut pcm: Vec<f32> = Vec::new();
    for (_, aac) in frames {
        let pkt = PacketRef::new(0, Timestamp::from(0i64), Duration::from(1024u64), aac);
        dec.decode_ref(&pkt)
            .unwrap()
            .copy_to_vec_interleaved(&mut pcm);
        all.extend_from_slice(&pcm);
    }
    all
}

/// Decodes Opus packets back to interleaved 48 kHz PCM.
fn decode_opus(packets: &[OpusPacket], channels: u16) -> Vec<f32> {
    let ch = if channels == 1 {
        opus::Channels::Mono
    } else {
        opus::Channels::Stereo
    };
    let mut dec = opus::Decoder::new(48_000, ch).unwrap();
    let mut pcm = vec![0f32; 960 * usize::from(channels)];
    let mut all = Vec::new();
    for p in packets {
        let n = dec.decode_float(&p.data, &mut pcm, false).unwrap();
        assert_eq!(n, p.samples as usize);
        all.extend_from_slice(&pcm[..n * usize::from(channels)]);
    }
    all
}

fn rms(samples: &[f32]) -> f64 {
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

fn assert_timeline(packets: &[OpusPacket], first_dts: u64) {
    assert_eq!(packets.first().map(|p| p.dts_ms), Some(first_dts));
    for pair in packets.windows(2) {
        assert_eq!(pair[1].dts_ms, pair[0].dts_ms + OPUS_FRAME_MS, "{pair:?}");
    }
}

#[test]
fn demo_fixture_transcodes_to_matching_opus() {
    let (asc, frames) = demo_audio();
    let mut t = AacToOpus::new(&asc).unwrap();
    assert_eq!((t.sample_rate_in(), t.channels()), (48_000, 2));
    let mut packets = Vec::new();
    for (dts, aac) in &frames {
        t.push(aac, *dts, &mut packets).unwrap();
    }
    // Packets cover the clip: every complete 20 ms of the decoded samples.
    let clip_ms = frames.len() as u64 * 1024 * 1000 / 48_000;
    assert!(clip_ms >= 3_900, "fixture audio is ~4 s, got {clip_ms} ms");
    assert_eq!(packets.len() as u64, clip_ms / OPUS_FRAME_MS);
    assert!((195..=205).contains(&packets.len()), "{}", packets.len());
    assert_timeline(&packets, frames[0].0);
    // The last packet ends no later than the last AAC frame ends.
    let last_end = frames.last().unwrap().0 + 1024 * 1000 / 48_000;
    assert!(packets.last().unwrap().dts_ms + OPUS_FRAME_MS <= last_end + 1);

    let opus_pcm = decode_opus(&packets, 2);
    let aac_pcm = decode_aac(&asc, &frames);
    // Skip the first 100 ms (codec start-up) on both sides.
    let (o, a) = (rms(&opus_pcm[9600..]), rms(&aac_pcm[9600..]));
    eprintln!("rms opus {o:.4} aac {a:.4}, {} packets", packets.len());
    assert!(o > 0.01, "Opus output is silent (rms {o})");
    assert!(a > 0.01, "AAC reference is silent (rms {a})");
    assert!(o / a > 0.7 && o / a < 1.4, "rms opus {o} vs aac {a}");
}

/// A temp file removed on drop; unique per process.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Splits an ADTS stream into (AudioSpecificConfig, raw frames).
fn parse_adts(mut data: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut asc = None;
    let mut frames = Vec::new();
    while data.len() >= 7 {
        assert!(data[0] == 0xFF && data[1] & 0xF6 == 0xF0, "ADTS sync");
        let protection_absent = data[1] & 1 == 1;
        let profile = data[2] >> 6; // object type - 1
        let sf_index = (data[2] >> 2) & 0x0F;
        let channels = ((data[2] & 1) << 2) | (data[3] >> 6);
        let frame_len = (usize::from(data[3] & 0x03) << 11)
            | (usize::from(data[4]) << 3)
            | usize::from(data[5] >> 5);
        let header = if protection_absent { 7 } else { 9 };
        assert!(frame_len > header && frame_len <= data.len(), "ADTS length");
        // AudioSpecificConfig: 5 bits object type, 4 bits frequency index, 4 bits channels,
        // then frameLengthFlag/dependsOnCoreCoder/extensionFlag = 0.
        let config: u16 = (u16::from(profile + 1) << 11)
            | (u16::from(sf_index) << 7)
            | (u16::from(channels) << 3);
        asc.get_or_insert_with(|| config.to_be_bytes().to_vec());
        frames.push(data[header..frame_len].to_vec());
        data = &data[frame_len..];
    }
    (asc.expect("at least one ADTS frame"), frames)
}

/// Frequency of the dominant tone from rising zero crossings.
fn zero_crossing_frequency(mono: &[f32], rate: f64) -> f64 {
    let crossings: Vec<usize> = (1..mono.len())
        .filter(|&i| mono[i - 1] < 0.0 && mono[i] >= 0.0)
        .collect();
    assert!(crossings.len() > 10, "{} crossings", crossings.len());
    let span = crossings[crossings.len() - 1] - crossings[0];
    (crossings.len() - 1) as f64 * rate / span as f64
}

#[test]
fn tone_at_44100_hz_keeps_its_pitch_after_resampling() {
    let path = std::env::temp_dir().join(format!("sluice-transcode-{}.aac", std::process::id()));
    let file = TempFile(path.clone());
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("sine=frequency=1000:sample_rate=44100")
        .args(["-t", "2", "-c:a", "aac", "-b:a", "96k", "-f", "adts"])
        .arg(&file.0)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let (asc, frames) = parse_adts(&std::fs::read(&path).unwrap());
    assert!(frames.len() > 80, "{} frames", frames.len());

    let mut t = AacToOpus::new(&asc).unwrap();
    assert_eq!(
        (t.sample_rate_in(), t.channels(), t.bitrate()),
        (44_100, 1, 32_000)
    );
    let mut packets = Vec::new();
    for (i, aac) in frames.iter().enumerate() {
        // Hub-style dts: integer milliseconds of 1024-sample frames at 44.1 kHz.
        let dts = 1_000 + i as u64 * 1024 * 1000 / 44_100;
        t.push(aac, dts, &mut packets).unwrap();
    }
    let expected = frames.len() as u64 * 1024 * 48_000 / 44_100 / 960;
    assert!(
        (packets.len() as u64).abs_diff(expected) <= 1,
        "{} packets, expected ~{expected}",
        packets.len()
    );
    assert_timeline(&packets, 1_000);

    let pcm = decode_opus(&packets, 1);
    // Skip start-up (200 ms) and the tail.
    let steady = &pcm[9_600..pcm.len() - 4_800];
    let f = zero_crossing_frequency(steady, 48_000.0);
    eprintln!("dominant frequency {f:.2} Hz, {} packets", packets.len());
    // Without resampling (44.1 kHz played at 48 kHz) it would be 1088 Hz.
    assert!((f - 1000.0).abs() < 10.0, "dominant frequency {f} Hz");
    assert!(rms(steady) > 0.05, "rms {}", rms(steady));
}
