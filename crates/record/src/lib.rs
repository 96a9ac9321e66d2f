//! Recording: streams written to files (fragmented MP4 with an HLS VOD playlist beside it,
//! or FLV), started automatically for the `record.streams` patterns when a stream is
//! published, or through the API. Files rotate by duration and size, and on a publisher
//! reconnect when `record.on_reconnect = "new_file"`.
//!
//! Files are `{record.dir}/{app}/{name}-{YYYYMMDD}T{HHMMSS}Z-{token}.{mp4|flv}` (plus
//! `.m3u8` for MP4; [`names`]: the token makes them unguessable); with the default directory
//! inside `vod.dir` they are served by `/vod/...`, under the recorded stream's play rule.

#![forbid(unsafe_code)]
//!
//! The crate's rule: a hub consumer beside the protocol servers. It reads streams through
//! the hub and the control plane and imports no server.

mod api;
mod mux;
pub mod names;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use media::{FrameRole, MediaKind};
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use config::{ReconnectPolicy, RecordFormat};
use control::Control;
use mux::{FileMuxer, Output};

/// Why a recording could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The stream is already being recorded.
    #[error("stream {0} is already being recorded")]
    AlreadyRecording(String),
    /// The stream does not exist.
    #[error("stream {0} is not live")]
    NoStream(String),
}

/// A recording in progress, as the API shows it.
#[derive(Debug)]
pub struct Recording {
    /// Unique id (never reused while the server runs).
    pub id: u64,
    /// The stream key.
    pub stream: String,
    /// The container written.
    pub format: RecordFormat,
    /// When the recording started (unix ms).
    pub started_unix_ms: u64,
    /// The file being written now.
    pub path: Mutex<PathBuf>,
    /// Bytes written, all files of this recording.
    pub bytes: AtomicU64,
    /// Files started, rotations included.
    pub files: AtomicU64,
    cancel: CancellationToken,
}

impl Recording {
    /// The file being written now.
    pub fn current_path(&self) -> PathBuf {
        self.path.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the recording (the file is completed by its task).
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

/// Every recording in progress, by stream key.
#[derive(Debug)]
pub struct Recorder {
    ctl: Arc<Control>,
    map: Mutex<HashMap<String, Arc<Recording>>>,
    next_id: AtomicU64,
}

impl Recorder {
    /// The recorder of the server `ctl` controls; starts automatic recordings (the
    /// `record.streams` patterns) when a stream is published.
    pub fn new(ctl: &Arc<Control>) -> Arc<Self> {
        let rec = Arc::new(Self {
            ctl: Arc::clone(ctl),
            map: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        if !ctl.config.record.streams.is_empty() {
            let weak = Arc::downgrade(&rec);
            ctl.on_publish("record", move |key| {
                if let Some(r) = weak.upgrade() {
                    r.on_publish(key);
                }
            });
        }
        rec
    }

    /// The recording API routes (`/api/v1/recordings`, `/api/v1/streams/{app}/{stream}/recording`).
    pub fn routes(self: &Arc<Self>) -> axum::Router {
        api::routes(Arc::clone(self))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Recording>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Recordings in progress, by stream key.
    pub fn list(&self) -> Vec<Arc<Recording>> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by_key(|r| r.id);
        v
    }

    /// The recording of `key`, if any.
    pub fn get(&self, key: &str) -> Option<Arc<Recording>> {
        self.lock().get(key).cloned()
    }
}

/// Starts recording `key` in `format`.
fn start(
    recorder: &Arc<Recorder>,
    key: &str,
    format: RecordFormat,
) -> Result<Arc<Recording>, RecordError> {
    let shared = &recorder.ctl;
    // AAC, what MP4 and FLV players take: a WHIP stream's Opus is recorded as the hub's
    // derived AAC track (shared with the stream's other AAC consumers).
    let sub = shared
        .hub
        .subscribe_with(key, hub::Want::audio(media::Codec::Aac))
        .map_err(|_| RecordError::NoStream(key.to_owned()))?;
    let rec = {
        let mut map = recorder.lock();
        if map.contains_key(key) {
            return Err(RecordError::AlreadyRecording(key.to_owned()));
        }
        let rec = Arc::new(Recording {
            id: recorder.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            stream: key.to_owned(),
            format,
            started_unix_ms: unix_ms(),
            path: Mutex::new(PathBuf::new()),
            bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
            cancel: shared.shutdown.child_token(),
        });
        map.insert(key.to_owned(), Arc::clone(&rec));
        rec
    };
    tracing::info!(%key, ?format, "recording started");
    let task = Task {
        recorder: Arc::clone(recorder),
        rec: Arc::clone(&rec),
    };
    shared.tracker.spawn(task.run(sub));
    Ok(rec)
}

impl Recorder {
    /// Starts a recording for a just-published stream matching `record.streams`.
    fn on_publish(self: &Arc<Self>, key: &str) {
        let cfg = &self.ctl.config.record;
        if cfg.streams.iter().any(|p| access::pattern_matches(p, key))
            && self.get(key).is_none()
            && let Err(e) = start(self, key, cfg.format)
        {
            tracing::warn!(%key, "automatic recording: {e}");
        }
    }
}

struct Task {
    recorder: Arc<Recorder>,
    rec: Arc<Recording>,
}

/// One open file.
struct OpenFile {
    media: File,
    playlist: Option<File>,
    muxer: FileMuxer,
    path: PathBuf,
}

impl Task {
    async fn run(self, mut sub: hub::Subscriber) {
        let key = self.rec.stream.clone();
        if let Err(e) = self.record(&mut sub).await {
            tracing::error!(%key, "recording stopped: {e}");
        }
        let mut map = self.recorder.lock();
        if map.get(&key).is_some_and(|r| Arc::ptr_eq(r, &self.rec)) {
            map.remove(&key);
        }
    }

    async fn record(&self, sub: &mut hub::Subscriber) -> std::io::Result<()> {
        let cfg = &self.recorder.ctl.config.record;
        // Sequence headers and metadata, replayed at the start of every rotated file.
        let mut headers: Vec<Arc<media::Frame>> = Vec::new();
        let mut has_video = false;
        // The kinds of track the open file's header describes: a kind that appears later (a
        // publisher whose camera starts after its microphone) starts a new file, as an MP4
        // header cannot gain a track.
        let mut file_kinds: (bool, bool) = (false, false);
        let mut connects = sub.publisher_connects();
        let mut file: Option<OpenFile> = None;
        let mut rotate = false;
        // The first frames wait (bounded) for the audio header, so an MP4 file's init
        // describes the audio: a WHIP stream's AAC is a derived track, a frame or so behind
        // the video.
        let mut wait = hub::viewer::AudioHeaderWait::default();
        let mut ready: VecDeque<Arc<media::Frame>> = VecDeque::new();
        let mut out = Vec::new();
        let mut ended = false;
        loop {
            let Some(frame) = ready.pop_front() else {
                if ended {
                    break;
                }
                let f = tokio::select! {
                    _ = self.rec.cancel.cancelled() => break,
                    f = sub.recv() => f,
                };
                match f {
                    Some(f) => wait.push(f, &mut out),
                    None => {
                        wait.release(&mut out);
                        ended = true;
                    }
                }
                ready.extend(out.drain(..));
                continue;
            };
            if matches!(frame.role, FrameRole::SequenceHeader | FrameRole::Metadata) {
                headers.retain(|h| !(h.kind == frame.kind && h.role == frame.role));
                headers.push(Arc::clone(&frame));
                has_video |= frame.kind == MediaKind::Video;
                let new_kind = match frame.kind {
                    MediaKind::Video => !file_kinds.0,
                    MediaKind::Audio => !file_kinds.1,
                    MediaKind::Data => false,
                };
                if frame.role == FrameRole::SequenceHeader && new_kind && file.is_some() {
                    rotate = true;
                }
            }
            let starts_file =
                frame.role == FrameRole::Coded && (frame.is_video_keyframe() || !has_video);
            if starts_file && let Some(f) = &file {
                if cfg.on_reconnect == ReconnectPolicy::NewFile {
                    let now = sub.publisher_connects();
                    if now != connects {
                        connects = now;
                        rotate = true;
                    }
                }
                let m = &f.muxer;
                if m.duration_ms() >= cfg.max_duration_ms || m.bytes() >= cfg.max_bytes {
                    rotate = true;
                }
            }
            if rotate && starts_file {
                if let Some(f) = file.take() {
                    self.close(f).await?;
                }
                rotate = false;
            }
            if file.is_none() {
                if frame.role != FrameRole::Coded || !starts_file {
                    continue;
                }
                let mut f = self.open().await?;
                file_kinds = (
                    headers.iter().any(|h| h.kind == MediaKind::Video),
                    headers.iter().any(|h| h.kind == MediaKind::Audio),
                );
                for h in &headers {
                    let out = f.muxer.push(h, has_video).unwrap_or_default();
                    self.write(&mut f, out).await?;
                }
                file = Some(f);
            }
            if let Some(f) = file.as_mut() {
                match f.muxer.push(&frame, has_video) {
                    Ok(out) => self.write(f, out).await?,
                    Err(e) => {
                        tracing::debug!(key = %self.rec.stream, "recording skipped a frame: {e}")
                    }
                }
            }
        }
        if let Some(f) = file.take() {
            self.close(f).await?;
        }
        tracing::info!(key = %self.rec.stream, bytes = self.rec.bytes.load(Ordering::Relaxed), "recording ended");
        Ok(())
    }

    async fn open(&self) -> std::io::Result<OpenFile> {
        let cfg = &self.recorder.ctl.config.record;
        let (app, name) = self
            .rec
            .stream
            .split_once('/')
            .unwrap_or(("_", &self.rec.stream));
        let dir = Path::new(&cfg.dir).join(names::sanitize(app));
        tokio::fs::create_dir_all(&dir).await?;
        let ext = match self.rec.format {
            RecordFormat::Mp4 => "mp4",
            RecordFormat::Flv => "flv",
        };
        let stamp = file_stamp(unix_ms());
        // A fresh random token per file: a quick rotation within the same second gets its
        // own name too (and `create_new` below refuses to overwrite anything).
        let path = dir.join(format!(
            "{}.{ext}",
            names::stem(name, &stamp, &names::token())
        ));
        let media = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        let file_name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let playlist = match self.rec.format {
            RecordFormat::Mp4 => Some(File::create(path.with_extension("m3u8")).await?),
            RecordFormat::Flv => None,
        };
        *self.rec.path.lock().unwrap_or_else(|e| e.into_inner()) = path.clone();
        self.rec.files.fetch_add(1, Ordering::Relaxed);
        tracing::info!(key = %self.rec.stream, path = %path.display(), "recording file opened");
        Ok(OpenFile {
            media,
            playlist,
            muxer: FileMuxer::new(self.rec.format, file_name),
            path,
        })
    }

    async fn write(&self, f: &mut OpenFile, out: Output) -> std::io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        for b in &out.media {
            f.media.write_all(b).await?;
            self.rec.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        // The playlist line goes out after the bytes it points at.
        if let Some(p) = f.playlist.as_mut()
            && !out.playlist.is_empty()
        {
            f.media.flush().await?;
            p.write_all(out.playlist.as_bytes()).await?;
            p.flush().await?;
        }
        Ok(())
    }

    async fn close(&self, mut f: OpenFile) -> std::io::Result<()> {
        let out = f.muxer.finish();
        self.write(&mut f, out).await?;
        f.media.flush().await?;
        f.media.sync_data().await?;
        if let Some(p) = f.playlist.as_mut() {
            p.flush().await?;
        }
        let duration_ms = f.muxer.duration_ms();
        let bytes = f.muxer.bytes();
        if let Some(w) = &self.recorder.ctl.webhooks {
            let path = f.path.to_string_lossy();
            w.emit(control::WebhookEvent::record_segment(
                &self.rec.stream,
                &path,
                bytes,
                duration_ms,
            ));
        }
        tracing::info!(
            key = %self.rec.stream,
            path = %f.path.display(),
            bytes,
            duration_ms,
            "recording file done"
        );
        Ok(())
    }
}

/// `YYYYMMDDTHHMMSSZ` for file names.
fn file_stamp(unix_ms: u64) -> String {
    let iso = control::time::rfc3339(UNIX_EPOCH + std::time::Duration::from_millis(unix_ms));
    iso.chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T' || *c == 'Z')
        .collect()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
