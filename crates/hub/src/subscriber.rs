//! The viewer side: a cursor into a stream's shared ring.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use media::{Frame, FrameRole, MediaKind};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::derived::Want;
use crate::stream::{Context, Item, Join, Stream, TrackId};

/// Result of [`Subscriber::try_recv`].
#[derive(Debug, Clone)]
pub enum TryRecv {
    /// The next frame.
    Frame(Arc<Frame>),
    /// Nothing available right now; the stream is still on.
    Empty,
    /// The stream has ended (or the hub shut down); no more frames will come.
    Ended,
}

/// One viewer of a stream. Reading takes no stream-wide lock: each subscriber holds its own
/// cursor into the shared bounded ring, so a slow or idle subscriber never holds more than the
/// ring (plus the headers and GOP snapshot it got when joining, which are shared `Arc`s).
///
/// Frame order: metadata, video sequence header, audio sequence header (those the stream
/// has), the cached GOP (starting on a video keyframe), then live frames. When the stream has
/// video but no GOP is cached, live coded video is skipped until the next keyframe while audio
/// flows (those skips are not counted as drops). A subscriber that falls behind the ring skips
/// every frame up to the next video keyframe (audio-only streams: the next audio frame), then
/// gets the current metadata and sequence headers again, then that keyframe; the skipped frames
/// are counted in [`Subscriber::dropped`] and in the stream's snapshot.
///
/// Audio: the subscriber follows one audio track, chosen by its [`Want`] (see
/// [`crate::Hub::subscribe_with`]): the published one, or a derived one in the wanted codec.
/// It never sees frames of the other audio tracks. When the choice changes (the published
/// codec changed, a derived track became usable or stopped), the new track's sequence header
/// comes first, then its frames. Checking a frame costs a pointer comparison (has the
/// stream's context changed?) and a track comparison for audio.
#[derive(Debug)]
pub struct Subscriber {
    stream: Arc<Stream>,
    pending: VecDeque<Arc<Frame>>,
    rx: broadcast::Receiver<Item>,
    /// Coded video may be delivered (a keyframe has been or will be delivered first).
    video_started: bool,
    /// Lagged: skipping until the next resume point.
    resync: bool,
    dropped: u64,
    ended: bool,
    ring_capacity: usize,
    want: Want,
    /// The stream context last seen, and the audio track chosen from it.
    ctx: Arc<Context>,
    audio_track: TrackId,
}

impl Subscriber {
    /// Wraps a join of `stream`.
    pub(crate) fn new(stream: Arc<Stream>, join: Join, want: Want) -> Self {
        Self {
            stream,
            video_started: join.initial.iter().any(|f| f.is_video_keyframe()),
            pending: join.initial,
            rx: join.rx,
            resync: false,
            dropped: 0,
            ended: false,
            ring_capacity: join.ring_capacity,
            want,
            ctx: join.ctx,
            audio_track: join.audio_track,
        }
    }

    /// The next frame, waiting for it if needed; `None` once the stream has ended (or the
    /// hub shut down). Cancel-safe: dropping the future loses no frame.
    pub async fn recv(&mut self) -> Option<Arc<Frame>> {
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Some(f);
            }
            if self.ended {
                return None;
            }
            match self.rx.recv().await {
                Ok(item) => {
                    if let Some(f) = self.handle(item) {
                        return Some(f);
                    }
                }
                Err(RecvError::Lagged(n)) => self.lagged(n),
                Err(RecvError::Closed) => self.ended = true,
            }
        }
    }

    /// The next frame if one is ready, without waiting (for draining a batch).
    pub fn try_recv(&mut self) -> TryRecv {
        loop {
            if let Some(f) = self.pending.pop_front() {
                return TryRecv::Frame(f);
            }
            if self.ended {
                return TryRecv::Ended;
            }
            match self.rx.try_recv() {
                Ok(item) => {
                    if let Some(f) = self.handle(item) {
                        return TryRecv::Frame(f);
                    }
                }
                Err(TryRecvError::Empty) => return TryRecv::Empty,
                Err(TryRecvError::Lagged(n)) => self.lagged(n),
                Err(TryRecvError::Closed) => self.ended = true,
            }
        }
    }

    /// Frames this subscriber skipped because it fell behind (ring entries: frames of audio
    /// tracks it does not follow count too while it is behind).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Publisher connects of the stream so far: a change tells a consumer that the
    /// publisher reconnected (HLS marks a discontinuity).
    pub fn publisher_connects(&self) -> u64 {
        self.stream
            .stats
            .publisher_connects
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What this subscriber asked for.
    pub fn want(&self) -> Want {
        self.want
    }

    /// The stream key.
    pub fn key(&self) -> &str {
        &self.stream.key
    }

    /// Frames the ring holds that this subscriber has not read yet: never more than the ring
    /// capacity, however far behind the subscriber is (older frames are already gone and will
    /// be counted as dropped on the next read).
    pub fn backlog(&self) -> usize {
        self.rx.len().min(self.ring_capacity)
    }

    fn count_dropped(&mut self, n: u64) {
        self.dropped = self.dropped.saturating_add(n);
        self.stream.stats.dropped.fetch_add(n, Ordering::Relaxed);
    }

    fn lagged(&mut self, n: u64) {
        tracing::debug!(key = %self.stream.key, skipped = n, "subscriber fell behind the ring");
        self.count_dropped(n);
        self.resync = true;
    }

    /// Applies the subscriber's track choice and skipping rules to one ring entry.
    #[inline]
    fn handle(&mut self, item: Item) -> Option<Arc<Frame>> {
        if !Arc::ptr_eq(&item.ctx, &self.ctx) {
            self.context_changed(&item);
        }
        let frame = item.frame;
        if frame.kind == MediaKind::Audio && item.track != self.audio_track {
            return None;
        }
        if !self.pending.is_empty() {
            // A header of a newly chosen track goes first.
            let f = self.deliver(frame, &item.ctx)?;
            self.pending.push_back(f);
            return self.pending.pop_front();
        }
        self.deliver(frame, &item.ctx)
    }

    /// Takes a new context: re-chooses the audio track and, if it changed, queues the new
    /// track's header (unless the entry itself is that header, or a resync will send it).
    #[cold]
    #[inline(never)]
    fn context_changed(&mut self, item: &Item) {
        self.ctx = Arc::clone(&item.ctx);
        let track = self.ctx.select(self.want);
        if track == self.audio_track {
            return;
        }
        self.audio_track = track;
        if self.resync {
            return;
        }
        if let Some(h) = self.ctx.audio_header_of(track)
            && !Arc::ptr_eq(h, &item.frame)
        {
            self.pending.push_back(Arc::clone(h));
        }
    }

    /// The resync and keyframe rules for a frame of a track this subscriber follows.
    #[inline]
    fn deliver(&mut self, frame: Arc<Frame>, ctx: &Context) -> Option<Arc<Frame>> {
        if self.resync {
            let resume = if ctx.has_video {
                frame.is_video_keyframe()
            } else {
                frame.kind == MediaKind::Audio && frame.role == FrameRole::Coded
            };
            if !resume {
                self.count_dropped(1);
                return None;
            }
            self.resync = false;
            self.video_started |= frame.is_video_keyframe();
            self.pending.extend(ctx.headers(self.audio_track));
            self.pending.push_back(frame);
            return self.pending.pop_front();
        }
        if frame.kind == MediaKind::Video && frame.role == FrameRole::Coded && !self.video_started {
            if !frame.is_video_keyframe() {
                return None;
            }
            self.video_started = true;
        }
        Some(frame)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stream.leave(self.want);
    }
}
