//! One stream: its state (headers, GOP cache, timeline, derived tracks), fan-out ring and
//! counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use media::{Codec, Frame, FrameRole, MediaKind};
use tokio::sync::broadcast;

use crate::derived::{self, Ctl, DerivedRun, DerivedStats, TransformFactory, Want};
use crate::gop::{GopCache, GopLimits};
use crate::timeline::Timeline;
pub(crate) use crate::track::{PUBLISHED, TrackId};
use crate::{Core, EndReason, HubEvent, PublisherInfo, StreamSnapshot};

/// A derived audio track as subscribers see it (part of the [`Context`]).
#[derive(Debug, Clone)]
pub(crate) struct DerivedCtx {
    pub(crate) track: TrackId,
    pub(crate) codec: Codec,
    /// Its latest sequence header (`None` until its engine made one).
    pub(crate) header: Option<Arc<Frame>>,
    /// False while its engine cannot run: its subscribers take the published audio.
    pub(crate) usable: bool,
}

/// The decoder context in effect at a point of the stream: what a viewer needs before it can
/// start decoding there, and which audio track it follows. Replaced (copy on write) whenever
/// a header, the metadata, the published audio codec or the set of derived tracks changes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Context {
    pub(crate) metadata: Option<Arc<Frame>>,
    pub(crate) video_header: Option<Arc<Frame>>,
    /// The published audio's header.
    pub(crate) audio_header: Option<Arc<Frame>>,
    /// The stream carries video, so a viewer resynchronises on a video keyframe.
    pub(crate) has_video: bool,
    /// The published audio codec.
    pub(crate) audio_codec: Option<Codec>,
    /// Derived audio tracks running now (few: one per wanted codec).
    pub(crate) derived: Vec<DerivedCtx>,
}

impl Context {
    /// The audio header of `track`.
    pub(crate) fn audio_header_of(&self, track: TrackId) -> Option<&Arc<Frame>> {
        if track == PUBLISHED {
            return self.audio_header.as_ref();
        }
        self.derived
            .iter()
            .find(|d| d.track == track)?
            .header
            .as_ref()
    }

    /// Metadata, video header, the audio header of `audio` (those present), in the order a
    /// joiner gets them.
    pub(crate) fn headers(&self, audio: TrackId) -> impl Iterator<Item = Arc<Frame>> + '_ {
        [
            self.metadata.as_ref(),
            self.video_header.as_ref(),
            self.audio_header_of(audio),
        ]
        .into_iter()
        .flatten()
        .cloned()
    }

    /// The audio track a subscriber with `want` follows here.
    pub(crate) fn select(&self, want: Want) -> TrackId {
        match want.audio {
            Some(c) if self.audio_codec != Some(c) => self
                .derived
                .iter()
                .find(|d| d.codec == c && d.usable)
                .map_or(PUBLISHED, |d| d.track),
            _ => PUBLISHED,
        }
    }
}

/// One entry of the fan-out ring: the frame, the context in effect at it, and its track.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) frame: Arc<Frame>,
    pub(crate) ctx: Arc<Context>,
    pub(crate) track: TrackId,
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

/// Mutable state behind the per-stream mutex (taken by the publisher per frame, by a derived
/// track per transformed frame, and by joins and leaves; never by subscribers per frame).
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
    /// Per published kind (audio, video): the codec and configuration last announced with
    /// [`HubEvent::CodecChanged`].
    announced: [Option<(Codec, Option<Bytes>)>; 2],
    /// Subscribers attached now per wanted audio codec (only codecs with at least one).
    wants: Vec<(Codec, usize)>,
    derived: Vec<DerivedRun>,
    last_track: TrackId,
}

/// A stream in the registry (and kept alive by its publisher, subscribers and derived tracks).
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) key: Arc<str>,
    pub(crate) stats: Stats,
    ring_capacity: usize,
    core: Arc<Core>,
    state: Mutex<State>,
}

/// A derived track's task, made under the stream lock and spawned after it is released (a
/// runtime that drops it at once would otherwise run its cleanup under the lock).
pub(crate) struct Spawn {
    rt: tokio::runtime::Handle,
    task: derived::Task,
}

impl Spawn {
    fn all(spawns: Vec<Spawn>) {
        for s in spawns {
            s.rt.spawn(derived::run(s.task));
        }
    }
}

/// What a new subscriber starts with: the frames to send first and the live receiver.
pub(crate) struct Join {
    pub(crate) initial: VecDeque<Arc<Frame>>,
    pub(crate) rx: broadcast::Receiver<Item>,
    /// The ring's actual capacity (the configured one rounded up to a power of two).
    pub(crate) ring_capacity: usize,
    /// The context at the join and the audio track chosen from it.
    pub(crate) ctx: Arc<Context>,
    pub(crate) audio_track: TrackId,
}

fn kind_slot(kind: MediaKind) -> Option<usize> {
    match kind {
        MediaKind::Audio => Some(0),
        MediaKind::Video => Some(1),
        MediaKind::Data => None,
    }
}

impl Stream {
    /// A new live stream with its first publisher attached.
    pub(crate) fn new(
        key: &str,
        info: PublisherInfo,
        ring: usize,
        limits: GopLimits,
        core: Arc<Core>,
    ) -> Self {
        let (tx, _) = broadcast::channel(ring);
        let stats = Stats::default();
        stats.publisher_connects.store(1, Ordering::Relaxed);
        Self {
            key: Arc::from(key),
            stats,
            ring_capacity: ring.next_power_of_two(),
            core,
            state: Mutex::new(State {
                tx: Some(tx),
                ctx: Arc::new(Context::default()),
                gop: GopCache::new(limits),
                timeline: Timeline::default(),
                publisher: Some(info),
                epoch: 0,
                video_codec: None,
                audio_codec: None,
                announced: [None, None],
                wants: Vec::new(),
                derived: Vec::new(),
                last_track: PUBLISHED,
            }),
        }
    }

    /// Locks the state; a poisoned lock (a panic elsewhere) still yields the data.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends an event (never waits).
    pub(crate) fn emit(&self, event: HubEvent) {
        self.core.emit(event);
    }

    /// Normalises, records and fans out one published frame. Never waits for a subscriber.
    pub(crate) fn push(self: &Arc<Self>, mut frame: Frame) {
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
        // Nearly every frame is coded media of the codec its kind already has: no event, no
        // context change, no derived track to start or stop.
        let routine = frame.role == FrameRole::Coded
            && match frame.kind {
                MediaKind::Video => st.video_codec == Some(frame.codec) && st.ctx.has_video,
                MediaKind::Audio => st.audio_codec == Some(frame.codec),
                MediaKind::Data => true,
            };
        let spawns = if routine {
            Vec::new()
        } else {
            self.changes(&mut st, &frame)
        };
        st.gop.push(PUBLISHED, &frame);
        let item = Item {
            frame,
            ctx: Arc::clone(&st.ctx),
            track: PUBLISHED,
        };
        if let Some(tx) = &st.tx {
            // An error only means nobody listens right now.
            let _ = tx.send(item);
        }
        drop(st);
        if !spawns.is_empty() {
            Spawn::all(spawns);
        }
    }

    /// The rare part of a push (a header, metadata, a first or new codec): records codecs,
    /// replaces the context, sends [`HubEvent::CodecChanged`] (before the frame enters the
    /// ring: the caller sends it after), and returns the derived tracks to spawn.
    #[cold]
    #[inline(never)]
    fn changes(self: &Arc<Self>, st: &mut State, frame: &Arc<Frame>) -> Vec<Spawn> {
        let changed = self.codec_change(st, frame);
        let audio_switch =
            frame.kind == MediaKind::Audio && st.ctx.audio_codec != Some(frame.codec);
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
        let mut spawns = Vec::new();
        if ctx_change.is_some()
            || audio_switch
            || (frame.kind == MediaKind::Video && !st.ctx.has_video)
        {
            self.update_context(st, frame, ctx_change, audio_switch, &mut spawns);
        }
        if let Some(event) = changed {
            self.emit(event);
        }
        spawns
    }

    /// Replaces the context for a published frame that changes it (a header, metadata, the
    /// first video, another audio codec).
    fn update_context(
        self: &Arc<Self>,
        st: &mut State,
        frame: &Arc<Frame>,
        ctx_change: Option<u8>,
        audio_switch: bool,
        spawns: &mut Vec<Spawn>,
    ) {
        let mut ctx = Context::clone(&st.ctx);
        match ctx_change {
            Some(0) => ctx.metadata = Some(Arc::clone(frame)),
            Some(1) => ctx.video_header = Some(Arc::clone(frame)),
            Some(2) => ctx.audio_header = Some(Arc::clone(frame)),
            _ => {}
        }
        ctx.has_video |= frame.kind == MediaKind::Video;
        if audio_switch {
            ctx.audio_codec = Some(frame.codec);
            // A header of the previous codec must not reach joiners of this one.
            if ctx
                .audio_header
                .as_ref()
                .is_some_and(|h| h.codec != frame.codec)
            {
                ctx.audio_header = None;
            }
            self.reconcile_derived(st, &mut ctx, spawns);
        }
        st.ctx = Arc::new(ctx);
    }

    /// The [`HubEvent::CodecChanged`] a published frame causes, if any (and records it).
    fn codec_change(&self, st: &mut State, frame: &Frame) -> Option<HubEvent> {
        let slot = kind_slot(frame.kind)?;
        let config = match frame.role {
            FrameRole::SequenceHeader => Some(frame.payload()),
            FrameRole::Coded => None,
            FrameRole::SequenceEnd | FrameRole::Metadata => return None,
        };
        let announced = &mut st.announced[slot];
        let changed = match (announced.as_ref(), &config) {
            (None, _) => true,
            (Some((codec, _)), None) => *codec != frame.codec,
            (Some((codec, old)), Some(new)) => *codec != frame.codec || old.as_ref() != Some(new),
        };
        if !changed {
            return None;
        }
        *announced = Some((frame.codec, config.clone()));
        Some(HubEvent::CodecChanged {
            key: Arc::clone(&self.key),
            kind: frame.kind,
            codec: frame.codec,
            config,
        })
    }

    /// After the published audio codec changed (in `ctx`): stops derived tracks made from
    /// the previous codec and starts the ones subscribers want from the new codec.
    fn reconcile_derived(
        self: &Arc<Self>,
        st: &mut State,
        ctx: &mut Context,
        spawns: &mut Vec<Spawn>,
    ) {
        let source = ctx.audio_codec;
        st.derived.retain(|d| {
            let keep = Some(d.from) == source;
            if !keep {
                d.ctl.stop();
            }
            keep
        });
        ctx.derived
            .retain(|d| st.derived.iter().any(|r| r.track == d.track));
        let Some(source) = source else { return };
        let wanted: Vec<Codec> = st.wants.iter().map(|w| w.0).collect();
        for to in wanted {
            if to != source
                && !st.derived.iter().any(|d| d.to == to)
                && let Some(factory) = self.core.transform(source, to)
            {
                spawns.extend(self.start_derived(st, ctx, source, to, factory));
            }
        }
    }

    /// Starts a derived track (in `st` and `ctx`, usable until its engine says otherwise);
    /// the caller spawns its task on the current tokio runtime once the lock is released.
    /// `None` (nothing started) without a runtime or after the stream ended.
    fn start_derived(
        self: &Arc<Self>,
        st: &mut State,
        ctx: &mut Context,
        from: Codec,
        to: Codec,
        factory: TransformFactory,
    ) -> Option<Spawn> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(key = %self.key, "no runtime to run a derived track");
            return None;
        };
        let tx = st.tx.as_ref()?;
        let rx = tx.subscribe();
        st.last_track += 1;
        let track = st.last_track;
        let ctl = Arc::new(Ctl::default());
        let stats = Arc::new(DerivedStats::default());
        st.derived.push(DerivedRun {
            track,
            from,
            to,
            ctl: Arc::clone(&ctl),
            stats: Arc::clone(&stats),
            last_dts: 0,
        });
        ctx.derived.push(derived_ctx(track, to));
        let header = ctx.audio_header.clone().filter(|h| h.codec == from);
        let task = derived::Task {
            stream: Arc::clone(self),
            track,
            from,
            to,
            factory,
            rx,
            header,
            ctl,
            stats,
        };
        Some(Spawn { rt, task })
    }

    /// Pushes a derived track's output (drains `frames`): sequence headers update the
    /// track's context (repeated ones are dropped), coded frames enter the GOP cache, and
    /// both the ring. Nothing happens if the track was stopped meanwhile.
    pub(crate) fn push_derived(
        &self,
        track: TrackId,
        frames: &mut Vec<Frame>,
        arrival: Option<std::time::Instant>,
    ) {
        let mut st = self.lock();
        let st = &mut *st;
        let (Some(tx), Some(run)) = (&st.tx, st.derived.iter_mut().find(|d| d.track == track))
        else {
            frames.clear();
            return;
        };
        for mut f in frames.drain(..) {
            if f.kind != MediaKind::Audio || f.codec != run.to {
                run.stats.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            f.dts = f.dts.max(run.last_dts);
            run.last_dts = f.dts;
            if f.arrival.is_none() {
                f.arrival = arrival;
            }
            match f.role {
                FrameRole::SequenceHeader => {
                    let Some(i) = st.ctx.derived.iter().position(|d| d.track == track) else {
                        continue;
                    };
                    let old = st.ctx.derived[i].header.as_ref();
                    if old.is_some_and(|h| h.body == f.body) {
                        continue;
                    }
                    let f = Arc::new(f);
                    let mut ctx = Context::clone(&st.ctx);
                    ctx.derived[i].header = Some(Arc::clone(&f));
                    st.ctx = Arc::new(ctx);
                    let _ = tx.send(Item {
                        frame: f,
                        ctx: Arc::clone(&st.ctx),
                        track,
                    });
                }
                FrameRole::Coded => {
                    let f = Arc::new(f);
                    st.gop.push(track, &f);
                    let _ = tx.send(Item {
                        frame: f,
                        ctx: Arc::clone(&st.ctx),
                        track,
                    });
                }
                FrameRole::SequenceEnd | FrameRole::Metadata => {
                    run.stats.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            run.stats.frames_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Marks a derived track usable or not (its subscribers move between it and the
    /// published audio at the next frame).
    pub(crate) fn set_usable(&self, track: TrackId, usable: bool) {
        let mut st = self.lock();
        let Some(i) = st.ctx.derived.iter().position(|d| d.track == track) else {
            return;
        };
        if st.ctx.derived[i].usable != usable {
            let mut ctx = Context::clone(&st.ctx);
            ctx.derived[i].usable = usable;
            st.ctx = Arc::new(ctx);
        }
    }

    /// Whether a derived track has wanting subscribers; `None` if it was stopped.
    pub(crate) fn derived_wanted(&self, track: TrackId) -> Option<bool> {
        let st = self.lock();
        let run = st.derived.iter().find(|d| d.track == track)?;
        Some(wants_of(&st.wants, run.to) > 0)
    }

    /// Stops a derived track if nobody wants it (the linger ran out); true if stopped.
    pub(crate) fn retire_if_idle(&self, track: TrackId) -> bool {
        let st = self.lock();
        let wanted = st
            .derived
            .iter()
            .find(|d| d.track == track)
            .is_some_and(|run| wants_of(&st.wants, run.to) > 0);
        drop(st);
        if !wanted {
            self.retire(track);
        }
        !wanted
    }

    /// Removes a derived track (its task ended or is ending).
    pub(crate) fn retire(&self, track: TrackId) {
        let mut st = self.lock();
        st.derived.retain(|d| d.track != track);
        if st.ctx.derived.iter().any(|d| d.track == track) {
            let mut ctx = Context::clone(&st.ctx);
            ctx.derived.retain(|d| d.track != track);
            st.ctx = Arc::new(ctx);
        }
    }

    /// Atomically (under the same lock as `push`) registers what the subscriber wants
    /// (starting a derived track if needed), snapshots headers + GOP of the tracks it follows
    /// and opens a live receiver positioned right after them. `None` if the stream has ended.
    pub(crate) fn join(self: &Arc<Self>, want: Want) -> Option<Join> {
        let mut st = self.lock();
        let rx = st.tx.as_ref()?.subscribe();
        let mut spawn = None;
        if let Some(to) = want.audio {
            match st.wants.iter_mut().find(|w| w.0 == to) {
                Some(w) => w.1 += 1,
                None => st.wants.push((to, 1)),
            }
            let source = st.ctx.audio_codec;
            if let Some(source) = source
                && source != to
                && !st.derived.iter().any(|d| d.to == to)
                && let Some(factory) = self.core.transform(source, to)
            {
                let mut ctx = Context::clone(&st.ctx);
                spawn = self.start_derived(&mut st, &mut ctx, source, to, factory);
                if spawn.is_some() {
                    st.ctx = Arc::new(ctx);
                }
            }
        }
        let ctx = Arc::clone(&st.ctx);
        let audio_track = ctx.select(want);
        let mut initial: VecDeque<Arc<Frame>> = ctx.headers(audio_track).collect();
        initial.extend(
            st.gop
                .frames()
                .filter(|(t, f)| f.kind != MediaKind::Audio || *t == audio_track)
                .map(|(_, f)| Arc::clone(f)),
        );
        drop(st);
        Spawn::all(spawn.into_iter().collect());
        self.stats.subscribers.fetch_add(1, Ordering::Relaxed);
        self.stats.subscribers_total.fetch_add(1, Ordering::Relaxed);
        Some(Join {
            initial,
            rx,
            ring_capacity: self.ring_capacity,
            ctx,
            audio_track,
        })
    }

    /// A subscriber that wanted `want` left: a derived track nobody wants any more starts
    /// its linger.
    pub(crate) fn leave(&self, want: Want) {
        self.stats.subscribers.fetch_sub(1, Ordering::Relaxed);
        let Some(to) = want.audio else { return };
        let mut st = self.lock();
        let Some(i) = st.wants.iter().position(|w| w.0 == to) else {
            return;
        };
        st.wants[i].1 -= 1;
        if st.wants[i].1 == 0 {
            st.wants.swap_remove(i);
            for d in st.derived.iter().filter(|d| d.to == to) {
                d.ctl.notify.notify_one();
            }
        }
    }

    /// Ends the stream: closes the ring (subscribers drain what they hold, then get `None`),
    /// stops its derived tracks, frees the cache, and sends [`HubEvent::Unpublished`]. False
    /// (and no event) if it had already ended.
    pub(crate) fn end(&self, reason: EndReason) -> bool {
        let mut st = self.lock();
        let was_live = st.tx.take().is_some();
        st.publisher = None;
        st.gop.clear();
        st.ctx = Arc::new(Context::default());
        for d in st.derived.drain(..) {
            d.ctl.stop();
        }
        drop(st);
        if was_live {
            self.emit(HubEvent::Unpublished {
                key: Arc::clone(&self.key),
                reason,
            });
        }
        was_live
    }

    /// Attaches a publisher taking over during the grace period and sends
    /// [`HubEvent::Published`] (under the lock, before the publisher can push).
    pub(crate) fn take_over(&self, st: &mut State, info: PublisherInfo) {
        let event = HubEvent::Published {
            key: Arc::clone(&self.key),
            protocol: info.protocol,
            remote: info.remote.clone(),
            resumed: true,
        };
        st.publisher = Some(info);
        st.epoch += 1;
        st.timeline.new_session();
        self.stats
            .publisher_connects
            .fetch_add(1, Ordering::Relaxed);
        self.emit(event);
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
            derived_tracks: st
                .derived
                .iter()
                .map(|d| {
                    let usable = st
                        .ctx
                        .derived
                        .iter()
                        .any(|c| c.track == d.track && c.usable);
                    d.snapshot(usable)
                })
                .collect(),
        }
    }
}

fn derived_ctx(track: TrackId, codec: Codec) -> DerivedCtx {
    DerivedCtx {
        track,
        codec,
        header: None,
        usable: true,
    }
}

fn wants_of(wants: &[(Codec, usize)], codec: Codec) -> usize {
    wants.iter().find(|w| w.0 == codec).map_or(0, |w| w.1)
}
