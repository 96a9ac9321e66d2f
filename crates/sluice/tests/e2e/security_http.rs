//! Attacks on the HTTP side, replayed with real clients (curl, ffmpeg, a WebSocket client) and
//! raw sockets where the attack needs them (a silent socket, HTTP/2 frames written by hand):
//! - connections that never time out (silent, idle keep-alive, idle HTTP/2 with and without
//!   TLS, stalled and dripping request bodies, clients that stop reading), and a flood of one
//!   listener starving the others; live streams must outlast every one of those limits;
//! - DNS rebinding and cross-site requests against the token-less API;
//! - `/metrics` without the API token;
//! - stream names with control characters, and client text forging log lines.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use rustls_pki_types::{CertificateDer, ServerName};
use sluice::{Config, ListenerKind, RunningServer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::Command;
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Runs curl (bounded) and returns the status code and the body.
async fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-S",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("curl finished in time")
        .expect("curl runs (the test command installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code = code.trim().parse().unwrap_or(0);
    (code, body.to_owned())
}

/// The JSON `code` of an error body.
fn code_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("<not a JSON error: {body}>"))
}

/// Waits (bounded) until `cond` holds.
async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads until the server closes (EOF or reset): `Some(elapsed)` from `since`, `None` when
/// it stayed open until `deadline`. Returns what was read too.
async fn closed_by<S: AsyncRead + Unpin>(
    sock: &mut S,
    since: Instant,
    deadline: Instant,
) -> (Option<Duration>, Vec<u8>) {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Err(_) => return (None, seen),
            Ok(Ok(0)) | Ok(Err(_)) => return (Some(since.elapsed()), seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn rtmp_url(server: &RunningServer, key: &str) -> String {
    format!("rtmp://{}/{key}", server.rtmp_addr())
}

/// A server with a looping publisher on `key`.
async fn live_server(cfg: Config, key: &str) -> (RunningServer, tokio::process::Child) {
    let server = start(cfg).await;
    let publisher = publish(&rtmp_url(&server, key), -1, &["-re"]);
    wait_live(&server, key).await;
    (server, publisher)
}

// HTTP/2 frames, written by hand (what an attacker's client would send).

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_DATA: u8 = 0x0;
const H2_HEADERS: u8 = 0x1;
const H2_SETTINGS: u8 = 0x4;
const H2_GOAWAY: u8 = 0x7;
const H2_END_STREAM: u8 = 0x1;

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The client preface and SETTINGS (`settings`: (id, value) pairs).
fn h2_hello(settings: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, v) in settings {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&v.to_be_bytes());
    }
    let mut out = H2_PREFACE.to_vec();
    out.extend(h2_frame(H2_SETTINGS, 0, 0, &payload));
    out
}

/// A GET on stream 1 (HPACK: indexed :method GET and :scheme, literal :path and
/// :authority without indexing).
fn h2_get(path: &str, authority: &str, https: bool) -> Vec<u8> {
    let mut block = vec![0x82, if https { 0x87 } else { 0x86 }];
    for (index, value) in [(4u8, path), (1u8, authority)] {
        assert!(value.len() < 127);
        block.push(index);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    h2_frame(H2_HEADERS, 0x4 | H2_END_STREAM, 1, &block)
}

/// Parses every whole frame in `buf` (type, flags, stream); keeps the rest.
fn h2_frames(buf: &mut Vec<u8>) -> Vec<(u8, u8, u32)> {
    let mut out = Vec::new();
    while buf.len() >= 9 {
        let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
        if buf.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
        out.push((buf[3], buf[4], stream));
        buf.drain(..9 + len);
    }
    out
}

/// Reads frames until `pred` matches one (bounded); returns every frame seen.
async fn h2_until<S: AsyncRead + Unpin>(
    sock: &mut S,
    pending: &mut Vec<u8>,
    within: Duration,
    pred: impl Fn(&(u8, u8, u32)) -> bool,
) -> Vec<(u8, u8, u32)> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let frames = h2_frames(pending);
        let hit = frames.iter().any(&pred);
        seen.extend(frames);
        if hit {
            return seen;
        }
        let n = tokio::time::timeout_at(deadline, sock.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no expected HTTP/2 frame in time; saw {seen:?}"))
            .expect("read");
        assert!(n > 0, "closed early; saw {seen:?}");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// A test CA and a leaf for localhost/127.0.0.1 written where the server reads them.
struct Pki {
    ca_der: Vec<u8>,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl Pki {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).expect("CA");
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = leaf.signed_by(&key, &ca).expect("leaf");
        let dir = temp_dir("security-pki");
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("key");
        Self {
            ca_der: ca.der().to_vec(),
            cert: cert_path,
            key: key_path,
        }
    }

    fn configure(&self, cfg: &mut Config) {
        cfg.tls.cert_file = self.cert.clone();
        cfg.tls.key_file = self.key.clone();
        cfg.tls.rtmps_listen = "127.0.0.1:0".parse().unwrap();
        cfg.tls.https_listen = "127.0.0.1:0".parse().unwrap();
    }

    /// A verified TLS connection as "localhost", offering `alpn`.
    async fn connect(
        &self,
        addr: SocketAddr,
        alpn: &[u8],
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca_der.clone()))
            .expect("CA");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp);
        tokio::time::timeout(Duration::from_secs(5), tls)
            .await
            .expect("handshake in time")
            .expect("verified handshake")
    }
}

/// The idle-close check of one HTTP/2 connection: a request, its whole answer, then
/// nothing: the server sends GOAWAY and closes after `idle`, not before half of it.
async fn h2_idle_is_closed<S: AsyncRead + AsyncWrite + Unpin>(
    sock: &mut S,
    authority: &str,
    https: bool,
    idle: Duration,
) {
    sock.write_all(&h2_hello(&[])).await.expect("preface");
    sock.write_all(&h2_get("/console/style.css", authority, https))
        .await
        .expect("request");
    let mut pending = Vec::new();
    let seen = h2_until(sock, &mut pending, Duration::from_secs(10), |&(t, f, s)| {
        s == 1 && (t == H2_DATA || t == H2_HEADERS) && f & H2_END_STREAM != 0
    })
    .await;
    assert!(
        seen.iter().any(|&(t, _, s)| t == H2_HEADERS && s == 1),
        "an answer: {seen:?}"
    );
    // Acknowledge the server's SETTINGS, as a real client would, then stay silent.
    sock.write_all(&h2_frame(H2_SETTINGS, 1, 0, &[]))
        .await
        .expect("ack");
    let answered = Instant::now();
    let (early, _) = closed_by(sock, answered, answered + idle / 2).await;
    assert_eq!(early, None, "closed before half the idle timeout");
    let (closed, rest) = closed_by(sock, answered, answered + idle + Duration::from_secs(5)).await;
    let after = closed.expect("the idle HTTP/2 connection was closed");
    assert!(
        after >= idle - Duration::from_millis(100),
        "closed after {after:?}"
    );
    pending.extend(rest);
    let frames = h2_frames(&mut pending);
    assert!(
        frames.iter().any(|&(t, _, _)| t == H2_GOAWAY),
        "a GOAWAY before the close: {frames:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 3: connections that never time out
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let mut cfg = test_config();
    cfg.limits.http_header_timeout_ms = 1000;
    let server = start(cfg).await;
    let mut socks = Vec::new();
    for _ in 0..3 {
        socks.push(
            TcpStream::connect(server.http_addr())
                .await
                .expect("connect"),
        );
    }
    // An HTTP/2 client that sends its preface and settings but never a request.
    let mut h2 = TcpStream::connect(server.http_addr())
        .await
        .expect("connect");
    h2.write_all(&h2_hello(&[])).await.expect("preface");
    let started = Instant::now();
    wait_for("four open", Duration::from_secs(5), || {
        server.open_connections(ListenerKind::Http) == 4
    })
    .await;
    socks.push(h2);
    for s in &mut socks {
        let (closed, _) = closed_by(s, started, started + Duration::from_secs(8)).await;
        let after = closed.expect("a connection that sends no request is closed");
        assert!(
            after >= Duration::from_millis(800) && after < Duration::from_secs(5),
            "closed after {after:?}"
        );
    }
    wait_for("none open", Duration::from_secs(5), || {
        server.open_connections(ListenerKind::Http) == 0
    })
    .await;
    let (code, _) = curl(&[&format!("http://{}/api/v1/server", server.http_addr())]).await;
    assert_eq!(code, 200);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let mut cfg = test_config();
    cfg.limits.http_idle_timeout_ms = 2000;
    let server = start(cfg).await;
    let addr = server.http_addr();
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    sock.write_all(format!("GET /console/style.css HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    // Read the whole answer (Content-Length).
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    let body_len = loop {
        let n = tokio::time::timeout_at(deadline, sock.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "closed before the answer");
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if raw.len() >= end + 4 + len {
                break len;
            }
        }
    };
    assert!(body_len > 0);
    let answered = Instant::now();
    // Kept alive for a while (the old header timeout would allow 10 s; the idle one is 2 s).
    let (early, _) = closed_by(&mut sock, answered, answered + Duration::from_millis(1200)).await;
    assert_eq!(early, None, "closed before the idle timeout");
    let (closed, _) = closed_by(&mut sock, answered, answered + Duration::from_secs(6)).await;
    let after = closed.expect("the idle keep-alive connection was closed");
    assert!(
        after >= Duration::from_millis(1900),
        "closed after {after:?}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_idle_h2c_connection_gets_a_goaway_and_is_closed() {
    let mut cfg = test_config();
    cfg.limits.http_idle_timeout_ms = 2000;
    let server = start(cfg).await;
    let addr = server.http_addr();
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    h2_idle_is_closed(&mut sock, &addr.to_string(), false, Duration::from_secs(2)).await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_idle_http2_over_tls_connection_gets_a_goaway_and_is_closed() {
    let pki = Pki::new();
    let mut cfg = test_config();
    pki.configure(&mut cfg);
    cfg.limits.http_idle_timeout_ms = 2000;
    cfg.limits.http_header_timeout_ms = 1000;
    let server = start(cfg).await;
    let https = server.https_addr().expect("https listener");
    let mut tls = pki.connect(https, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    h2_idle_is_closed(
        &mut tls,
        &format!("localhost:{}", https.port()),
        true,
        Duration::from_secs(2),
    )
    .await;
    // A TLS client that finishes the handshake and then says nothing.
    let mut silent = pki.connect(https, b"h2").await;
    let started = Instant::now();
    let (closed, _) = closed_by(&mut silent, started, started + Duration::from_secs(6)).await;
    let after = closed.expect("a silent TLS connection is closed");
    assert!(after < Duration::from_secs(4), "closed after {after:?}");
    server.shutdown(Duration::from_secs(5)).await;
}

/// A body that stalls: curl declares more than it sends (`Content-Length` given by hand), so
/// the server waits for bytes that never come.
async fn stalled_upload(
    url: &str,
    content_type: &str,
    sent: &Path,
    declared: usize,
) -> (u16, String, Duration) {
    let started = Instant::now();
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Content-Type: {content_type}"),
        "-H",
        &format!("Content-Length: {declared}"),
        "--data-binary",
        &format!("@{}", sent.display()),
        url,
    ])
    .await;
    (code, body, started.elapsed())
}

#[tokio::test]
async fn stalled_request_bodies_get_408_within_the_body_timeout() {
    let mut cfg = test_config();
    cfg.limits.http_body_timeout_ms = 1500;
    let key = "live/stall";
    let (server, mut publisher) = live_server(cfg, key).await;
    let http = server.http_addr();
    let vod_dir = server.control().config.vod.dir.clone();
    let dir = temp_dir("stall-bodies");
    // A WHEP offer's start, a recording request's start, and an FLV upload's first bytes.
    let sdp = dir.join("offer.sdp");
    std::fs::write(&sdp, "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\n").expect("write");
    let json = dir.join("start.json");
    std::fs::write(&json, "{\"form").expect("write");
    let flv_head = dir.join("head.flv");
    let fixture = std::fs::read(fixture()).expect("fixture");
    std::fs::write(&flv_head, &fixture[..4096]).expect("write");
    let cases = [
        (
            format!("http://{http}/{key}/whep"),
            "application/sdp",
            &sdp,
            4000,
        ),
        (
            format!("http://{http}/api/v1/streams/{key}/recording"),
            "application/json",
            &json,
            2000,
        ),
        (
            format!("http://{http}/api/v1/vod?name=stalled.flv"),
            "video/x-flv",
            &flv_head,
            1 << 20,
        ),
    ];
    for (url, ct, file, declared) in &cases {
        let (code, body, took) = stalled_upload(url, ct, file, *declared).await;
        assert_eq!(code, 408, "{url}: {body}");
        assert_eq!(code_of(&body), "body_timeout", "{url}");
        assert!(
            took >= Duration::from_millis(1300) && took < Duration::from_secs(6),
            "{url}: answered after {took:?}"
        );
    }
    // Nothing was started or stored, and the upload's temporary file is gone.
    let (_, list) = curl(&[&format!("http://{http}/api/v1/recordings")]).await;
    assert!(list.contains("\"recordings\":[]"), "{list}");
    let left: Vec<_> = std::fs::read_dir(&vod_dir)
        .expect("vod dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload-") || n == "stalled.flv")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = publisher.kill().await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_dripping_upload_is_cut_by_the_minimum_rate() {
    let mut cfg = test_config();
    cfg.limits.http_body_timeout_ms = 1000;
    cfg.limits.http_body_min_bytes_per_s = 4096;
    let server = start(cfg).await;
    let http = server.http_addr();
    // curl itself limits its upload to 1000 bytes/s: never a 1 s gap, but a quarter of the
    // minimum rate.
    let file = temp_dir("drip").join("clip.flv");
    std::fs::copy(fixture(), &file).expect("copy");
    let started = Instant::now();
    let (code, body) = curl(&[
        "--limit-rate",
        "1000",
        "-H",
        "Content-Type: video/x-flv",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{http}/api/v1/vod?name=drip.flv"),
    ])
    .await;
    let took = started.elapsed();
    assert_eq!(code, 408, "{body}");
    assert!(took < Duration::from_secs(6), "cut after {took:?}");
    // A fast upload of the same file is stored.
    let (code, body) = curl(&[
        "-H",
        "Content-Type: video/x-flv",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{http}/api/v1/vod?name=fast.flv"),
    ])
    .await;
    assert_eq!(code, 201, "{body}");
    server.shutdown(Duration::from_secs(5)).await;
}

/// A socket whose receive buffer is tiny, so the server's sends back up at once.
async fn tiny_window(addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().expect("socket");
    s.set_recv_buffer_size(4096).expect("rcvbuf");
    s.connect(addr).await.expect("connect")
}

#[tokio::test]
async fn viewers_that_stop_reading_are_closed_after_the_send_timeout() {
    let mut cfg = test_config();
    cfg.limits.http_send_timeout_ms = 2000;
    let server = start(cfg).await;
    let key = "live/unread";
    // Forty times real time (about 2 MB/s), so the server's socket buffers (up to 4 MB on
    // loopback) fill in seconds behind a client that does not read.
    let mut publisher = publish(&rtmp_url(&server, key), -1, &["-readrate", "40"]);
    wait_live(&server, key).await;
    let http = server.http_addr();
    // HTTP/1.1 FLV viewer that never reads.
    let mut h1 = tiny_window(http).await;
    h1.write_all(format!("GET /{key}.flv HTTP/1.1\r\nHost: {http}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    // WebSocket-FLV viewer that never reads.
    let ws_sock = tiny_window(http).await;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{http}/{key}.flv"), ws_sock)
        .await
        .expect("websocket");
    // HTTP/2 viewer that never opens its flow-control window (initial window 0).
    let mut h2 = TcpStream::connect(http).await.expect("connect");
    h2.write_all(&h2_hello(&[(0x4, 0)])).await.expect("preface");
    h2.write_all(&h2_get(&format!("/{key}.flv"), &http.to_string(), false))
        .await
        .expect("request");
    let started = Instant::now();
    wait_for("three viewers", Duration::from_secs(10), || {
        server.open_connections(ListenerKind::Http) == 3
    })
    .await;
    // All three are closed (their slots freed) once their sends stall for 2 s.
    wait_for(
        "the stalled viewers closed",
        Duration::from_secs(30),
        || server.open_connections(ListenerKind::Http) == 0,
    )
    .await;
    eprintln!(
        "FIGURE stalled viewers closed after {:?}",
        started.elapsed()
    );
    drop((h1, ws, h2));
    // A viewer that reads keeps playing.
    let d = ffmpeg_decode(&format!("http://{http}/{key}.flv"), 2.0).await;
    assert!(d.video_frames >= 25, "{d:?}");
    let _ = publisher.kill().await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_outlast_every_http_timeout() {
    let mut cfg = test_config();
    cfg.limits.http_header_timeout_ms = 1000;
    cfg.limits.http_idle_timeout_ms = 1000;
    cfg.limits.http_body_timeout_ms = 1000;
    cfg.limits.http_send_timeout_ms = 1000;
    cfg.hls.target_duration_ms = 4000;
    let key = "live/long";
    let (server, mut publisher) = live_server(cfg, key).await;
    let http = server.http_addr();
    // HTTP-FLV with curl: still receiving when curl's own 6 s limit ends it (exit 28).
    let flv = tokio::spawn({
        let url = format!("http://{http}/{key}.flv");
        async move {
            Command::new("curl")
                .args(["-s", "--max-time", "6", "-o", "-", &url])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .expect("curl")
        }
    });
    // WebSocket-FLV: messages keep coming for 6 s.
    let ws = tokio::spawn({
        let url = format!("ws://{http}/{key}.flv");
        async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
            let until = Instant::now() + Duration::from_secs(6);
            let mut bytes = 0usize;
            while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, ws.next()).await {
                bytes += m.len();
            }
            bytes
        }
    });
    // An HLS blocking request for the segment being made now (about 4 s away).
    let (code, playlist) = curl(&[&format!("http://{http}/{key}/media.m3u8")]).await;
    assert_eq!(code, 200, "{playlist}");
    let sequence: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let segments = playlist
        .lines()
        .filter(|l| l.starts_with("#EXTINF"))
        .count() as u64;
    let next = sequence + segments;
    let asked = Instant::now();
    let (code, blocked) = curl(&[&format!("http://{http}/{key}/media.m3u8?_HLS_msn={next}")]).await;
    let waited = asked.elapsed();
    assert_eq!(code, 200, "{blocked}");
    assert!(
        waited > Duration::from_millis(1500),
        "the blocking request waited {waited:?}, longer than every timeout"
    );
    let flv = flv.await.expect("join");
    assert_eq!(
        flv.status.code(),
        Some(28),
        "curl's own time limit ended the FLV stream"
    );
    assert!(
        flv.stdout.len() > 300_000,
        "{} FLV bytes in 6 s",
        flv.stdout.len()
    );
    let ws_bytes = ws.await.expect("join");
    assert!(ws_bytes > 300_000, "{ws_bytes} WebSocket-FLV bytes in 6 s");
    let _ = publisher.kill().await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_flood_of_one_listener_leaves_the_others_their_share() {
    let mut cfg = test_config();
    // 40 connections: RTMP and HTTP keep 10 each, 20 are shared (SRT off: a third running
    // listener would keep its own 10).
    cfg.srt.enabled = false;
    cfg.limits.max_connections = 40;
    cfg.limits.listener_reserve_percent = 25;
    cfg.limits.http_header_timeout_ms = 60_000;
    let server = start(cfg).await;
    let http = server.http_addr();
    // 60 silent HTTP connections (loopback is exempt from the per-address limits).
    let mut flood = Vec::new();
    for _ in 0..60 {
        flood.push(TcpStream::connect(http).await.expect("connect"));
    }
    wait_for("the HTTP share full", Duration::from_secs(10), || {
        server.open_connections(ListenerKind::Http) == 30
    })
    .await;
    // RTMP publishing and playing still work.
    let key = "live/during-flood";
    let mut publisher = publish(&rtmp_url(&server, key), -1, &["-re"]);
    wait_live(&server, key).await;
    let d = ffmpeg_decode(&rtmp_url(&server, key), 1.0).await;
    assert!(d.video_frames >= 20, "{d:?}");
    assert_eq!(server.open_connections(ListenerKind::Http), 30);
    let _ = publisher.kill().await;
    drop(flood);
    server.shutdown(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------------------
// Finding 7: CSRF and DNS rebinding against the token-less API
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_tokenless_api_answers_only_to_its_own_host_names() {
    let mut cfg = test_config();
    cfg.http.allowed_hosts = vec!["media.example".to_owned()];
    let server = start(cfg).await;
    let http = server.http_addr();
    let url = format!("http://{http}/api/v1/server");
    // A rebinding page's requests carry its own name.
    let (code, body) = curl(&["-H", &format!("Host: evil.example:{}", http.port()), &url]).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(code_of(&body), "host_not_allowed");
    assert!(body.contains("http.allowed_hosts"), "{body}");
    for host in [
        format!("localhost:{}", http.port()),
        http.to_string(),
        format!("[::1]:{}", http.port()),
        "media.example".to_owned(),
    ] {
        let (code, body) = curl(&["-H", &format!("Host: {host}"), &url]).await;
        assert_eq!(code, 200, "{host}: {body}");
    }
    // Media routes and the console are not behind the API guard.
    let (code, _) = curl(&["-H", "Host: evil.example", &format!("http://{http}/")]).await;
    assert_eq!(code, 200);
    server.shutdown(Duration::from_secs(5)).await;

    // "*" turns the check off; a token makes it moot (the token decides).
    let mut cfg = test_config();
    cfg.http.allowed_hosts = vec!["*".to_owned()];
    let server = start(cfg).await;
    let url = format!("http://{}/api/v1/server", server.http_addr());
    let (code, _) = curl(&["-H", "Host: evil.example", &url]).await;
    assert_eq!(code, 200);
    server.shutdown(Duration::from_secs(5)).await;
    let mut cfg = test_config();
    cfg.auth.api_token = "t0ken".to_owned();
    let server = start(cfg).await;
    let url = format!("http://{}/api/v1/server", server.http_addr());
    let (code, _) = curl(&[
        "-H",
        "Host: any.example",
        "-H",
        "Authorization: Bearer t0ken",
        &url,
    ])
    .await;
    assert_eq!(code, 200);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn cross_site_state_changes_are_refused() {
    let key = "live/csrf";
    let (server, mut publisher) = live_server(test_config(), key).await;
    let http = server.http_addr();
    let vod_dir = server.control().config.vod.dir.clone();
    let recording = format!("http://{http}/api/v1/streams/{key}/recording");
    let upload = format!("http://{http}/api/v1/vod");
    let fixture_arg = format!("file=@{}", fixture().display());
    let evil = "Origin: http://evil.example";
    // The attacks as reported: a text/plain recording request and a multipart upload from
    // another site's page, with its Host, and with ours.
    for host in ["Host: evil.example".to_owned(), format!("Host: {http}")] {
        let (code, body) = curl(&[
            "-H",
            &host,
            "-H",
            evil,
            "-H",
            "Content-Type: text/plain",
            "--data",
            "{}",
            &recording,
        ])
        .await;
        assert_eq!(code, 403, "{host}: {body}");
        let (code, body) = curl(&["-H", &host, "-H", evil, "-F", &fixture_arg, &upload]).await;
        assert_eq!(code, 403, "{host}: {body}");
    }
    // Fetch metadata alone is enough: another port of this host is another site's page.
    let (code, body) = curl(&[
        "-H",
        "Sec-Fetch-Site: same-site",
        "-X",
        "DELETE",
        &format!("http://{http}/api/v1/streams/{key}"),
    ])
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(code_of(&body), "cross_site");
    assert!(
        server.hub().stream(key).is_some_and(|s| s.is_live),
        "not stopped"
    );
    let (_, list) = curl(&[&format!("http://{http}/api/v1/recordings")]).await;
    assert!(list.contains("\"recordings\":[]"), "{list}");
    // Files only: the recordings directory is made at start.
    let stored = std::fs::read_dir(&vod_dir)
        .expect("vod")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file()))
        .count();
    assert_eq!(stored, 0, "nothing uploaded");

    // The same requests from our own origin (the console) or a non-browser client: a JSON
    // body must say it is JSON.
    let own = format!("Origin: http://{http}");
    let (code, body) = curl(&[
        "-H",
        &own,
        "-H",
        "Content-Type: text/plain",
        "--data",
        "{}",
        &recording,
    ])
    .await;
    assert_eq!(code, 415, "{body}");
    assert_eq!(code_of(&body), "unsupported_media_type");
    let (code, body) = curl(&[
        "-H",
        &own,
        "-H",
        "Sec-Fetch-Site: same-origin",
        "-H",
        "Content-Type: application/json",
        "--data",
        "{\"format\":\"flv\"}",
        &recording,
    ])
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = curl(&["-X", "DELETE", &recording]).await;
    assert_eq!(code, 204, "{body}");
    let (code, body) = curl(&["-H", &own, "-F", &fixture_arg, &upload]).await;
    assert_eq!(code, 201, "{body}");
    let _ = publisher.kill().await;
    server.shutdown(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------------------
// Finding 9: /metrics and the API token
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_need_a_token_once_one_is_set() {
    let key = "live/secret-key";
    let mut cfg = test_config();
    cfg.auth.api_token = "api-s3cret".to_owned();
    cfg.auth.metrics_token = "scrape-only".to_owned();
    cfg.http.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let (server, mut publisher) = live_server(cfg, key).await;
    let metrics_addr = server.metrics_addr().expect("metrics listener");
    let mut main_cfg = test_config();
    main_cfg.auth.api_token = "api-s3cret".to_owned();
    let main = start(main_cfg).await;
    for url in [
        format!("http://{metrics_addr}/metrics"),
        format!("http://{}/metrics", main.http_addr()),
    ] {
        let (code, body) = curl(&[&url]).await;
        assert_eq!(code, 401, "{url}: {body}");
        assert!(!body.contains(key));
        let (code, _) = curl(&["-H", "Authorization: Bearer wrong", &url]).await;
        assert_eq!(code, 401, "{url}");
        let (code, body) = curl(&["-H", "Authorization: Bearer api-s3cret", &url]).await;
        assert_eq!(code, 200, "{url}");
        assert!(body.contains("sluice_"), "{body}");
    }
    // The scrape token opens /metrics, not the API.
    let url = format!("http://{metrics_addr}/metrics");
    let (code, body) = curl(&["-H", "Authorization: Bearer scrape-only", &url]).await;
    assert_eq!(code, 200);
    assert!(body.contains(key), "the streams are listed for the scraper");
    let api = format!("http://{}/api/v1/server", server.http_addr());
    let (code, _) = curl(&["-H", "Authorization: Bearer scrape-only", &api]).await;
    assert_eq!(code, 401);
    let _ = publisher.kill().await;
    server.shutdown(Duration::from_secs(5)).await;
    main.shutdown(Duration::from_secs(5)).await;
    // Without a token /metrics stays open (as documented).
    let open = start(test_config()).await;
    let (code, _) = curl(&[&format!("http://{}/metrics", open.http_addr())]).await;
    assert_eq!(code, 200);
    open.shutdown(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------------------
// Finding 8: control characters in names, and forged log lines
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn names_with_control_characters_are_refused_by_every_protocol() {
    let key = "live/ok";
    let (server, mut publisher) = live_server(test_config(), key).await;
    let http = server.http_addr();
    let sdp = "v=0\r\n";
    for bad in [
        "crlf%0d%0aX-Injected:%201",
        "nul%00",
        "esc%1b%5b2J",
        "del%7f",
        "c1%c2%85",
    ] {
        for (method, path, extra) in [
            (
                "POST",
                format!("/pub/{bad}/whip"),
                vec!["-H", "Content-Type: application/sdp", "--data", sdp],
            ),
            (
                "POST",
                format!("/live/{bad}/whep"),
                vec!["-H", "Content-Type: application/sdp", "--data", sdp],
            ),
            ("GET", format!("/live/{bad}.flv"), vec![]),
            ("GET", format!("/live/{bad}/index.m3u8"), vec![]),
            ("GET", format!("/{bad}/x/media.m3u8"), vec![]),
        ] {
            let url = format!("http://{http}{path}");
            let mut args = vec!["-X", method];
            args.extend(extra);
            args.push(&url);
            let (code, body) = curl(&args).await;
            assert_eq!(code, 400, "{method} {path}: {body}");
            assert_eq!(code_of(&body), "bad_stream", "{method} {path}");
            assert!(body.contains("control character"), "{body}");
        }
    }
    // RTMP: publish and play of a name with CR LF are refused, the connection stays usable.
    let mut c = rtmp_client::RtmpClient::connect(server.rtmp_addr(), "live").await;
    match c.publish("bad\r\nX-Injected: 1").await {
        rtmp::ClientEvent::Status { code, .. } => assert_eq!(code, "NetStream.Publish.BadName"),
        other => panic!("publish of a bad name: {other:?}"),
    }
    let mut p = rtmp_client::RtmpClient::connect(server.rtmp_addr(), "live").await;
    match p.play("bad\u{1b}[2J").await {
        rtmp::ClientEvent::Status { level, .. } => assert_eq!(level, "error"),
        other => panic!("play of a bad name: {other:?}"),
    }
    match p.play("ok").await {
        rtmp::ClientEvent::PlayStarted { .. } => {}
        other => panic!("play of a good name after a refused one: {other:?}"),
    }
    assert!(server.hub().stream("live/bad\r\nX-Injected: 1").is_none());
    let _ = publisher.kill().await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn client_text_cannot_forge_log_lines() {
    let mut child = sluice_process()
        .args([
            "--log-level",
            "debug,hyper=info,h2=info,str0m=info,rustls=info",
        ])
        .env(
            "SLUICE_VOD_DIR",
            temp_dir("log-vod").to_string_lossy().as_ref(),
        )
        .env(
            "SLUICE_RECORD_DIR",
            temp_dir("log-rec").to_string_lossy().as_ref(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sluice runs");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut rtmp, mut http) = (None, None);
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while rtmp.is_none() || http.is_none() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("listening lines in time")
            .expect("read")
            .expect("server running");
        let addr = |tag: &str| {
            line.split(tag)
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse::<SocketAddr>().ok())
        };
        if line.contains("rtmp listening") {
            rtmp = addr("rtmp_addr=");
        } else if line.contains("http listening") {
            http = addr("http_addr=");
        }
        log.push(line);
    }
    let (rtmp, http) = (rtmp.expect("rtmp"), http.expect("http"));
    let collector = tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            log.push(l);
        }
        log
    });
    // An RTMP app and stream names with CR LF (the app is logged when it connects).
    let mut c = rtmp_client::RtmpClient::connect(rtmp, "live\r\nX-Injected: rtmp-app").await;
    let _ = c.publish("s\r\nX-Injected: rtmp-stream").await;
    // The HTTP forms of the report.
    let sdp = "v=0\r\n";
    for (method, path) in [
        ("POST", "/pub/crlf%0d%0aX-Injected:%20whip/whip"),
        ("POST", "/live/crlf%0d%0aX-Injected:%20whep/whep"),
        ("GET", "/live/crlf%0d%0aX-Injected:%20flv.flv"),
        ("GET", "/live/crlf%0d%0aX-Injected:%20hls/index.m3u8"),
        ("DELETE", "/api/v1/streams/live/crlf%0d%0aX-Injected:%20api"),
        ("DELETE", "/api/v1/vod/x%0d%0aX-Injected:%20vod"),
    ] {
        let url = format!("http://{http}{path}");
        let (code, _) = curl(&[
            "-X",
            method,
            "-H",
            "Content-Type: application/sdp",
            "--data",
            sdp,
            &url,
        ])
        .await;
        assert!((400..500).contains(&code), "{method} {path}: {code}");
    }
    drop(c);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().expect("pid");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let log = tokio::time::timeout(Duration::from_secs(5), collector)
        .await
        .expect("log read in time")
        .expect("join");
    let forged: Vec<&String> = log
        .iter()
        .filter(|l| l.trim_start().starts_with("X-Injected"))
        .collect();
    assert!(forged.is_empty(), "forged log lines: {forged:?}");
    // The RTMP app did reach the log, escaped (so the check above had something to catch).
    assert!(
        log.iter()
            .any(|l| l.contains("rtmp connect") && l.contains("\\u{d}\\u{a}X-Injected: rtmp-app")),
        "the connect line with the escaped app: {log:#?}"
    );
}
