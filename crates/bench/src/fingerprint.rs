//! Payload fingerprints for latency matching.
//!
//! Servers may rebase timestamps per viewer (Sluice starts each viewer near zero), so a
//! received video frame is matched to the frame the publisher sent by a 64-bit fingerprint
//! of its payload: FNV-1a over the payload length and its first [`FINGERPRINT_PREFIX`] bytes.
//! The publisher records the instant it last sent each frame; a player looks the fingerprint
//! up and subtracts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Payload bytes that enter a fingerprint (with the payload length).
pub const FINGERPRINT_PREFIX: usize = 64;
/// Send instant meaning "not sent yet".
const NEVER: u64 = u64::MAX;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Fingerprint of a payload of `len` bytes whose first bytes are `prefix` (only the first
/// [`FINGERPRINT_PREFIX`] bytes of `prefix` are used, so the whole payload may be passed).
pub fn fingerprint(len: usize, prefix: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in (len as u64).to_le_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    for &b in prefix.iter().take(FINGERPRINT_PREFIX) {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// Fingerprint -> frame index (built once, read-only) plus each frame's last send instant.
#[derive(Debug)]
pub struct FrameIndex {
    by_fingerprint: HashMap<u64, u32>,
    last_send_ns: Vec<AtomicU64>,
    ambiguous: usize,
}

impl FrameIndex {
    /// Indexes the given video payloads (frame `i` is the `i`-th item). Payloads whose
    /// fingerprint is shared with another frame are left out (they cannot be matched) and
    /// counted in [`ambiguous`](Self::ambiguous).
    pub fn new<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut by_fingerprint = HashMap::new();
        let mut dup = std::collections::HashSet::new();
        let mut n = 0usize;
        for (i, p) in payloads.into_iter().enumerate() {
            n = i + 1;
            let f = fingerprint(p.len(), p);
            if by_fingerprint.insert(f, i as u32).is_some() {
                dup.insert(f);
            }
        }
        let mut ambiguous = 0;
        for f in &dup {
            by_fingerprint.remove(f);
        }
        // Count every frame whose fingerprint was shared.
        if !dup.is_empty() {
            ambiguous = n - by_fingerprint.len();
        }
        Self {
            by_fingerprint,
            last_send_ns: (0..n).map(|_| AtomicU64::new(NEVER)).collect(),
            ambiguous,
        }
    }

    /// Frames indexed (matchable or not).
    pub fn len(&self) -> usize {
        self.last_send_ns.len()
    }

    /// True with no frames.
    pub fn is_empty(&self) -> bool {
        self.last_send_ns.is_empty()
    }

    /// Frames left out because their fingerprint is not unique.
    pub fn ambiguous(&self) -> usize {
        self.ambiguous
    }

    /// The frame a fingerprint belongs to.
    pub fn lookup(&self, fp: u64) -> Option<u32> {
        self.by_fingerprint.get(&fp).copied()
    }

    /// Records that frame `index` was sent at `now_ns` (ns since tool start).
    pub fn record_send(&self, index: u32, now_ns: u64) {
        if let Some(a) = self.last_send_ns.get(index as usize) {
            a.store(now_ns, Ordering::Relaxed);
        }
    }

    /// Latency in ns of a payload received at `now_ns`, if it matches a sent frame.
    pub fn latency_ns(&self, fp: u64, now_ns: u64) -> Option<u64> {
        let i = self.lookup(fp)?;
        let sent = self.last_send_ns.get(i as usize)?.load(Ordering::Relaxed);
        (sent != NEVER).then(|| now_ns.saturating_sub(sent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_value_and_prefix_only() {
        // FNV-1a of 8 zero bytes (length 0, empty prefix) computed by hand-rolled reference.
        let mut h = FNV_OFFSET;
        for _ in 0..8 {
            h = h.wrapping_mul(FNV_PRIME);
        }
        assert_eq!(fingerprint(0, &[]), h);
        let a = [7u8; 100];
        let mut b = [7u8; 100];
        b[80] = 8; // beyond the prefix: same fingerprint
        assert_eq!(fingerprint(100, &a), fingerprint(100, &b));
        b[10] = 8;
        assert_ne!(fingerprint(100, &a), fingerprint(100, &b));
        assert_ne!(fingerprint(100, &a), fingerprint(101, &a), "length counts");
    }

    #[test]
    fn index_records_and_matches() {
        let frames: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 20]).collect();
        let idx = FrameIndex::new(frames.iter().map(|f| f.as_slice()));
        assert_eq!((idx.len(), idx.ambiguous()), (10, 0));
        let fp = fingerprint(20, &frames[3]);
        assert_eq!(idx.lookup(fp), Some(3));
        assert_eq!(idx.latency_ns(fp, 100), None, "not sent yet");
        idx.record_send(3, 1_000);
        assert_eq!(idx.latency_ns(fp, 5_000), Some(4_000));
        assert_eq!(idx.latency_ns(fingerprint(1, &[1]), 5_000), None);
    }

    #[test]
    fn duplicates_are_left_out() {
        let frames = [vec![1u8; 5], vec![2u8; 5], vec![1u8; 5]];
        let idx = FrameIndex::new(frames.iter().map(|f| f.as_slice()));
        assert_eq!(idx.ambiguous(), 2);
        assert_eq!(idx.lookup(fingerprint(5, &frames[0])), None);
        assert_eq!(idx.lookup(fingerprint(5, &frames[1])), Some(1));
    }

    #[test]
    fn fixture_video_frames_are_unique() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/demo.flv"
        ))
        .unwrap();
        let plan = crate::publish::Plan::from_flv(&file, "demo.flv").unwrap();
        let idx = plan.frame_index();
        assert!(idx.len() > 50, "fixture has {} video frames", idx.len());
        assert_eq!(idx.ambiguous(), 0);
    }
}
