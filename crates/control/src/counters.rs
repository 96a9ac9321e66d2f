//! Counters for metrics and the API that the hub does not keep: viewers and egress bytes by
//! protocol, and what the publisher's sequence headers say (resolution, sample rate).
//!
//! Sessions look their stream's [`StreamCounters`] up once (one short lock on the registry)
//! and from then on touch only relaxed atomics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use media::{Codec, Frame, FrameRole, MediaKind};

/// How a viewer receives a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewerProtocol {
    /// RTMP `play`.
    Rtmp,
    /// HTTP-FLV (chunked or HTTP/1.0 body).
    HttpFlv,
    /// WebSocket-FLV.
    WsFlv,
    /// HLS and LL-HLS (a viewer is a client address that fetched a playlist lately).
    Hls,
    /// WebRTC (WHEP).
    WebRtc,
    /// MPEG-TS over SRT (`m=request`).
    Srt,
}

impl ViewerProtocol {
    /// Every protocol, in label order.
    pub const ALL: [ViewerProtocol; 6] = [
        Self::Rtmp,
        Self::HttpFlv,
        Self::WsFlv,
        Self::Hls,
        Self::WebRtc,
        Self::Srt,
    ];

    /// The label value used by metrics and the API (`rtmp`, `http-flv`, `ws-flv`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rtmp => "rtmp",
            Self::HttpFlv => "http-flv",
            Self::WsFlv => "ws-flv",
            Self::Hls => "hls",
            Self::WebRtc => "webrtc",
            Self::Srt => "srt",
        }
    }

    /// Index into the per-protocol counter arrays.
    pub fn index(self) -> usize {
        match self {
            Self::Rtmp => 0,
            Self::HttpFlv => 1,
            Self::WsFlv => 2,
            Self::Hls => 3,
            Self::WebRtc => 4,
            Self::Srt => 5,
        }
    }
}

/// One relaxed atomic per viewer protocol.
#[derive(Debug, Default)]
pub struct PerProtocol([AtomicU64; ViewerProtocol::ALL.len()]);

impl PerProtocol {
    /// The current value for `p`.
    pub fn get(&self, p: ViewerProtocol) -> u64 {
        self.0[p.index()].load(Ordering::Relaxed)
    }

    /// Adds `n` for `p`.
    pub fn add(&self, p: ViewerProtocol, n: u64) {
        self.0[p.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Replaces the value for `p` (gauges computed elsewhere, such as HLS viewers), returning
    /// the previous one.
    pub fn set(&self, p: ViewerProtocol, v: u64) -> u64 {
        self.0[p.index()].swap(v, Ordering::Relaxed)
    }

    /// Subtracts `n` for `p` (never below zero).
    pub fn sub(&self, p: ViewerProtocol, n: u64) {
        let _ = self.0[p.index()].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
    }

    /// Subtracts one for `p` (never below zero).
    pub fn dec(&self, p: ViewerProtocol) {
        let _ = self.0[p.index()].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(1))
        });
    }
}

/// Per-stream counters kept by the server (the hub keeps ingest, GOP and drop counters).
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Viewers attached now, by protocol.
    pub viewers: PerProtocol,
    /// Bytes sent to this stream's viewers, by protocol.
    pub egress_bytes: PerProtocol,
    /// Coded width from the last AVC sequence header (0 = unknown).
    pub width: AtomicU32,
    /// Coded height from the last AVC sequence header (0 = unknown).
    pub height: AtomicU32,
    /// Sample rate from the last AAC AudioSpecificConfig (0 = unknown).
    pub sample_rate: AtomicU32,
    /// Channels from the last AAC AudioSpecificConfig (0 = unknown).
    pub channels: AtomicU32,
    /// The latest sampled delivery latency per viewer protocol, in microseconds (0 = none:
    /// no viewer of that protocol, or no sample yet).
    pub latency_us: PerProtocol,
}

impl StreamCounters {
    /// Records what a sequence header says (AVC resolution, AAC sample rate and channels).
    /// Other frames, other codecs and malformed headers are ignored.
    pub fn observe(&self, frame: &Frame) {
        if frame.role != FrameRole::SequenceHeader {
            return;
        }
        match (frame.kind, frame.codec) {
            (MediaKind::Video, Codec::H264) => {
                let Ok(rec) = media::avc::parse_avc_decoder_config(&frame.payload()) else {
                    return;
                };
                if let Ok(sps) = rec.parse_sps() {
                    self.width.store(sps.width, Ordering::Relaxed);
                    self.height.store(sps.height, Ordering::Relaxed);
                }
            }
            (MediaKind::Audio, Codec::Aac) => {
                if let Ok(asc) = media::aac::parse_audio_specific_config(&frame.payload()) {
                    self.sample_rate.store(asc.sample_rate, Ordering::Relaxed);
                    let ch = asc.channels().map_or(0, u32::from);
                    self.channels.store(ch, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    /// The latest sampled delivery latency of the slowest viewer protocol, in ms.
    pub fn latency_ms(&self) -> Option<f64> {
        let us = ViewerProtocol::ALL
            .iter()
            .map(|p| self.latency_us.get(*p))
            .max()
            .unwrap_or(0);
        (us > 0).then(|| us as f64 / 1000.0)
    }

    /// Records a latency sample of `protocol`: for the stream (API, console) and in the
    /// server's histogram.
    pub fn observe_latency(
        &self,
        ctl: &crate::Control,
        protocol: ViewerProtocol,
        d: std::time::Duration,
    ) {
        self.latency_us.set(protocol, (d.as_micros() as u64).max(1));
        ctl.latency.observe(protocol, d);
    }

    /// `Some(value)` unless the atomic holds 0 (unknown).
    pub fn known(a: &AtomicU32) -> Option<u32> {
        Some(a.load(Ordering::Relaxed)).filter(|v| *v != 0)
    }
}

/// The server's per-stream counters, keyed by stream key.
#[derive(Debug, Default)]
pub struct StreamRegistry {
    map: Mutex<HashMap<String, Arc<StreamCounters>>>,
}

impl StreamRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<StreamCounters>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters of `key`, created on first use. Called once per session.
    pub fn get_or_create(&self, key: &str) -> Arc<StreamCounters> {
        let mut map = self.lock();
        if let Some(c) = map.get(key) {
            return Arc::clone(c);
        }
        let c = Arc::new(StreamCounters::default());
        map.insert(key.to_owned(), Arc::clone(&c));
        c
    }

    /// The counters of `key`, if any session created them.
    pub fn get(&self, key: &str) -> Option<Arc<StreamCounters>> {
        self.lock().get(key).cloned()
    }

    /// Drops the entries of streams the hub no longer has, unless a session still holds them
    /// (a session that started between the hub snapshot and this call).
    pub fn retain_streams<'a>(&self, live: impl IntoIterator<Item = &'a str>) {
        let live: std::collections::HashSet<&str> = live.into_iter().collect();
        self.lock()
            .retain(|k, c| live.contains(k.as_str()) || Arc::strong_count(c) > 1);
    }

    /// Number of entries (for tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn per_protocol_counts_and_never_goes_negative() {
        let p = PerProtocol::default();
        p.add(ViewerProtocol::HttpFlv, 3);
        p.dec(ViewerProtocol::HttpFlv);
        p.dec(ViewerProtocol::Rtmp);
        assert_eq!(p.get(ViewerProtocol::HttpFlv), 2);
        assert_eq!(p.get(ViewerProtocol::Rtmp), 0);
        assert_eq!(p.get(ViewerProtocol::WsFlv), 0);
    }

    #[test]
    fn labels_are_stable() {
        let labels: Vec<_> = ViewerProtocol::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            labels,
            ["rtmp", "http-flv", "ws-flv", "hls", "webrtc", "srt"]
        );
    }

    #[test]
    fn registry_drops_ended_streams_unless_held() {
        let r = StreamRegistry::default();
        let held = r.get_or_create("live/a");
        drop(r.get_or_create("live/b"));
        drop(r.get_or_create("live/c"));
        assert!(Arc::ptr_eq(&held, &r.get_or_create("live/a")));
        r.retain_streams(["live/c"]);
        assert_eq!(r.len(), 2);
        assert!(r.get("live/b").is_none());
        drop(held);
        r.retain_streams(["live/c"]);
        assert_eq!(r.len(), 1);
        assert!(r.get("live/c").is_some());
    }

    #[test]
    fn observes_aac_sequence_header() {
        // FLV audio tag: AAC, 44.1 kHz flag, 16-bit, stereo; packet type 0 (sequence header);
        // AudioSpecificConfig 0x11 0x90 = AAC LC, 48000 Hz (index 3), 2 channels.
        let body = Bytes::from_static(&[0xAF, 0x00, 0x11, 0x90]);
        let f = flv::frame_from_tag(8, 0, body).unwrap();
        let c = StreamCounters::default();
        c.observe(&f);
        assert_eq!(StreamCounters::known(&c.sample_rate), Some(48_000));
        assert_eq!(StreamCounters::known(&c.channels), Some(2));
        assert_eq!(StreamCounters::known(&c.width), None);
    }

    #[test]
    fn observes_avc_resolution_of_the_demo_clip() {
        let c = StreamCounters::default();
        for tag in flv::read_all_tags(include_bytes!("../../../fixtures/demo.flv")).unwrap() {
            c.observe(&flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body).unwrap());
        }
        assert_eq!(StreamCounters::known(&c.width), Some(640));
        assert_eq!(StreamCounters::known(&c.height), Some(360));
        assert_eq!(StreamCounters::known(&c.sample_rate), Some(48_000));
    }

    #[test]
    fn ignores_coded_frames_and_garbage_headers() {
        let c = StreamCounters::default();
        // AAC raw frame.
        c.observe(&flv::frame_from_tag(8, 0, Bytes::from_static(&[0xAF, 0x01, 0x21])).unwrap());
        // AVC sequence header with a truncated record.
        c.observe(&flv::frame_from_tag(9, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1])).unwrap());
        assert_eq!(StreamCounters::known(&c.sample_rate), None);
        assert_eq!(StreamCounters::known(&c.width), None);
    }
}
