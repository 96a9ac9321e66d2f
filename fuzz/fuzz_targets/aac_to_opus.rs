//! Arbitrary AudioSpecificConfigs and arbitrary raw AAC frames through `transcode::AacToOpus`:
//! nothing may panic, and every packet produced must be a 20 ms Opus packet on a monotonic
//! 20 ms timeline between resets.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Valid configs (AAC-LC 48 kHz stereo, 44.1 kHz mono, 22.05 kHz stereo, 8 kHz mono) so the
/// fuzzer reaches the decoder, resampler and encoder; the other half of inputs bring their own.
const CONFIGS: [[u8; 2]; 4] = [[0x11, 0x90], [0x12, 0x08], [0x13, 0x90], [0x15, 0x88]];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let asc: &[u8] = if selector & 0x80 != 0 {
        &CONFIGS[usize::from(selector & 0x03)]
    } else {
        let len = usize::from(selector & 0x07).min(rest.len());
        let (asc, tail) = rest.split_at(len);
        rest = tail;
        asc
    };
    let Ok(mut t) = transcode::AacToOpus::new(asc) else {
        return;
    };
    let mut dts: u64 = 0;
    let mut out = Vec::new();
    // Each record: dts step byte, two length bytes (big-endian), then that many frame bytes.
    while let [step, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        // Steps above 127 jump backwards or far ahead to exercise the gap reset.
        dts = match *step {
            s @ 0..=127 => dts.saturating_add(u64::from(s)),
            s @ 128..=191 => dts.saturating_sub(u64::from(s) * 10),
            s => dts.saturating_add(u64::from(s) * 100),
        };
        out.clear();
        let _ = t.push(frame, dts, &mut out);
        for p in &out {
            assert_eq!(p.samples, 960);
            assert!(!p.data.is_empty() && p.data.len() <= transcode::MAX_OPUS_PACKET_BYTES);
        }
        for pair in out.windows(2) {
            assert_eq!(pair[1].dts_ms, pair[0].dts_ms + transcode::OPUS_FRAME_MS);
        }
    }
});
