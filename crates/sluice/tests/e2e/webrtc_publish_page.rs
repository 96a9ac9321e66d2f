//! Publishing from a browser and WHIP with tokens, end to end: headless Chromium (fake
//! camera and microphone) opens the publish page with `?token=`, publishes H.264 + Opus over
//! WHIP, restarts ICE mid-stream, while ffprobe/ffmpeg decode the stream over RTMP and
//! HTTP-FLV and Chromium's player page plays it over WHEP. Then aiortc publishing over WHIP
//! with JWTs: valid as `Authorization: Bearer` and as `?token=` (201, media flows), expired
//! (401), play-only (403), for another stream (403).

use crate::common;
use crate::webrtc_support as support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{assert_monotonic, ffmpeg_decode, ffprobe, start, test_config, wait_live_within};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::Value;
use sluice::Config;
use sluice::configuration::{AuthMode, AuthRule};
use support::{chromium_script, wait_sessions, whip_client};

const SECRET: &str = "publish-page-secret";

/// An HS256 token for `action` on `stream`, valid for `ttl` seconds (negative: expired).
fn token(action: &str, stream: &str, ttl: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "exp": now.saturating_add_signed(ttl),
        "action": action,
        "stream": stream,
    });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

/// Publishing under `secure/` needs a token; playing is open.
fn token_config() -> Config {
    let mut cfg = test_config();
    cfg.auth.jwt_secret = SECRET.into();
    cfg.auth.rules = vec![AuthRule {
        pattern: "secure/*".into(),
        publish: AuthMode::Token,
        play: AuthMode::Open,
        ..AuthRule::default()
    }];
    cfg
}

/// Runs `publish_test.mjs` (bounded) and parses its JSON.
async fn chromium_publish(publish: &str, player: &str, seconds: u32, restart: bool) -> Value {
    let args = [
        publish.to_owned(),
        player.to_owned(),
        seconds.to_string(),
        if restart { "1" } else { "0" }.to_owned(),
    ];
    let within = Duration::from_secs(u64::from(seconds) + 120);
    chromium_script("publish_test.mjs", &args, within).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publish_page_with_token_plays_everywhere_and_restarts_ice() {
    let server = start(token_config()).await;
    let http = server.http_addr();
    let key = "secure/cam";
    let t = token("publish", key, 600);
    let page = format!("http://{http}/{key}/publish?token={t}");
    let player = format!("http://{http}/{key}/");
    let browser = tokio::spawn(async move { chromium_publish(&page, &player, 30, true).await });
    wait_live_within(&server, key, Duration::from_secs(60)).await;
    let snap = server.hub().stream(key).unwrap();
    assert_eq!(snap.publisher.unwrap().protocol, "webrtc");

    // ffprobe sees H.264 video at the fake camera's size and AAC (made from the Opus);
    // ffmpeg decodes both tracks over RTMP and HTTP-FLV with increasing timestamps.
    let rtmp = format!("rtmp://{}/{key}", server.rtmp_addr());
    let flv = format!("http://{http}/{key}.flv");
    let p = ffprobe(&rtmp).await;
    eprintln!("probe of the browser's stream: {p:?}");
    assert_eq!(p.video_codec, "h264");
    assert!(p.width >= 320 && p.height >= 180, "{p:?}");
    assert_eq!(p.audio_codec, "aac");
    assert_eq!(p.sample_rate, "48000");
    let (r, f) = tokio::join!(ffmpeg_decode(&rtmp, 3.0), ffmpeg_decode(&flv, 3.0));
    for (name, d) in [("rtmp", &r), ("http-flv", &f)] {
        eprintln!(
            "{name}: {} video, {} audio frames; stderr: {}",
            d.video_frames, d.audio_frames, d.stderr
        );
        assert!(d.video_frames >= 10, "{name}: {} video", d.video_frames);
        assert!(d.audio_frames >= 50, "{name}: {} audio", d.audio_frames);
        assert_monotonic(&format!("{name} video"), &d.video_dts);
        assert_monotonic(&format!("{name} audio"), &d.audio_dts);
    }

    let v = browser.await.unwrap();
    eprintln!("chromium publish page: {v}");
    let publish = &v["publish"];
    assert_eq!(publish["httpStatus"], 201, "{v}");
    assert_eq!(publish["state"], "connected", "{v}");
    // The page preferred H.264 (setCodecPreferences), and Chromium encoded it.
    assert_eq!(v["publishEnd"]["videoCodec"], "video/H264", "{v}");
    // The player page in the same browser decodes video and audio over WHEP, across the
    // publisher's ICE restart.
    let frames = |k: &str| v[k]["stats"]["framesDecoded"].as_u64().unwrap_or(0);
    let samples = |k: &str| v[k]["stats"]["totalSamplesReceived"].as_u64().unwrap_or(0);
    assert!(frames("early") > 0, "{v}");
    assert!(frames("late") >= frames("early") + 20, "video grows: {v}");
    assert!(
        samples("late") >= samples("early") + 48_000,
        "audio grows: {v}"
    );
    // The WHIP session restarted ICE: new server ufrag, a new pair the server answered.
    assert_eq!(v["restarted"], true, "{v}");
    let (b, a) = (&v["beforeRestart"], &v["afterRestart"]);
    assert_ne!(b["remoteUfrag"], a["remoteUfrag"], "{v}");
    assert_ne!(b["pair"]["id"], a["pair"]["id"], "{v}");
    assert!(
        a["pair"]["responsesReceived"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    assert_eq!(v["publishEnd"]["state"], "connected", "{v}");
    assert!(
        v["publishEnd"]["framesEncoded"].as_u64().unwrap_or(0)
            > a["framesEncoded"].as_u64().unwrap_or(0),
        "{v}"
    );
    // Chromium closed: the WHIP session ends with it.
    wait_sessions(&server, 0, Duration::from_secs(40), "after Chromium closed").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_with_tokens() {
    let server = start(token_config()).await;
    let http = server.http_addr();
    let key = "secure/whip";
    let url = format!("http://{http}/{key}/whip");

    // No token, expired, play-only, another stream's: refused before any session.
    let r = whip_client(&url, 1.0, &[]).await;
    assert_eq!(r["status"], 401, "no token: {r}");
    let expired = token("publish", key, -120);
    let r = whip_client(&url, 1.0, &["--token", &expired]).await;
    assert_eq!(r["status"], 401, "expired: {r}");
    let play_only = token("play", key, 600);
    let r = whip_client(&url, 1.0, &["--token", &play_only]).await;
    assert_eq!(r["status"], 403, "play-only: {r}");
    let other = token("publish", "secure/other", 600);
    let r = whip_client(&url, 1.0, &["--token", &other]).await;
    assert_eq!(r["status"], 403, "wrong stream: {r}");
    assert_eq!(server.webrtc_sessions(), 0);
    assert!(server.hub().stream(key).is_none_or(|s| !s.is_live));

    // A valid Bearer token: 201 and media flows (decoded over RTMP).
    let good = token("publish", key, 600);
    let publisher = {
        let (url, good) = (url.clone(), good.clone());
        tokio::spawn(async move { whip_client(&url, 10.0, &["--token", &good]).await })
    };
    wait_live_within(&server, key, Duration::from_secs(30)).await;
    let rtmp = format!("rtmp://{}/{key}", server.rtmp_addr());
    let d = ffmpeg_decode(&rtmp, 2.0).await;
    assert!(
        d.video_frames >= 3 && d.audio_frames >= 20,
        "{} video, {} audio",
        d.video_frames,
        d.audio_frames
    );
    let p = publisher.await.unwrap();
    assert_eq!(p["status"], 201, "{p}");
    assert_eq!(p["connection_state"], "connected", "{p}");
    assert_eq!(p["delete_status"], 200, "{p}");
    wait_sessions(&server, 0, Duration::from_secs(5), "after DELETE").await;

    // The same token as `?token=` works too.
    let query = format!("{url}?token={good}");
    let publisher = tokio::spawn(async move { whip_client(&query, 6.0, &[]).await });
    wait_live_within(&server, key, Duration::from_secs(30)).await;
    let p = publisher.await.unwrap();
    assert_eq!(p["status"], 201, "{p}");
    assert_eq!(p["connection_state"], "connected", "{p}");
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
