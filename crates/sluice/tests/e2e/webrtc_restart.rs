//! ICE restarts of WHEP and WHIP sessions (RFC 9725 §4.4): the PATCH exchange at the HTTP
//! level (200 with our new ufrag/pwd and a new ETag, 412 on a stale ETag, 428 without
//! If-Match, 422 for unusable fragments, 400 for a non-UTF-8 body), and headless Chromium
//! restarting ICE on the player page while it keeps decoding over the new path.

use crate::common;
use crate::webrtc_support as support;

use std::time::Duration;

use common::{RawHttpResponse, http_request_with, publish, start, test_config, wait_live};
use serde_json::Value;
use support::{OFFER, chromium_script, post_offer};

/// A restart fragment as a browser sends it: new ufrag/pwd, the first m-line, mid and a
/// candidate.
const RESTART: &str = "a=ice-ufrag:efgh\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
    a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n";

async fn patch(
    addr: std::net::SocketAddr,
    path: &str,
    if_match: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> RawHttpResponse {
    let len = body.len().to_string();
    let mut headers = vec![("Content-Type", content_type), ("Content-Length", &len)];
    if let Some(m) = if_match {
        headers.push(("If-Match", m));
    }
    http_request_with(addr, "PATCH", path, &headers, body).await
}

fn sdp_value<'a>(sdp: &'a str, prefix: &str) -> Option<&'a str> {
    sdp.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(prefix))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_restarts_ice_with_new_credentials_and_etag() {
    let server = start(test_config()).await;
    let http = server.http_addr();
    let rtmp = format!("rtmp://{}/live/r", server.rtmp_addr());
    let mut ff = publish(&rtmp, 20, &["-re"]);
    wait_live(&server, "live/r").await;

    let r = post_offer(http, "/live/r/whep", OFFER.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let answer = r.text();
    let location = r.header("Location").unwrap().to_owned();
    let etag0 = r.header("ETag").unwrap().to_owned();
    let ufrag0 = sdp_value(&answer, "a=ice-ufrag:").unwrap().to_owned();
    const FRAG: &str = "application/trickle-ice-sdpfrag";

    // A stale ETag: 412, nothing changed.
    let r = patch(http, &location, Some("\"stale\""), FRAG, RESTART.as_bytes()).await;
    assert_eq!(r.status, 412, "{}", r.text());
    assert_eq!(r.json()["code"], "etag_mismatch");
    // A restart without If-Match: 428 (RFC 9725 requires If-Match: *).
    let r = patch(http, &location, None, FRAG, RESTART.as_bytes()).await;
    assert_eq!(r.status, 428, "{}", r.text());
    // Unusable fragments: a new ufrag without a pwd, a pwd too short, bad characters.
    for bad in [
        "a=ice-ufrag:efgh\r\n",
        "a=ice-ufrag:efgh\r\na=ice-pwd:short\r\n",
        "a=ice-ufrag:ef gh\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n",
    ] {
        let r = patch(http, &location, Some("*"), FRAG, bad.as_bytes()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        assert_eq!(r.json()["code"], "bad_ice_restart");
    }
    // Not UTF-8: 400; not a fragment: 415.
    let r = patch(http, &location, Some("*"), FRAG, &[0xff, 0xfe, b'a']).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = patch(
        http,
        &location,
        Some("*"),
        "application/sdp",
        RESTART.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());

    // The restart: 200 with our new credentials, candidates and a new ETag.
    let r = patch(http, &location, Some("*"), FRAG, RESTART.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some(FRAG));
    let etag1 = r.header("ETag").unwrap().to_owned();
    assert_ne!(etag1, etag0);
    let frag = r.text();
    eprintln!("restart answer:\n{frag}");
    let ufrag1 = sdp_value(&frag, "a=ice-ufrag:").unwrap();
    let pwd1 = sdp_value(&frag, "a=ice-pwd:").unwrap();
    assert_ne!(ufrag1, ufrag0);
    assert_ne!(Some(pwd1), sdp_value(&answer, "a=ice-pwd:"));
    assert!(pwd1.len() >= 22, "{frag}");
    assert_eq!(sdp_value(&frag, "a=mid:"), Some("0"));
    let cand = sdp_value(&frag, "a=candidate:").unwrap();
    let udp = server.webrtc_addr().unwrap();
    assert!(
        cand.contains(&format!("{} {} typ host", udp.ip(), udp.port())),
        "{frag}"
    );
    assert!(frag.contains("a=end-of-candidates"));

    // The old ETag is stale now; trickle with the new one (same new ufrag) is 204.
    let trickle = "a=ice-ufrag:efgh\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
        a=candidate:2 1 udp 2122260222 127.0.0.1 50001 typ host\r\n";
    let r = patch(http, &location, Some(&etag0), FRAG, trickle.as_bytes()).await;
    assert_eq!(r.status, 412, "{}", r.text());
    let r = patch(http, &location, Some(&etag1), FRAG, trickle.as_bytes()).await;
    assert_eq!(r.status, 204, "{}", r.text());
    // A second restart, with the current ETag as If-Match.
    let again = "a=ice-ufrag:ijkl\r\na=ice-pwd:ABCDEFGHIJKLMNOPQRSTUVWX\r\n";
    let r = patch(http, &location, Some(&etag1), FRAG, again.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ufrag2 = sdp_value(&r.text(), "a=ice-ufrag:").unwrap().to_owned();
    assert_ne!(ufrag2, ufrag1);
    assert_ne!(r.header("ETag").unwrap(), etag1);
    assert_eq!(server.webrtc_sessions(), 1);

    // DELETE ends it; a PATCH afterwards finds nothing.
    let r = http_request_with(http, "DELETE", &location, &[], b"").await;
    assert_eq!(r.status, 200);
    let r = patch(http, &location, Some("*"), FRAG, RESTART.as_bytes()).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let _ = ff.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// Runs `restart_test.mjs` on the player page.
async fn chromium_restart(page: &str) -> Value {
    chromium_script(
        "restart_test.mjs",
        &[page.to_owned()],
        Duration::from_secs(120),
    )
    .await
}

/// Chromium plays an RTMP-published stream on the player page, restarts ICE through the
/// page's hook, and keeps decoding over a new candidate pair that the server answered with
/// the new credentials, in the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_viewer_restarts_ice_and_keeps_decoding() {
    let server = start(test_config()).await;
    let rtmp = format!("rtmp://{}/live/restart", server.rtmp_addr());
    let mut ff = publish(&rtmp, 30, &["-re"]);
    wait_live(&server, "live/restart").await;
    let url = format!("http://{}/live/restart/", server.http_addr());
    let page = tokio::spawn(async move { chromium_restart(&url).await });
    // While the page plays and restarts, there is exactly one WebRTC session.
    let mut most = 0;
    while !page.is_finished() {
        most = most.max(server.webrtc_sessions());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = page.await.unwrap();
    eprintln!("chromium ice restart: {v}");
    assert_eq!(most, 1, "one session all along: {v}");
    assert_eq!(v["restarted"], true, "{v}");
    let (b, a) = (&v["before"]["stats"], &v["after"]["stats"]);
    assert!(b["framesDecoded"].as_u64().unwrap() >= 25, "{v}");
    assert_ne!(
        b["remoteUfrag"], a["remoteUfrag"],
        "server ufrag changed: {v}"
    );
    assert!(a["remoteUfrag"].is_string(), "{v}");
    // A new selected pair, whose checks the server answered (with the new password).
    assert_ne!(b["pair"]["id"], a["pair"]["id"], "{v}");
    assert_eq!(a["pair"]["state"], "succeeded", "{v}");
    assert!(a["pair"]["responsesReceived"].as_u64().unwrap() > 0, "{v}");
    // And decoding went on after it.
    assert!(
        a["framesDecoded"].as_u64().unwrap() >= b["framesDecoded"].as_u64().unwrap() + 50,
        "video frames must grow after the restart: {v}"
    );
    assert!(
        a["totalSamplesReceived"].as_u64().unwrap() > b["totalSamplesReceived"].as_u64().unwrap(),
        "{v}"
    );
    assert_eq!(v["after"]["status"], "connected", "{v}");
    let _ = ff.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
