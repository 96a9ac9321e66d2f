//! Helpers of the WebRTC e2e tests: the aiortc and Chromium drivers, hostile datagrams,
//! STUN requests, process CPU.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use sluice::RunningServer;
use tokio::process::Command;
use tokio::time::Instant;

pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_PYTHON") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/python3")
}

pub fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/webrtc/whep_client.py")
}

/// Runs the aiortc WHEP player for `seconds` and returns its JSON summary.
pub async fn whep_client(url: &str, seconds: f32, keep: bool) -> Value {
    whep_client_with(url, seconds, if keep { &["--keep"] } else { &[] }).await
}

/// Runs the aiortc WHEP player for `seconds` with `extra` arguments (`--keep`,
/// `--opus-digests`) and returns its JSON summary.
pub async fn whep_client_with(url: &str, seconds: f32, extra: &[&str]) -> Value {
    let mut args = vec![url.to_owned(), seconds.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    run_client(&client_script(), &args, seconds).await
}

/// Runs the aiortc WHIP publisher of the fixture for `seconds` (`extra`: `--token T`,
/// `--keep`, `--opus-digests`) and returns its JSON summary.
pub async fn whip_client(url: &str, seconds: f32, extra: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/webrtc/whip_client.py");
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo.flv");
    let mut args = vec![
        url.to_owned(),
        seconds.to_string(),
        fixture.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run_client(&script, &args, seconds).await
}

/// Runs one of the aiortc scripts (bounded: `seconds` + 30 s) and parses its last line.
async fn run_client(script: &std::path::Path, args: &[String], seconds: f32) -> Value {
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs_f32(seconds + 30.0), out)
        .await
        .expect("aiortc client finishes in time")
        .expect("python with aiortc runs (scripts/test.sh creates .venv-test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "client printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub async fn wait_sessions(server: &RunningServer, want: usize, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while server.webrtc_sessions() != want {
        assert!(
            Instant::now() < deadline,
            "{what}: {} WebRTC sessions, want {want}",
            server.webrtc_sessions()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CPU time (user + system, ms) of this process, from /proc/self/stat (100 Hz ticks).
pub fn process_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat; after the ")" the first field is number 3.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) * 10
}

/// A small deterministic generator for hostile datagrams.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Sends `n` random datagrams (raw noise, and STUN-shaped ones with bogus usernames).
pub async fn blast_noise(target: std::net::SocketAddr, n: usize) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for i in 0..n {
        let len = (rng.next() % 1400) as usize + 1;
        let mut d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 3 == 0 && d.len() >= 20 {
            // STUN binding request header with the magic cookie and a USERNAME attribute.
            d[0] = 0x00;
            d[1] = 0x01;
            d[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        }
        let _ = sock.send_to(&d, target).await;
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// A STUN binding request with USERNAME, PRIORITY and a bogus MESSAGE-INTEGRITY: routed to
/// the session by its ufrag, refused by str0m's integrity check.
pub fn stun_request(username: &str) -> Vec<u8> {
    let mut attr = Vec::new();
    attr.extend_from_slice(&[0x00, 0x06]);
    attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attr.extend_from_slice(username.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    attr.extend_from_slice(&[0x00, 0x24, 0, 4, 0x6E, 0, 0x1E, 0xFF]);
    attr.extend_from_slice(&[0x00, 0x08, 0, 20]);
    attr.extend_from_slice(&[0xAB; 20]);
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&attr);
    m
}

/// Runs the Chromium driver `script` of tests/webrtc/ (Node with playwright-core, whose
/// directory goes last on its command line, after `args`) and returns the JSON it prints
/// last; panics when it does not finish within `within` or prints no JSON.
pub async fn chromium_script(script: &str, args: &[String], within: Duration) -> Value {
    let pw = crate::common::playwright_core().await;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/webrtc")
        .join(script);
    let run = Command::new("node")
        .arg(path)
        .args(args)
        .arg(&pw)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(within, run)
        .await
        .unwrap_or_else(|_| panic!("{script} finished within {within:?}"))
        .expect("node runs (scripts/test.sh installs nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A minimal browser-like offer (H.264 mode 1 and Opus), enough for the checks before ICE.
pub const OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\na=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack\r\na=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

/// POSTs an SDP offer (`application/sdp`) to `path` on the HTTP listener `addr`.
pub async fn post_offer(
    addr: std::net::SocketAddr,
    path: &str,
    body: &[u8],
) -> crate::common::RawHttpResponse {
    let len = body.len().to_string();
    crate::common::http_request_with(
        addr,
        "POST",
        path,
        &[
            ("Content-Type", "application/sdp"),
            ("Content-Length", &len),
        ],
        body,
    )
    .await
}
