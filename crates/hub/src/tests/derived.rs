//! Derived tracks: a fake Opus -> AAC transform stands in for the engines of crates/transcode.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use media::{Codec, Frame, FrameRole, MediaKind};

use super::{Source, drain, frame, id, ids, info, meta, vsh};
use crate::*;

/// Derived frames carry the id of the source frame plus this.
const DERIVED: u32 = 100_000;
/// The id of the fake engine's AAC sequence header.
const AAC_HEADER: u32 = 99_999;
/// The id of the publisher's Opus sequence header.
const OPUS_HEADER: u32 = 3;

/// What the fake transform does.
#[derive(Clone, Copy, PartialEq)]
enum Fake {
    /// Its header, then one AAC frame per Opus frame (same dts, id + DERIVED).
    Echo,
    /// Nothing, ever.
    Silent,
    /// Fails every frame.
    Fails,
    /// The factory fails.
    NoEngine,
    /// The engine panics.
    Panics,
}

/// How often the factory and the engines ran.
#[derive(Default)]
struct Calls {
    factory: AtomicUsize,
    frames: AtomicUsize,
}

impl Calls {
    fn factory(&self) -> usize {
        self.factory.load(Ordering::SeqCst)
    }
    fn frames(&self) -> usize {
        self.frames.load(Ordering::SeqCst)
    }
}

fn register(hub: &Hub, how: Fake) -> Arc<Calls> {
    let calls = Arc::new(Calls::default());
    let c = Arc::clone(&calls);
    hub.register_transform(Codec::Opus, Codec::Aac, move |header: Option<&Frame>| {
        c.factory.fetch_add(1, Ordering::SeqCst);
        assert!(header.is_none_or(|h| h.codec == Codec::Opus));
        if how == Fake::NoEngine {
            return Err("unsupported Opus configuration".into());
        }
        let c = Arc::clone(&c);
        let mut header_sent = false;
        let engine = move |input: &Frame, out: &mut Vec<Frame>| -> Result<(), TransformError> {
            c.frames.fetch_add(1, Ordering::SeqCst);
            match how {
                Fake::Silent => return Ok(()),
                Fake::Fails => return Err("corrupt packet".into()),
                Fake::Panics => panic!("engine bug"),
                Fake::Echo | Fake::NoEngine => {}
            }
            if !header_sent {
                header_sent = true;
                let h = frame(
                    MediaKind::Audio,
                    FrameRole::SequenceHeader,
                    true,
                    input.dts,
                    AAC_HEADER,
                );
                out.push(h);
            }
            let f = frame(
                MediaKind::Audio,
                FrameRole::Coded,
                true,
                input.dts,
                id(input) + DERIVED,
            );
            out.push(f);
            Ok(())
        };
        Ok(Box::new(engine) as Box<dyn Transform>)
    });
    calls
}

fn opus(mut f: Frame) -> Frame {
    if f.kind == MediaKind::Audio {
        f.codec = Codec::Opus;
    }
    f
}

fn opus_header() -> Frame {
    opus(frame(
        MediaKind::Audio,
        FrameRole::SequenceHeader,
        true,
        0,
        OPUS_HEADER,
    ))
}

/// Pushes `n` video + Opus pairs; returns (video ids, Opus ids).
fn push_opus(src: &mut Source, p: &mut Publisher, n: usize) -> (Vec<u32>, Vec<u32>) {
    let (mut v, mut a) = (Vec::new(), Vec::new());
    for _ in 0..n {
        for f in src.pair() {
            let f = opus(f);
            if f.kind == MediaKind::Video {
                v.push(id(&f));
            } else {
                a.push(id(&f));
            }
            p.push(f);
        }
    }
    (v, a)
}

/// Lets every spawned task run until nothing is ready (time is paused in these tests, and it
/// only advances when the runtime is idle).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn audio(v: &[Arc<Frame>]) -> Vec<(Codec, u32)> {
    v.iter()
        .filter(|f| f.kind == MediaKind::Audio)
        .map(|f| (f.codec, id(f)))
        .collect()
}

fn video(v: &[Arc<Frame>]) -> Vec<u32> {
    v.iter()
        .filter(|f| f.kind == MediaKind::Video)
        .map(|f| id(f))
        .collect()
}

fn aac(ids: &[u32]) -> Vec<(Codec, u32)> {
    ids.iter().map(|i| (Codec::Aac, i + DERIVED)).collect()
}

fn as_opus(ids: &[u32]) -> Vec<(Codec, u32)> {
    ids.iter().map(|i| (Codec::Opus, *i)).collect()
}

fn derived_tracks(hub: &Hub, key: &str) -> Vec<DerivedTrackSnapshot> {
    hub.stream(key)
        .map(|s| s.derived_tracks)
        .unwrap_or_default()
}

/// A stream with video and Opus audio, its metadata and headers pushed.
fn opus_stream(hub: &Arc<Hub>, key: &str) -> Publisher {
    let mut p = hub.publish(key, info()).unwrap();
    p.push(meta(1));
    p.push(vsh(2));
    p.push(opus_header());
    p
}

#[tokio::test(start_paused = true)]
async fn a_viewer_wanting_aac_gets_only_the_derived_audio() {
    let hub = Hub::new(HubConfig::default());
    let calls = register(&hub, Fake::Echo);
    let mut p = opus_stream(&hub, "whip/a");
    let mut plain = hub.subscribe("whip/a").unwrap();
    let mut flv = hub
        .subscribe_with("whip/a", Want::audio(Codec::Aac))
        .unwrap();
    let mut webrtc = hub
        .subscribe_with("whip/a", Want::audio(Codec::Opus))
        .unwrap();
    let mut src = Source::new(0, 5);
    let (v, a) = push_opus(&mut src, &mut p, 10);
    settle().await;

    let got = drain(&mut flv);
    assert_eq!(video(&got), [vec![2], v.clone()].concat());
    assert_eq!(
        audio(&got),
        [vec![(Codec::Aac, AAC_HEADER)], aac(&a)].concat(),
        "the derived header, then derived frames; never the published Opus"
    );
    assert!(got.iter().all(|f| f.kind != MediaKind::Audio || f.dts >= 5));
    for s in [&mut plain, &mut webrtc] {
        let got = drain(s);
        assert_eq!(video(&got), [vec![2], v.clone()].concat());
        assert_eq!(
            audio(&got),
            [vec![(Codec::Opus, OPUS_HEADER)], as_opus(&a)].concat()
        );
    }
    assert_eq!(calls.factory(), 1);
    assert_eq!(calls.frames(), a.len());
    let d = derived_tracks(&hub, "whip/a");
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].from, d[0].codec, d[0].usable),
        (Codec::Opus, Codec::Aac, true)
    );
    assert_eq!(d[0].frames_out, 1 + a.len() as u64);
    // Only the publisher's frames count as input.
    assert_eq!(hub.stream("whip/a").unwrap().frames_in, 3 + 20);
}

#[tokio::test(start_paused = true)]
async fn two_viewers_wanting_aac_share_one_transform() {
    let hub = Hub::new(HubConfig::default());
    let calls = register(&hub, Fake::Echo);
    let mut p = opus_stream(&hub, "k");
    let mut one = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    let mut two = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    let (_, a) = push_opus(&mut Source::new(0, 5), &mut p, 20);
    settle().await;
    let (x, y) = (drain(&mut one), drain(&mut two));
    assert_eq!(audio(&x)[1..], aac(&a)[..]);
    assert_eq!(x.len(), y.len());
    assert!(
        x.iter().zip(&y).all(|(a, b)| Arc::ptr_eq(a, b)),
        "the same frames, made once"
    );
    assert_eq!(calls.factory(), 1);
    assert_eq!(calls.frames(), a.len(), "one engine call per source frame");
    assert_eq!(derived_tracks(&hub, "k").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn late_joiner_of_a_derived_track_gets_its_header_and_gop() {
    let hub = Hub::new(HubConfig::default());
    register(&hub, Fake::Echo);
    let mut p = opus_stream(&hub, "k");
    let _first = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    let mut src = Source::new(0, 10);
    let (v, a) = push_opus(&mut src, &mut p, 25); // keyframes at pairs 0, 10, 20
    settle().await;

    let mut late = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    let mut plain = hub.subscribe("k").unwrap();
    let (v2, a2) = push_opus(&mut src, &mut p, 3);
    settle().await;
    let got = drain(&mut late);
    // Metadata, video header, the derived audio header, then the GOP from pair 20.
    assert_eq!(ids(&got[..3]), vec![1, 2, AAC_HEADER]);
    assert!(got[3].is_video_keyframe());
    assert_eq!(id(&got[3]), v[20]);
    assert_eq!(video(&got[3..]), [&v[20..], &v2[..]].concat());
    assert_eq!(audio(&got[3..]), aac(&[&a[20..], &a2[..]].concat()));
    let per_kind = |kind| {
        got.iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.dts)
            .collect::<Vec<_>>()
    };
    for kind in [MediaKind::Audio, MediaKind::Video] {
        assert!(per_kind(kind).windows(2).all(|w| w[0] <= w[1]));
    }
    // The as-published joiner got the same GOP with the Opus audio.
    let got = drain(&mut plain);
    assert_eq!(ids(&got[..3]), vec![1, 2, OPUS_HEADER]);
    assert_eq!(audio(&got[3..]), as_opus(&[&a[20..], &a2[..]].concat()));
}

#[tokio::test(start_paused = true)]
async fn audio_only_late_joiner_gets_the_derived_window() {
    let hub = Hub::new(HubConfig::default());
    register(&hub, Fake::Echo);
    let mut p = hub.publish("radio", info()).unwrap();
    p.push(opus_header());
    let _first = hub
        .subscribe_with("radio", Want::audio(Codec::Aac))
        .unwrap();
    for i in 0..200u32 {
        p.push(opus(frame(
            MediaKind::Audio,
            FrameRole::Coded,
            true,
            u64::from(i) * 20,
            1000 + i,
        )));
    }
    settle().await;
    let mut late = hub
        .subscribe_with("radio", Want::audio(Codec::Aac))
        .unwrap();
    let got = drain(&mut late);
    assert_eq!(id(&got[0]), AAC_HEADER);
    let window = audio(&got[1..]);
    assert!(window.iter().all(|(c, _)| *c == Codec::Aac));
    // The window ends at the newest derived frame, contiguous, about a second long.
    assert_eq!(window.last(), Some(&(Codec::Aac, 1199 + DERIVED)));
    let first = window[0].1;
    assert_eq!(
        window.iter().map(|w| w.1).collect::<Vec<_>>(),
        (first..=1199 + DERIVED).collect::<Vec<_>>()
    );
    let span = got.last().unwrap().dts - got[1].dts;
    assert!(
        (AUDIO_ONLY_WINDOW_MS - 50..=AUDIO_ONLY_WINDOW_MS).contains(&span),
        "{span}"
    );
}

#[tokio::test(start_paused = true)]
async fn derived_track_stops_after_the_linger() {
    let hub = Hub::new(HubConfig::default());
    let calls = register(&hub, Fake::Echo);
    let mut p = opus_stream(&hub, "k");
    let mut src = Source::new(0, 5);
    let s = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    push_opus(&mut src, &mut p, 2);
    settle().await;
    drop(s);
    // Someone comes back within the linger: the same track (no new engine).
    tokio::time::sleep(DERIVED_LINGER - Duration::from_secs(2)).await;
    assert_eq!(derived_tracks(&hub, "k").len(), 1);
    let s = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(s);
    // The linger runs from the last departure, not the first.
    tokio::time::sleep(DERIVED_LINGER - Duration::from_secs(1)).await;
    assert_eq!(derived_tracks(&hub, "k").len(), 1, "stopped too early");
    push_opus(&mut src, &mut p, 2);
    settle().await;
    assert_eq!(calls.frames(), 4, "it still transcodes while lingering");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        derived_tracks(&hub, "k").is_empty(),
        "stopped after the linger"
    );
    push_opus(&mut src, &mut p, 2);
    settle().await;
    assert_eq!(calls.frames(), 4, "a stopped track transcodes nothing");
    assert_eq!(calls.factory(), 1);
    // A new viewer starts a new track, which makes a new engine.
    let mut s = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    let (_, a) = push_opus(&mut src, &mut p, 2);
    settle().await;
    assert_eq!(calls.factory(), 2);
    assert_eq!(
        audio(&drain(&mut s)),
        [vec![(Codec::Aac, AAC_HEADER)], aac(&a)].concat()
    );
    // A viewer that does not want the derived codec keeps nothing running.
    drop(s);
    let _plain = hub.subscribe("k").unwrap();
    tokio::time::sleep(DERIVED_LINGER + Duration::from_secs(1)).await;
    assert!(derived_tracks(&hub, "k").is_empty());
}

#[tokio::test(start_paused = true)]
async fn grace_period_keeps_the_derived_track_and_its_viewers() {
    let hub = Hub::new(HubConfig::default()); // 5 s grace
    let calls = register(&hub, Fake::Echo);
    let mut p = opus_stream(&hub, "k");
    let mut s = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    let mut src = Source::new(0, 5);
    let (_, a1) = push_opus(&mut src, &mut p, 5);
    settle().await;
    drop(p);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(derived_tracks(&hub, "k").len(), 1);
    // The publisher comes back with the same Opus configuration and new timestamps.
    let mut p = hub.publish("k", info()).unwrap();
    p.push(opus_header());
    let (_, a2) = push_opus(&mut Source::new(90_000, 5), &mut p, 5);
    settle().await;
    let got = drain(&mut s);
    assert_eq!(
        audio(&got),
        [vec![(Codec::Aac, AAC_HEADER)], aac(&a1), aac(&a2)].concat(),
        "no Opus, no second header, no gap"
    );
    let dts: Vec<u64> = got
        .iter()
        .filter(|f| f.kind == MediaKind::Audio)
        .map(|f| f.dts)
        .collect();
    assert!(dts.windows(2).all(|w| w[0] <= w[1]), "{dts:?}");
    assert_eq!(calls.factory(), 1, "the same engine across the takeover");
    // The grace runs out: the derived track ends with the stream.
    drop(p);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(s.recv().await.is_none());
    assert!(hub.stream("k").is_none());
    push_opus(&mut src, &mut hub.publish("k", info()).unwrap(), 1);
    settle().await;
    assert_eq!(calls.frames(), 10);
}

#[tokio::test(start_paused = true)]
async fn codec_switch_in_grace_moves_viewers_between_tracks() {
    let hub = Hub::new(HubConfig::default());
    let calls = register(&hub, Fake::Echo);
    let mut p = opus_stream(&hub, "k");
    let mut flv = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    let mut plain = hub.subscribe("k").unwrap();
    let mut src = Source::new(0, 5);
    push_opus(&mut src, &mut p, 3);
    settle().await;
    drain(&mut flv);
    drain(&mut plain);
    drop(p);
    // An RTMP publisher takes over with AAC: the AAC viewer now gets it as published.
    let mut p = hub.publish("k", info()).unwrap();
    p.push(super::ash(7));
    let aac_ids = src.push_pairs(&mut p, 3);
    settle().await;
    let a: Vec<(Codec, u32)> = aac_ids.chunks(2).map(|c| (Codec::Aac, c[1])).collect();
    for s in [&mut flv, &mut plain] {
        assert_eq!(
            audio(&drain(s)),
            [vec![(Codec::Aac, 7)], a.clone()].concat()
        );
    }
    assert!(derived_tracks(&hub, "k").is_empty(), "Opus -> AAC stopped");
    assert_eq!(calls.frames(), 3);
    // Back to Opus: the derived track starts again for the AAC viewer.
    drop(p);
    let mut p = hub.publish("k", info()).unwrap();
    p.push(opus_header());
    let (_, o) = push_opus(&mut src, &mut p, 3);
    settle().await;
    assert_eq!(
        audio(&drain(&mut flv)),
        [vec![(Codec::Aac, AAC_HEADER)], aac(&o)].concat()
    );
    assert_eq!(
        audio(&drain(&mut plain)),
        [vec![(Codec::Opus, OPUS_HEADER)], as_opus(&o)].concat()
    );
    assert_eq!(calls.factory(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_viewer_that_wanted_aac_before_audio_arrived_never_sees_opus() {
    let hub = Hub::new(HubConfig::default());
    register(&hub, Fake::Echo);
    let mut p = hub.publish("k", info()).unwrap();
    let mut s = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    p.push(opus_header());
    let (_, a) = push_opus(&mut Source::new(0, 5), &mut p, 4);
    settle().await;
    assert_eq!(
        audio(&drain(&mut s)),
        [vec![(Codec::Aac, AAC_HEADER)], aac(&a)].concat()
    );
}

#[tokio::test(start_paused = true)]
async fn a_codec_nobody_can_derive_gets_the_published_audio() {
    let hub = Hub::new(HubConfig::default());
    register(&hub, Fake::Echo);
    let mut p = opus_stream(&hub, "k");
    let mut s = hub.subscribe_with("k", Want::audio(Codec::Mp3)).unwrap();
    let (_, a) = push_opus(&mut Source::new(0, 5), &mut p, 4);
    settle().await;
    assert_eq!(
        audio(&drain(&mut s)),
        [vec![(Codec::Opus, OPUS_HEADER)], as_opus(&a)].concat()
    );
    assert!(derived_tracks(&hub, "k").is_empty());
}

/// Video flows to the derived viewer and the published viewer is untouched, whatever the
/// engine does; returns (derived viewer's frames, Opus ids, video ids).
async fn run_faulty(how: Fake, pairs: usize) -> (Vec<Arc<Frame>>, Vec<u32>, Vec<u32>, Arc<Hub>) {
    let hub = Hub::new(HubConfig::default());
    register(&hub, how);
    let mut p = opus_stream(&hub, "k");
    let mut flv = hub.subscribe_with("k", Want::audio(Codec::Aac)).unwrap();
    let mut plain = hub.subscribe("k").unwrap();
    let mut src = Source::new(0, 5);
    let mut got = Vec::new();
    let (mut v, mut a) = (Vec::new(), Vec::new());
    for _ in 0..pairs {
        let (v1, a1) = push_opus(&mut src, &mut p, 1);
        v.extend(v1);
        a.extend(a1);
        settle().await;
        got.extend(drain(&mut flv));
    }
    let pub_got = drain(&mut plain);
    assert_eq!(video(&pub_got), [vec![2], v.clone()].concat());
    assert_eq!(
        audio(&pub_got),
        [vec![(Codec::Opus, OPUS_HEADER)], as_opus(&a)].concat()
    );
    assert_eq!(
        video(&got),
        [vec![2], v.clone()].concat(),
        "video never stalls"
    );
    (got, a, v, hub)
}

#[tokio::test(start_paused = true)]
async fn a_silent_transform_does_not_stall_the_stream() {
    let (got, _, _, hub) = run_faulty(Fake::Silent, 30).await;
    assert!(audio(&got).is_empty(), "no audio, and no Opus either");
    let d = derived_tracks(&hub, "k");
    assert_eq!((d[0].usable, d[0].errors, d[0].frames_out), (true, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_failing_transform_falls_back_to_the_published_audio() {
    let n = MAX_CONSECUTIVE_TRANSFORM_ERRORS as usize;
    let (got, a, _, hub) = run_faulty(Fake::Fails, n + 10).await;
    // After too many failures the viewer gets the Opus, its header first. The switch
    // happens at the first frame after the engine gave up.
    assert_eq!(
        audio(&got),
        [vec![(Codec::Opus, OPUS_HEADER)], as_opus(&a[n..])].concat()
    );
    let d = derived_tracks(&hub, "k");
    assert_eq!((d[0].usable, d[0].errors), (false, n as u64));
}

#[tokio::test(start_paused = true)]
async fn a_factory_error_or_panic_falls_back_at_once() {
    for how in [Fake::NoEngine, Fake::Panics] {
        let (got, a, _, hub) = run_faulty(how, 5).await;
        let audio = audio(&got);
        assert_eq!(audio[0], (Codec::Opus, OPUS_HEADER));
        // Fell back within the first frame or two (the engine is made from the header).
        assert_eq!(audio[1..], as_opus(&a)[a.len() + 1 - audio.len()..]);
        assert!(audio.len() >= a.len());
        let d = derived_tracks(&hub, "k");
        assert!(!d[0].usable);
        assert!(d[0].errors >= 1);
    }
}

#[tokio::test(start_paused = true)]
async fn derived_frames_obey_the_gop_limits() {
    let hub = Hub::new(HubConfig {
        gop_max_frames: 30,
        ..HubConfig::default()
    });
    register(&hub, Fake::Echo);
    let mut p = hub.publish("radio", info()).unwrap();
    p.push(opus_header());
    let _s = hub
        .subscribe_with("radio", Want::audio(Codec::Aac))
        .unwrap();
    for i in 0..500u32 {
        p.push(opus(frame(
            MediaKind::Audio,
            FrameRole::Coded,
            true,
            u64::from(i),
            1000 + i,
        )));
        if i % 50 == 0 {
            settle().await;
        }
    }
    settle().await;
    let snap = hub.stream("radio").unwrap();
    assert!(snap.gop_frames <= 30, "{}", snap.gop_frames);
    assert!(snap.derived_tracks[0].frames_out > 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_joining_and_leaving_under_load_see_only_their_audio() {
    const PAIRS: usize = 3_000;
    const VIEWERS: usize = 40;
    let hub = Hub::new(HubConfig {
        ring_capacity: 16_384, // more than every frame of the run: the derived task cannot lag
        ..HubConfig::default()
    });
    let calls = register(&hub, Fake::Echo);
    let mut p = opus_stream(&hub, "hot");
    // One AAC viewer stays for the whole run, so the track never lingers out.
    let keeper = hub.subscribe_with("hot", Want::audio(Codec::Aac)).unwrap();
    let mut tasks = Vec::new();
    for n in 0..VIEWERS {
        let hub = Arc::clone(&hub);
        let want = if n % 2 == 0 {
            Want::audio(Codec::Aac)
        } else {
            Want::AS_PUBLISHED
        };
        tasks.push(tokio::spawn(async move {
            let expect = if n % 2 == 0 { Codec::Aac } else { Codec::Opus };
            let mut audio_frames = 0usize;
            // Each viewer joins, reads a while, leaves, and joins again, until the end.
            'outer: for round in 0.. {
                let Ok(mut s) = hub.subscribe_with("hot", want) else {
                    break;
                };
                let mut last_video = None;
                for _ in 0..(50 + 10 * (n + round) % 200) {
                    let Some(f) = s.recv().await else {
                        break 'outer;
                    };
                    if f.kind == MediaKind::Audio {
                        assert_eq!(f.codec, expect, "a frame of the other audio track");
                        audio_frames += 1;
                    }
                    if f.kind == MediaKind::Video && f.role == FrameRole::Coded {
                        let i = id(&f);
                        assert!(last_video.is_none_or(|l| i > l), "video out of order");
                        last_video = Some(i);
                    }
                }
                tokio::task::yield_now().await;
            }
            audio_frames
        }));
    }
    let publisher = tokio::spawn(async move {
        let mut src = Source::new(0, 25);
        for i in 0..PAIRS {
            push_opus(&mut src, &mut p, 1);
            if i % 16 == 0 {
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
        }
    });
    publisher.await.unwrap();
    // Let the derived track finish what it read, then end the stream.
    tokio::time::sleep(Duration::from_millis(100)).await;
    hub.shutdown();
    for t in tasks {
        assert!(t.await.unwrap() > 0, "every viewer heard its audio");
    }
    assert_eq!(calls.factory(), 1, "one engine for every AAC viewer");
    assert_eq!(calls.frames(), PAIRS, "every Opus frame transcoded once");
    drop(keeper);
}
