//! TLS end to end: RTMPS with ffmpeg, HTTPS (HTTP-FLV, HLS, HTTP/2 by ALPN) with ffmpeg,
//! ffprobe and curl, WSS with tokio-tungstenite over rustls, certificate reload under live
//! sessions, bad certificate files, the plain-HTTP redirect, and hostile handshakes.
//!
//! Certificates are made in the test with rcgen: a CA, and leaves for localhost/127.0.0.1
//! signed by it (the rustls clients here trust the CA; ffmpeg and curl -k do not verify).

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use rustls_pki_types::{CertificateDer, ServerName};
use sluice::{Config, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A test CA and the files the server reads.
struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
}

impl Pki {
    fn new(what: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sluice test CA");
        let key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(params, key).expect("CA");
        Self {
            ca,
            dir: temp_dir(what),
        }
    }

    fn cert_file(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// Writes a new leaf for localhost/127.0.0.1 named `cn`; returns its DER.
    fn write_leaf(&self, cn: &str) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf");
        // The key first, then the certificate, each replaced whole (rename): the server's
        // watcher may look at any moment.
        replace(&self.key_file(), key.serialize_pem().as_bytes());
        replace(&self.cert_file(), cert.pem().as_bytes());
        cert.der().to_vec()
    }

    /// A rustls client trusting the test CA, offering `alpn`.
    fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca.der().to_vec()))
            .expect("CA added");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(cfg))
    }

    /// Connects and completes a verified TLS handshake as "localhost".
    async fn connect(&self, addr: SocketAddr) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        tokio::time::timeout(
            Duration::from_secs(5),
            self.connector(&[]).connect(name, tcp),
        )
        .await
        .expect("handshake in time")
        .expect("verified handshake")
    }
}

fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The end-entity certificate the server presented.
fn peer_leaf(s: &TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a peer certificate")
        .to_vec()
}

fn tls_config(pki: &Pki) -> Config {
    let mut cfg = test_config();
    cfg.tls.cert_file = pki.cert_file();
    cfg.tls.key_file = pki.key_file();
    cfg.tls.rtmps_listen = "127.0.0.1:0".parse().unwrap();
    cfg.tls.https_listen = "127.0.0.1:0".parse().unwrap();
    cfg.tls.reload_check_ms = 100;
    cfg
}

fn rtmps_url(server: &RunningServer, key: &str) -> String {
    let a = server.rtmps_addr().expect("rtmps listener");
    format!("rtmps://127.0.0.1:{}/{key}", a.port())
}

fn https_url(server: &RunningServer, path: &str) -> String {
    let a = server.https_addr().expect("https listener");
    format!("https://127.0.0.1:{}{path}", a.port())
}

fn assert_decoded(what: &str, d: &Decoded) {
    assert!(
        d.video_frames >= 25,
        "{what}: {} video frames",
        d.video_frames
    );
    assert!(
        d.audio_frames >= 25,
        "{what}: {} audio frames",
        d.audio_frames
    );
    assert_monotonic(&format!("{what} video"), &d.video_dts);
    assert_monotonic(&format!("{what} audio"), &d.audio_dts);
}

/// Reads an HTTP response head and at least `min` body bytes (bounded by `timeout`).
async fn read_some(s: &mut TlsStream<TcpStream>, min: usize, timeout: Duration) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + timeout;
    while seen.len() < min {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
    seen
}

async fn curl_http_version(url: &str, flag: &str) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-sk", flag, "-o", "/dev/null", "-w", "%{http_version}", url])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .expect("curl finished in time")
        .expect("curl runs (scripts/test.sh installs it)");
    assert!(out.status.success(), "curl {flag} {url} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_over_rtmps_and_plays_over_rtmps_and_rtmp() {
    let pki = Pki::new("tls-rtmps");
    pki.write_leaf("leaf");
    let server = start(tls_config(&pki)).await;
    let mut publisher = publish(&rtmps_url(&server, "live/secure"), 3, &["-re"]);
    wait_live(&server, "live/secure").await;
    let d = ffmpeg_decode(&rtmps_url(&server, "live/secure"), 2.0).await;
    assert_decoded("rtmps player", &d);
    let plain = format!("rtmp://{}/live/secure", server.rtmp_addr());
    let d = ffmpeg_decode(&plain, 2.0).await;
    assert_decoded("rtmp player", &d);
    let protocol = server
        .hub()
        .stream("live/secure")
        .and_then(|s| s.publisher)
        .map(|p| p.protocol);
    assert_eq!(
        protocol,
        Some("rtmps"),
        "the publisher is known to use RTMPS"
    );
    let _ = publisher.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_flv_hls_http2_and_wss() {
    let pki = Pki::new("tls-https");
    pki.write_leaf("leaf");
    let server = start(tls_config(&pki)).await;
    let mut publisher = publish(
        &format!("rtmp://{}/live/h", server.rtmp_addr()),
        3,
        &["-re"],
    );
    wait_live(&server, "live/h").await;

    // HTTP-FLV over TLS.
    let d = ffmpeg_decode(&https_url(&server, "/live/h.flv"), 2.0).await;
    assert_decoded("https-flv", &d);
    // HLS over TLS: playlist and segments.
    assert_fixture_probe(&ffprobe(&https_url(&server, "/live/h/index.m3u8")).await);

    // ALPN: HTTP/2 and HTTP/1.1 on the same port.
    let metrics = https_url(&server, "/metrics");
    assert_eq!(curl_http_version(&metrics, "--http2").await, "2");
    assert_eq!(curl_http_version(&metrics, "--http1.1").await, "1.1");

    // WSS: a verified rustls client, then a WebSocket handshake over it.
    let tls = pki.connect(server.https_addr().unwrap()).await;
    let url = format!(
        "wss://localhost:{}/live/h.flv",
        server.https_addr().unwrap().port()
    );
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(url, tls),
    )
    .await
    .expect("ws handshake in time")
    .expect("ws handshake");
    let mut flv = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while flv.len() < 64 * 1024 {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(b)))) => {
                flv.extend_from_slice(&b)
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("wss ended early after {} bytes: {other:?}", flv.len()),
        }
    }
    assert_eq!(&flv[..3], b"FLV", "an FLV header first");
    let tags = flv::read_all_tags(&flv).expect("valid FLV over WSS");
    let video = tags.iter().filter(|t| t.tag_type == flv::TAG_VIDEO).count();
    let audio = tags.iter().filter(|t| t.tag_type == flv::TAG_AUDIO).count();
    assert!(
        video >= 10 && audio >= 10,
        "{video} video and {audio} audio tags over WSS"
    );
    drop(ws);

    let _ = publisher.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload_keeps_sessions_and_serves_the_new_certificate() {
    let pki = Pki::new("tls-reload");
    let first = pki.write_leaf("first");
    let server = start(tls_config(&pki)).await;
    let https = server.https_addr().unwrap();
    // An RTMPS publisher and an HTTPS-FLV viewer, both live across the reload.
    let mut publisher = publish(&rtmps_url(&server, "live/r"), 5, &["-re"]);
    wait_live(&server, "live/r").await;
    let mut viewer = pki.connect(https).await;
    assert_eq!(peer_leaf(&viewer), first);
    viewer
        .write_all(b"GET /live/r.flv HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    let head = read_some(&mut viewer, 1, Duration::from_secs(5)).await;
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );

    let second = pki.write_leaf("second");
    assert_ne!(first, second);
    let stats = server.tls_stats().expect("tls on");
    wait_for("reload", || stats.reloads.load(Ordering::Relaxed) >= 1).await;
    let fresh = pki.connect(https).await;
    assert_eq!(
        peer_leaf(&fresh),
        second,
        "a new handshake gets the new certificate"
    );
    drop(fresh);

    // The old sessions did not notice: the viewer keeps receiving the RTMPS publisher's media.
    let more = read_some(&mut viewer, 32 * 1024, Duration::from_secs(5)).await;
    assert!(
        more.len() >= 32 * 1024,
        "viewer got {} bytes after reload",
        more.len()
    );
    assert!(server.hub().stream("live/r").is_some_and(|s| s.is_live));

    // A broken file keeps the certificate in use.
    let errors_before = stats.reload_errors.load(Ordering::Relaxed);
    replace(&pki.cert_file(), b"-----BEGIN CERTIFICATE-----\ngarbage\n");
    wait_for("reload error", || {
        stats.reload_errors.load(Ordering::Relaxed) > errors_before
    })
    .await;
    let still = pki.connect(https).await;
    assert_eq!(peer_leaf(&still), second);
    drop(still);
    let more = read_some(&mut viewer, 16 * 1024, Duration::from_secs(5)).await;
    assert!(
        more.len() >= 16 * 1024,
        "viewer got {} bytes after bad reload",
        more.len()
    );
    // (Written in two steps, a pair may also have been seen half-replaced: count them all.)
    let metrics = server.metrics_text();
    let line = format!(
        "sluice_tls_reloads_total{{result=\"error\"}} {}",
        stats.reload_errors.load(Ordering::Relaxed)
    );
    assert!(metrics.contains(&line), "{line} in {metrics}");

    let _ = publisher.kill().await;
    // Graceful shutdown still finishes with an HTTPS-FLV viewer attached.
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn bad_certificate_at_start_is_an_error_naming_the_file() {
    let pki = Pki::new("tls-bad");
    pki.write_leaf("leaf");
    let bad = pki.dir.join("broken-cert.pem");
    std::fs::write(&bad, b"this is not PEM").expect("write");
    let mut cfg = tls_config(&pki);
    cfg.tls.cert_file = bad;
    let err = sluice::start(cfg)
        .await
        .err()
        .expect("start fails")
        .to_string();
    assert!(err.contains("broken-cert.pem"), "{err}");

    let mut cfg = tls_config(&pki);
    cfg.tls.key_file = pki.dir.join("no-such-key.pem");
    let err = sluice::start(cfg)
        .await
        .err()
        .expect("start fails")
        .to_string();
    assert!(err.contains("no-such-key.pem"), "{err}");
}

#[tokio::test]
async fn redirect_http_answers_308_with_the_https_location() {
    let pki = Pki::new("tls-redirect");
    pki.write_leaf("leaf");
    let mut cfg = tls_config(&pki);
    cfg.tls.redirect_http = true;
    let server = start(cfg).await;
    let port = server.https_addr().unwrap().port();
    let r = http_request_with(server.http_addr(), "GET", "/live/x.flv?token=abc", &[], b"").await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://127.0.0.1:{port}/live/x.flv?token=abc").as_str())
    );
    // Metrics stay on plain HTTP.
    let m = http_get(server.http_addr(), "/metrics").await;
    assert_eq!(m.status, 200);
    // HTTPS itself is not redirected.
    assert_eq!(
        curl_http_version(&https_url(&server, "/metrics"), "--http2").await,
        "2"
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_handshakes_are_closed_in_time_and_counted() {
    let pki = Pki::new("tls-hostile");
    pki.write_leaf("leaf");
    let mut cfg = tls_config(&pki);
    cfg.limits.handshake_timeout_ms = 1000;
    let server = start(cfg).await;
    let rtmps = server.rtmps_addr().unwrap();
    let stats = server.tls_stats().unwrap();

    // Plain RTMP (C0+C1) on the TLS port: not a ClientHello.
    let mut garbage = TcpStream::connect(rtmps).await.expect("connect");
    let mut c0c1 = vec![3u8];
    c0c1.extend((0..1536).map(|i| (i * 13 % 251) as u8));
    garbage.write_all(&c0c1).await.expect("write");
    expect_closed(&mut garbage, Duration::from_secs(3)).await;
    wait_for("garbage counted", || {
        stats.rtmps_handshake_errors.load(Ordering::Relaxed) >= 1
    })
    .await;

    // A client that connects and never says anything, and one that stops mid-ClientHello.
    let started = Instant::now();
    let mut silent = TcpStream::connect(rtmps).await.expect("connect");
    let mut partial = TcpStream::connect(rtmps).await.expect("connect");
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    expect_closed(&mut silent, Duration::from_secs(3)).await;
    expect_closed(&mut partial, Duration::from_secs(3)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed by the handshake timeout, not at once"
    );
    wait_for("timeouts counted", || {
        stats.rtmps_handshake_errors.load(Ordering::Relaxed) >= 3
    })
    .await;

    // Garbage on the HTTPS port too.
    let mut g = TcpStream::connect(server.https_addr().unwrap())
        .await
        .expect("connect");
    g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    expect_closed(&mut g, Duration::from_secs(3)).await;
    wait_for("https garbage counted", || {
        stats.https_handshake_errors.load(Ordering::Relaxed) >= 1
    })
    .await;
    let metrics = server.metrics_text();
    assert!(
        metrics.contains("sluice_tls_handshake_errors_total{listener=\"rtmps\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_tls_handshake_errors_total{listener=\"https\"} 1"),
        "{metrics}"
    );

    // A healthy RTMPS session still works.
    let mut publisher = publish(&rtmps_url(&server, "live/ok"), 2, &["-re"]);
    wait_live(&server, "live/ok").await;
    let d = ffmpeg_decode(&rtmps_url(&server, "live/ok"), 1.5).await;
    assert!(d.video_frames >= 20, "{} video frames", d.video_frames);
    let _ = publisher.kill().await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
