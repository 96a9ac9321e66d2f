//! Arbitrary Opus packets on an arbitrary timeline through `transcode::OpusToAac`: nothing may
//! panic, every AAC frame is bounded, and the frames one packet completes never go backwards.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let Ok(mut t) = transcode::OpusToAac::new(1 + u16::from(selector & 1)) else {
        return;
    };
    let mut pts: u64 = 1_000_000;
    // Each record: pts step byte, one length byte, then that many packet bytes.
    while let [step, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;
        pts = match *step {
            s @ 0..=127 => pts.saturating_add(u64::from(s)),
            s @ 128..=191 => pts.saturating_sub(u64::from(s) * 10),
            s => pts.saturating_add(u64::from(s) * 100),
        };
        let Ok(frames) = t.push(packet, pts) else {
            continue;
        };
        for f in &frames {
            assert!(!f.data.is_empty() && f.data.len() <= 2048);
        }
        for w in frames.windows(2) {
            assert!(w[1].pts_ms > w[0].pts_ms, "{} after {}", w[1].pts_ms, w[0].pts_ms);
        }
    }
});
