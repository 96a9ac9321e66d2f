//! The viewer side: a cursor into a stream's shared ring.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use media::{Frame, FrameRole, MediaKind};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::stream::{Item, Join, Stream};

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
}

impl Subscriber {
    /// Wraps a join of `stream`.
    pub(crate) fn new(stream: Arc<Stream>, join: Join) -> Self {
        Self {
            stream,
            video_started: join.initial.iter().any(|f| f.is_video_keyframe()),
            pending: join.initial,
            rx: join.rx,
            resync: false,
            dropped: 0,
            ended: false,
            ring_capacity: join.ring_capacity,
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

    /// Frames this subscriber skipped because it fell behind.
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

    /// Applies the subscriber's skipping rules to one ring entry.
    fn handle(&mut self, item: Item) -> Option<Arc<Frame>> {
        let frame = item.frame;
        if self.resync {
            let resume = if item.ctx.has_video {
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
            self.pending.extend(item.ctx.headers());
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
        self.stream
            .stats
            .subscribers
            .fetch_sub(1, Ordering::Relaxed);
    }
}
