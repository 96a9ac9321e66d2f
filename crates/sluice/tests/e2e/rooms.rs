//! Rooms (LiveKit's client signalling on `/rtc`) end to end:
//! - three participants, each LiveKit's own JS SDK in headless Chromium, publishing camera
//!   (simulcast) and microphone: all see and hear each other and get a data message, and a
//!   participant's camera plays outside the room (HTTP-FLV tags, an aiortc WHEP viewer);
//! - tokens are checked before the upgrade: 401 / 403 / 400 on `/rtc/validate` and on the
//!   WebSocket upgrade itself, 404 (readable cross-origin) on `/rtc/v1/validate`;
//! - a participant sending garbage, text or an oversized message is closed, and only it;
//! - a thousand joins and leaves leave a separate server process's memory flat and its rooms
//!   empty.
//!
//! Only the first test starts a browser (it is the expensive one); the others are raw
//! WebSocket clients speaking the protocol through `rooms::signal`, the server's own codec.

use crate::common;
use crate::webrtc_support as support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{RawFlvClient, start, test_config, wait_live_within};
use futures_util::{SinkExt, StreamExt};
use media::{FrameRole, MediaKind};
use prost::Message as _;
use rooms::proto::{self, signal_request::Message as Req, signal_response::Message as Resp};
use rooms::token::{Claims, VideoGrant};
use sluice::Config;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const API_KEY: &str = "devkey";
const API_SECRET: &str = "secret";
/// Longest wait for any one signalling message (join response, update, pong, close).
const SIGNAL_WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The test config with rooms keyed by [`API_KEY`] = [`API_SECRET`].
fn rooms_config() -> Config {
    let mut cfg = test_config();
    cfg.rooms.keys = BTreeMap::from([(API_KEY.to_owned(), API_SECRET.to_owned())]);
    cfg
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Claims of a join token for `identity` in `room`, valid for ten minutes.
fn join_claims(identity: &str, room: &str) -> Claims {
    Claims {
        iss: API_KEY.to_owned(),
        sub: identity.to_owned(),
        exp: now_s() + 600,
        name: identity.to_owned(),
        video: VideoGrant {
            room_join: true,
            room: room.to_owned(),
            ..VideoGrant::default()
        },
        ..Claims::default()
    }
}

fn mint(claims: &Claims, secret: &str) -> String {
    rooms::token::mint(claims, secret).expect("token minted")
}

/// Installs the rooms harness's npm packages (livekit-client, livekit-server-sdk, from the
/// lockfile in tests/rooms) when missing, as `common::playwright_core` does for the console
/// test, so `cargo test` works on a machine where only scripts/test.sh's system packages are.
async fn rooms_npm() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rooms");
    common::npm_ci(&dir, "livekit-client").await;
    dir
}

// --- a raw signalling client ---------------------------------------------------------------

/// What reading the socket gave.
#[derive(Debug)]
enum Read {
    Msg(Box<Resp>),
    /// A close frame, the end of the stream or a transport error: the socket is done.
    Closed(String),
    TimedOut,
}

/// The next signal response (bounded by `within`); non-binary frames other than close are
/// skipped.
async fn read(ws: &mut Ws, within: Duration) -> Read {
    let deadline = Instant::now() + within;
    loop {
        let next = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Read::TimedOut,
            Ok(n) => n,
        };
        match next {
            Some(Ok(Message::Binary(b))) => {
                let r = proto::SignalResponse::decode(b.as_ref()).expect("a SignalResponse");
                if let Some(m) = r.message {
                    return Read::Msg(Box::new(m));
                }
            }
            Some(Ok(Message::Close(c))) => return Read::Closed(format!("close frame {c:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Read::Closed(format!("error {e}")),
            None => return Read::Closed("end of stream".to_owned()),
        }
    }
}

/// Reads until a response satisfies `pred` and returns it; panics on close or timeout.
async fn wait_for<T>(ws: &mut Ws, what: &str, mut pred: impl FnMut(&Resp) -> Option<T>) -> T {
    let deadline = Instant::now() + SIGNAL_WAIT;
    loop {
        match read(ws, deadline.saturating_duration_since(Instant::now())).await {
            Read::Msg(m) => {
                if let Some(t) = pred(&m) {
                    return t;
                }
            }
            Read::Closed(why) => panic!("{what}: the socket closed ({why})"),
            Read::TimedOut => panic!("{what}: not within {SIGNAL_WAIT:?}"),
        }
    }
}

/// Reads until the server closes the socket (whatever it sends before); panics if it stays
/// open for [`SIGNAL_WAIT`].
async fn expect_closed(ws: &mut Ws, what: &str) {
    let deadline = Instant::now() + SIGNAL_WAIT;
    loop {
        match read(ws, deadline.saturating_duration_since(Instant::now())).await {
            Read::Msg(_) => {}
            Read::Closed(_) => return,
            Read::TimedOut => panic!("{what}: the server kept the socket open"),
        }
    }
}

/// Opens `/rtc` with `token` and reads the JoinResponse (the first message).
async fn join_with(http: SocketAddr, token: &str) -> (Ws, proto::JoinResponse) {
    let url = format!("ws://{http}/rtc?access_token={token}&protocol=16");
    let (mut ws, resp) = tokio::time::timeout(SIGNAL_WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("upgrade in time")
        .expect("upgrade accepted");
    assert_eq!(resp.status(), 101);
    match read(&mut ws, SIGNAL_WAIT).await {
        Read::Msg(m) => match *m {
            Resp::Join(j) => (ws, j),
            other => panic!("the first message is not a JoinResponse: {other:?}"),
        },
        other => panic!("no JoinResponse: {other:?}"),
    }
}

async fn join(http: SocketAddr, identity: &str, room: &str) -> (Ws, proto::JoinResponse) {
    join_with(http, &mint(&join_claims(identity, room), API_SECRET)).await
}

async fn send(ws: &mut Ws, m: Req) {
    let bytes = rooms::signal::encode_request(&proto::SignalRequest { message: Some(m) });
    ws.send(Message::Binary(bytes.into()))
        .await
        .expect("request sent");
}

/// The participant `identity` in an update, when `m` is one that lists it in `state`.
fn update_with(m: &Resp, identity: &str, state: proto::participant_info::State) -> Option<()> {
    match m {
        Resp::Update(u) => u
            .participants
            .iter()
            .any(|p| p.identity == identity && p.state == state as i32)
            .then_some(()),
        _ => None,
    }
}

/// `ws`'s participant answers a `PingReq` with the matching `PongResp`.
async fn assert_answers_ping(ws: &mut Ws, stamp: i64, what: &str) {
    send(
        ws,
        Req::PingReq(proto::Ping {
            timestamp: stamp,
            rtt: 0,
        }),
    )
    .await;
    wait_for(ws, what, |m| match m {
        Resp::PongResp(p) if p.last_ping_timestamp == stamp => Some(()),
        _ => None,
    })
    .await;
}

// --- 1. LiveKit's JS SDK in Chromium --------------------------------------------------------

/// The media window of the browser test, seconds.
const WINDOW_S: u32 = 10;
/// The fake camera's frame rate (the harness's default).
const CAMERA_FPS: u32 = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_js_participants_see_and_hear_each_other() {
    rooms_npm().await;
    let server = start(rooms_config()).await;
    let http = server.http_addr();
    let room = "demo";
    // An RTMP stream (the H.264 + AAC fixture) brought into the room before anyone joins:
    // every browser must decode it as a fourth participant (H.264 passed through, AAC as
    // the hub's Opus).
    let mut rtmp = common::publish(
        &format!("rtmp://{}/live/cam", server.rtmp_addr()),
        -1,
        &["-re"],
    );
    wait_live_within(&server, "live/cam", Duration::from_secs(30)).await;
    let body = br#"{"stream":"live/cam","identity":"cam"}"#;
    let len = body.len().to_string();
    let added = common::http_request_with(
        http,
        "POST",
        &format!("/api/v1/rooms/{room}/streams"),
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &len),
        ],
        body,
    )
    .await;
    assert_eq!(added.status, 201, "stream into the room: {}", added.text());
    // VP8, the SDK's default codec (what a LiveKit app publishes unless it asks otherwise),
    // with simulcast on: the room itself is tested as apps use it.
    let args: Vec<String> = vec![
        format!("--url=ws://{http}"),
        format!("--api-key={API_KEY}"),
        format!("--api-secret={API_SECRET}"),
        format!("--room={room}"),
        "--participants=3".to_owned(),
        format!("--seconds={WINDOW_S}"),
        "--simulcast=1".to_owned(),
        format!("--fps={CAMERA_FPS}"),
        // p1 asks for 160x90 of p0's camera half-way; then LiveKit's RoomServiceClient
        // lists, mutes p0's microphone and removes p2.
        "--lower-size=1".to_owned(),
        "--roomservice=1".to_owned(),
    ];
    let browsers = tokio::spawn(async move {
        support::chromium_script("../rooms/rooms_test.mjs", &args, Duration::from_secs(180)).await
    });

    // While the browsers are in the room, p0's camera and microphone on other egresses.
    // ffmpeg 5.1 cannot read VP8 from FLV (Enhanced RTMP `vp08` came in FFmpeg 6.1) and
    // Sluice's HLS carries H.264/H.265 video only, so rather than switch the room to H.264
    // for the sake of the player, the decode check is an independent WebRTC stack (aiortc)
    // playing the room track over WHEP, and HTTP-FLV is checked at the tag level (the
    // `vp08` sequence start, key frame first, monotonic timestamps, AAC made from the Opus).
    let key = format!("room/{room}~p0");
    wait_live_within(&server, &key, Duration::from_secs(60)).await;
    let snap = server.hub().stream(&key).expect("p0's stream");
    assert_eq!(snap.publisher.expect("a publisher").protocol, "webrtc");
    const FLV_S: u64 = 3;
    let flv_path = format!("/{key}.flv");
    let flv = async {
        let mut c = RawFlvClient::connect(http, &flv_path).await;
        let tags = c.collect_for(Duration::from_secs(FLV_S)).await;
        (c.status, tags)
    };
    const WHEP_S: f32 = 4.0;
    let whep_url = format!("http://{http}/{key}/whep");
    let whep = support::whep_client(&whep_url, WHEP_S, false);
    let ((flv_status, tags), whep) = tokio::join!(flv, whep);
    let out = browsers.await.expect("the harness task");
    let _ = rtmp.kill().await;

    // The room, as each SDK saw it.
    let s = &out["summary"];
    assert_eq!(out["ok"], true, "harness failed: {}", out["error"]);
    assert_eq!(s["allConnected"], true, "{out}");
    assert_eq!(s["allPublished"], true, "{out}");
    assert_eq!(s["allSeeEveryone"], true, "{out}");
    let clients = out["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 3);
    for c in clients {
        let me = c["identity"].as_str().expect("identity");
        let published: Vec<&str> = c["published"]
            .as_array()
            .expect("published")
            .iter()
            .filter_map(|t| t["kind"].as_str())
            .collect();
        assert!(
            published.contains(&"video") && published.contains(&"audio"),
            "{me} published {published:?}"
        );
        let camera = c["published"]
            .as_array()
            .and_then(|p| p.iter().find(|t| t["kind"] == "video"))
            .expect("a camera track");
        assert_eq!(camera["simulcasted"], true, "{me}'s camera: {camera}");
        let remotes = c["remotes"].as_array().expect("remotes");
        assert_eq!(remotes.len(), 3, "{me} sees {remotes:?}");
        // The RTMP stream, as a participant: its H.264 decoded, its audio played.
        let cam = &c["inbound"]["cam"];
        assert_eq!(
            cam["video"]["codec"], "video/H264",
            "{me} receives cam: {cam}"
        );
        assert!(
            cam["video"]["framesDecoded"].as_u64().unwrap_or(0) >= 25,
            "{me} decodes the RTMP stream: {cam}"
        );
        assert!(
            cam["audio"]["totalSamplesReceived"].as_u64().unwrap_or(0) > 48_000,
            "{me} plays the RTMP stream's audio: {cam}"
        );
        for (from, r) in c["inbound"]
            .as_object()
            .expect("inbound")
            .iter()
            .filter(|(from, _)| *from != "cam")
        {
            assert_eq!(
                r["video"]["codec"], "video/VP8",
                "{me} receives {from}'s camera: {r}"
            );
            assert!(
                r["video"]["frameWidth"].as_u64().unwrap_or(0) > 0,
                "{me} receives {from}'s camera: {r}"
            );
        }
    }
    assert_eq!(s["errors"], 0, "errors in the pages: {out}");
    // Every remote video decoded at least half the frames the window alone holds (the count
    // covers the settle time too, so a healthy run is well above it), and every remote
    // audio track played out samples.
    let window_s = out["windowMs"].as_f64().expect("windowMs") / 1000.0;
    assert!(window_s >= f64::from(WINDOW_S), "window {window_s} s");
    let min_frames = 0.5 * f64::from(CAMERA_FPS) * window_s;
    let frames = s["minVideoFramesDecoded"].as_f64().expect("frames");
    assert!(
        frames >= min_frames,
        "a remote video decoded {frames} frames, want >= {min_frames:.0}: {out}"
    );
    // 48 kHz: at least half the window's samples (mono accounting; Chromium counts per
    // channel-frame).
    let min_samples = 0.5 * 48_000.0 * window_s;
    let samples = s["minAudioSamplesReceived"].as_f64().expect("samples");
    assert!(
        samples >= min_samples,
        "a remote audio received {samples} samples, want >= {min_samples:.0}: {out}"
    );
    assert_eq!(s["dataReceivedByAll"], true, "{out}");
    // Chromium's fake microphone beeps: every participant saw the others speak.
    assert_eq!(s["activeSpeakersSeenByAll"], true, "{out}");
    // Simulcast: the subscriber that asked for 160x90 moved to a smaller layer, and its
    // video went on.
    let ls = &out["lowerSize"];
    let (before, after) = (&ls["before"], &ls["after"]);
    let (w0, w1) = (
        before["frameWidth"].as_u64().unwrap_or(0),
        after["frameWidth"].as_u64().unwrap_or(0),
    );
    assert!(w1 > 0 && w1 < w0, "layer after asking for 160x90: {ls}");
    assert!(
        after["framesDecoded"].as_u64() > before["framesDecoded"].as_u64(),
        "video went on across the layer switch: {ls}"
    );
    // LiveKit's server SDK drove the room: listed it, muted p0's microphone (both others
    // saw TrackMuted), removed p2 (its SDK reported Disconnected, reason 4
    // PARTICIPANT_REMOVED).
    let rs = &out["roomService"];
    assert_eq!(rs["listRooms"][0]["numParticipants"], 4, "{rs}");
    assert_eq!(
        rs["listParticipants"].as_array().map(Vec::len),
        Some(4),
        "{rs}"
    );
    assert_eq!(rs["mutePublishedTrack"]["muted"], true, "{rs}");
    assert_eq!(rs["mutedSeenBy"], serde_json::json!(["p1", "p2"]), "{rs}");
    assert_eq!(rs["removedDisconnected"], 4, "{rs}");
    for c in clients {
        assert_eq!(
            c["disconnected"],
            serde_json::Value::Null,
            "{} was disconnected during the window",
            c["identity"]
        );
    }

    // HTTP-FLV: the room track as published, VP8 in Enhanced RTMP tags from a key frame.
    assert_eq!(flv_status, 200);
    let video: Vec<_> = tags.iter().filter(|t| t.kind == MediaKind::Video).collect();
    let first = video.first().expect("video tags over HTTP-FLV");
    assert_eq!(first.role, FrameRole::SequenceHeader);
    assert_eq!(&first.body[1..5], b"vp08", "VP8 in an Enhanced RTMP tag");
    let coded: Vec<_> = video
        .iter()
        .filter(|t| t.role == FrameRole::Coded)
        .collect();
    let want = (CAMERA_FPS as usize * FLV_S as usize) / 2;
    assert!(
        coded.len() >= want,
        "{} VP8 frames over HTTP-FLV in {FLV_S} s, want >= {want}",
        coded.len()
    );
    assert!(coded[0].keyframe, "HTTP-FLV playback starts at a key frame");
    let ts: Vec<i64> = coded.iter().map(|t| i64::from(t.timestamp)).collect();
    common::assert_monotonic("room track over HTTP-FLV", &ts);
    let audio: Vec<_> = tags.iter().filter(|t| t.kind == MediaKind::Audio).collect();
    let asc = flv::frame_from_tag(
        flv::TAG_AUDIO,
        0,
        audio.first().expect("audio").body.clone(),
    )
    .expect("an audio tag");
    assert_eq!(
        (asc.codec, asc.role),
        (media::Codec::Aac, FrameRole::SequenceHeader),
        "AAC made from the room's Opus"
    );

    // WHEP: an independent stack decodes the room track's VP8 and Opus.
    assert_eq!(whep["status"], 201, "{whep}");
    assert_eq!(whep["connection_state"], "connected", "{whep}");
    let whep_frames = whep["video"]["frames"].as_f64().expect("frames");
    let want = 0.5 * f64::from(CAMERA_FPS) * f64::from(WHEP_S);
    assert!(
        whep_frames >= want,
        "aiortc decoded {whep_frames} frames of the room track in {WHEP_S} s, want >= {want}: {whep}"
    );
    assert!(whep["video"]["width"].as_u64().unwrap_or(0) > 0, "{whep}");
    assert_eq!(whep["video"]["non_increasing"], 0, "{whep}");
    assert!(
        whep["audio"]["frames"].as_u64().unwrap_or(0) > 50,
        "aiortc decoded too little audio: {whep}"
    );
    eprintln!(
        "FIGURE rooms browser test: min frames {frames}, min samples {samples}, join {} ms, \
         settle {} ms, WHEP frames {whep_frames}, FLV frames {}",
        out["joinMs"],
        out["settleMs"],
        coded.len()
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

// --- 2. tokens -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_tokens_are_checked() {
    let server = start(rooms_config()).await;
    let http = server.http_addr();
    let good = join_claims("alice", "tokens");
    let expired = Claims {
        // Well past the verifier's leeway (rooms::token::LEEWAY_S).
        exp: now_s() - 3600,
        ..good.clone()
    };
    let no_join = Claims {
        video: VideoGrant {
            room_join: false,
            room_list: true,
            ..good.video.clone()
        },
        ..good.clone()
    };
    let bad_identity = Claims {
        sub: "a/b".to_owned(),
        ..good.clone()
    };
    let unknown_key = Claims {
        iss: "otherkey".to_owned(),
        ..good.clone()
    };
    let cases: [(&str, String, u16, &str); 7] = [
        ("valid", mint(&good, API_SECRET), 200, "success"),
        (
            "wrong secret",
            mint(&good, "not-the-secret"),
            401,
            "signature",
        ),
        ("expired", mint(&expired, API_SECRET), 401, "expired"),
        ("no roomJoin", mint(&no_join, API_SECRET), 403, "roomJoin"),
        (
            "identity a/b",
            mint(&bad_identity, API_SECRET),
            400,
            "identity",
        ),
        (
            "unknown API key",
            mint(&unknown_key, "x"),
            401,
            "unknown API key",
        ),
        ("malformed", "not.a.jwt".to_owned(), 401, "malformed"),
    ];
    for (what, token, status, reason) in &cases {
        // /rtc/validate: the status and the reason, readable by a page of another origin.
        let r = common::http_request_with(
            http,
            "GET",
            &format!("/rtc/validate?access_token={token}"),
            &[("Origin", "http://localhost")],
            b"",
        )
        .await;
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        assert!(r.text().contains(reason), "{what}: reason {:?}", r.text());
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "{what}: /rtc/validate readable cross-origin"
        );
        // The upgrade itself: refused with the same status before any WebSocket exists.
        let url = format!("ws://{http}/rtc?access_token={token}");
        let up = tokio::time::timeout(SIGNAL_WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("upgrade answered in time");
        match (up, *status) {
            (Ok((mut ws, resp)), 200) => {
                assert_eq!(resp.status(), 101);
                let first = read(&mut ws, SIGNAL_WAIT).await;
                assert!(
                    matches!(&first, Read::Msg(m) if matches!(**m, Resp::Join(_))),
                    "{what}: {first:?}"
                );
                // A fresh token follows, signed with the same key, same identity and room.
                let mut refreshed = None;
                for _ in 0..8 {
                    if let Read::Msg(m) = read(&mut ws, SIGNAL_WAIT).await
                        && let Resp::RefreshToken(t) = *m
                    {
                        refreshed = Some(t);
                        break;
                    }
                }
                let t = refreshed.expect("a RefreshToken after the join");
                let keys = rooms::token::RoomKeys::new(&BTreeMap::from([(
                    API_KEY.to_owned(),
                    API_SECRET.to_owned(),
                )]));
                let c = keys.verify(&t).expect("the refreshed token verifies");
                assert_eq!((c.sub.as_str(), c.video.room.as_str()), ("alice", "tokens"));
                let _ = ws.close(None).await;
            }
            (Err(tungstenite::Error::Http(resp)), want) => {
                assert_eq!(resp.status().as_u16(), want, "{what}: upgrade refused with");
            }
            (Ok(_), _) => panic!("{what}: the upgrade was accepted"),
            (Err(e), _) => panic!("{what}: upgrade failed with {e}, not an HTTP status"),
        }
    }
    // The single-connection path: 404, readable cross-origin (the SDK then falls back).
    for path in ["/rtc/v1/validate", "/rtc/v1"] {
        let t = &cases[0].1;
        let r = common::http_request_with(
            http,
            "GET",
            &format!("{path}?access_token={t}"),
            &[("Origin", "http://localhost")],
            b"",
        )
        .await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    // A client announcing a signalling protocol older than the server serves is refused at
    // the upgrade with the reason; the Go SDK's way of sending the token (a bearer header,
    // no query) is accepted.
    let t = &cases[0].1;
    let old = format!("ws://{http}/rtc?access_token={t}&protocol=5");
    match tokio_tungstenite::connect_async(old).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 400),
        other => panic!("protocol 5 was not refused: {:?}", other.map(|_| ())),
    }
    let r = common::http_request_with(
        http,
        "GET",
        "/rtc/validate",
        &[("Authorization", &format!("Bearer {t}"))],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "bearer token: {}", r.text());
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

// --- 3. hostile signalling -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_signalling_closes_only_that_session() {
    use proto::participant_info::State;
    let server = start(rooms_config()).await;
    let http = server.http_addr();
    let room = "hostile";
    let (mut b, joined) = join(http, "bob", room).await;
    assert!(joined.other_participants.is_empty());
    assert_eq!(
        joined.participant.as_ref().map(|p| p.identity.as_str()),
        Some("bob")
    );
    // Not protobuf: field number 0 is never valid.
    let garbage = Message::Binary(
        b"\x00\x00garbage, not a SignalRequest\xff\xff"
            .to_vec()
            .into(),
    );
    let text = Message::Text(r#"{"ping":1}"#.into());
    let oversized = Message::Binary(vec![0u8; rooms::signal::MAX_SIGNAL_MESSAGE + 1].into());
    for (n, (what, hostile)) in [
        ("garbage", garbage),
        ("text", text),
        ("oversized", oversized),
    ]
    .into_iter()
    .enumerate()
    {
        let identity = format!("mallory-{what}");
        let (mut a, joined) = join(http, &identity, room).await;
        let others: Vec<&str> = joined
            .other_participants
            .iter()
            .map(|p| p.identity.as_str())
            .collect();
        assert_eq!(others, ["bob"], "{what}: A joins a room with only B in it");
        wait_for(&mut b, &format!("{what}: B hears A join"), |m| {
            update_with(m, &identity, State::Joined)
        })
        .await;
        // The hostile frame; the server may close while it is still being written.
        let _ = a.send(hostile).await;
        expect_closed(&mut a, &format!("{what}: A's socket")).await;
        wait_for(&mut b, &format!("{what}: B hears A is disconnected"), |m| {
            update_with(m, &identity, State::Disconnected)
        })
        .await;
        assert_answers_ping(&mut b, 1000 + n as i64, &format!("{what}: B's ping")).await;
    }
    // B is still a full participant: a newcomer finds it, and only it, in the room.
    let (mut c, joined) = join(http, "carol", room).await;
    let others: Vec<&str> = joined
        .other_participants
        .iter()
        .map(|p| p.identity.as_str())
        .collect();
    assert_eq!(others, ["bob"]);
    let _ = c.close(None).await;
    let _ = b.close(None).await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

// --- 4. join/leave churn -------------------------------------------------------------------

/// Join/leave cycles per half of the churn test.
const HALF: usize = 500;
/// Joins in flight at once.
const LANES: usize = 8;
/// How far the server's RSS may grow over the second half, after the first: a participant
/// holds two WebRTC connections' state, tens of kilobytes, so a leak of even one small
/// allocation per cycle would show over 500 cycles; allocator noise stays well under this.
const CHURN_RSS_BOUND: u64 = 2 * 1024 * 1024;

/// VmRSS of `pid`, bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// `n` cycles of join (to JoinResponse) then close, `LANES` at a time, in `room`.
async fn churn(http: SocketAddr, room: &str, from: usize, n: usize) {
    let lanes: Vec<_> = (0..LANES)
        .map(|lane| {
            let room = room.to_owned();
            tokio::spawn(async move {
                for i in (from + lane..from + n).step_by(LANES) {
                    let (mut ws, joined) = join(http, &format!("u{i}"), &room).await;
                    assert!(joined.participant.is_some());
                    ws.close(None).await.expect("close sent");
                    // The server's close answer (or the end of the stream).
                    expect_closed(&mut ws, "churn").await;
                }
            })
        })
        .collect();
    for l in lanes {
        l.await.expect("churn lane");
    }
}

/// Waits (bounded) until a fresh participant of `room` finds nobody else there.
async fn assert_room_empties(http: SocketAddr, room: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (mut ws, joined) = join(http, "probe", room).await;
        let others = joined.other_participants.len();
        let _ = ws.close(None).await;
        expect_closed(&mut ws, "probe").await;
        if others == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {others} participants still in {room}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_join_leave_cycles_keep_memory_flat() {
    let mut cmd = common::sluice_process();
    // Only this server's settings (the runner's own SLUICE_* variables would be unknown keys).
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SLUICE_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .env(
            "SLUICE_ROOMS_KEYS",
            format!("{{ {API_KEY} = \"{API_SECRET}\" }}"),
        )
        // The listening lines, without a line per join and leave.
        .args(["--log-level", "info,server_webrtc::rooms=warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice runs");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let http: SocketAddr = loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("listening line in time")
            .expect("read")
            .expect("server still running");
        if line.contains("http listening")
            && let Some(a) = line
                .split("http_addr=")
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse().ok())
        {
            break a;
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let room = "churn";
    let started = Instant::now();
    churn(http, room, 0, HALF).await;
    assert_room_empties(http, room, "after the first half").await;
    let rss1 = rss_of(pid);
    churn(http, room, HALF, HALF).await;
    assert_room_empties(http, room, "after the second half").await;
    let rss2 = rss_of(pid);
    let took = started.elapsed();
    let grown = rss2.saturating_sub(rss1);
    eprintln!(
        "FIGURE {} join/leave cycles in {took:?}: RSS {} KiB after the first half, {} KiB after \
         the second (+{} KiB)",
        2 * HALF,
        rss1 / 1024,
        rss2 / 1024,
        grown / 1024
    );
    assert!(
        grown < CHURN_RSS_BOUND,
        "RSS grew {} KiB over the second {HALF} cycles",
        grown / 1024
    );
    // Still serving after the churn: a join, a ping answered.
    let (mut ws, _) = join(http, "after", room).await;
    assert_answers_ping(&mut ws, 7, "a ping after the churn").await;
    let _ = ws.close(None).await;
    let _ = child.kill().await;
}
