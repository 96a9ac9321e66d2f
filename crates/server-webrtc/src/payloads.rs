//! RTP payloads built once per stream and shared by every WHEP viewer of it.
//!
//! A viewer of an H.264 stream runs its `Rtc` in str0m's RTP mode: instead of handing
//! str0m a frame to packetize (once per viewer), it takes the frame's payloads from its
//! stream's [`StreamPayloads`] (packetized by the first viewer that reaches the frame) and
//! writes each with its own sequence number and timestamp (`StreamTx::write_rtp`). What is
//! left per viewer is the RTP header, SRTP and the send. The payloads are `Arc<[u8]>`: the
//! viewers' RTX caches hold the same bytes, not copies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use str0m::unversioned::{H264Packetizer, Packetizer};

/// Access units whose payloads a stream keeps: a joining viewer replays the stream's GOP
/// (up to about two seconds at 30 fps) and finds those frames built too, as do viewers a
/// few frames behind the others. Bounded per stream, not per viewer.
pub const RECENT_FRAMES: usize = 64;

/// The payload budget str0m's own packetizer gets for an RTP packet (its datagram target
/// less the SRTP tag, aligned down to the SRTP block size): the same packet sizes as in
/// str0m's frame mode.
pub const PAYLOAD_MTU: usize = {
    let rtp = str0m::DATAGRAM_MTU_TARGET - SRTP_TAG;
    rtp - rtp % SRTP_BLOCK
};
/// SRTP's authentication tag, at most (str0m's `SRTP_OVERHEAD`).
const SRTP_TAG: usize = 16;
/// str0m's SRTP block size (`SRTP_BLOCK_SIZE`).
const SRTP_BLOCK: usize = 16;

/// One RTP payload of a frame.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The payload (no RTP header), shared by every viewer.
    pub data: Arc<[u8]>,
    /// The RTP marker bit (the last packet of the access unit).
    pub marker: bool,
}

/// An access unit (its Annex B bytes, kept alive so their address identifies them) and its
/// payloads.
type Built = (Arc<[u8]>, Arc<[Payload]>);

/// One stream's recently built payloads, and how many were built.
#[derive(Debug, Default)]
pub struct StreamPayloads {
    /// The ring of the last [`RECENT_FRAMES`] access units with their payloads, and its
    /// next slot.
    recent: Mutex<(usize, Vec<Built>)>,
    /// Payloads built for this stream (not per viewer).
    built: AtomicU64,
}

impl StreamPayloads {
    /// The payloads of the H.264 access unit `annexb` (Annex B, as the stream's shared
    /// conversion returns it): another viewer's when it built them from the same bytes,
    /// else built now (under the stream's lock, so each is built once). `None` when the access unit cannot be
    /// packetized. Also how many payloads this call built (0 when shared).
    pub fn h264(&self, annexb: &Arc<[u8]>) -> (Option<Arc<[Payload]>>, usize) {
        let mut g = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // The stream's conversion is shared (the same `Arc`) while it is recent; an older
        // frame (a joiner's GOP replay) was converted again: the same bytes.
        let hit =
            g.1.iter()
                .find(|(a, _)| Arc::ptr_eq(a, annexb))
                .or_else(|| {
                    g.1.iter()
                        .find(|(a, _)| a.len() == annexb.len() && a[..] == annexb[..])
                });
        if let Some((_, p)) = hit {
            return ((!p.is_empty()).then(|| Arc::clone(p)), 0);
        }
        let payloads = packetize_h264(annexb);
        let n = payloads.len();
        self.built.fetch_add(n as u64, Ordering::Relaxed);
        let (next, recent) = &mut *g;
        let entry = (Arc::clone(annexb), Arc::clone(&payloads));
        if recent.len() < RECENT_FRAMES {
            recent.push(entry);
        } else if let Some(slot) = recent.get_mut(*next) {
            *slot = entry;
        }
        *next = (*next + 1) % RECENT_FRAMES;
        ((!payloads.is_empty()).then_some(payloads), n)
    }

    /// Payloads built for this stream so far.
    pub fn built(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }
}

/// The payloads of one Annex B access unit, by a fresh packetizer (str0m's keeps the
/// parameter sets only to put them in a STAP-A with the slice that follows them, in the
/// same access unit here): the same bytes whichever viewer builds them. Empty when str0m
/// refuses the access unit.
fn packetize_h264(annexb: &[u8]) -> Arc<[Payload]> {
    let mut p = H264Packetizer::default();
    let Ok(chunks) = p.packetize(PAYLOAD_MTU, annexb) else {
        return Arc::from(Vec::new());
    };
    let n = chunks.len();
    let mut out = Vec::with_capacity(n);
    let mut previous: Option<Arc<[u8]>> = None;
    for (i, c) in chunks.into_iter().enumerate() {
        let marker = p.is_marker(&c, previous.as_deref(), i + 1 == n);
        let data: Arc<[u8]> = Arc::from(c);
        previous = Some(Arc::clone(&data));
        out.push(Payload { data, marker });
    }
    Arc::from(out)
}

/// Every watched stream's [`StreamPayloads`], held by its viewers (weakly here: a stream
/// nobody watches keeps nothing).
#[derive(Debug, Default)]
pub struct PayloadCaches {
    map: Mutex<HashMap<String, Weak<StreamPayloads>>>,
}

impl PayloadCaches {
    /// The payloads of `stream`, made if no viewer holds them.
    pub fn get(&self, stream: &str) -> Arc<StreamPayloads> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get(stream).and_then(Weak::upgrade) {
            return c;
        }
        m.retain(|_, w| w.strong_count() > 0);
        let c = Arc::new(StreamPayloads::default());
        m.insert(stream.to_owned(), Arc::downgrade(&c));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An access unit: SPS, PPS and an IDR slice of `slice` bytes.
    fn keyframe(slice: usize) -> Arc<[u8]> {
        let mut au = vec![
            0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1F, 0, 0, 0, 1, 0x68, 0xCE, 0x3C, 0x80,
        ];
        au.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        au.extend((0..slice).map(|i| (i % 251) as u8 | 1));
        Arc::from(au)
    }

    #[test]
    fn each_access_unit_is_built_once_and_shared() {
        let s = StreamPayloads::default();
        let au = keyframe(3000);
        let (a, n) = s.h264(&au);
        let a = a.expect("payloads");
        let built = s.built();
        assert_eq!(built, a.len() as u64);
        assert_eq!(n, a.len());
        assert!(a.len() >= 3, "STAP-A then FU-As: {}", a.len());
        let (b, n) = s.h264(&au);
        let b = b.expect("payloads");
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second viewer gets the same payloads"
        );
        assert_eq!(n, 0);
        assert_eq!(s.built(), built, "nothing built again");
        // Only the last payload is marked, and each fits the budget.
        let marks: Vec<bool> = a.iter().map(|p| p.marker).collect();
        assert_eq!(marks.iter().filter(|m| **m).count(), 1);
        assert!(a.last().expect("payloads").marker);
        assert!(a.iter().all(|p| p.data.len() <= PAYLOAD_MTU));
        // The same bytes as a fresh packetizer makes (what str0m's frame mode sends).
        let mut own = H264Packetizer::default();
        let chunks = own.packetize(PAYLOAD_MTU, &au).expect("packetized");
        assert_eq!(chunks.len(), a.len());
        for (c, p) in chunks.iter().zip(a.iter()) {
            assert_eq!(&c[..], &p.data[..]);
        }
    }

    #[test]
    fn the_ring_keeps_recent_frames_only() {
        let s = StreamPayloads::default();
        let frames: Vec<_> = (0..RECENT_FRAMES + 1).map(|i| keyframe(100 + i)).collect();
        for f in &frames {
            assert!(s.h264(f).0.is_some());
        }
        let built = s.built();
        // The newest are still there; the oldest was replaced and is built again, unless
        // its bytes are there under another conversion.
        let again: Arc<[u8]> = Arc::from(frames[RECENT_FRAMES].to_vec());
        assert!(s.h264(&again).0.is_some());
        assert_eq!(s.built(), built, "the same bytes converted again");
        assert!(s.h264(&frames[RECENT_FRAMES]).0.is_some());
        assert_eq!(s.built(), built);
        assert!(s.h264(&frames[0]).0.is_some());
        assert!(s.built() > built);
        assert_eq!(s.recent.lock().expect("lock").1.len(), RECENT_FRAMES);
    }

    #[test]
    fn nothing_to_packetize_is_none() {
        let s = StreamPayloads::default();
        assert!(s.h264(&Arc::from(Vec::new())).0.is_none());
    }

    #[test]
    fn streams_share_while_watched() {
        let c = PayloadCaches::default();
        let a = c.get("live/a");
        assert!(Arc::ptr_eq(&a, &c.get("live/a")));
        assert!(!Arc::ptr_eq(&a, &c.get("live/b")));
        drop(a);
        let fresh = c.get("live/a");
        assert_eq!(fresh.built(), 0);
    }
}
