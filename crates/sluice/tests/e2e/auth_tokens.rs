//! Access control with asymmetric tokens end to end (auth.rs covers HS256, signed URLs,
//! webhooks and IP lists): RS256 and ES256 tokens verified with a public key file and with a
//! JWKS file, ffmpeg publishing over RTMPS with valid and invalid tokens, WHEP offers with
//! `Authorization: Bearer` (valid, expired, wrong stream, wrong IP claim, tampered signature).
//!
//! Keys are generated in the test with rcgen (ECDSA P-256 and RSA 2048 through aws-lc-rs);
//! tokens are signed with jsonwebtoken.

use crate::common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use sluice::configuration::{AuthMode, AuthRule};
use sluice::{Config, RunningServer};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key and the PEM of its public half.
struct Signer {
    alg: Algorithm,
    enc: EncodingKey,
    public_pem: String,
}

impl Signer {
    fn new(alg: Algorithm) -> Self {
        let key = match alg {
            Algorithm::RS256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256),
            _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        }
        .expect("key pair");
        let private = key.serialize_pem();
        let enc = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private.as_bytes()),
            _ => EncodingKey::from_ec_pem(private.as_bytes()),
        }
        .expect("encoding key");
        Self {
            alg,
            enc,
            public_pem: key.public_key_pem(),
        }
    }

    /// A token for `action` on `stream` valid for `ttl` seconds (negative: expired), with
    /// optional `kid` and `ip` claim.
    fn token(
        &self,
        action: &str,
        stream: &str,
        ttl: i64,
        kid: Option<&str>,
        ip: Option<&str>,
    ) -> String {
        let mut claims = serde_json::json!({
            "exp": now().saturating_add_signed(ttl),
            "action": action,
            "stream": stream,
        });
        if let Some(ip) = ip {
            claims["ip"] = ip.into();
        }
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, &claims, &self.enc).expect("token")
    }

    /// A JWKS document with this key under `kid`.
    fn jwks(&self, kid: &str) -> String {
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.enc, self.alg).expect("jwk");
        jwk.common.key_id = Some(kid.into());
        serde_json::to_string(&jsonwebtoken::jwk::JwkSet { keys: vec![jwk] }).expect("json")
    }
}

/// Flips one character of the signature (the last segment) to another base64url one.
fn tamper(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').expect("three segments");
    let mut sig: Vec<char> = sig.chars().collect();
    let mid = sig.len() / 2;
    sig[mid] = if sig[mid] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", sig.into_iter().collect::<String>())
}

fn token_rules(cfg: &mut Config) {
    cfg.auth.rules = vec![AuthRule {
        pattern: "secure/*".into(),
        publish: AuthMode::Token,
        play: AuthMode::Token,
        ..AuthRule::default()
    }];
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write key file");
    p.to_string_lossy().into_owned()
}

/// ffmpeg publishing to `url` is refused: it exits with an error in bounded time and `key`
/// never goes live.
async fn assert_publish_refused(server: &RunningServer, url: &str, key: &str) {
    let mut child = publish(url, 0, &["-re"]);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("a refused ffmpeg publisher exits in time")
        .expect("ffmpeg ran");
    assert!(!status.success(), "ffmpeg publishing {url} should fail");
    assert!(
        server.hub().stream(key).is_none_or(|s| !s.is_live),
        "{key} must not be live"
    );
}

/// Publishes with a valid token, checks a refused publish with `bad`, and plays with a
/// valid token over HTTP-FLV.
async fn publish_and_play(server: &RunningServer, signer: &Signer, kid: Option<&str>, name: &str) {
    let key = format!("secure/{name}");
    let rtmp = format!("rtmp://{}/{key}", server.rtmp_addr());
    // Refused: signed by another key of the same algorithm, and tampered.
    let other = Signer::new(signer.alg);
    let foreign = other.token("publish", &key, 60, kid, None);
    assert_publish_refused(server, &format!("{rtmp}?token={foreign}"), &key).await;
    let tampered = tamper(&signer.token("publish", &key, 60, kid, None));
    assert_publish_refused(server, &format!("{rtmp}?token={tampered}"), &key).await;
    // Accepted.
    let good = signer.token("publish", &key, 60, kid, None);
    let _publisher = publish(&format!("{rtmp}?token={good}"), -1, &["-re"]);
    wait_live(server, &key).await;
    let play = signer.token("play", &key, 60, kid, None);
    let d = ffmpeg_decode(
        &format!("http://{}/{key}.flv?token={play}", server.http_addr()),
        1.0,
    )
    .await;
    assert!(d.video_frames >= 20 && d.stderr.trim().is_empty(), "{d:?}");
    // Without a token, playing is refused.
    let r = http_request_with(server.http_addr(), "GET", &format!("/{key}.flv"), &[], b"").await;
    assert_eq!(r.status, 401, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_from_a_public_key_file() {
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let signer = Signer::new(alg);
        let dir = temp_dir("jwt-pem");
        let mut cfg = test_config();
        token_rules(&mut cfg);
        cfg.auth.jwt_public_key_file = write(&dir, "public.pem", &signer.public_pem);
        let server = start(cfg).await;
        publish_and_play(&server, &signer, None, &format!("pem-{alg:?}")).await;
        assert!(server.shutdown(Duration::from_secs(5)).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_from_a_jwks_file() {
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let signer = Signer::new(alg);
        let dir = temp_dir("jwt-jwks");
        let mut cfg = test_config();
        token_rules(&mut cfg);
        cfg.auth.jwks_file = write(&dir, "jwks.json", &signer.jwks("key-1"));
        let server = start(cfg).await;
        publish_and_play(&server, &signer, Some("key-1"), &format!("jwks-{alg:?}")).await;
        // A kid the JWKS does not have is refused.
        let key = format!("secure/jwks-{alg:?}");
        let unknown = signer.token("play", &key, 60, Some("key-2"), None);
        let r = http_request_with(
            server.http_addr(),
            "GET",
            &format!("/{key}.flv?token={unknown}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert!(server.shutdown(Duration::from_secs(5)).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_publish_with_valid_and_invalid_tokens() {
    let signer = Signer::new(Algorithm::ES256);
    let dir = temp_dir("jwt-rtmps");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let mut cfg = test_config();
    token_rules(&mut cfg);
    cfg.auth.jwt_public_key_file = write(&dir, "public.pem", &signer.public_pem);
    cfg.tls.cert_file = write(&dir, "cert.pem", &ck.cert.pem()).into();
    cfg.tls.key_file = write(&dir, "key.pem", &ck.signing_key.serialize_pem()).into();
    cfg.tls.rtmps_listen = "127.0.0.1:0".parse().unwrap();
    cfg.tls.https_listen = "127.0.0.1:0".parse().unwrap();
    let server = start(cfg).await;
    let key = "secure/tls";
    let port = server.rtmps_addr().expect("rtmps").port();
    let url = format!("rtmps://127.0.0.1:{port}/{key}");
    let expired = signer.token("publish", key, -120, None, None);
    assert_publish_refused(&server, &format!("{url}?token={expired}"), key).await;
    let play_only = signer.token("play", key, 60, None, None);
    assert_publish_refused(&server, &format!("{url}?token={play_only}"), key).await;
    let good = signer.token("publish", key, 60, None, None);
    let _publisher = publish(&format!("{url}?token={good}"), -1, &["-re"]);
    wait_live(&server, key).await;
    let play = signer.token("play", key, 60, None, None);
    let d = ffmpeg_decode(&format!("{url}?token={play}"), 1.0).await;
    assert!(d.video_frames >= 20 && d.stderr.trim().is_empty(), "{d:?}");
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// A minimal offer: enough to get past the auth check (which comes before SDP parsing).
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
    a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijklmn\r\n\
    a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1\r\n";

async fn whep(server: &RunningServer, key: &str, bearer: Option<&str>) -> (u16, String) {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("Content-Type", "application/sdp".to_owned()),
        ("Content-Length", OFFER.len().to_string()),
    ];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.clone()));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = http_request_with(
        server.http_addr(),
        "POST",
        &format!("/{key}/whep"),
        &headers,
        OFFER.as_bytes(),
    )
    .await;
    (r.status, r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_bearer_tokens() {
    let signer = Signer::new(Algorithm::RS256);
    let dir = temp_dir("jwt-whep");
    let mut cfg = test_config();
    token_rules(&mut cfg);
    cfg.auth.jwks_file = write(&dir, "jwks.json", &signer.jwks("w"));
    let server = start(cfg).await;
    // No publisher: an authorized offer reaches the stream lookup (404), a refused one stops
    // at the auth check (401/403) before any SDP handling.
    let key = "secure/whep";
    let kid = Some("w");
    let code = |text: &str| {
        let body = text.split("\r\n\r\n").nth(1).unwrap_or(text);
        serde_json::from_str::<serde_json::Value>(body)
            .map(|v| v["code"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    let (status, text) = whep(&server, key, None).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (401, "missing_token"),
        "{text}"
    );
    let valid = signer.token("play", key, 60, kid, None);
    let (status, text) = whep(&server, key, Some(&valid)).await;
    assert_eq!(
        status, 404,
        "a valid token gets past auth to the stream lookup: {text}"
    );
    // Each refused with its own reason: 401 without valid credentials, 403 with credentials
    // that do not allow this.
    for (token, want) in [
        (signer.token("play", key, -120, kid, None), (401, "expired")),
        (
            signer.token("play", "secure/other", 60, kid, None),
            (403, "wrong_stream"),
        ),
        (
            signer.token("publish", key, 60, kid, None),
            (403, "wrong_action"),
        ),
        (
            signer.token("play", key, 60, kid, Some("192.0.2.0/24")),
            (403, "wrong_ip"),
        ),
        (tamper(&valid), (401, "bad_token")),
    ] {
        let (status, text) = whep(&server, key, Some(&token)).await;
        assert_eq!((status, code(&text).as_str()), want, "{text}");
    }
    // The right IP claim is accepted.
    let loopback = signer.token("play", key, 60, kid, Some("127.0.0.0/8"));
    let (status, text) = whep(&server, key, Some(&loopback)).await;
    assert_eq!(status, 404, "loopback IP claim: {text}");
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
