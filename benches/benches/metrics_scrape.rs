//! The cost of one `/metrics` scrape (and one sessions page) on a server with 100 live
//! streams and 10,000 sessions: per-stream series only, never per session, so the scrape
//! cost must not grow with the audience.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hub::PublisherInfo;
use sluice::{Config, SessionInfo, SessionKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Streams published.
const STREAMS: usize = 100;
/// Sessions registered in all (one publisher per stream, the rest viewers).
const SESSIONS: usize = 10_000;

/// One HTTP/1.0 GET, the whole response read.
async fn get(addr: SocketAddr, path: &str) -> usize {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: b\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::with_capacity(256 * 1024);
    s.read_to_end(&mut buf).await.expect("read");
    buf.len()
}

fn scrape(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut cfg = Config::default();
    cfg.rtmp.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.vod.dir = std::env::temp_dir().join(format!("sluice-bench-vod-{}", std::process::id()));
    let server = rt.block_on(sluice::start(cfg)).expect("server");
    let frames: Vec<media::Frame> = flv::read_all_tags(sluice_microbench::DEMO_FLV)
        .expect("fixture")
        .into_iter()
        .filter_map(|t| flv::frame_from_tag(t.tag_type, t.timestamp, t.body).ok())
        .take(60)
        .collect();
    // 100 streams with headers and a GOP, each with its publisher and 99 viewers listed.
    let mut publishers = Vec::new();
    let mut guards = Vec::new();
    let sessions = server.sessions();
    for i in 0..STREAMS {
        let key = format!("live/s{i}");
        let info = PublisherInfo {
            protocol: "rtmp",
            remote: format!("10.0.0.{i}:1935"),
        };
        let mut p = server.hub().publish(&key, info).expect("publish");
        for f in &frames {
            p.push(f.clone());
        }
        publishers.push(p);
        for j in 0..SESSIONS / STREAMS {
            let kind = if j == 0 {
                SessionKind::Publisher
            } else {
                SessionKind::Viewer
            };
            let info = SessionInfo {
                kind,
                protocol: if j % 2 == 0 { "rtmp" } else { "http-flv" },
                stream: key.clone(),
                remote: format!("10.1.{i}.{j}:50000"),
            };
            guards.push(sessions.register(info, CancellationToken::new()));
        }
    }
    assert_eq!(sessions.len(), SESSIONS);
    let addr = server.http_addr();
    let text = server.metrics_text();
    eprintln!(
        "exposition: {} bytes, {} series, with {STREAMS} streams and {SESSIONS} sessions",
        text.len(),
        text.lines().filter(|l| !l.starts_with('#')).count()
    );
    let mut g = c.benchmark_group("scrape_100_streams_10k_sessions");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("render_metrics", |b| {
        b.iter(|| black_box(server.metrics_text()))
    });
    g.bench_function("http_get_metrics", |b| {
        b.iter(|| black_box(rt.block_on(get(addr, "/metrics"))))
    });
    g.bench_function("http_get_sessions_page_1000", |b| {
        b.iter(|| black_box(rt.block_on(get(addr, "/api/v1/sessions?limit=1000"))))
    });
    g.finish();
    drop(guards);
    drop(publishers);
    rt.block_on(server.shutdown(Duration::from_secs(2)));
}

criterion_group!(benches, scrape);
criterion_main!(benches);
