//! Clustering on Redis: a real `redis-server` (the test command installs Debian's) on a free
//! port, two Sluice nodes in this process. ffmpeg publishes over RTMP to node A; players on
//! node B get the stream through one relay connection; the relay refuses a wrong secret; a
//! stream keeps playing on B while Redis is down, and the registry heals when it is back.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use media::MediaKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const SECRET: &str = "cluster-test-secret-0123456789";

/// A `redis-server` on a loopback port of its own, without persistence.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    async fn start() -> Redis {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("its address").port()
        };
        let mut r = Redis { port, child: None };
        r.restart().await;
        r
    }

    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (the test command installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)).await {
                let _ = s.write_all(b"PING\r\n").await;
                let mut buf = [0u8; 7];
                if tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut buf))
                    .await
                    .is_ok_and(|r| r.is_ok())
                    && &buf == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `GET key` through redis-cli (Debian's redis-server brings it); `None` when absent.
    async fn get(&self, key: &str) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw", "GET", key])
            .stdin(std::process::Stdio::null())
            .output();
        let out = tokio::time::timeout(Duration::from_secs(5), out)
            .await
            .expect("redis-cli in time")
            .expect("redis-cli runs");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (!text.is_empty()).then_some(text)
    }
}

fn node_config(redis: &Redis, node: &str) -> sluice::Config {
    let mut cfg = test_config();
    cfg.cluster.redis_url = redis.url();
    cfg.cluster.node_id = node.to_owned();
    cfg.cluster.secret = SECRET.to_owned();
    cfg
}

fn cluster(s: &sluice::RunningServer) -> &std::sync::Arc<cluster::Cluster> {
    s.cluster().expect("clustering is on")
}

/// Waits (bounded) until `server` owns `key` in the registry; returns the epoch.
async fn wait_owned(server: &sluice::RunningServer, key: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(e) = cluster(server).owned_epoch(key) {
            return e;
        }
        assert!(Instant::now() < deadline, "{key} never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads FLV tags from `c` until the first video keyframe; returns when it arrived.
async fn first_keyframe(c: &mut RawFlvClient, within: Duration) -> Duration {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero() && !c.ended,
            "no keyframe (status {})",
            c.status
        );
        for t in c.read_tags(left).await {
            if t.kind == MediaKind::Video && t.keyframe && t.role == media::FrameRole::Coded {
                return t.at - c.started;
            }
        }
    }
}

async fn server_info(addr: SocketAddr) -> serde_json::Value {
    http_get(addr, "/api/v1/server").await.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_one_node_play_on_another_through_one_relay() {
    let redis = Redis::start().await;
    let a = start(node_config(&redis, "node-a")).await;
    let b = start(node_config(&redis, "node-b")).await;
    let key = "live/clu";
    let _publisher = publish(&format!("rtmp://{}/{key}", a.rtmp_addr()), -1, &["-re"]);
    wait_live(&a, key).await;
    wait_owned(&a, key).await;
    // Into the second GOP: players on B join mid-stream.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // The first player on B: time to its first keyframe (lookup, relay, GOP cache).
    let mut first = RawFlvClient::connect(b.http_addr(), &format!("/{key}.flv")).await;
    let ttff = first_keyframe(&mut first, Duration::from_secs(5)).await;
    assert_eq!(first.status, 200);
    eprintln!("FIGURE cluster: first keyframe on the edge after {ttff:?}");
    assert!(
        ttff < Duration::from_secs(2),
        "first frame on B after {ttff:?}"
    );
    assert_eq!(
        b.hub()
            .stream(key)
            .and_then(|s| s.publisher)
            .map(|p| p.protocol),
        Some("relay")
    );

    // The relay hop's added latency: when B's hub got each video frame after A's hub did
    // (the hubs stamp each frame's arrival; frames matched by their bytes).
    let hop = relay_hop_latency(&a, &b, key).await;
    eprintln!(
        "FIGURE cluster: relay hop latency over {} frames: p50 {:?}, p99 {:?}, max {:?}",
        hop.len(),
        hop[hop.len() / 2],
        hop[hop.len() * 99 / 100],
        hop[hop.len() - 1]
    );
    // At most one frame interval (40 ms at 25 fps): the target for a relay hop.
    assert!(hop[hop.len() / 2] < Duration::from_millis(40), "{hop:?}");
    assert!(hop[hop.len() - 1] < Duration::from_millis(200), "{hop:?}");

    // ffmpeg decodes it from B: every frame, timestamps increasing.
    let d = ffmpeg_decode(&format!("http://{}/{key}.flv", b.http_addr()), 3.0).await;
    eprintln!(
        "FIGURE cluster: edge http-flv decoded {} video and {} audio frames",
        d.video_frames, d.audio_frames
    );
    assert!(d.stderr.trim().is_empty(), "decode errors: {}", d.stderr);
    assert!(d.video_frames >= 50, "only {} video frames", d.video_frames);
    assert!(d.audio_frames >= 50, "only {} audio frames", d.audio_frames);
    assert_monotonic("edge video", &d.video_dts);
    assert_monotonic("edge audio", &d.audio_dts);

    // 20 more players on B: each starts on a keyframe, still one relay connection.
    let players = (0..20).map(|_| async {
        let mut c = RawFlvClient::connect(b.http_addr(), &format!("/{key}.flv")).await;
        let t = first_keyframe(&mut c, Duration::from_secs(5)).await;
        let more = c.collect_for(Duration::from_millis(1000)).await;
        let video: Vec<u32> = more
            .iter()
            .filter(|t| t.kind == MediaKind::Video)
            .map(|t| t.timestamp)
            .collect();
        (t, video)
    });
    let results = futures_util::future::join_all(players).await;
    for (t, video) in &results {
        assert!(*t < Duration::from_secs(2), "a player waited {t:?}");
        assert!(
            video.len() >= 10,
            "only {} video tags in a second",
            video.len()
        );
        assert!(
            video.windows(2).all(|w| w[1] > w[0]),
            "timestamps go back: {video:?}"
        );
    }
    let slowest = results.iter().map(|r| r.0).max().unwrap_or_default();
    eprintln!("FIGURE cluster: 20 edge players, slowest first keyframe {slowest:?}");

    // HLS from the edge too (the muxer is one more local subscriber of the relayed stream).
    let hls = ffmpeg_decode(&format!("http://{}/{key}/index.m3u8", b.http_addr()), 2.0).await;
    assert!(
        hls.video_frames >= 30,
        "only {} HLS video frames",
        hls.video_frames
    );
    assert_monotonic("edge hls video", &hls.video_dts);

    let info_b = server_info(b.http_addr()).await;
    let info_a = server_info(a.http_addr()).await;
    eprintln!(
        "FIGURE cluster: edge {}, owner {}",
        info_b["cluster"], info_a["cluster"]
    );
    // Both answers follow the API's published schema (the cluster section included).
    let doc = http_get(b.http_addr(), "/api/v1/openapi.json").await.json();
    let schema = &doc["paths"]["/api/v1/server"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    crate::observability::validate(&doc, schema, &info_b, "edge /api/v1/server");
    crate::observability::validate(&doc, schema, &info_a, "owner /api/v1/server");
    assert_eq!(info_b["cluster"]["relay_pulls_total"], 1, "{info_b}");
    assert_eq!(info_b["cluster"]["relay_pulls_active"], 1, "{info_b}");
    assert_eq!(info_a["cluster"]["relay_served_total"], 1, "{info_a}");
    assert_eq!(cluster(&b).stats.pulls_total.load(Ordering::Relaxed), 1);
    let metrics = http_get(b.http_addr(), "/metrics").await.body;
    assert!(
        metrics.contains("sluice_cluster_relay_pulls_total 1"),
        "{metrics}"
    );

    // The registry's keys, as another Redis client sees them.
    let epoch = cluster(&a).owned_epoch(key).expect("A owns it");
    assert_eq!(
        redis.get(&format!("sluice:owner:{key}")).await,
        Some(format!("node-a {epoch} {}", a.http_addr()))
    );
    assert_eq!(
        redis.get(&format!("sluice:epoch:{key}")).await,
        Some(epoch.to_string())
    );
    let node_b: serde_json::Value =
        serde_json::from_str(&redis.get("sluice:node:node-b").await.expect("B's record"))
            .expect("JSON");
    let node_a: serde_json::Value =
        serde_json::from_str(&redis.get("sluice:node:node-a").await.expect("A's record"))
            .expect("JSON");
    eprintln!("FIGURE cluster: node records {node_a} {node_b}");
    assert_eq!(node_b["advertise"], b.http_addr().to_string());
    assert_eq!(node_b["state"], "serving");
    assert!(
        node_b["egress_bps"].as_u64().unwrap_or(0) > 100_000,
        "{node_b}"
    );
    assert!(
        node_a["egress_bps"].as_u64().unwrap_or(0) > 100_000,
        "{node_a}"
    );
    assert!(node_b["sessions"].as_u64().unwrap_or(0) >= 2, "{node_b}");

    // Probes.
    assert_eq!(http_get(b.http_addr(), "/healthz").await.status, 200);
    assert_eq!(http_get(b.http_addr(), "/readyz").await.status, 200);
    // A stream no node has: a plain 404 on B, no relay.
    let missing = http_get(b.http_addr(), "/live/nowhere.flv").await;
    assert_eq!(missing.status, 404);
    assert_eq!(cluster(&b).stats.pulls_total.load(Ordering::Relaxed), 1);
    drop(first);
    assert!(b.shutdown(Duration::from_secs(5)).await);
    assert!(a.shutdown(Duration::from_secs(5)).await);
}

/// Per live video frame seen by both hubs over about 2 s: how much later it entered `b`'s hub
/// than `a`'s, sorted.
async fn relay_hop_latency(
    a: &sluice::RunningServer,
    b: &sluice::RunningServer,
    key: &str,
) -> Vec<Duration> {
    async fn arrivals(mut sub: hub::Subscriber) -> Vec<(bytes::Bytes, std::time::Instant)> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut out = Vec::new();
        while let Ok(Some(f)) = tokio::time::timeout_at(deadline, sub.recv()).await {
            if f.kind == MediaKind::Video
                && f.role == media::FrameRole::Coded
                && let Some(at) = f.arrival
            {
                out.push((f.body.clone(), at));
            }
        }
        out
    }
    // Live frames only: the GOP cache each join starts with holds older frames, which B
    // received in its pull's first burst.
    let since = std::time::Instant::now();
    let on_a = a.hub().subscribe(key).expect("on A");
    let on_b = b.hub().subscribe(key).expect("on B");
    let (from_a, from_b) = tokio::join!(arrivals(on_a), arrivals(on_b));
    let mut hop: Vec<Duration> = from_b
        .iter()
        .filter_map(|(body, at_b)| {
            let (_, at_a) = from_a.iter().find(|(x, at)| x == body && *at >= since)?;
            Some(at_b.saturating_duration_since(*at_a))
        })
        .collect();
    hop.sort();
    assert!(hop.len() >= 30, "only {} frames matched", hop.len());
    hop
}

/// The first bytes of a relay response (status line and body start), reading at most `n`
/// body bytes.
async fn relay_request(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("request");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pos) = raw.windows(4).position(|w| w == b"\r\n\r\n")
            && raw.len() >= pos + 4 + 32
        {
            break;
        }
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| raw[p + 4..].to_vec())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_refuses_a_wrong_secret_and_a_stale_epoch() {
    let redis = Redis::start().await;
    let a = start(node_config(&redis, "node-a")).await;
    let key = "live/auth";
    let _publisher = publish(&format!("rtmp://{}/{key}", a.rtmp_addr()), -1, &["-re"]);
    wait_live(&a, key).await;
    let epoch = wait_owned(&a, key).await;
    let path = format!("/_cluster/relay/{key}?epoch={epoch}");
    let good = format!("Bearer {SECRET}");
    let wrong = format!("Bearer {}x", &SECRET[..SECRET.len() - 1]);
    assert_eq!(relay_request(a.http_addr(), &path, None).await.0, 401);
    assert_eq!(
        relay_request(a.http_addr(), &path, Some(&wrong)).await.0,
        401
    );
    assert_eq!(
        relay_request(a.http_addr(), &path, Some("Bearer ")).await.0,
        401
    );
    // The right secret for an epoch this node does not hold: the edge must look up again.
    let stale = format!("/_cluster/relay/{key}?epoch={}", epoch + 1);
    assert_eq!(
        relay_request(a.http_addr(), &stale, Some(&good)).await.0,
        409
    );
    assert_eq!(
        relay_request(
            a.http_addr(),
            "/_cluster/relay/live/none?epoch=1",
            Some(&good)
        )
        .await
        .0,
        409
    );
    assert_eq!(cluster(&a).stats.refused_total.load(Ordering::Relaxed), 5);
    assert_eq!(cluster(&a).stats.served_total.load(Ordering::Relaxed), 0);
    // The right secret and epoch: the relay framing, preamble first.
    let (status, body) = relay_request(a.http_addr(), &path, Some(&good)).await;
    assert_eq!(status, 200);
    // Chunked transfer: the first chunk's size line, then the preamble.
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("SLRELAY1"), "{text:?}");
    assert!(a.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_keeps_playing_on_the_edge_while_redis_is_down() {
    let mut redis = Redis::start().await;
    let a = start(node_config(&redis, "node-a")).await;
    let b = start(node_config(&redis, "node-b")).await;
    let key = "live/outage";
    let _publisher = publish(&format!("rtmp://{}/{key}", a.rtmp_addr()), -1, &["-re"]);
    wait_live(&a, key).await;
    wait_owned(&a, key).await;
    let mut player = RawFlvClient::connect(b.http_addr(), &format!("/{key}.flv")).await;
    first_keyframe(&mut player, Duration::from_secs(5)).await;

    redis.stop().await;
    let stopped = Instant::now();
    // Past the records' expiry: both nodes notice, nothing stalls.
    let tags = player.collect_for(Duration::from_millis(4000)).await;
    let video: Vec<&SeenTag> = tags.iter().filter(|t| t.kind == MediaKind::Video).collect();
    assert!(!player.ended, "the edge player was disconnected");
    assert!(
        video.len() >= 80,
        "only {} video tags in 4 s without Redis",
        video.len()
    );
    let gap = video
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or_default();
    eprintln!(
        "FIGURE cluster: 4 s without redis, {} video tags on the edge, longest gap {gap:?}",
        video.len()
    );
    assert!(gap < Duration::from_millis(700), "the edge stalled {gap:?}");
    assert!(
        video.windows(2).all(|w| w[1].timestamp > w[0].timestamp),
        "timestamps go back"
    );
    assert!(!cluster(&a).registered() && !cluster(&b).registered());
    assert_eq!(http_get(b.http_addr(), "/readyz").await.status, 503);
    assert_eq!(http_get(b.http_addr(), "/healthz").await.status, 200);
    assert!(stopped.elapsed() < Duration::from_secs(6));

    // Redis back (empty): the registry heals, the owner claims its stream again.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(cluster(&a).registered()
        && cluster(&b).registered()
        && cluster(&a).owned_epoch(key).is_some())
    {
        assert!(Instant::now() < deadline, "the registry did not heal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http_get(b.http_addr(), "/readyz").await.status, 200);
    let more = player.collect_for(Duration::from_millis(500)).await;
    assert!(
        more.iter().any(|t| t.kind == MediaKind::Video),
        "the edge player stopped"
    );
    assert_eq!(cluster(&b).stats.pulls_total.load(Ordering::Relaxed), 1);
    drop(player);
    assert!(b.shutdown(Duration::from_secs(5)).await);
    assert!(a.shutdown(Duration::from_secs(5)).await);
}

/// A Sluice node in a process of its own (so it can be killed with SIGKILL): its child and
/// its RTMP and HTTP addresses, read from its log.
async fn node_process(redis: &Redis, node: &str) -> (Child, SocketAddr, SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = sluice_process();
    // Only this node's settings (the test runner's own SLUICE_* variables, e.g.
    // SLUICE_PYTHON, would be unknown keys to the server).
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SLUICE_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .env("SLUICE_CLUSTER_REDIS_URL", redis.url())
        .env("SLUICE_CLUSTER_NODE_ID", node)
        .env("SLUICE_CLUSTER_SECRET", SECRET)
        .args(["--log-level", "info"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice runs");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut rtmp, mut http) = (None::<SocketAddr>, None::<SocketAddr>);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while rtmp.is_none() || http.is_none() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("listening lines in time")
            .expect("read")
            .unwrap_or_else(|| panic!("node {node} exited: {seen}"));
        seen.push_str(&line);
        seen.push('\n');
        let field = |name: &str| {
            line.split(name)
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse().ok())
        };
        if line.contains("rtmp listening") {
            rtmp = field("rtmp_addr=");
        } else if line.contains("http listening") {
            http = field("http_addr=");
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, rtmp.expect("rtmp addr"), http.expect("http addr"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_keeps_its_viewers_when_the_owner_is_killed_and_the_stream_moves() {
    let redis = Redis::start().await;
    let (mut a, a_rtmp, _) = node_process(&redis, "node-a").await;
    let b = start(node_config(&redis, "node-b")).await;
    let c = start(node_config(&redis, "node-c")).await;
    let key = "live/failover";
    let mut publisher = publish(&format!("rtmp://{a_rtmp}/{key}"), -1, &["-re"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let first_owner = loop {
        if let Ok(Some(o)) = cluster(&b).owner(key).await {
            break o;
        }
        assert!(Instant::now() < deadline, "node A never claimed {key}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(first_owner.node, "node-a");
    let mut player = RawFlvClient::connect(b.http_addr(), &format!("/{key}.flv")).await;
    first_keyframe(&mut player, Duration::from_secs(5)).await;
    let before = player.collect_for(Duration::from_millis(1000)).await;
    assert!(before.iter().filter(|t| t.kind == MediaKind::Video).count() >= 15);

    // The owner dies; the encoder reconnects to another node half a second later.
    a.kill().await.expect("SIGKILL node A");
    let killed = Instant::now();
    let _ = publisher.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _republisher = publish(&format!("rtmp://{}/{key}", c.rtmp_addr()), -1, &["-re"]);
    let epoch = wait_owned(&c, key).await;
    assert!(
        epoch > first_owner.epoch,
        "the new owner's epoch {epoch} is not newer"
    );

    // The edge's player stays connected and resumes: measure the stall.
    let after = player.collect_for(Duration::from_millis(6000)).await;
    assert!(!player.ended, "the edge player was disconnected");
    let video: Vec<&SeenTag> = after
        .iter()
        .filter(|t| t.kind == MediaKind::Video)
        .collect();
    let last_before = before
        .iter()
        .rfind(|t| t.kind == MediaKind::Video)
        .map(|t| t.at)
        .expect("video before");
    let mut times: Vec<Instant> = vec![last_before];
    times.extend(video.iter().map(|t| t.at));
    let stall = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let resumed = video.first().map(|t| t.at - killed);
    eprintln!(
        "FIGURE cluster failover: owner SIGKILLed, publisher back on node C after 0.5 s; \
         edge player resumed after {resumed:?}, longest video stall {stall:?}, {} video tags in 6 s",
        video.len()
    );
    assert!(
        video.len() >= 60,
        "only {} video tags after the failover",
        video.len()
    );
    // Target 3 s (issue 17), measured about 1.6 s here; slack for a loaded CI machine.
    assert!(stall < Duration::from_secs(4), "stall {stall:?}");
    // Coded video (a new owner's sequence header shares its first keyframe's timestamp).
    let stamps: Vec<u32> = before
        .iter()
        .chain(after.iter())
        .filter(|t| t.kind == MediaKind::Video && t.role == media::FrameRole::Coded)
        .map(|t| t.timestamp)
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[1] > w[0]),
        "edge timestamps go back across the failover: {stamps:?}"
    );
    assert_eq!(cluster(&b).stats.pulls_total.load(Ordering::Relaxed), 2);
    assert_eq!(cluster(&c).stats.served_total.load(Ordering::Relaxed), 1);
    drop(player);
    assert!(b.shutdown(Duration::from_secs(5)).await);
    assert!(c.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_listener_needs_an_advertised_address() {
    let redis = Redis::start().await;
    let mut cfg = node_config(&redis, "node-w");
    cfg.http.listen = "0.0.0.0:0".parse().unwrap();
    let err = sluice::start(cfg.clone()).await.err().expect("refused");
    assert!(err.to_string().contains("cluster.advertise"), "{err}");
    cfg.cluster.advertise = "127.0.0.1:1".into();
    let s = sluice::start(cfg)
        .await
        .expect("starts with an advertised address");
    assert_eq!(cluster(&s).advertise(), "127.0.0.1:1");
    assert!(s.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_publish_elsewhere_fences_the_old_owner() {
    let redis = Redis::start().await;
    let a = start(node_config(&redis, "node-a")).await;
    let b = start(node_config(&redis, "node-b")).await;
    let c = start(node_config(&redis, "node-c")).await;
    let key = "live/fence";
    let _first = publish(&format!("rtmp://{}/{key}", a.rtmp_addr()), -1, &["-re"]);
    wait_live(&a, key).await;
    let old = wait_owned(&a, key).await;
    let mut player = RawFlvClient::connect(b.http_addr(), &format!("/{key}.flv")).await;
    first_keyframe(&mut player, Duration::from_secs(5)).await;

    // The same stream published on C: the newest publish wins at once, with a newer epoch.
    let _second = publish(&format!("rtmp://{}/{key}", c.rtmp_addr()), -1, &["-re"]);
    let new = wait_owned(&c, key).await;
    assert!(new > old, "epoch {new} is not newer than {old}");
    // A learns it on its next refresh, stops owning and ends the relay it served.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster(&a).owned_epoch(key).is_some() {
        assert!(Instant::now() < deadline, "node A was never fenced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cluster(&a).stats.fenced_total.load(Ordering::Relaxed), 1);
    let path = format!("/_cluster/relay/{key}?epoch={old}");
    let auth = format!("Bearer {SECRET}");
    assert_eq!(
        relay_request(a.http_addr(), &path, Some(&auth)).await.0,
        409
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster(&a).stats.served_active.load(Ordering::Relaxed) != 0
        || cluster(&c).stats.served_active.load(Ordering::Relaxed) != 1
    {
        assert!(
            Instant::now() < deadline,
            "the edge did not move to the new owner"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The edge's player carried on through the move.
    let after = player.collect_for(Duration::from_millis(1500)).await;
    assert!(!player.ended, "the edge player was disconnected");
    let coded: Vec<u32> = after
        .iter()
        .filter(|t| t.kind == MediaKind::Video && t.role == media::FrameRole::Coded)
        .map(|t| t.timestamp)
        .collect();
    assert!(
        coded.len() >= 20,
        "only {} video frames after the move",
        coded.len()
    );
    assert!(coded.windows(2).all(|w| w[1] > w[0]), "{coded:?}");
    assert_eq!(cluster(&b).stats.pulls_total.load(Ordering::Relaxed), 2);
    assert_eq!(
        cluster(&b).owner(key).await.expect("redis").map(|o| o.node),
        Some("node-c".to_owned())
    );
    drop(player);
    for s in [b, c, a] {
        assert!(s.shutdown(Duration::from_secs(5)).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_and_rtmp_play_from_the_edge() {
    let redis = Redis::start().await;
    let a = start(node_config(&redis, "node-a")).await;
    let b = start(node_config(&redis, "node-b")).await;
    let key = "live/edgertc";
    let _publisher = publish(&format!("rtmp://{}/{key}", a.rtmp_addr()), -1, &["-re"]);
    wait_live(&a, key).await;
    wait_owned(&a, key).await;
    // WebRTC from the edge (aiortc; Opus derived on B from the relayed AAC) and RTMP (ffmpeg),
    // at once: both join the one relayed stream.
    let whep = format!("http://{}/{key}/whep", b.http_addr());
    let rtmp = format!("rtmp://{}/{key}", b.rtmp_addr());
    let (r, d) = tokio::join!(
        crate::webrtc_support::whep_client(&whep, 3.0, false),
        ffmpeg_decode(&rtmp, 3.0)
    );
    assert_eq!(r["status"], 201, "{r}");
    assert!(r["video"]["frames"].as_u64().unwrap_or(0) >= 50, "{r}");
    assert_eq!(r["video"]["non_increasing"], 0, "{r}");
    assert!(r["audio"]["frames"].as_u64().unwrap_or(0) > 100, "{r}");
    assert!(
        d.stderr.trim().is_empty(),
        "rtmp decode errors: {}",
        d.stderr
    );
    assert!(d.video_frames >= 50 && d.audio_frames >= 50, "{d:?}");
    assert_monotonic("edge rtmp video", &d.video_dts);
    eprintln!(
        "FIGURE cluster: edge WHEP {} video / {} audio frames, edge RTMP {} video frames",
        r["video"]["frames"], r["audio"]["frames"], d.video_frames
    );
    assert_eq!(cluster(&b).stats.pulls_total.load(Ordering::Relaxed), 1);
    // Both players gone: the pull stops after cluster::PULL_IDLE, and A stops serving it.
    let left = Instant::now();
    let deadline = left + cluster::PULL_IDLE + Duration::from_secs(5);
    while cluster(&b).stats.pulls_active.load(Ordering::Relaxed) != 0
        || cluster(&a).stats.served_active.load(Ordering::Relaxed) != 0
    {
        assert!(Instant::now() < deadline, "the idle pull never stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle = left.elapsed();
    assert!(
        idle >= cluster::PULL_IDLE - Duration::from_millis(500),
        "{idle:?}"
    );
    eprintln!("FIGURE cluster: idle pull stopped {idle:?} after its last viewer left");
    assert!(b.shutdown(Duration::from_secs(5)).await);
    assert!(a.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_reconnecting_to_an_edge_takes_the_stream_over_there() {
    let redis = Redis::start().await;
    let a = start(node_config(&redis, "node-a")).await;
    let b = start(node_config(&redis, "node-b")).await;
    let key = "live/moveto";
    let mut first = publish(&format!("rtmp://{}/{key}", a.rtmp_addr()), -1, &["-re"]);
    wait_live(&a, key).await;
    let old = wait_owned(&a, key).await;
    let mut player = RawFlvClient::connect(b.http_addr(), &format!("/{key}.flv")).await;
    first_keyframe(&mut player, Duration::from_secs(5)).await;
    let before = player.collect_for(Duration::from_millis(500)).await;

    // The encoder loses A and comes back on B (where a load balancer sent it), which was
    // pulling the stream: the pull yields, the publish takes the stream over in its grace
    // period, and B becomes the owner with a newer epoch.
    let _ = first.kill().await;
    let moved = Instant::now();
    let _second = publish(&format!("rtmp://{}/{key}", b.rtmp_addr()), -1, &["-re"]);
    let new = wait_owned(&b, key).await;
    assert!(new > old, "epoch {new} is not newer than {old}");
    let after = player.collect_for(Duration::from_millis(3000)).await;
    assert!(!player.ended, "the player on B was disconnected");
    let snapshot = b.hub().stream(key).expect("the stream on B");
    assert_eq!(snapshot.publisher.map(|p| p.protocol), Some("rtmp"));
    let coded: Vec<&SeenTag> = before
        .iter()
        .chain(after.iter())
        .filter(|t| t.kind == MediaKind::Video && t.role == media::FrameRole::Coded)
        .collect();
    assert!(
        coded.windows(2).all(|w| w[1].timestamp > w[0].timestamp),
        "timestamps go back across the move"
    );
    let stall = coded
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or_default();
    let resumed = after
        .iter()
        .filter(|t| t.kind == MediaKind::Video && t.at > moved)
        .count();
    eprintln!(
        "FIGURE cluster: encoder moved to the edge; longest stall {stall:?}, {resumed} video tags in 3 s"
    );
    assert!(resumed >= 40, "only {resumed} video tags after the move");
    assert!(stall < Duration::from_secs(3), "stall {stall:?}");
    assert_eq!(
        cluster(&a).owner(key).await.expect("redis").map(|o| o.node),
        Some("node-b".to_owned())
    );
    drop(player);
    assert!(b.shutdown(Duration::from_secs(5)).await);
    assert!(a.shutdown(Duration::from_secs(5)).await);
}
