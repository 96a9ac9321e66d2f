//! Memory an RTMP client can make the server hold in incomplete messages is bounded.
//!
//! The attack reproduced here: after the handshake and an unauthenticated `connect`, a client
//! raises its chunk size to just under 8 MiB and sends the first chunk (all but one byte) of
//! an 8 MiB message on each of 62 chunk streams. Before the fix each such connection made the
//! server hold about 500 MB for as long as the client kept it alive. Now a connection may hold
//! 64 KiB in incomplete messages until a publish is admitted, and all connections together
//! at most `limits.max_rtmp_partial_bytes`.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use common::rtmp_client::RtmpClient;
use common::*;
use rtmp::ClientEvent;
use rtmp::chunk::{encode_message, write_message_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The tests measure this process's RSS (the server runs in it): one at a time.
static LOCK: Mutex<()> = Mutex::const_new(());

/// The announced message length: the default `limits.max_message_len`.
const MESSAGE_LEN: u32 = 8 * 1024 * 1024;
/// The attacker's chunk size: one byte short of the message, so the first chunk never
/// completes it.
const CHUNK: u32 = MESSAGE_LEN - 1;
/// Chunk streams the attacker opens (3..=64): 62, as in the report.
const STREAMS: std::ops::RangeInclusive<u32> = 3..=64;

/// This process's resident set size in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Handshake, `connect(app)` answered, and (when `publish` names a stream) an accepted
/// publish; returns the raw socket for the attack.
async fn connected(addr: SocketAddr, publish: Option<&str>) -> TcpStream {
    let mut c = RtmpClient::connect(addr, "live").await;
    c.wait_for("connect result", |e| matches!(e, ClientEvent::Connected))
        .await;
    if let Some(name) = publish {
        let ev = c.publish(name).await;
        assert!(
            matches!(ev, ClientEvent::PublishStarted { .. }),
            "publish {name}: {ev:?}"
        );
    }
    c.into_socket()
}

/// Set Chunk Size to [`CHUNK`], then on each chunk stream of `csids` a type-0 header of a
/// [`MESSAGE_LEN`] video message and its first chunk. Stops at the first write error (the
/// server closed the connection) and says whether every byte was written.
async fn hold_partials(
    sock: &mut TcpStream,
    body: &[u8],
    csids: impl IntoIterator<Item = u32>,
) -> bool {
    let mut b = BytesMut::new();
    encode_message(&mut b, 2, 0, 1, 0, &CHUNK.to_be_bytes(), 128);
    if sock.write_all(&b).await.is_err() {
        return false;
    }
    for csid in csids {
        let mut h = BytesMut::new();
        write_message_header(&mut h, csid, 0, MESSAGE_LEN, 9, 1);
        if sock.write_all(&h).await.is_err() || sock.write_all(body).await.is_err() {
            return false;
        }
    }
    true
}

/// The server's count of bytes held in incomplete RTMP messages.
fn partial_bytes(server: &sluice::RunningServer) -> u64 {
    server.stats().rtmp_partial_bytes.load(Ordering::Relaxed)
}

/// Waits (bounded) until the server's count of bytes in incomplete messages satisfies `pred`.
async fn wait_partial(server: &sluice::RunningServer, what: &str, pred: impl Fn(u64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pred(partial_bytes(server)) {
        assert!(
            Instant::now() < deadline,
            "{what}: the server holds {} bytes in incomplete messages",
            partial_bytes(server)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts the server keeps `sock` open for `dur` (whatever it sends meanwhile).
async fn assert_open(sock: &mut TcpStream, dur: Duration) {
    let deadline = Instant::now() + dur;
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(r) = tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
        match r {
            Ok(0) | Err(_) => panic!("the server closed a connection within its budget"),
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_messages_before_publish_are_refused_and_memory_stays_flat() {
    // Resident memory is the whole process's: measured alone in a child process.
    if !own_process(
        module_path!(),
        "partial_messages_before_publish_are_refused_and_memory_stays_flat",
    )
    .await
    {
        return;
    }
    let _turn = LOCK.lock().await;
    let server = start(test_config()).await;
    let addr = server.rtmp_addr();
    let body = vec![0x17u8; CHUNK as usize];
    // Settle the allocator and the runtime before the baseline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss0 = rss_bytes();
    const CONNECTIONS: usize = 3;
    let mut socks = Vec::new();
    for _ in 0..CONNECTIONS {
        socks.push(connected(addr, None).await);
    }
    let started = Instant::now();
    let attacks = socks.into_iter().map(|mut s| {
        let body = &body;
        async move {
            let all = tokio::time::timeout(
                Duration::from_secs(60),
                hold_partials(&mut s, body, STREAMS),
            )
            .await
            .expect("the attack's writes end in time");
            (all, s)
        }
    });
    let results = futures_util::future::join_all(attacks).await;
    let grown = rss_bytes().saturating_sub(rss0);
    eprintln!(
        "FIGURE {CONNECTIONS} connections x {} chunk streams x {} MiB partial messages: RSS \
         grew {} KiB in {:?}",
        STREAMS.clone().count(),
        MESSAGE_LEN >> 20,
        grown / 1024,
        started.elapsed()
    );
    for (i, (all, mut s)) in results.into_iter().enumerate() {
        assert!(
            !all,
            "connection {i}: the server took every partial message"
        );
        expect_closed(&mut s, Duration::from_secs(5)).await;
    }
    assert!(
        grown < 48 * 1024 * 1024,
        "partial messages grew the server's RSS by {} MiB",
        grown >> 20
    );
    assert!(
        server.stats().rtmp_errors.load(Ordering::Relaxed) >= CONNECTIONS as u64,
        "the closes are counted as errors"
    );
    // Each connection's own budget refused it; the server-wide one was never reached.
    assert_eq!(
        server.stats().rtmp_partial_refused.load(Ordering::Relaxed),
        0
    );
    wait_partial(&server, "after the closes", |n| n == 0).await;
    assert_publish_and_play_work(&server, "live/after").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_wide_budget_closes_the_connection_that_would_exceed_it() {
    let _turn = LOCK.lock().await;
    let mut cfg = test_config();
    // Room for one 8 MiB message in flight, not two.
    cfg.limits.max_rtmp_partial_bytes = 12 * 1024 * 1024;
    let server = start(cfg).await;
    let addr = server.rtmp_addr();
    let body = vec![0x17u8; CHUNK as usize];
    // An admitted publisher may hold one message of the largest length: all but its last
    // byte is taken and held.
    let mut first = connected(addr, Some("first")).await;
    assert!(hold_partials(&mut first, &body, [6]).await);
    wait_partial(&server, "first publisher", |n| n >= u64::from(CHUNK)).await;
    // A second one doing the same would pass the server-wide budget: it is closed.
    let mut second = connected(addr, Some("second")).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        hold_partials(&mut second, &body, [6]),
    )
    .await
    .expect("the writes end in time");
    expect_closed(&mut second, Duration::from_secs(5)).await;
    assert_eq!(
        server.stats().rtmp_partial_refused.load(Ordering::Relaxed),
        1
    );
    let held = partial_bytes(&server);
    eprintln!(
        "FIGURE server-wide budget 12 MiB: the second 8 MiB partial message was refused; \
         {} KiB held",
        held / 1024
    );
    assert!(held <= 12 * 1024 * 1024, "{held} bytes held");
    // The first keeps its connection and its bytes.
    assert_open(&mut first, Duration::from_secs(1)).await;
    assert!(partial_bytes(&server) >= u64::from(CHUNK));
    drop(first);
    wait_partial(&server, "after the first closed", |n| n == 0).await;
    assert_publish_and_play_work(&server, "live/after").await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// A normal ffmpeg publish of the fixture plays back over RTMP.
async fn assert_publish_and_play_work(server: &sluice::RunningServer, key: &str) {
    let url = format!("rtmp://{}/{key}", server.rtmp_addr());
    let _publisher = publish(&url, -1, &["-re"]);
    wait_live(server, key).await;
    let d = ffmpeg_decode(&url, 2.0).await;
    eprintln!(
        "FIGURE after the attack: played {} video and {} audio frames",
        d.video_frames, d.audio_frames
    );
    assert!(
        d.video_frames >= 25 && d.audio_frames >= 25,
        "decoded {} video, {} audio frames",
        d.video_frames,
        d.audio_frames
    );
    assert!(d.stderr.trim().is_empty(), "player: {}", d.stderr);
    assert_monotonic("video", &d.video_dts);
    assert_monotonic("audio", &d.audio_dts);
}
