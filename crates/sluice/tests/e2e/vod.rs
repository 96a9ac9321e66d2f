//! Video on demand end to end: files served on `/vod/{path}` with byte ranges and
//! validators (checked byte for byte and by ffprobe, which seeks with Range), refused
//! traversal, and uploads and deletes through `/api/v1/vod`.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use common::{RawHttpResponse, assert_fixture_probe, ffprobe, fixture, http_request_with};
use sluice::configuration::UploadFrom;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sluice-vod-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server serving `dir`, with `max_upload_bytes` and `upload_from`.
async fn server(dir: &Path, max: u64, from: UploadFrom) -> sluice::RunningServer {
    let mut cfg = common::test_config();
    cfg.vod.dir = dir.to_owned();
    cfg.vod.max_upload_bytes = max;
    cfg.vod.upload_from = from;
    common::start(cfg).await
}

fn demo() -> Vec<u8> {
    std::fs::read(fixture()).expect("fixture")
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawHttpResponse {
    http_request_with(addr, "GET", path, headers, b"").await
}

/// Names in `dir`, hidden ones included.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_validators_match_the_file() {
    let tmp = TempDir::new("ranges");
    let data = demo();
    let len = data.len();
    std::fs::write(tmp.0.join("demo.flv"), &data).unwrap();
    std::fs::create_dir(tmp.0.join("sub")).unwrap();
    std::fs::write(tmp.0.join(".hidden.flv"), &data).unwrap();
    let server = server(&tmp.0, 1 << 20, UploadFrom::Loopback).await;
    let addr = server.http_addr();

    let whole = get(addr, "/vod/demo.flv", &[]).await;
    assert_eq!(whole.status, 200);
    assert!(whole.body == data, "whole file differs");
    assert_eq!(whole.header("content-type"), Some("video/x-flv"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        whole.header("content-length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(whole.header("cache-control"), Some("public, max-age=3600"));
    assert_eq!(whole.header("access-control-allow-origin"), Some("*"));
    let etag = whole.header("etag").expect("etag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    let modified = whole
        .header("last-modified")
        .expect("last-modified")
        .to_owned();

    let mid = len / 2;
    let cases: [(String, usize, usize); 5] = [
        ("bytes=0-99".into(), 0, 99),
        (format!("bytes={mid}-{}", mid + 4095), mid, mid + 4095),
        (format!("bytes={}-", len - 1000), len - 1000, len - 1),
        ("bytes=-500".into(), len - 500, len - 1),
        ("bytes=0-".into(), 0, len - 1),
    ];
    for (range, first, last) in cases {
        let r = get(addr, "/vod/demo.flv", &[("Range", &range)]).await;
        assert_eq!(r.status, 206, "{range}");
        assert!(r.body == data[first..=last], "{range}: bytes differ");
        let want = format!("bytes {first}-{last}/{len}");
        assert_eq!(r.header("content-range"), Some(want.as_str()), "{range}");
        let n = (last - first + 1).to_string();
        assert_eq!(r.header("content-length"), Some(n.as_str()), "{range}");
    }
    // Past the end: 416 with the length.
    let r = get(
        addr,
        "/vod/demo.flv",
        &[("Range", &format!("bytes={len}-"))],
    )
    .await;
    assert_eq!(r.status, 416);
    let want = format!("bytes */{len}");
    assert_eq!(r.header("content-range"), Some(want.as_str()));
    assert_eq!(r.json()["code"], "range_not_satisfiable");
    // Several ranges: answered with the whole file (documented choice).
    let r = get(addr, "/vod/demo.flv", &[("Range", "bytes=0-1,5-6")]).await;
    assert_eq!(r.status, 200);
    assert!(r.body == data);

    // HEAD: headers only, with the length of what GET would send.
    let h = http_request_with(addr, "HEAD", "/vod/demo.flv", &[], b"").await;
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty(), "HEAD has a body");
    assert_eq!(h.header("content-length"), Some(len.to_string().as_str()));
    assert_eq!(h.header("etag"), Some(etag.as_str()));
    let h = http_request_with(
        addr,
        "HEAD",
        "/vod/demo.flv",
        &[("Range", "bytes=10-19")],
        b"",
    )
    .await;
    assert_eq!(h.status, 206);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), Some("10"));

    // Conditional requests.
    let r = get(addr, "/vod/demo.flv", &[("If-None-Match", &etag)]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = get(addr, "/vod/demo.flv", &[("If-None-Match", "\"other\"")]).await;
    assert_eq!(r.status, 200);
    let r = get(addr, "/vod/demo.flv", &[("If-Modified-Since", &modified)]).await;
    assert_eq!(r.status, 304);
    let fresh = [("Range", "bytes=0-9"), ("If-Range", etag.as_str())];
    let r = get(addr, "/vod/demo.flv", &fresh).await;
    assert_eq!(r.status, 206);
    assert!(r.body == data[..10]);
    let stale = [("Range", "bytes=0-9"), ("If-Range", "\"stale\"")];
    let r = get(addr, "/vod/demo.flv", &stale).await;
    assert_eq!(r.status, 200, "a stale If-Range gets the whole file");
    assert!(r.body == data);

    // No listing, no hidden files, no missing files.
    for path in ["/vod/sub", "/vod/sub/", "/vod/.hidden.flv", "/vod/nope.flv"] {
        let r = get(addr, path, &[]).await;
        assert!(matches!(r.status, 400 | 404), "{path}: {}", r.status);
        assert!(r.json()["code"].is_string(), "{path}");
    }

    let sent = server.stats().vod_bytes_out.load(Ordering::Relaxed);
    assert!(sent >= 3 * len as u64, "vod bytes counted: {sent}");
    let metrics = server.metrics_text();
    assert!(
        metrics.contains(r#"sluice_egress_bytes_total{protocol="vod"}"#),
        "{metrics}"
    );
    assert!(server.shutdown(std::time::Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_is_refused_and_leaks_nothing() {
    let tmp = TempDir::new("traversal");
    let vod = tmp.0.join("vod");
    std::fs::create_dir(&vod).unwrap();
    const SECRET: &[u8] = b"FLV\x01 top secret 7f3a9c";
    std::fs::write(tmp.0.join("secret.flv"), SECRET).unwrap();
    std::fs::write(vod.join("ok.flv"), b"FLV\x01 public").unwrap();
    std::os::unix::fs::symlink(tmp.0.join("secret.flv"), vod.join("out.flv")).unwrap();
    std::os::unix::fs::symlink(vod.join("ok.flv"), vod.join("in.flv")).unwrap();
    std::os::unix::fs::symlink(&tmp.0, vod.join("up")).unwrap();
    let server = server(&vod, 1 << 20, UploadFrom::Loopback).await;
    let addr = server.http_addr();

    // A symlink that stays inside is served (the control).
    let r = get(addr, "/vod/in.flv", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"FLV\x01 public");

    for path in [
        "/vod/../Cargo.toml",
        "/vod/%2e%2e/Cargo.toml",
        "/vod/..%2fCargo.toml",
        "/vod/..%2F..%2FCargo.toml",
        "/vod/%2e%2e%2fsecret.flv",
        "/vod/../secret.flv",
        "/vod/ok.flv/../../secret.flv",
        "/vod/..%5csecret.flv",
        "/vod/x%00.flv",
        "/vod//etc/passwd",
        "/vod/out.flv",
        "/vod/up/secret.flv",
        "/vod/%75p/secret.flv",
    ] {
        let r = get(addr, path, &[]).await;
        assert!(matches!(r.status, 400 | 404), "{path}: {}", r.status);
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("top secret"), "{path} leaked: {body}");
        assert!(!body.contains("[package]"), "{path} leaked: {body}");
        assert!(r.json()["code"].is_string(), "{path}: {body}");
    }
    assert!(server.shutdown(std::time::Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_reads_a_vod_file() {
    let tmp = TempDir::new("ffprobe");
    std::fs::copy(fixture(), tmp.0.join("demo.flv")).unwrap();
    let server = server(&tmp.0, 1 << 20, UploadFrom::Loopback).await;
    let url = format!("http://{}/vod/demo.flv", server.http_addr());
    assert_fixture_probe(&ffprobe(&url).await);
    assert!(server.stats().vod_bytes_out.load(Ordering::Relaxed) > 0);
    assert!(server.shutdown(std::time::Duration::from_secs(5)).await);
}

fn multipart(filename: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "sluiceBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_raw(addr: SocketAddr, query: &str, data: &[u8]) -> RawHttpResponse {
    let len = data.len().to_string();
    let headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", len.as_str()),
    ];
    http_request_with(addr, "POST", &format!("/api/v1/vod{query}"), &headers, data).await
}

async fn post_multipart(
    addr: SocketAddr,
    query: &str,
    filename: &str,
    data: &[u8],
) -> RawHttpResponse {
    let (ct, body) = multipart(filename, data);
    let len = body.len().to_string();
    let headers = [
        ("Content-Type", ct.as_str()),
        ("Content-Length", len.as_str()),
    ];
    http_request_with(
        addr,
        "POST",
        &format!("/api/v1/vod{query}"),
        &headers,
        &body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_list_and_delete() {
    let tmp = TempDir::new("upload");
    let data = demo();
    let server = server(&tmp.0, 1 << 20, UploadFrom::Loopback).await;
    let addr = server.http_addr();

    let r = post_raw(addr, "?name=raw.flv", &data).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["name"], "raw.flv");
    assert_eq!(j["bytes"], data.len());
    assert_eq!(j["url"], "/vod/raw.flv");
    assert!(std::fs::read(tmp.0.join("raw.flv")).unwrap() == data);
    let served = get(addr, "/vod/raw.flv", &[]).await;
    assert!(served.body == data, "served upload differs");

    let r = post_multipart(addr, "", "form.flv", &data).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["name"], "form.flv");
    assert!(std::fs::read(tmp.0.join("form.flv")).unwrap() == data);
    // `name` wins over the part's filename.
    let r = post_multipart(addr, "?name=named.flv", "ignored.flv", &data).await;
    assert_eq!(r.status, 201);
    assert!(std::fs::read(tmp.0.join("named.flv")).unwrap() == data);

    // Names are never overwritten.
    let r = post_raw(addr, "?name=raw.flv", b"FLV\x01 other").await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "exists");
    let r = post_multipart(addr, "", "raw.flv", b"FLV\x01 other").await;
    assert_eq!(r.status, 409);
    assert!(std::fs::read(tmp.0.join("raw.flv")).unwrap() == data);

    let r = get(addr, "/api/v1/vod?limit=2", &[]).await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["total"], 3);
    let listed: Vec<&str> = j["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["form.flv", "named.flv"]);
    assert_eq!(j["items"][0]["bytes"], data.len());
    assert_eq!(j["items"][0]["url"], "/vod/form.flv");
    assert!(j["items"][0]["modified"].as_str().unwrap().ends_with('Z'));

    let r = http_request_with(addr, "DELETE", "/api/v1/vod/raw.flv", &[], b"").await;
    assert_eq!(r.status, 204);
    assert!(!tmp.0.join("raw.flv").exists());
    let r = http_request_with(addr, "DELETE", "/api/v1/vod/raw.flv", &[], b"").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "file_not_found");
    assert_eq!(
        names(&tmp.0),
        BTreeSet::from(["form.flv".into(), "named.flv".into()])
    );
    assert!(server.shutdown(std::time::Duration::from_secs(5)).await);

    // `upload_from = "off"` refuses uploads and deletes.
    let server = server_off(&tmp.0).await;
    let addr = server.http_addr();
    let r = post_raw(addr, "?name=x.flv", &data).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "upload_forbidden");
    let r = http_request_with(addr, "DELETE", "/api/v1/vod/form.flv", &[], b"").await;
    assert_eq!(r.status, 403);
    assert!(tmp.0.join("form.flv").exists());
    assert!(server.shutdown(std::time::Duration::from_secs(5)).await);
}

async fn server_off(dir: &Path) -> sluice::RunningServer {
    server(dir, 1 << 20, UploadFrom::Off).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_leave_nothing_behind() {
    let tmp = TempDir::new("refused");
    let data = demo();
    let limit = 100_000u64;
    assert!(data.len() as u64 > limit);
    let server = server(&tmp.0, limit, UploadFrom::Loopback).await;
    let addr = server.http_addr();

    // Over the limit, declared up front.
    let r = post_raw(addr, "?name=big.flv", &data).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "upload_too_large");
    // Over the limit, found while streaming (chunked, no length).
    let mut chunked = Vec::new();
    for piece in data.chunks(16 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let headers = [("Transfer-Encoding", "chunked")];
    let r = http_request_with(addr, "POST", "/api/v1/vod?name=big.flv", &headers, &chunked).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "upload_too_large");
    // Over the limit in a multipart part; the length is not declared.
    let (ct, body) = multipart("big.flv", &data);
    let mut chunked = Vec::new();
    chunked.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let headers = [
        ("Content-Type", ct.as_str()),
        ("Transfer-Encoding", "chunked"),
    ];
    let r = http_request_with(addr, "POST", "/api/v1/vod", &headers, &chunked).await;
    assert_eq!(r.status, 413);

    // Not a media file.
    let text = b"just some text, not a video\n".repeat(20);
    let r = post_raw(addr, "?name=notes.flv", &text).await;
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["code"], "unsupported_media");
    let r = post_multipart(addr, "", "notes.mp4", &text).await;
    assert_eq!(r.status, 415);

    // Bad names.
    let long = format!("?name={}", "a".repeat(201));
    for q in [
        "",
        "?name=",
        "?name=..",
        "?name=.hidden.flv",
        "?name=a%2Fb.flv",
        "?name=..%2Fx.flv",
        "?name=a%20b.flv",
        long.as_str(),
    ] {
        let r = post_raw(addr, q, &data[..1000]).await;
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.json()["code"], "invalid_name", "{q}");
    }
    let r = post_multipart(addr, "", "../escape.flv", &data[..1000]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_name");

    assert!(names(&tmp.0).is_empty(), "left behind: {:?}", names(&tmp.0));
    assert!(!tmp.0.parent().unwrap().join("escape.flv").exists());
    let r = get(addr, "/api/v1/vod", &[]).await;
    assert_eq!(r.json()["total"], 0);
    assert!(server.shutdown(std::time::Duration::from_secs(5)).await);
}
