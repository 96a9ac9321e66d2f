//! HLS and LL-HLS over HTTP: one muxer per stream (the sans-IO `hls` crate), started by the
//! first playlist request (or at publish with `hls.always_on`), fed by a hub subscriber,
//! stopped after `hls.idle_timeout_ms` without requests. Everything is served from memory.
//!
//! Blocking requests (`_HLS_msn`/`_HLS_part`, a preload-hinted part, the first playlist of
//! a starting muxer) wait on a `watch` channel the muxer task bumps after each new part or
//! segment, bounded by `hls.block_timeout_ms`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hls::{HlsFile, HlsParams, HlsStream, Lookup, PlaylistQuery, Readiness, SegmentFormat};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use hls::{MEDIA_PLAYLIST_NAME, MULTIVARIANT_NAME};

use crate::Shared;
use config::HlsFormat;
use control::counters::{StreamCounters, ViewerProtocol};

/// A client address counts as an HLS viewer this long after its last playlist request.
pub const VIEWER_ACTIVE: Duration = Duration::from_secs(10);
/// Client addresses tracked per stream for the viewer count (beyond it, new addresses are
/// not counted until old ones expire).
pub const MAX_TRACKED_CLIENTS: usize = 10_000;
/// How often a muxer task checks for idleness and refreshes its viewer count.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// How long an ended stream's final playlist (with EXT-X-ENDLIST) stays served.
const ENDED_LINGER: Duration = Duration::from_secs(10);

/// Content-Type of playlists.
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// Cache-Control of segments, parts and init segments: their names are unique per muxer
/// instance, so they never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One stream's muxer as the HTTP handlers see it.
pub(crate) struct HlsEntry {
    state: Mutex<HlsStream>,
    changed: watch::Sender<u64>,
    last_request_ms: AtomicU64,
    clients: Mutex<HashMap<IpAddr, u64>>,
    cancel: CancellationToken,
}

impl HlsEntry {
    fn lock(&self) -> MutexGuard<'_, HlsStream> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self, now: u64) {
        self.last_request_ms.store(now, Ordering::Relaxed);
    }

    fn seen(&self, ip: Option<IpAddr>, now: u64) {
        let Some(ip) = ip else { return };
        let mut c = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() < MAX_TRACKED_CLIENTS || c.contains_key(&ip) {
            c.insert(ip, now);
        }
    }

    /// Active client addresses (and forgets the stale ones).
    fn active_clients(&self, now: u64) -> u64 {
        let mut c = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let horizon = now.saturating_sub(VIEWER_ACTIVE.as_millis() as u64);
        c.retain(|_, t| *t >= horizon);
        c.len() as u64
    }

    /// Waits until `check` gives a value, the stream state changes past the deadline, or
    /// the deadline passes. `check` runs under the muxer lock and must be quick.
    async fn wait_for<T>(
        &self,
        deadline: Instant,
        mut check: impl FnMut(&HlsStream) -> Option<T>,
    ) -> Option<T> {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(v) = check(&self.lock()) {
                return Some(v);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // Deadline, or the muxer is gone: one last look.
                _ => return check(&self.lock()),
            }
        }
    }
}

/// Every stream's HLS muxer.
#[derive(Default)]
pub(crate) struct HlsService {
    entries: Mutex<HashMap<String, Arc<HlsEntry>>>,
}

impl std::fmt::Debug for HlsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsService").finish_non_exhaustive()
    }
}

impl HlsService {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<HlsEntry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Muxers running now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Memory held by all muxers' segments, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        let entries: Vec<Arc<HlsEntry>> = self.lock().values().cloned().collect();
        entries.iter().map(|e| e.lock().stats().bytes).sum()
    }

    fn get(&self, key: &str) -> Option<Arc<HlsEntry>> {
        self.lock().get(key).cloned()
    }

    /// The running muxer of `key`, or a new one if the hub has the stream.
    pub(crate) fn get_or_start(
        shared: &Arc<Shared>,
        app: &str,
        key: &str,
    ) -> Option<Arc<HlsEntry>> {
        if let Some(e) = shared.hls.get(key) {
            return Some(e);
        }
        // AAC, as the segments' players take it: a WHIP stream's Opus reaches HLS through
        // the hub's derived AAC track (one per stream, shared with FLV and RTMP viewers).
        let sub = shared
            .ctl
            .hub
            .subscribe_with(key, ViewerProtocol::Hls.want())
            .ok()?;
        let cfg = &shared.ctl.config.hls;
        let format = match cfg.format_for(app) {
            HlsFormat::Fmp4 => SegmentFormat::Fmp4,
            HlsFormat::Ts => SegmentFormat::Ts,
        };
        let params = HlsParams {
            format,
            target_duration_ms: cfg.target_duration_ms,
            part_target_ms: cfg.part_target_ms,
            window_segments: cfg.window_segments,
        };
        let now = unix_ms();
        // A prefix unique to this muxer instance keeps caches from mixing two instances'
        // segments (sequence numbers restart when a muxer restarts).
        let prefix = format!("{now:x}-");
        let stream = match HlsStream::new(params, prefix) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%key, "hls: {e}");
                return None;
            }
        };
        let entry = Arc::new(HlsEntry {
            state: Mutex::new(stream),
            changed: watch::Sender::new(0),
            last_request_ms: AtomicU64::new(now),
            clients: Mutex::new(HashMap::new()),
            cancel: shared.ctl.shutdown.child_token(),
        });
        {
            let mut map = shared.hls.lock();
            if let Some(e) = map.get(key) {
                // Another request started it first.
                return Some(Arc::clone(e));
            }
            map.insert(key.to_owned(), Arc::clone(&entry));
        }
        tracing::info!(%key, ?format, "hls muxer started");
        let counters = shared.ctl.streams.get_or_create(key);
        let task = MuxerTask {
            shared: Arc::downgrade(shared),
            entry: Arc::clone(&entry),
            key: key.to_owned(),
            counters,
            idle: Duration::from_millis(cfg.idle_timeout_ms),
            always_on: cfg.mux_always(),
            disk: (!cfg.disk_dir.is_empty()).then(|| DiskMirror::new(&cfg.disk_dir, key)),
        };
        shared.ctl.tracker.spawn(task.run(sub));
        Some(entry)
    }
}

struct MuxerTask {
    shared: Weak<Shared>,
    entry: Arc<HlsEntry>,
    key: String,
    counters: Arc<StreamCounters>,
    idle: Duration,
    always_on: bool,
    disk: Option<DiskMirror>,
}

impl MuxerTask {
    async fn run(mut self, mut sub: hub::Subscriber) {
        let entry = &self.entry;
        let mut connects = sub.publisher_connects();
        let mut tick = tokio::time::interval(HOUSEKEEPING);
        let mut errors = 0u64;
        let mut viewers = 0u64;
        let mut oldest: Option<std::time::Instant> = None;
        // The segmenter carries H.264/H.265 video only: VP8, VP9 and AV1 (from WHIP or an
        // Enhanced RTMP publisher) are skipped, the playlist carries the audio. Said once.
        let mut warned_codec = false;
        // The first frames wait (bounded) for the audio header, so the init segment (or the
        // TS tables) carries the audio from the start: a WHIP stream's AAC is a derived
        // track, a frame or so behind the video.
        let mut wait = hub::viewer::AudioHeaderWait::default();
        let mut ready = Vec::new();
        let ended = loop {
            tokio::select! {
                _ = entry.cancel.cancelled() => break false,
                f = sub.recv() => {
                    let end = match f {
                        Some(f) => {
                            wait.push(f, &mut ready);
                            false
                        }
                        None => {
                            wait.release(&mut ready);
                            true
                        }
                    };
                    for f in ready.drain(..) {
                        if oldest.is_none() {
                            oldest = f.arrival;
                        }
                        if !warned_codec
                            && f.kind == media::MediaKind::Video
                            && !matches!(f.codec, media::Codec::H264 | media::Codec::H265)
                        {
                            warned_codec = true;
                            tracing::warn!(key = %self.key, codec = ?f.codec, "hls: video codec not supported by the segmenter; the playlist carries audio only");
                        }
                        // Mux under the lock; write to disk and wake waiters after it.
                        let (pushed, snapshot) = {
                            let mut st = entry.lock();
                            if f.is_video_keyframe() {
                                let now_connects = sub.publisher_connects();
                                if now_connects != connects {
                                    connects = now_connects;
                                    st.mark_discontinuity();
                                }
                            }
                            let pushed = st.push(&f, unix_ms()).map(|new| new.then(|| st.generation()));
                            let snap = match (&pushed, &self.disk) {
                                (Ok(Some(_)), Some(_)) => Some(DiskMirror::snapshot(&st)),
                                _ => None,
                            };
                            (pushed, snap)
                        };
                        match pushed {
                            Ok(Some(g)) => {
                                entry.changed.send_replace(g);
                                if let (Some(d), Some(snap)) = (self.disk.as_mut(), snapshot) {
                                    d.sync(snap).await;
                                }
                                // A part (or segment) is out: how long its oldest frame waited.
                                if let Some(t) = oldest.take()
                                    && let Some(shared) = self.shared.upgrade()
                                {
                                    self.counters.observe_latency(&shared.ctl, ViewerProtocol::Hls, t.elapsed());
                                }
                            }
                            Ok(None) => {}
                            Err(e) => {
                                errors += 1;
                                // The first error and then one in a thousand: a broken publisher
                                // must not flood the log.
                                if errors % 1000 == 1 {
                                    tracing::warn!(key = %self.key, errors, "hls: frame skipped: {e}");
                                }
                            }
                        }
                    }
                    if end {
                        break true;
                    }
                }
                _ = tick.tick() => {
                    let now = unix_ms();
                    viewers = self.set_viewers(viewers, entry.active_clients(now));
                    let last = entry.last_request_ms.load(Ordering::Relaxed);
                    if !self.always_on && now.saturating_sub(last) > self.idle.as_millis() as u64 {
                        tracing::info!(key = %self.key, "hls muxer stopped: idle");
                        break false;
                    }
                }
            }
        };
        if ended {
            let (g, snapshot) = {
                let mut st = entry.lock();
                st.end();
                let snap = self.disk.as_ref().map(|_| DiskMirror::snapshot(&st));
                (st.generation(), snap)
            };
            entry.changed.send_replace(g);
            if let (Some(d), Some(snap)) = (self.disk.as_mut(), snapshot) {
                d.sync(snap).await;
            }
            tracing::info!(key = %self.key, "hls stream ended");
            tokio::select! {
                _ = tokio::time::sleep(ENDED_LINGER) => {}
                _ = entry.cancel.cancelled() => {}
            }
        }
        self.set_viewers(viewers, 0);
        self.counters.latency_us.set(ViewerProtocol::Hls, 0);
        if let Some(shared) = self.shared.upgrade() {
            let mut map = shared.hls.lock();
            if map.get(&self.key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
                map.remove(&self.key);
            }
        }
        // Waiters see the sender go away and make their last check.
        entry.cancel.cancel();
    }

    /// Publishes the HLS viewer gauge of this stream (and its share of the server's).
    fn set_viewers(&self, old: u64, new: u64) -> u64 {
        self.counters.viewers.set(ViewerProtocol::Hls, new);
        if let Some(shared) = self.shared.upgrade() {
            shared.ctl.stats.viewers.add(ViewerProtocol::Hls, new);
            shared.ctl.stats.viewers.sub(ViewerProtocol::Hls, old);
        }
        new
    }
}

/// Mirrors one stream's HLS files to `{disk_dir}/{app}/{stream}/`: new files are written
/// (playlists last, atomically, so a reader never sees a URI before its file), files that
/// left the window are deleted.
struct DiskMirror {
    dir: std::path::PathBuf,
    written: std::collections::HashSet<String>,
    failed: bool,
}

/// What a sync writes, taken under the muxer lock (cheap `Bytes` clones).
struct DiskSnapshot {
    files: Vec<(String, Vec<Bytes>)>,
    media: String,
    multivariant: Option<String>,
}

impl DiskMirror {
    fn new(root: &str, key: &str) -> Self {
        // Stream keys come from publishers: keep each component a plain file name.
        let safe = |c: &str| -> String {
            let s: String = c
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || "-_.".contains(ch) {
                        ch
                    } else {
                        '_'
                    }
                })
                .collect();
            if s.is_empty() || s.starts_with('.') {
                format!("_{s}")
            } else {
                s
            }
        };
        let (app, name) = key.split_once('/').unwrap_or(("_", key));
        Self {
            dir: std::path::Path::new(root).join(safe(app)).join(safe(name)),
            written: std::collections::HashSet::new(),
            failed: false,
        }
    }

    fn snapshot(st: &HlsStream) -> DiskSnapshot {
        DiskSnapshot {
            files: st.files(),
            media: st.media_playlist(false),
            multivariant: st.multivariant_playlist(),
        }
    }

    async fn sync(&mut self, snap: DiskSnapshot) {
        if let Err(e) = self.try_sync(snap).await
            && !self.failed
        {
            // Once per muxer: a full or read-only disk must not flood the log.
            self.failed = true;
            tracing::error!(dir = %self.dir.display(), "hls disk mirror: {e}");
        }
    }

    async fn try_sync(&mut self, snap: DiskSnapshot) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let live: std::collections::HashSet<String> =
            snap.files.iter().map(|(n, _)| n.clone()).collect();
        for (name, chunks) in snap.files {
            if self.written.contains(&name) {
                continue;
            }
            self.write_atomic(&name, &chunks.concat()).await?;
            self.written.insert(name);
        }
        self.write_atomic(hls::MEDIA_PLAYLIST_NAME, snap.media.as_bytes())
            .await?;
        if let Some(m) = snap.multivariant {
            self.write_atomic(hls::MULTIVARIANT_NAME, m.as_bytes())
                .await?;
        }
        let gone: Vec<String> = self.written.difference(&live).cloned().collect();
        for name in gone {
            let _ = tokio::fs::remove_file(self.dir.join(&name)).await;
            self.written.remove(&name);
        }
        Ok(())
    }

    async fn write_atomic(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, self.dir.join(name)).await
    }
}

/// Starts a muxer for a just-published stream when `hls.always_on` (or `hls.disk_dir`) is
/// set.
pub(crate) fn on_publish(shared: &Arc<Shared>, key: &str) {
    if shared.ctl.config.hls.enabled && shared.ctl.config.hls.mux_always() {
        let app = key.split('/').next().unwrap_or_default();
        let _ = HlsService::get_or_start(shared, app, key);
    }
}

/// `GET /{app}/{stream}/{file}`: playlists, segments, parts and init segments.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    name: access::StreamName,
    file: String,
    query: Option<String>,
    remote: Option<IpAddr>,
    carry: Option<String>,
) -> Response {
    if !shared.ctl.config.hls.enabled {
        return plain_error(StatusCode::NOT_FOUND, "HLS is disabled");
    }
    let (app, key) = (name.app(), name.key());
    let deadline = Instant::now() + Duration::from_millis(shared.ctl.config.hls.block_timeout_ms);
    let is_playlist = file == hls::MULTIVARIANT_NAME || file == hls::MEDIA_PLAYLIST_NAME;
    let entry = if is_playlist {
        HlsService::get_or_start(&shared, app, key)
    } else {
        shared.hls.get(key)
    };
    let Some(entry) = entry else {
        return plain_error(StatusCode::NOT_FOUND, &format!("stream {key} is not live"));
    };
    let now = unix_ms();
    entry.touch(now);
    let cors = shared.ctl.config.http.cors_allow_origin.as_str();
    let prefix = entry.lock().prefix().to_owned();
    let parsed = match HlsFile::parse(&file, &prefix) {
        Ok(f) => f,
        Err(_) => return plain_error(StatusCode::NOT_FOUND, &format!("no such HLS file: {file}")),
    };
    match parsed {
        HlsFile::Multivariant | HlsFile::MediaPlaylist => {
            entry.seen(remote, now);
            let q = match PlaylistQuery::parse(query.as_deref().unwrap_or("")) {
                Ok(q) => q,
                Err(e) => return plain_error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            let multivariant = parsed == HlsFile::Multivariant;
            let outcome = entry
                .wait_for(deadline, |st| match st.playlist_readiness(&q) {
                    Readiness::Wait => None,
                    Readiness::TooFar => Some(Err(())),
                    Readiness::Ready if multivariant => {
                        Some(Ok(st.multivariant_playlist_with_query(carry.as_deref())))
                    }
                    Readiness::Ready => Some(Ok(Some(
                        st.media_playlist_with_query(q.skip, carry.as_deref()),
                    ))),
                })
                .await;
            let td = entry.lock().target_duration_s();
            match outcome {
                Some(Ok(Some(text))) => {
                    let n = text.len();
                    count_bytes(&shared, key, n);
                    // A blocking response stays right for anyone asking the same question;
                    // a plain one goes stale with the next part.
                    let cache = if q.is_blocking() {
                        format!("public, max-age={}", td * 3)
                    } else {
                        "public, max-age=1".to_owned()
                    };
                    media_response(Body::from(text), n, PLAYLIST_TYPE, &cache, cors)
                }
                Some(Err(())) => plain_error(
                    StatusCode::BAD_REQUEST,
                    "_HLS_msn is more than two segments ahead of the live edge",
                ),
                Some(Ok(None)) | None => plain_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the playlist is not ready yet (waiting for the first segment)",
                ),
            }
        }
        file => {
            let found = entry
                .wait_for(deadline, |st| match st.lookup(file) {
                    Lookup::Ready(chunks) => Some(Some(chunks)),
                    Lookup::Wait => None,
                    Lookup::NotFound => Some(None),
                })
                .await;
            let format = entry.lock().params().format;
            let content_type = match file {
                HlsFile::Init { .. } => "video/mp4",
                _ => format.content_type(),
            };
            match found {
                Some(Some(chunks)) => {
                    let n: usize = chunks.iter().map(Bytes::len).sum();
                    count_bytes(&shared, key, n);
                    let body = if chunks.len() == 1 {
                        Body::from(chunks.into_iter().next().unwrap_or_default())
                    } else {
                        Body::from_stream(futures_util::stream::iter(
                            chunks
                                .into_iter()
                                .map(Ok::<Bytes, std::convert::Infallible>),
                        ))
                    };
                    media_response(body, n, content_type, IMMUTABLE, cors)
                }
                Some(None) => plain_error(StatusCode::NOT_FOUND, "no such segment or part"),
                None => plain_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the segment or part was not ready in time",
                ),
            }
        }
    }
}

fn count_bytes(shared: &Shared, key: &str, n: usize) {
    shared
        .ctl
        .stats
        .bytes_out
        .add(ViewerProtocol::Hls, n as u64);
    if let Some(c) = shared.ctl.streams.get(key) {
        c.egress_bytes.add(ViewerProtocol::Hls, n as u64);
    }
}

fn media_response(body: Body, len: usize, content_type: &str, cache: &str, cors: &str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    if !cors.is_empty()
        && let Ok(v) = HeaderValue::from_str(cors)
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    resp
}

fn plain_error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        msg.to_owned(),
    )
        .into_response()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The HLS figures in `/metrics`.
pub(crate) struct Source(pub(crate) Arc<Shared>);

impl control::StatusSource for Source {
    fn metrics(&self) {
        metrics::gauge!("sluice_hls_muxers").set(self.0.hls.len() as f64);
        metrics::gauge!("sluice_hls_memory_bytes").set(self.0.hls.bytes() as f64);
    }
}
