//! Hub-level tests: joins, fan-out, lag, grace, shutdown, concurrency.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use media::{Codec, Frame, FrameRole, MediaKind};

use crate::*;

mod concurrency;
mod derived;
mod events;

/// Builds a frame whose FLV body carries a marker (the id) so tests can follow it.
/// Video bodies start like an AVC tag (0x17 key / 0x27 inter), audio like AAC (0xAF).
fn frame(kind: MediaKind, role: FrameRole, key: bool, dts: u64, id: u32) -> Frame {
    let tag = match (kind, key) {
        (MediaKind::Video, true) => 0x17,
        (MediaKind::Video, false) => 0x27,
        (MediaKind::Audio, _) => 0xAF,
        (MediaKind::Data, _) => 0x02,
    };
    let mut body = vec![tag, u8::from(role == FrameRole::Coded)];
    body.extend_from_slice(&id.to_be_bytes());
    Frame {
        kind,
        codec: match kind {
            MediaKind::Video => Codec::H264,
            MediaKind::Audio => Codec::Aac,
            MediaKind::Data => Codec::Script,
        },
        role,
        dts,
        cts: 0,
        keyframe: key || kind != MediaKind::Video,
        body: Bytes::from(body),
        payload_offset: 2,
        wire: Default::default(),
        arrival: None,
    }
}

fn id(f: &Frame) -> u32 {
    let b = &f.body;
    u32::from_be_bytes([b[2], b[3], b[4], b[5]])
}

fn info() -> PublisherInfo {
    PublisherInfo {
        protocol: "rtmp",
        remote: "192.0.2.1:50000".into(),
    }
}

fn meta(id: u32) -> Frame {
    frame(MediaKind::Data, FrameRole::Metadata, true, 0, id)
}
fn vsh(id: u32) -> Frame {
    frame(MediaKind::Video, FrameRole::SequenceHeader, true, 0, id)
}
fn ash(id: u32) -> Frame {
    frame(MediaKind::Audio, FrameRole::SequenceHeader, true, 0, id)
}

/// A synthetic publisher: video every 40 ms (keyframe every `gop` video frames), one audio
/// frame after each video frame; ids count up from 1000.
struct Source {
    next_id: u32,
    n: u64,
    start: u64,
    gop: u64,
}

impl Source {
    fn new(start: u64, gop: u64) -> Self {
        Self {
            next_id: 1000,
            n: 0,
            start,
            gop,
        }
    }
    /// Next video frame then audio frame.
    fn pair(&mut self) -> [Frame; 2] {
        let t = self.start + self.n * 40;
        let key = self.n.is_multiple_of(self.gop);
        self.n += 1;
        self.next_id += 2;
        [
            frame(MediaKind::Video, FrameRole::Coded, key, t, self.next_id - 2),
            frame(
                MediaKind::Audio,
                FrameRole::Coded,
                false,
                t + 5,
                self.next_id - 1,
            ),
        ]
    }
    fn push_pairs(&mut self, p: &mut Publisher, n: usize) -> Vec<u32> {
        let mut ids = Vec::new();
        for _ in 0..n {
            for f in self.pair() {
                ids.push(id(&f));
                p.push(f);
            }
        }
        ids
    }
}

fn drain(s: &mut Subscriber) -> Vec<Arc<Frame>> {
    let mut v = Vec::new();
    while let TryRecv::Frame(f) = s.try_recv() {
        v.push(f);
    }
    v
}

fn ids(v: &[Arc<Frame>]) -> Vec<u32> {
    v.iter().map(|f| id(f)).collect()
}

fn assert_monotonic(frames: &[Arc<Frame>]) {
    for kind in [MediaKind::Audio, MediaKind::Video, MediaKind::Data] {
        let d: Vec<u64> = frames
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.dts)
            .collect();
        assert!(
            d.windows(2).all(|w| w[0] <= w[1]),
            "{kind:?} dts not monotonic: {d:?}"
        );
    }
}

#[tokio::test]
async fn late_joiner_gets_headers_gop_then_live() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("live/a", info()).unwrap();
    p.push(meta(1));
    p.push(vsh(2));
    p.push(ash(3));
    let mut src = Source::new(1_000_000, 10);
    src.push_pairs(&mut p, 25); // keyframes at pairs 0, 10, 20
    let mut s = hub.subscribe("live/a").unwrap();
    let live = src.push_pairs(&mut p, 7);
    let got = drain(&mut s);
    let got_ids = ids(&got);
    assert_eq!(&got_ids[..3], &[1, 2, 3]);
    // The GOP starts on the keyframe of pair 20 (id 1000 + 40) and runs contiguously.
    assert!(got[3].is_video_keyframe());
    let expected: Vec<u32> = (1040..1050).chain(live).collect();
    assert_eq!(&got_ids[3..], &expected[..]);
    assert_eq!(got[3].dts, 20 * 40);
    assert_monotonic(&got);
    assert!(matches!(s.try_recv(), TryRecv::Empty));
    let snap = hub.stream("live/a").unwrap();
    assert_eq!(snap.subscribers, 1);
    assert_eq!(snap.gop_frames, 4, "a new GOP started at pair 30");
    assert_eq!(snap.keyframe_interval_ms, Some(400));
    assert_eq!(snap.video_codec, Some(Codec::H264));
    assert_eq!(snap.audio_codec, Some(Codec::Aac));
    assert_eq!(snap.frames_in, 3 + 64);
    drop(s);
    assert_eq!(hub.stream("live/a").unwrap().subscribers, 0);
}

#[tokio::test]
async fn recv_is_async_and_sees_live_frames() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("live/a", info()).unwrap();
    let mut s = hub.subscribe("live/a").unwrap();
    let h = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(f) = s.recv().await {
            v.push(id(&f));
        }
        v
    });
    let mut src = Source::new(0, 5);
    let pushed = src.push_pairs(&mut p, 20);
    tokio::task::yield_now().await;
    hub.shutdown();
    assert_eq!(h.await.unwrap(), pushed);
}

#[tokio::test]
async fn slow_subscriber_skips_to_keyframe_with_headers() {
    let cfg = HubConfig {
        ring_capacity: 16,
        ..HubConfig::default()
    };
    let hub = Hub::new(cfg);
    let mut p = hub.publish("live/a", info()).unwrap();
    let mut fast = hub.subscribe("live/a").unwrap();
    let mut slow = hub.subscribe("live/a").unwrap();
    p.push(meta(1));
    p.push(vsh(2));
    p.push(ash(3));
    let mut fast_got = drain(&mut fast);
    let mut pushed = vec![1, 2, 3];
    let mut src = Source::new(0, 25); // a keyframe every 50 frames
    for i in 0..2500 {
        if i == 1200 {
            p.push(vsh(4)); // new video sequence header while the slow one is behind
            pushed.push(4);
        }
        pushed.extend(src.push_pairs(&mut p, 1));
        fast_got.extend(drain(&mut fast));
        assert!(
            slow.backlog() <= 16,
            "slow subscriber holds more than the ring"
        );
    }
    assert_eq!(ids(&fast_got), pushed, "fast subscriber got every frame");
    assert_eq!(fast.dropped(), 0);
    // The last 16 ring entries hold no keyframe: everything is skipped and counted.
    assert!(drain(&mut slow).is_empty());
    assert_eq!(slow.dropped(), pushed.len() as u64);
    // Next keyframe: current headers first, then the keyframe, then live.
    let next = src.push_pairs(&mut p, 3);
    let got = drain(&mut slow);
    assert_eq!(ids(&got), [vec![1, 4, 3], next].concat());
    assert!(got[3].is_video_keyframe());
    assert_eq!(slow.dropped(), pushed.len() as u64);
    let snap = hub.stream("live/a").unwrap();
    assert_eq!(snap.dropped_frames, slow.dropped());
}

#[tokio::test]
async fn lagged_audio_only_resumes_on_audio() {
    let cfg = HubConfig {
        ring_capacity: 4,
        ..HubConfig::default()
    };
    let hub = Hub::new(cfg);
    let mut p = hub.publish("radio", info()).unwrap();
    p.push(ash(1));
    let mut s = hub.subscribe("radio").unwrap();
    for i in 0..20u32 {
        p.push(frame(
            MediaKind::Audio,
            FrameRole::Coded,
            true,
            u64::from(i) * 23,
            100 + i,
        ));
    }
    let got = ids(&drain(&mut s));
    // Joined with the header, lagged, resumed on the oldest remaining audio with the header.
    assert_eq!(got[0], 1);
    assert_eq!(got[1], 1);
    assert_eq!(&got[2..], &[116, 117, 118, 119]);
    assert_eq!(s.dropped(), 16);
}

#[tokio::test]
async fn second_publish_is_refused() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("live/a", info()).unwrap();
    let err = hub.publish("live/a", info()).unwrap_err();
    assert_eq!(
        err,
        HubError::AlreadyPublishing {
            key: "live/a".into()
        }
    );
    let mut s = hub.subscribe("live/a").unwrap();
    let pushed = Source::new(0, 10).push_pairs(&mut p, 3);
    assert_eq!(ids(&drain(&mut s)), pushed);
    let snap = hub.stream("live/a").unwrap();
    assert!(snap.is_live);
    assert_eq!(snap.publisher, Some(info()));
    assert_eq!(snap.publisher_connects, 1);
    assert!(matches!(
        hub.subscribe("nope"),
        Err(HubError::NotFound { .. })
    ));
    assert!(matches!(
        hub.publish("", info()),
        Err(HubError::InvalidKey { len: 0, .. })
    ));
}

#[tokio::test]
async fn too_many_streams() {
    let hub = Hub::new(HubConfig {
        max_streams: 2,
        ..HubConfig::default()
    });
    let _a = hub.publish("a", info()).unwrap();
    let _b = hub.publish("b", info()).unwrap();
    assert_eq!(
        hub.publish("c", info()).unwrap_err(),
        HubError::TooManyStreams { limit: 2 }
    );
    assert_eq!(hub.streams().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn grace_takeover_keeps_subscribers_and_timestamps() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("live/a", info()).unwrap();
    p.push(vsh(2));
    let mut s = hub.subscribe("live/a").unwrap();
    Source::new(50_000, 10).push_pairs(&mut p, 10);
    drop(p);
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let snap = hub.stream("live/a").unwrap();
    assert!(!snap.is_live);
    assert!(snap.publisher.is_none());
    // Still joinable during the grace.
    let late = hub.subscribe("live/a");
    assert!(late.is_ok());
    let mut p2 = hub.publish("live/a", info()).unwrap();
    p2.push(vsh(3));
    let mut src = Source::new(0, 10);
    src.next_id = 5000;
    src.push_pairs(&mut p2, 10);
    // The old grace timer must not end the taken-over stream.
    tokio::time::sleep(Duration::from_millis(10_000)).await;
    assert!(hub.stream("live/a").unwrap().is_live);
    let got = drain(&mut s);
    assert_eq!(got.len(), 1 + 20 + 1 + 20);
    assert_monotonic(&got);
    assert_eq!(got[1].dts, 0);
    let last_first = got[19].dts; // last video frame of the first publisher: 9 * 40
    assert_eq!(last_first, 360);
    let first_second = got.iter().find(|f| id(f) == 5000).unwrap().dts;
    assert!(
        first_second > last_first && first_second <= last_first + 50,
        "{first_second}"
    );
    assert_eq!(hub.stream("live/a").unwrap().publisher_connects, 2);
}

#[tokio::test(start_paused = true)]
async fn grace_expiry_ends_stream() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("live/a", info()).unwrap();
    let mut s = hub.subscribe("live/a").unwrap();
    let pushed = Source::new(0, 10).push_pairs(&mut p, 2);
    drop(p);
    let mut got = Vec::new();
    while let Some(f) = s.recv().await {
        got.push(id(&f));
    }
    assert_eq!(got, pushed);
    assert!(matches!(s.try_recv(), TryRecv::Ended));
    assert!(hub.stream("live/a").is_none());
    assert!(matches!(
        hub.subscribe("live/a"),
        Err(HubError::NotFound { .. })
    ));
    // The key is free again.
    assert!(hub.publish("live/a", info()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn grace_timer_fires_after_configured_delay() {
    let hub = Hub::new(HubConfig {
        publisher_grace_ms: 1_000,
        ..HubConfig::default()
    });
    let p = hub.publish("k", info()).unwrap();
    drop(p);
    tokio::time::sleep(Duration::from_millis(999)).await;
    assert!(hub.stream("k").is_some());
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(hub.stream("k").is_none());
}

#[test]
fn publisher_drop_without_runtime_ends_at_once() {
    let hub = Hub::new(HubConfig::default());
    let p = hub.publish("k", info()).unwrap();
    let mut s = hub.subscribe("k").unwrap();
    drop(p);
    assert!(hub.stream("k").is_none());
    assert!(matches!(s.try_recv(), TryRecv::Ended));
}

#[tokio::test]
async fn gop_limit_makes_joiners_wait_for_keyframe() {
    let cfg = HubConfig {
        gop_max_frames: 5,
        ..HubConfig::default()
    };
    let hub = Hub::new(cfg);
    let mut p = hub.publish("k", info()).unwrap();
    p.push(vsh(2));
    p.push(ash(3));
    let mut src = Source::new(0, 10);
    src.push_pairs(&mut p, 4); // 8 frames from the keyframe: over the limit
    let snap = hub.stream("k").unwrap();
    assert_eq!(snap.gop_frames, 0);
    assert_eq!(snap.gop_overflows, 1);
    let mut s = hub.subscribe("k").unwrap();
    let live = src.push_pairs(&mut p, 8); // pairs 4..12, keyframe at pair 10
    let got = ids(&drain(&mut s));
    // Headers, then audio only until the keyframe, then everything.
    let mut expected = vec![2, 3];
    for (i, pair) in live.chunks(2).enumerate() {
        if i >= 6 {
            expected.push(pair[0]);
        }
        expected.push(pair[1]);
    }
    assert_eq!(got, expected);
    assert_eq!(
        s.dropped(),
        0,
        "waiting for the first keyframe is not a drop"
    );
}

#[tokio::test]
async fn audio_only_stream_caches_a_window() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("radio", info()).unwrap();
    p.push(meta(1));
    p.push(ash(3));
    for i in 0..200u32 {
        p.push(frame(
            MediaKind::Audio,
            FrameRole::Coded,
            true,
            10_000 + u64::from(i) * 23,
            100 + i,
        ));
    }
    let mut s = hub.subscribe("radio").unwrap();
    p.push(frame(
        MediaKind::Audio,
        FrameRole::Coded,
        true,
        10_000 + 200 * 23,
        300,
    ));
    let got = drain(&mut s);
    assert_eq!(id(&got[0]), 1);
    assert_eq!(id(&got[1]), 3);
    let audio = &got[2..];
    let window = audio[audio.len() - 2].dts - audio[0].dts;
    assert!(
        window <= AUDIO_ONLY_WINDOW_MS && window > AUDIO_ONLY_WINDOW_MS - 50,
        "{window}"
    );
    let got_ids = ids(audio);
    let first = got_ids[0];
    assert_eq!(got_ids, (first..=300).collect::<Vec<_>>());
    assert_monotonic(&got);
}

#[tokio::test]
async fn header_change_goes_through_ring_in_order() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("k", info()).unwrap();
    p.push(vsh(2));
    let mut s = hub.subscribe("k").unwrap();
    let mut src = Source::new(0, 2);
    let a = src.push_pairs(&mut p, 2);
    p.push(vsh(9));
    let b = src.push_pairs(&mut p, 2);
    assert_eq!(ids(&drain(&mut s)), [vec![2], a, vec![9], b].concat());
    // A new joiner gets only the latest header.
    let mut late = hub.subscribe("k").unwrap();
    assert_eq!(ids(&drain(&mut late))[0], 9);
}

#[tokio::test]
async fn shutdown_ends_everything() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("a", info()).unwrap();
    let _q = hub.publish("b", info()).unwrap();
    let mut sa = hub.subscribe("a").unwrap();
    let mut sb = hub.subscribe("b").unwrap();
    hub.shutdown();
    assert!(sa.recv().await.is_none());
    assert!(sb.recv().await.is_none());
    p.push(frame(MediaKind::Video, FrameRole::Coded, true, 0, 1)); // ignored, no panic
    assert!(sa.recv().await.is_none());
    assert_eq!(
        hub.publish("c", info()).unwrap_err(),
        HubError::ShuttingDown
    );
    assert!(hub.streams().is_empty());
    drop(p);
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("k", info()).unwrap();
    let mut s = hub.subscribe("k").unwrap();
    // A recv cancelled while waiting loses nothing.
    tokio::select! {
        _ = s.recv() => panic!("nothing was pushed"),
        _ = tokio::task::yield_now() => {}
    }
    let pushed = Source::new(0, 3).push_pairs(&mut p, 3);
    let mut got = Vec::new();
    for _ in 0..pushed.len() {
        got.push(id(&s.recv().await.unwrap()));
    }
    assert_eq!(got, pushed);
}

#[tokio::test]
async fn end_stream_ends_now_and_removes() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("a", info()).unwrap();
    let _q = hub.publish("b", info()).unwrap();
    let mut s = hub.subscribe("a").unwrap();
    assert!(hub.end_stream("a"));
    assert!(!hub.end_stream("a"), "already gone");
    assert!(!hub.end_stream("nope"));
    assert!(s.recv().await.is_none());
    p.push(frame(MediaKind::Video, FrameRole::Coded, true, 0, 1)); // ignored, no panic
    assert!(hub.stream("a").is_none());
    assert!(hub.subscribe("a").is_err());
    assert!(hub.stream("b").is_some(), "other streams untouched");
    // The ended stream's publisher leaving starts no grace; the key is free again.
    drop(p);
    let _again = hub.publish("a", info()).unwrap();
    assert!(hub.stream("a").is_some_and(|s| s.is_live));
}
