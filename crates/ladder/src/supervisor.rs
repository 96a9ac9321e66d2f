//! One source's ladder: start the ffmpeg child, feed it, publish its rungs, restart it with
//! back-off when it dies, stop when the source is gone.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use access::StreamName;
use bytes::BytesMut;
use control::Control;
use flv::FlvReader;
use flv::mux::{TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use hub::viewer::ViewerClock;
use hub::{Subscriber, Want};
use media::{Codec, FrameRole, MediaKind};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::Ladders;
use crate::command::{args, rungs_below};

/// How long a new subscription may take to show the source's video configuration.
pub const CONFIG_WAIT: Duration = Duration::from_secs(10);
/// How long ffmpeg may take to connect every rung's output after it started.
pub const CONNECT_WAIT: Duration = Duration::from_secs(15);
/// A child that ran this long resets the back-off.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// ffmpeg's error lines kept for the log and the API.
pub const ERROR_LINES: usize = 8;
/// Longest error line kept (bytes).
const MAX_LINE: usize = 300;

/// Why one run of the child ended.
enum End {
    /// The source stream is gone (or the server stops): the ladder ends.
    SourceGone,
    /// The child failed: restart it.
    Failed(String),
}

/// Runs `source`'s ladder until the source is gone or the server stops.
pub(crate) async fn run(ctl: &Arc<Control>, ladders: &Ladders, source: &str) {
    let cfg = &ctl.config.transcode;
    let mut backoff = Duration::from_millis(cfg.restart_backoff_ms);
    let max_backoff = Duration::from_millis(config::transcode::MAX_RESTART_BACKOFF_MS);
    loop {
        let started = tokio::time::Instant::now();
        match once(ctl, ladders, source).await {
            End::SourceGone => return,
            End::Failed(why) => {
                ladders.restarts.fetch_add(1, Ordering::Relaxed);
                ladders.update(source, |s| {
                    s.restarts += 1;
                    s.pid = None;
                    s.last_error = Some(why.clone());
                });
                tracing::error!(stream = %source, "ladder ffmpeg failed, restarting in {backoff:?}: {why}");
            }
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = Duration::from_millis(cfg.restart_backoff_ms);
        }
        tokio::select! {
            _ = ctl.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        if !ctl.hub.contains(source) {
            return;
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// One run of the child.
async fn once(ctl: &Arc<Control>, ladders: &Ladders, source: &str) -> End {
    let Ok(mut sub) = ctl.hub.subscribe_with(source, Want::audio(Codec::Aac)) else {
        return End::SourceGone;
    };
    // The source's height, from its video configuration (the subscription's first frames).
    let mut held = Vec::new();
    let height = match tokio::time::timeout(CONFIG_WAIT, source_height(&mut sub, &mut held)).await {
        Ok(Some(h)) => h,
        Ok(None) => return End::SourceGone,
        Err(_) => {
            tracing::info!(stream = %source, "ladder: no H.264/H.265 video configuration; no ladder");
            return End::SourceGone;
        }
    };
    let rungs = rungs_below(&ctl.config.transcode.ladder, height);
    if rungs.is_empty() {
        tracing::info!(stream = %source, height, "ladder: no rung below the source's height");
        return End::SourceGone;
    }
    let mut listeners = Vec::with_capacity(rungs.len());
    let mut outputs = Vec::with_capacity(rungs.len());
    for _ in &rungs {
        match TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await {
            Ok(l) => {
                outputs.push(
                    l.local_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0))),
                );
                listeners.push(l);
            }
            Err(e) => return End::Failed(format!("loopback listener: {e}")),
        }
    }
    let cfg = &ctl.config.transcode;
    let mut child = match Command::new(&cfg.ffmpeg)
        .args(args(cfg, &rungs, &outputs))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return End::Failed(format!("{} did not start: {e}", cfg.ffmpeg)),
    };
    let names: Vec<String> = rungs
        .iter()
        .map(|r| format!("{source}_{}", r.name))
        .collect();
    ladders.update(source, |s| {
        s.pid = child.id();
        s.rungs = names.clone();
    });
    tracing::info!(stream = %source, rungs = ?names, pid = ?child.id(), "ladder ffmpeg started");
    let errors = Arc::new(std::sync::Mutex::new(VecDeque::new()));
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(keep_errors(stderr, errors.clone()));
    }
    let stop = ctl.shutdown.child_token();
    let mut rung_tasks = tokio::task::JoinSet::new();
    for (listener, name) in listeners.into_iter().zip(&names) {
        let (ctl, name, stop) = (ctl.clone(), name.clone(), stop.clone());
        rung_tasks.spawn(async move { publish_rung(&ctl, listener, &name, stop).await });
    }
    let Some(stdin) = child.stdin.take() else {
        return End::Failed("no stdin".to_owned());
    };
    let end = tokio::select! {
        gone = feed(sub, held, stdin) => {
            if gone { End::SourceGone } else { End::Failed(tail(&errors, "ffmpeg stopped reading")) }
        }
        status = child.wait() => End::Failed(tail(&errors, &format!("ffmpeg exited: {status:?}"))),
        Some(r) = rung_tasks.join_next() => End::Failed(tail(&errors, &match r {
            Ok(why) => why,
            Err(e) => format!("rung task: {e}"),
        })),
        _ = ctl.shutdown.cancelled() => End::SourceGone,
    };
    stop.cancel();
    stop_child(&mut child).await;
    rung_tasks.shutdown().await;
    if matches!(end, End::SourceGone) {
        tracing::info!(stream = %source, "ladder stopped: the source is gone");
    }
    end
}

/// Reads the subscription (keeping what it read in `held`) until the video configuration;
/// returns its height, or `None` when the stream ended.
async fn source_height(sub: &mut Subscriber, held: &mut Vec<Arc<media::Frame>>) -> Option<u32> {
    loop {
        let f = sub.recv().await?;
        let header = f.kind == MediaKind::Video && f.role == FrameRole::SequenceHeader;
        let height = header.then(|| video_height(&f)).flatten();
        // Bounded: a GOP cache is bounded, and without a header in it we time out.
        if held.len() < 4096 {
            held.push(f);
        }
        if let Some(h) = height {
            return Some(h);
        }
    }
}

/// The height in a video sequence header (H.264 or H.265).
fn video_height(f: &media::Frame) -> Option<u32> {
    let payload = f.payload();
    match f.codec {
        Codec::H264 => media::avc::parse_avc_decoder_config(&payload)
            .ok()?
            .parse_sps()
            .ok()
            .map(|s| s.height),
        Codec::H265 => media::hevc::parse_hevc_decoder_config(&payload)
            .ok()?
            .parse_sps()
            .ok()
            .map(|s| s.height),
        _ => None,
    }
}

/// Writes the source as FLV to ffmpeg's stdin: `held` first, then the subscription. Returns
/// true when the source ended, false when ffmpeg stopped reading.
async fn feed(
    mut sub: Subscriber,
    held: Vec<Arc<media::Frame>>,
    mut stdin: tokio::process::ChildStdin,
) -> bool {
    let mut clock = ViewerClock::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    buf.extend_from_slice(&flv::mux::file_header(true, true));
    let mut pending = held.into_iter();
    loop {
        let f = match pending.next() {
            Some(f) => f,
            None => match sub.recv().await {
                Some(f) => f,
                None => return true,
            },
        };
        let tag = match f.kind {
            MediaKind::Video => TAG_VIDEO,
            MediaKind::Audio => TAG_AUDIO,
            MediaKind::Data => TAG_SCRIPT,
        };
        let ts = clock.timestamp(&f);
        flv::mux::write_tag(&mut buf, tag, ts, &f.body);
        if stdin.write_all(&buf).await.is_err() {
            return false;
        }
        buf.clear();
    }
}

/// Accepts ffmpeg's connection for one rung and publishes what it sends as `name`. Returns
/// why it ended (ffmpeg closed it, or sent something that is not FLV).
async fn publish_rung(
    ctl: &Arc<Control>,
    listener: TcpListener,
    name: &str,
    stop: CancellationToken,
) -> String {
    let accepted = tokio::select! {
        _ = stop.cancelled() => return "stopped".to_owned(),
        a = tokio::time::timeout(CONNECT_WAIT, listener.accept()) => a,
    };
    let mut sock = match accepted {
        Ok(Ok((sock, _))) => sock,
        Ok(Err(e)) => return format!("rung {name}: accept: {e}"),
        Err(_) => return format!("rung {name}: ffmpeg did not connect within {CONNECT_WAIT:?}"),
    };
    drop(listener);
    let Some((app, stream)) = name.split_once('/') else {
        return format!("rung {name}: not app/stream");
    };
    let auth = match StreamName::new(app, stream) {
        Ok(n) => ctl.authorize_internal(n),
        Err(e) => return format!("rung {name}: {e}"),
    };
    let mut admitted = match ctl.publish(auth, "ladder", "ffmpeg".to_owned(), stop.clone()) {
        Ok(a) => a,
        Err(r) => return format!("rung {name}: {r}"),
    };
    let mut reader = FlvReader::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => return "stopped".to_owned(),
            n = sock.read(&mut buf) => n,
        };
        let n = match n {
            Ok(0) => return format!("rung {name}: ffmpeg closed its output"),
            Ok(n) => n,
            Err(e) => return format!("rung {name}: {e}"),
        };
        admitted.session.bytes(n);
        reader.push(&buf[..n]);
        loop {
            match reader.next_tag() {
                Ok(Some(tag)) => match flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body) {
                    Ok(frame) => {
                        admitted.counters.observe(&frame);
                        admitted.publisher.push(frame);
                    }
                    Err(e) => tracing::debug!(stream = %name, "ladder rung: tag skipped: {e}"),
                },
                Ok(None) => break,
                Err(e) => return format!("rung {name}: ffmpeg sent bad FLV: {e}"),
            }
        }
    }
}

/// Keeps the last [`ERROR_LINES`] lines ffmpeg wrote to stderr.
async fn keep_errors(
    stderr: tokio::process::ChildStderr,
    lines: Arc<std::sync::Mutex<VecDeque<String>>>,
) {
    let mut r = BufReader::new(stderr).lines();
    while let Ok(Some(mut line)) = r.next_line().await {
        line.truncate(MAX_LINE);
        let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() == ERROR_LINES {
            l.pop_front();
        }
        l.push_back(access::escape_for_log(&line).to_string());
    }
}

/// `why`, with ffmpeg's last error lines when it wrote any.
fn tail(lines: &std::sync::Mutex<VecDeque<String>>, why: &str) -> String {
    let l = lines.lock().unwrap_or_else(|e| e.into_inner());
    if l.is_empty() {
        why.to_owned()
    } else {
        format!(
            "{why}: {}",
            l.iter().cloned().collect::<Vec<_>>().join(" | ")
        )
    }
}

/// Kills the child and reaps it (bounded).
async fn stop_child(child: &mut Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}
