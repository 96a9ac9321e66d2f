//! Lifecycle events: each one, their order against frames and the registry, and the lag case.

use std::sync::Arc;
use std::time::Duration;

use media::{Codec, FrameRole, MediaKind};

use super::{Source, ash, drain, frame, ids, info, vsh};
use crate::*;

/// Every event received so far (the channel must stay open).
fn take(rx: &mut Events) -> Vec<HubEvent> {
    let mut v = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => v.push(e),
            Err(TryRecvError::Empty) => return v,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

fn published(key: &str, resumed: bool) -> HubEvent {
    HubEvent::Published {
        key: Arc::from(key),
        protocol: "rtmp",
        remote: "192.0.2.1:50000".into(),
        resumed,
    }
}

fn left(key: &str) -> HubEvent {
    HubEvent::PublisherLeft {
        key: Arc::from(key),
    }
}

fn gone(key: &str, reason: EndReason) -> HubEvent {
    HubEvent::Unpublished {
        key: Arc::from(key),
        reason,
    }
}

fn codec(key: &str, kind: MediaKind, codec: Codec, config: Option<&[u8]>) -> HubEvent {
    HubEvent::CodecChanged {
        key: Arc::from(key),
        kind,
        codec,
        config: config.map(bytes::Bytes::copy_from_slice),
    }
}

#[tokio::test]
async fn published_is_sent_before_any_frame_and_after_registration() {
    let hub = Hub::new(HubConfig::default());
    let mut rx = hub.events();
    let mut p = hub.publish("live/a", info()).unwrap();
    // Already sent when publish returns: no frame can precede it.
    assert_eq!(take(&mut rx), vec![published("live/a", false)]);
    let mut s = hub.subscribe("live/a").unwrap();
    let pushed = Source::new(0, 5).push_pairs(&mut p, 3);
    assert_eq!(ids(&drain(&mut s)), pushed);
    // Coded frames of a codec first seen with its header send nothing more.
    assert_eq!(
        take(&mut rx),
        vec![
            codec("live/a", MediaKind::Video, Codec::H264, None),
            codec("live/a", MediaKind::Audio, Codec::Aac, None)
        ],
        "header-less codecs are announced by their first coded frame"
    );
    assert_eq!(hub.streams().len(), 1);
}

#[tokio::test]
async fn codec_changed_once_per_change_before_the_frame_is_visible() {
    let hub = Hub::new(HubConfig::default());
    let mut p = hub.publish("k", info()).unwrap();
    let mut rx = hub.events();
    let mut s = hub.subscribe("k").unwrap();
    p.push(vsh(2));
    // The header is visible to the subscriber; its event was sent before.
    assert_eq!(
        take(&mut rx),
        vec![codec(
            "k",
            MediaKind::Video,
            Codec::H264,
            Some(&[0, 0, 0, 2])
        )]
    );
    assert_eq!(ids(&drain(&mut s)), vec![2]);
    p.push(vsh(2)); // the same configuration again: no event
    p.push(ash(3));
    Source::new(0, 2).push_pairs(&mut p, 4); // same codecs: no event
    p.push(vsh(4)); // new configuration
    let mut mp3 = frame(MediaKind::Audio, FrameRole::Coded, true, 400, 5);
    mp3.codec = Codec::Mp3; // a codec without header, announced by its first frame
    p.push(mp3.clone());
    p.push(mp3);
    assert_eq!(
        take(&mut rx),
        vec![
            codec("k", MediaKind::Audio, Codec::Aac, Some(&[0, 0, 0, 3])),
            codec("k", MediaKind::Video, Codec::H264, Some(&[0, 0, 0, 4])),
            codec("k", MediaKind::Audio, Codec::Mp3, None),
        ]
    );
    // A publisher coming back with the same configuration announces nothing new.
    drop(p);
    let mut p = hub.publish("k", info()).unwrap();
    p.push(vsh(4));
    assert_eq!(take(&mut rx), vec![left("k"), published("k", true)]);
}

#[tokio::test(start_paused = true)]
async fn grace_left_resumed_then_unpublished_after_the_frames() {
    let hub = Hub::new(HubConfig::default()); // 5 s grace
    let mut rx = hub.events();
    let p = hub.publish("live/a", info()).unwrap();
    let mut s = hub.subscribe("live/a").unwrap();
    drop(p);
    assert_eq!(
        take(&mut rx),
        vec![published("live/a", false), left("live/a")]
    );
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let mut p = hub.publish("live/a", info()).unwrap();
    assert_eq!(take(&mut rx), vec![published("live/a", true)]);
    let pushed = Source::new(0, 5).push_pairs(&mut p, 2);
    drop(p);
    assert_eq!(
        take(&mut rx)
            .into_iter()
            .filter(|e| !matches!(e, HubEvent::CodecChanged { .. }))
            .collect::<Vec<_>>(),
        vec![left("live/a")]
    );
    // The grace restarts with each departure: nothing at 4 s after the second one.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    assert!(take(&mut rx).is_empty());
    let ev = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("grace expiry")
        .unwrap();
    assert_eq!(ev, gone("live/a", EndReason::GraceExpired));
    // When Unpublished arrives, the stream left the registry and its ring is closed: the
    // subscriber gets what it held, then the end.
    assert!(hub.stream("live/a").is_none());
    assert_eq!(ids(&drain(&mut s)), pushed);
    assert!(matches!(s.try_recv(), TryRecv::Ended));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(take(&mut rx).is_empty(), "each event exactly once");
}

#[tokio::test]
async fn end_stream_and_shutdown_send_unpublished_once_then_close() {
    let hub = Hub::new(HubConfig::default());
    let mut rx = hub.events();
    let p = hub.publish("a", info()).unwrap();
    assert!(hub.end_stream("a"));
    assert!(!hub.end_stream("a"));
    // Ended with its publisher attached: no grace, so no PublisherLeft when it leaves.
    drop(p);
    let _p = hub.publish("a", info()).unwrap();
    let _q = hub.publish("b", info()).unwrap();
    assert_eq!(
        take(&mut rx),
        vec![
            published("a", false),
            gone("a", EndReason::Ended),
            published("a", false),
            published("b", false),
        ]
    );
    hub.shutdown();
    hub.shutdown();
    let mut rest = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
    rest.sort_by(|x, y| x.key().cmp(y.key()));
    assert_eq!(
        rest,
        vec![
            gone("a", EndReason::Shutdown),
            gone("b", EndReason::Shutdown)
        ]
    );
    assert_eq!(rx.recv().await, Err(RecvError::Closed));
    assert_eq!(hub.events().recv().await, Err(RecvError::Closed));
}

#[tokio::test]
async fn lagging_consumer_is_told_and_resyncs_from_streams() {
    let hub = Hub::new(HubConfig {
        publisher_grace_ms: 0,
        ..HubConfig::default()
    });
    let mut rx = hub.events();
    let _live = hub.publish("stays", info()).unwrap();
    // 1 + 3 * 400 events with nobody reading: the publishers never wait.
    for i in 0..400 {
        let mut p = hub.publish(&format!("churn/{i}"), info()).unwrap();
        p.push(vsh(1)); // a CodecChanged...
        drop(p); // ...PublisherLeft and (no grace) Unpublished
    }
    let total = 1 + 4 * 400;
    let missed = (total - EVENT_CAPACITY) as u64;
    assert_eq!(rx.recv().await, Err(RecvError::Lagged(missed)));
    // Resync: the registry says what is live now.
    let live: Vec<String> = hub.streams().into_iter().map(|s| s.key).collect();
    assert_eq!(live, vec!["stays".to_owned()]);
    // Then the newest events follow in order, ending with the last churn's Unpublished.
    let rest = take(&mut rx);
    assert_eq!(rest.len(), EVENT_CAPACITY);
    assert_eq!(
        rest.last(),
        Some(&gone("churn/399", EndReason::GraceExpired))
    );
}
