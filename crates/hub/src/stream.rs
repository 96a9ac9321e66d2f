//! One stream: its state (headers, GOP cache, timeline), fan-out ring and counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use media::{Codec, Frame, FrameRole, MediaKind};
use tokio::sync::broadcast;

use crate::gop::{GopCache, GopLimits};
use crate::timeline::Timeline;
use crate::{PublisherInfo, StreamSnapshot};

/// The decoder context in effect at a point of the stream: what a viewer needs before it can
/// start decoding there. Replaced (copy on write) whenever a header or metadata changes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Context {
    pub(crate) metadata: Option<Arc<Frame>>,
    pub(crate) video_header: Option<Arc<Frame>>,
    pub(crate) audio_header: Option<Arc<Frame>>,
    /// The stream carries video, so a viewer resynchronises on a video keyframe.
    pub(crate) has_video: bool,
}

impl Context {
    /// Metadata, video header, audio header (those present), in the order a joiner gets them.
    pub(crate) fn headers(&self) -> impl Iterator<Item = Arc<Frame>> + '_ {
        [&self.metadata, &self.video_header, &self.audio_header]
            .into_iter()
            .flatten()
            .cloned()
    }
}

/// One entry of the fan-out ring: the frame plus the context in effect at it (two pointers).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) frame: Arc<Frame>,
    pub(crate) ctx: Arc<Context>,
}

/// Per-stream counters, updated with atomics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) frames_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) subscribers: AtomicU64,
    pub(crate) subscribers_total: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) publisher_connects: AtomicU64,
}

/// Mutable state behind the per-stream mutex (taken by the publisher per frame and by joins,
/// never by subscribers per frame).
#[derive(Debug)]
pub(crate) struct State {
    /// `None` once the stream has ended: receivers then see the ring closed.
    tx: Option<broadcast::Sender<Item>>,
    ctx: Arc<Context>,
    gop: GopCache,
    timeline: Timeline,
    pub(crate) publisher: Option<PublisherInfo>,
    /// Bumped on every publisher attach and detach; a grace timer only acts if unchanged.
    pub(crate) epoch: u64,
    video_codec: Option<Codec>,
    audio_codec: Option<Codec>,
}

/// A stream in the registry (and kept alive by its publisher and subscribers).
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) key: Arc<str>,
    pub(crate) stats: Stats,
    ring_capacity: usize,
    state: Mutex<State>,
}

/// What a new subscriber starts with: the frames to send first and the live receiver.
pub(crate) struct Join {
    pub(crate) initial: VecDeque<Arc<Frame>>,
    pub(crate) rx: broadcast::Receiver<Item>,
    /// The ring's actual capacity (the configured one rounded up to a power of two).
    pub(crate) ring_capacity: usize,
}

impl Stream {
    /// A new live stream with its first publisher attached.
    pub(crate) fn new(key: &str, info: PublisherInfo, ring: usize, limits: GopLimits) -> Self {
        let (tx, _) = broadcast::channel(ring);
        let stats = Stats::default();
        stats.publisher_connects.store(1, Ordering::Relaxed);
        Self {
            key: Arc::from(key),
            stats,
            ring_capacity: ring.next_power_of_two(),
            state: Mutex::new(State {
                tx: Some(tx),
                ctx: Arc::new(Context::default()),
                gop: GopCache::new(limits),
                timeline: Timeline::default(),
                publisher: Some(info),
                epoch: 0,
                video_codec: None,
                audio_codec: None,
            }),
        }
    }

    /// Locks the state; a poisoned lock (a panic elsewhere) still yields the data.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Normalises, records and fans out one frame. Never waits for a subscriber.
    pub(crate) fn push(&self, mut frame: Frame) {
        let mut st = self.lock();
        if st.tx.is_none() {
            return;
        }
        self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_in
            .fetch_add(frame.body.len() as u64, Ordering::Relaxed);
        st.timeline.normalise(&mut frame);
        let frame = Arc::new(frame);
        match frame.kind {
            MediaKind::Video => st.video_codec = Some(frame.codec),
            MediaKind::Audio => st.audio_codec = Some(frame.codec),
            MediaKind::Data => {}
        }
        let ctx_change = match (frame.role, frame.kind) {
            (FrameRole::Metadata, _) => Some(0),
            (FrameRole::SequenceHeader, MediaKind::Video) => Some(1),
            (FrameRole::SequenceHeader, MediaKind::Audio) => Some(2),
            _ => None,
        };
        if ctx_change.is_some() || (frame.kind == MediaKind::Video && !st.ctx.has_video) {
            let mut ctx = Context::clone(&st.ctx);
            match ctx_change {
                Some(0) => ctx.metadata = Some(Arc::clone(&frame)),
                Some(1) => ctx.video_header = Some(Arc::clone(&frame)),
                Some(2) => ctx.audio_header = Some(Arc::clone(&frame)),
                _ => {}
            }
            ctx.has_video |= frame.kind == MediaKind::Video;
            st.ctx = Arc::new(ctx);
        }
        st.gop.push(&frame);
        let item = Item {
            frame,
            ctx: Arc::clone(&st.ctx),
        };
        if let Some(tx) = &st.tx {
            // An error only means nobody listens right now.
            let _ = tx.send(item);
        }
    }

    /// Atomically (under the same lock as `push`) snapshots headers + GOP and opens a live
    /// receiver positioned right after them. `None` if the stream has ended.
    pub(crate) fn join(&self) -> Option<Join> {
        let st = self.lock();
        let rx = st.tx.as_ref()?.subscribe();
        let mut initial: VecDeque<Arc<Frame>> = st.ctx.headers().collect();
        initial.extend(st.gop.frames().cloned());
        drop(st);
        self.stats.subscribers.fetch_add(1, Ordering::Relaxed);
        self.stats.subscribers_total.fetch_add(1, Ordering::Relaxed);
        Some(Join {
            initial,
            rx,
            ring_capacity: self.ring_capacity,
        })
    }

    /// Ends the stream: closes the ring (subscribers drain what they hold, then get `None`)
    /// and frees the cache.
    pub(crate) fn end(&self) {
        let mut st = self.lock();
        st.tx = None;
        st.publisher = None;
        st.gop.clear();
        st.ctx = Arc::new(Context::default());
    }

    /// Attaches a publisher taking over during the grace period.
    pub(crate) fn take_over(st: &mut State, stats: &Stats, info: PublisherInfo) {
        st.publisher = Some(info);
        st.epoch += 1;
        st.timeline.new_session();
        stats.publisher_connects.fetch_add(1, Ordering::Relaxed);
    }

    /// A point-in-time view for the API and metrics.
    pub(crate) fn snapshot(&self) -> StreamSnapshot {
        let st = self.lock();
        let s = &self.stats;
        StreamSnapshot {
            key: self.key.to_string(),
            publisher: st.publisher.clone(),
            is_live: st.publisher.is_some(),
            subscribers: s.subscribers.load(Ordering::Relaxed),
            subscribers_total: s.subscribers_total.load(Ordering::Relaxed),
            frames_in: s.frames_in.load(Ordering::Relaxed),
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            dropped_frames: s.dropped.load(Ordering::Relaxed),
            publisher_connects: s.publisher_connects.load(Ordering::Relaxed),
            gop_frames: st.gop.len(),
            gop_bytes: st.gop.bytes(),
            gop_overflows: st.gop.overflows(),
            keyframe_interval_ms: st.gop.keyframe_interval(),
            timestamp_discontinuities: st.timeline.discontinuities(),
            video_codec: st.video_codec,
            audio_codec: st.audio_codec,
        }
    }
}
