//! Helpers for the end-to-end tests: a server on loopback ports, ffmpeg/ffprobe as real
//! publishers and players, and small raw clients for what ffmpeg cannot do (stall on purpose,
//! send malformed bytes, time the first frame).
#![allow(dead_code)]

pub mod rtmp_client;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use media::{FrameRole, MediaKind};
use sluice::{Config, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Path of the committed H.264 + AAC clip (4 s, 640x360, 25 fps, 1 s GOP, 48 kHz stereo).
pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo.flv")
}

/// A config with both listeners on loopback port 0.
pub fn test_config() -> Config {
    let mut cfg = Config::default();
    cfg.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.webrtc.listen = "127.0.0.1:0".parse().unwrap();
    cfg.srt.listen = "127.0.0.1:0".parse().unwrap();
    cfg.webrtc.tcp_listen = "127.0.0.1:0".to_owned();
    // A private VOD directory (recordings inside it) per server, so tests never write into
    // the source tree and never see each other's files.
    let dir = temp_dir("vod");
    cfg.record.dir = dir.join("recordings").to_string_lossy().into_owned();
    cfg.vod.dir = dir;
    cfg
}

/// A new empty directory under the system temp dir, unique to this process and call.
pub fn temp_dir(what: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sluice-test-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The environment variable that tells a child test process which test to run in it.
const OWN_PROCESS_VAR: &str = "SLUICE_E2E_OWN_PROCESS";
/// How long a test in a process of its own may take, child process included.
const OWN_PROCESS_BOUND: Duration = Duration::from_secs(600);

/// Runs the test `name` (a function of `module`, given as `module_path!()`) alone in a child
/// process of this test binary, for tests that measure the whole process (open descriptors,
/// resident memory, CPU time) and would otherwise count the other tests running in parallel.
///
/// Returns `true` in that child: the caller runs its body there. In the parent it runs the
/// child (bounded), shows its output, asserts it passed exactly that one test, and returns
/// `false`: the caller returns at once.
pub async fn own_process(module: &str, name: &str) -> bool {
    // libtest names tests without the crate: `e2e::faults` -> `faults::name`.
    let module = module.split_once("::").map_or("", |(_, m)| m);
    let test = format!("{module}::{name}");
    if std::env::var(OWN_PROCESS_VAR).as_deref() == Ok(test.as_str()) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let run = Command::new(exe)
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(OWN_PROCESS_VAR, &test)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(OWN_PROCESS_BOUND, run)
        .await
        .unwrap_or_else(|_| {
            panic!("{test} finished in its own process within {OWN_PROCESS_BOUND:?}")
        })
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The child's output (its figures, or why it failed) in this test's output.
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{test} failed in its own process: {}",
        out.status
    );
    // A name that matches no test would pass with nothing run.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{test} did not run in its own process"
    );
    false
}

/// Every listener flag of the binary, each on loopback port 0: a process test's server
/// binds nothing fixed (a new listener gets its flag here, once, for every such test).
pub const LOOPBACK_LISTENERS: [&str; 8] = [
    "--rtmp-listen",
    "127.0.0.1:0",
    "--http-listen",
    "127.0.0.1:0",
    "--webrtc-listen",
    "127.0.0.1:0",
    "--srt-listen",
    "127.0.0.1:0",
];

/// The `sluice` binary with [`LOOPBACK_LISTENERS`], no inherited `RUST_LOG`, no colour, no
/// stdin, killed when dropped.
pub fn sluice_process() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.args(LOOPBACK_LISTENERS)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Starts an in-process server.
pub async fn start(cfg: Config) -> RunningServer {
    sluice::start(cfg).await.expect("server starts")
}

/// ffmpeg publishing the fixture in real time (looped `loops` extra times) to `url`.
pub fn publish(url: &str, loops: i32, extra: &[&str]) -> Child {
    let fixture = fixture();
    let mut args: Vec<String> = vec!["-hide_banner".into(), "-loglevel".into(), "error".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "-stream_loop".into(),
        loops.to_string(),
        "-i".into(),
        fixture.to_string_lossy().into_owned(),
        "-c".into(),
        "copy".into(),
        "-f".into(),
        "flv".into(),
        url.into(),
    ]);
    Command::new("ffmpeg")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs (the test command installs it)")
}

/// Waits (bounded) until `key` has a live publisher with video.
pub async fn wait_live(server: &RunningServer, key: &str) {
    wait_live_within(server, key, Duration::from_secs(15)).await;
}

/// [`wait_live`] with its own bound (a browser publisher takes longer to start).
pub async fn wait_live_within(server: &RunningServer, key: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = server.hub().stream(key)
            && s.is_live
            && s.gop_frames > 0
        {
            return;
        }
        assert!(Instant::now() < deadline, "stream {key} never went live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What an ffmpeg player decoded: per-stream decoded frame counts and timestamps.
#[derive(Debug, Default)]
pub struct Decoded {
    pub video_frames: usize,
    pub audio_frames: usize,
    pub video_dts: Vec<i64>,
    pub audio_dts: Vec<i64>,
    pub stderr: String,
}

/// Plays `url` with ffmpeg for `seconds` of media, decoding every frame (framemd5), and
/// reports what was decoded and what ffmpeg complained about.
pub async fn ffmpeg_decode(url: &str, seconds: f32) -> Decoded {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            url,
            "-t",
        ])
        .arg(seconds.to_string())
        .args(["-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("ffmpeg player finished in time")
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg player failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_framemd5(
        &String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn parse_framemd5(text: &str, stderr: String) -> Decoded {
    let mut d = Decoded {
        stderr,
        ..Default::default()
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if cols.len() < 6 {
            continue;
        }
        let dts: i64 = cols[1].parse().expect("dts");
        match cols[0] {
            "0" => {
                d.video_frames += 1;
                d.video_dts.push(dts);
            }
            "1" => {
                d.audio_frames += 1;
                d.audio_dts.push(dts);
            }
            _ => {}
        }
    }
    d
}

/// Stream facts from ffprobe.
#[derive(Debug)]
pub struct Probe {
    pub video_codec: String,
    pub width: u64,
    pub height: u64,
    pub frame_rate: String,
    pub audio_codec: String,
    pub sample_rate: String,
    pub channels: u64,
}

/// Runs ffprobe on `input` (URL or file).
pub async fn ffprobe(input: &str) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json", input])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("ffprobe finished in time")
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let streams = v["streams"].as_array().expect("streams");
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect("an audio stream");
    Probe {
        video_codec: video["codec_name"].as_str().unwrap_or_default().into(),
        width: video["width"].as_u64().unwrap_or_default(),
        height: video["height"].as_u64().unwrap_or_default(),
        frame_rate: video["r_frame_rate"].as_str().unwrap_or_default().into(),
        audio_codec: audio["codec_name"].as_str().unwrap_or_default().into(),
        sample_rate: audio["sample_rate"].as_str().unwrap_or_default().into(),
        channels: audio["channels"].as_u64().unwrap_or_default(),
    }
}

/// Asserts the standard expectations for the fixture's stream.
pub fn assert_fixture_probe(p: &Probe) {
    assert_eq!(p.video_codec, "h264");
    assert_eq!((p.width, p.height), (640, 360));
    assert_eq!(p.frame_rate, "25/1");
    assert_eq!(p.audio_codec, "aac");
    assert_eq!(p.sample_rate, "48000");
    assert_eq!(p.channels, 2);
}

/// Asserts strictly increasing decode timestamps.
pub fn assert_monotonic(name: &str, dts: &[i64]) {
    for w in dts.windows(2) {
        assert!(
            w[1] > w[0],
            "{name}: dts not increasing: {} then {}",
            w[0],
            w[1]
        );
    }
}

/// An FLV tag as a raw client saw it, with its arrival time.
#[derive(Debug, Clone)]
pub struct SeenTag {
    pub kind: MediaKind,
    pub role: FrameRole,
    pub keyframe: bool,
    pub timestamp: u32,
    pub body: Bytes,
    pub at: Instant,
}

/// A raw HTTP/1.0 FLV reader: no chunked encoding, the body runs until the server closes.
pub struct RawFlvClient {
    pub sock: TcpStream,
    pub started: Instant,
    reader: flv::FlvReader,
    header_done: bool,
    head: Vec<u8>,
    pub status: u16,
    pub ended: bool,
}

impl RawFlvClient {
    /// Connects and sends the request.
    pub async fn connect(addr: std::net::SocketAddr, path: &str) -> Self {
        let started = Instant::now();
        let mut sock = TcpStream::connect(addr).await.expect("connect");
        sock.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .expect("request");
        Self {
            sock,
            started,
            reader: flv::FlvReader::new(),
            header_done: false,
            head: Vec::new(),
            status: 0,
            ended: false,
        }
    }

    /// Reads until at least one tag is available or the stream ends; returns the new tags.
    pub async fn read_tags(&mut self, timeout: Duration) -> Vec<SeenTag> {
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + timeout;
        loop {
            let mut tags = Vec::new();
            while let Some(tag) = self.reader.next_tag().expect("valid FLV from the server") {
                let f = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body.clone())
                    .expect("valid tag");
                tags.push(SeenTag {
                    kind: f.kind,
                    role: f.role,
                    keyframe: f.keyframe,
                    timestamp: tag.timestamp,
                    body: tag.body,
                    at: Instant::now(),
                });
            }
            if !tags.is_empty() || self.ended {
                return tags;
            }
            let n = match tokio::time::timeout_at(deadline, self.sock.read(&mut buf)).await {
                Err(_) => return tags,
                Ok(r) => r.unwrap_or(0),
            };
            if n == 0 {
                self.ended = true;
                continue;
            }
            self.feed(&buf[..n]);
        }
    }

    fn feed(&mut self, data: &[u8]) {
        if self.header_done {
            if self.status == 200 {
                self.reader.push(data);
            }
            return;
        }
        self.head.extend_from_slice(data);
        if let Some(pos) = self.head.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&self.head[..pos]).into_owned();
            self.status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            self.header_done = true;
            let rest = self.head.split_off(pos + 4);
            if self.status == 200 {
                self.reader.push(&rest);
            } else {
                self.ended = true;
            }
        }
    }

    /// Collects tags for `dur` of wall time (or until the stream ends).
    pub async fn collect_for(&mut self, dur: Duration) -> Vec<SeenTag> {
        let deadline = Instant::now() + dur;
        let mut all = Vec::new();
        while Instant::now() < deadline && !self.ended {
            let left = deadline.saturating_duration_since(Instant::now());
            all.extend(self.read_tags(left).await);
        }
        all
    }
}

/// Does the RTMP simple handshake as a client over a raw socket and returns the socket.
pub async fn raw_rtmp_handshake(addr: std::net::SocketAddr) -> TcpStream {
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0u8, 8));
    c0c1.extend((0..1528).map(|i| (i * 7 % 251) as u8));
    sock.write_all(&c0c1).await.expect("c0c1");
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    tokio::time::timeout(Duration::from_secs(5), sock.read_exact(&mut s0s1s2))
        .await
        .expect("handshake reply in time")
        .expect("s0s1s2");
    assert_eq!(s0s1s2[0], 3, "RTMP version 3");
    sock.write_all(&s0s1s2[1..1537]).await.expect("c2");
    sock
}

/// Reads until the server closes the socket (EOF or reset); panics if it stays open past
/// `timeout`. Returns the bytes seen before the close.
pub async fn expect_closed(sock: &mut TcpStream, timeout: Duration) -> Bytes {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Err(_) => panic!("server kept the connection open"),
            Ok(Ok(0)) | Ok(Err(_)) => return Bytes::from(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// ffmpeg playing `url` (copying, discarding the output) until killed or dropped.
pub fn play_null(url: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i", url])
        .args(["-c", "copy", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs (the test command installs it)")
}

/// ffmpeg playing `url` until the stream ends (or it is killed), decoding every frame to
/// framemd5 on its stdout (both outputs piped): read what it decoded with [`decoded`] from
/// its `wait_with_output`.
pub fn play_decoding(url: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i", url])
        .args(["-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs (the test command installs it)")
}

/// What a [`play_decoding`] player decoded, and what it complained about.
pub fn decoded(out: &std::process::Output) -> Decoded {
    parse_framemd5(
        &String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A response read by [`http_get`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A raw HTTP/1.0 GET (the server closes after the body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> HttpResponse {
    http_request(addr, "GET", path).await
}

/// A raw HTTP/1.0 request with any method (`DELETE`, ...); the server closes after the body.
pub async fn http_request(addr: std::net::SocketAddr, method: &str, path: &str) -> HttpResponse {
    let fut = async {
        let mut sock = TcpStream::connect(addr).await.expect("connect");
        sock.write_all(format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let mut raw = Vec::new();
        sock.read_to_end(&mut raw).await.expect("response");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("HTTP response in time");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    HttpResponse {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// A response read by [`http_request_with`]: status, headers and the raw body.
#[derive(Debug)]
pub struct RawHttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawHttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A raw HTTP/1.1 request (`Connection: close`) with extra headers and a body sent as it is
/// (the caller adds `Content-Length` or `Transfer-Encoding` and frames the body). The body is
/// written while the response is read, so a server that answers early (413) is seen; write
/// errors after such an answer are ignored. A chunked response is de-chunked.
pub async fn http_request_with(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawHttpResponse {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let fut = async {
        let sock = TcpStream::connect(addr).await.expect("connect");
        let (mut rd, mut wr) = sock.into_split();
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&request).await;
            // Keep the write half open until the reader is done (dropping it would send FIN,
            // which is fine for HTTP, but keeping it is closer to a real client).
            wr
        });
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        drop(writer.await);
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("HTTP response in time");
    let pos = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..pos]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut body = raw[pos + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    RawHttpResponse {
        status,
        headers,
        body,
    }
}

/// Decodes a chunked body (as far as it is complete).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_line = String::from_utf8_lossy(&data[..eol]).into_owned();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

/// Installs the browser tests' npm dependencies (playwright-core, from the lockfile in
/// tests/console) when missing; returns the playwright-core directory.
pub async fn playwright_core() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    npm_ci(&dir, "playwright-core").await;
    dir.join("node_modules/playwright-core")
}

/// `npm ci` in the test package `dir` (its pinned lock file) when its `node_modules` lacks
/// `package`: `cargo test` then works where only scripts/test.sh's system packages are.
pub async fn npm_ci(dir: &std::path::Path, package: &str) {
    if dir.join("node_modules").join(package).is_dir() {
        return;
    }
    let run = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("npm ci finished in time")
        .expect("npm runs (scripts/test.sh installs nodejs and npm)");
    assert!(
        out.status.success(),
        "npm ci failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
