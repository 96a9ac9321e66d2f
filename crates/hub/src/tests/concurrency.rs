//! Fan-out under a multi-thread runtime: one publisher, many subscriber tasks.

use std::time::Duration;

use media::{FrameRole, MediaKind};

use super::{frame, id, info};
use crate::{Hub, HubConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fan_out_delivers_every_frame_in_order() {
    const FRAMES: u32 = 10_000;
    const SUBS: usize = 200;
    let hub = Hub::new(HubConfig {
        ring_capacity: 16_384,
        ..HubConfig::default()
    });
    let mut p = hub.publish("hot", info()).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..SUBS {
        let mut s = hub.subscribe("hot").unwrap();
        tasks.push(tokio::spawn(async move {
            let mut next = 0u32;
            let mut last_dts = 0;
            while let Some(f) = s.recv().await {
                assert_eq!(id(&f), next, "out of order or gap");
                assert!(f.dts >= last_dts);
                last_dts = f.dts;
                next += 1;
            }
            (next, s.dropped())
        }));
    }
    let publisher = tokio::spawn(async move {
        for i in 0..FRAMES {
            let key = i % 50 == 0;
            p.push(frame(
                MediaKind::Video,
                FrameRole::Coded,
                key,
                u64::from(i) * 33,
                i,
            ));
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    publisher.await.unwrap();
    hub.shutdown();
    for t in tasks {
        assert_eq!(t.await.unwrap(), (FRAMES, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fan_out_with_small_ring_accounts_for_every_frame() {
    const FRAMES: u32 = 10_000;
    const SUBS: usize = 200;
    let hub = Hub::new(HubConfig {
        ring_capacity: 64,
        ..HubConfig::default()
    });
    let mut p = hub.publish("hot", info()).unwrap();
    let mut tasks = Vec::new();
    for n in 0..SUBS {
        let mut s = hub.subscribe("hot").unwrap();
        tasks.push(tokio::spawn(async move {
            let mut received = 0u64;
            let mut last: Option<u32> = None;
            while let Some(f) = s.recv().await {
                let i = id(&f);
                assert!(last.is_none_or(|l| i > l), "duplicate or reordered frame");
                if last.is_none_or(|l| i != l + 1) {
                    assert!(f.is_video_keyframe(), "resumed on a non-keyframe");
                }
                last = Some(i);
                received += 1;
                if n % 10 == 0 {
                    // A few slow viewers.
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            (received, s.dropped())
        }));
    }
    let publisher = tokio::spawn(async move {
        for i in 0..FRAMES {
            p.push(frame(
                MediaKind::Video,
                FrameRole::Coded,
                i % 50 == 0,
                u64::from(i) * 33,
                i,
            ));
            if i % 16 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    publisher.await.unwrap();
    hub.shutdown();
    let mut dropped_total = 0;
    for t in tasks {
        let (received, dropped) = t.await.unwrap();
        assert_eq!(received + dropped, u64::from(FRAMES));
        dropped_total += dropped;
    }
    assert!(dropped_total > 0, "the slow viewers must have lagged");
}
