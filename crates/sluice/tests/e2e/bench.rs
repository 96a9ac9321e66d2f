//! The load tool (`crates/bench`, `sluice-bench`) against an in-process Sluice server:
//! publish the fixture, 20 RTMP and 20 HTTP-FLV players for ~3 s, and 10 WHEP viewers. (Here
//! rather than in crates/bench/tests, which would link the whole server once more.) The tool
//! samples the server's process: the tests that start a server run in a process of their own.

use std::path::PathBuf;

use sluice_bench::{Opts, run};

use crate::common::own_process;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo.flv")
}

fn opts(publish: String, play: String, players: usize) -> Opts {
    let mut o = Opts::defaults();
    o.publish = Some(publish);
    o.file = fixture();
    o.play = Some(play);
    o.players = players;
    o.ramp = 200;
    o.warmup = 1.0;
    o.duration = 2.5;
    o.quiet = true;
    o.server_pid = Some(std::process::id());
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_and_http_flv_players_against_sluice() {
    if !own_process(module_path!(), "rtmp_and_http_flv_players_against_sluice").await {
        return;
    }
    let mut cfg = sluice::Config::default();
    cfg.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    // No WebRTC here: its default ports would collide with the WHEP test's server.
    cfg.webrtc.enabled = false;
    cfg.srt.enabled = false;
    let server = sluice::start(cfg).await.expect("server starts");
    let rtmp = server.rtmp_addr();
    let http = server.http_addr();

    let (a, b) = tokio::join!(
        run(opts(
            format!("rtmp://{rtmp}/live/a"),
            format!("rtmp://{rtmp}/live/a"),
            20
        )),
        run(opts(
            format!("rtmp://{rtmp}/live/b"),
            format!("http://{http}/live/b.flv"),
            20
        )),
    );
    for (name, r) in [("rtmp", a), ("http-flv", b)] {
        let r = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("{r}");
        assert_eq!(r.protocol.as_deref(), Some(name));
        assert_eq!(r.players_connected, 20, "{name}: {:?}", r.errors);
        assert_eq!(r.players_failed, 0, "{name}");
        assert_eq!(
            r.players_without_stalls, 20,
            "{name}: all got video, none stalled"
        );
        assert!(
            r.bytes_total > 0 && r.mbit_per_s > 0.5,
            "{name}: {} Mbit/s",
            r.mbit_per_s
        );
        assert!(r.media_secs_per_player > 2.0, "{name}");
        let l = &r.latency_ms;
        assert_eq!(l.matching, "payload-fingerprint");
        assert!(l.samples > 20 * 25, "{name}: {} latency samples", l.samples);
        assert!(l.p50.unwrap() < 500.0, "{name}: latency p50 {:?}", l.p50);
        assert!(r.first_frame_ms.p50.unwrap() < 1000.0, "{name}");
        let s = r.server.expect("server sampled");
        assert!(s.rss_max_bytes > 0);
    }
    assert!(server.shutdown(std::time::Duration::from_secs(2)).await);
}

#[tokio::test]
async fn publish_to_nothing_fails() {
    let mut o = opts(
        "rtmp://127.0.0.1:1/live/x".into(),
        "http://127.0.0.1:1/live/x.flv".into(),
        1,
    );
    o.duration = 0.1;
    assert!(run(o).await.is_err());
}

#[tokio::test]
async fn no_player_connected_is_an_error() {
    let mut o = Opts::defaults();
    o.play = Some("http://127.0.0.1:1/live/x.flv".into());
    o.players = 2;
    o.warmup = 0.0;
    o.duration = 0.1;
    o.quiet = true;
    let e = run(o).await.unwrap_err();
    assert!(e.to_string().contains("no player connected"), "{e}");
}

/// WHEP viewers against an in-process Sluice: the tool's own publisher feeds the stream,
/// 10 viewers connect over ICE + DTLS, receive H.264 frames and Opus packets at about the
/// clip's bitrate, and every WHEP resource is deleted at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_viewers_against_sluice() {
    if !own_process(module_path!(), "whep_viewers_against_sluice").await {
        return;
    }
    let mut cfg = sluice::Config::default();
    cfg.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.webrtc.listen = "127.0.0.1:0".parse().unwrap();
    cfg.webrtc.tcp_listen = String::new(); // no ICE-TCP: nothing bound on a fixed port
    cfg.srt.enabled = false;
    let server = sluice::start(cfg).await.expect("server starts");
    let rtmp = server.rtmp_addr();
    let http = server.http_addr();
    let mut o = opts(
        format!("rtmp://{rtmp}/live/w"),
        format!("http://{http}/live/w/whep"),
        10,
    );
    o.warmup = 1.5;
    o.duration = 3.0;
    let r = run(o).await.unwrap_or_else(|e| panic!("whep: {e}"));
    eprintln!("{r}");
    assert_eq!(r.protocol.as_deref(), Some("whep"));
    assert_eq!(r.players_connected, 10, "{:?}", r.errors);
    assert_eq!(r.players_failed, 0);
    assert_eq!(r.resources_deleted, 10, "every resource DELETEd");
    let p = &r.per_player;
    // The clip is ~430 kbit/s of FLV (25 fps, 1 s GOP) and Opus is 50 packets a second.
    // Bounds leave room for a loaded CI machine (~half of that), never for "no video".
    assert!(p.kbit_per_s_min.unwrap() > 100.0, "{p:?}");
    assert!(p.video_frames_min.unwrap() > 25, "{p:?}");
    assert!(p.audio_packets_mean > 100.0, "Opus at 20 ms: {p:?}");
    assert!(r.media_secs_per_player > 1.0, "{}", r.media_secs_per_player);
    assert!(r.players_per_core.unwrap() > 0.0);
    assert!(server.shutdown(std::time::Duration::from_secs(2)).await);
}

/// The value of the counter sample `series` (name and labels, as exposed) in `text`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} in /metrics:\n{text}"))
}

/// 50 WHEP viewers of one H.264 stream (the load tool's str0m viewers: full ICE, DTLS and
/// SRTP, frames reassembled from the RTP they receive) all play at the clip's full frame
/// rate, while the stream's RTP payloads are built once for all of them: the server's
/// counter of payloads built (per stream) stays at a fiftieth of the payloads written (per
/// viewer), give or take the viewers' join times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_whep_viewers_share_one_packetization() {
    if !own_process(module_path!(), "fifty_whep_viewers_share_one_packetization").await {
        return;
    }
    let mut cfg = sluice::Config::default();
    cfg.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.webrtc.listen = "127.0.0.1:0".parse().unwrap();
    cfg.webrtc.tcp_listen = String::new();
    let server = sluice::start(cfg).await.expect("server starts");
    let (rtmp, http) = (server.rtmp_addr(), server.http_addr());
    let mut o = opts(
        format!("rtmp://{rtmp}/live/fifty"),
        format!("http://{http}/live/fifty/whep"),
        50,
    );
    o.warmup = 1.5;
    o.duration = 4.0;
    let r = run(o).await.unwrap_or_else(|e| panic!("whep: {e}"));
    eprintln!("{r}");
    assert_eq!(r.players_connected, 50, "{:?}", r.errors);
    assert_eq!(r.players_without_stalls, 50, "no viewer stalled");
    let p = &r.per_player;
    // The clip is 25 fps: the viewers' frames over the media they received come at that
    // rate, and in the measured window the slowest viewer received what the others did
    // (every viewer at the full rate, none starved; a stall would have counted above).
    let fps = p.video_frames_mean / r.media_secs_per_player;
    assert!(fps >= 22.5, "{fps:.1} fps: {p:?}");
    let (mean, min) = (p.kbit_per_s_mean, p.kbit_per_s_min.unwrap());
    assert!(min >= 0.95 * mean && mean > 300.0, "{p:?}");
    let metrics = crate::common::http_get(http, "/metrics").await.body;
    let built = sample(
        &metrics,
        r#"sluice_webrtc_rtp_payloads_total{stage="built"}"#,
    );
    let written = sample(
        &metrics,
        r#"sluice_webrtc_rtp_payloads_total{stage="written"}"#,
    );
    eprintln!("payloads built {built}, written {written}");
    assert!(built > 0.0, "H.264 viewers run in RTP mode");
    assert!(
        written >= 40.0 * built,
        "payloads built once per stream, not per viewer: built {built}, written {written}"
    );
    assert!(server.shutdown(std::time::Duration::from_secs(2)).await);
}

/// The rooms signalling mode (`--rtc`): 30 participants over 3 rooms all get their
/// JoinResponse, hear of each other while they hold, and none is dropped by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtc_joins_against_sluice() {
    let mut cfg = crate::common::test_config();
    cfg.rooms.keys = [("benchkey".to_owned(), "benchsecret".to_owned())].into();
    let server = crate::common::start(cfg).await;
    let mut o = Opts::defaults();
    o.rtc = Some(format!("ws://{}", server.http_addr()));
    o.rtc_key = "benchkey".into();
    o.rtc_secret = "benchsecret".into();
    o.players = 30;
    o.rtc_rooms = 3;
    o.hold = 0.5;
    o.quiet = true;
    let r = sluice_bench::rtc::run(o).await.expect("rtc run");
    eprintln!("{r}");
    assert_eq!(r.joined, 30, "{r}");
    assert!(r.errors.is_empty(), "{r}");
    assert_eq!(r.closed_by_server, 0, "{r}");
    // Each participant gets at least its subscriber offer after the JoinResponse, and the
    // first nine of each room hear of later ones joining (updates queued together are
    // merged, so one message each at least).
    assert!(r.messages_after_join >= 30 + 3 * 9, "{r}");
    assert!(r.join_ms.p99.is_some(), "{r}");
    // A wrong secret: every join refused with 401, which is an error of the run.
    let mut o = Opts::defaults();
    o.rtc = Some(format!("ws://{}", server.http_addr()));
    o.rtc_key = "benchkey".into();
    o.rtc_secret = "wrong".into();
    o.players = 2;
    o.hold = 0.0;
    let e = sluice_bench::rtc::run(o).await.expect_err("no join");
    assert!(e.to_string().contains("http-401"), "{e}");
    assert!(server.shutdown(std::time::Duration::from_secs(5)).await);
}
