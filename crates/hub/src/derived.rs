//! Derived tracks: an audio track the hub makes from a stream's published audio for the
//! subscribers that want another codec (AAC for RTMP/FLV/HLS viewers of a WHIP publisher,
//! Opus for WebRTC viewers of an RTMP publisher).
//!
//! A stream carries its publisher's tracks as published. A subscriber says which audio codec
//! it wants ([`Want`]); when the stream publishes another codec and a [`Transform`] from that
//! codec to the wanted one is registered ([`crate::Hub::register_transform`]), the hub starts
//! one derived track for the stream (not one per viewer): a task that reads the published
//! audio from the stream's ring, runs the transform, and pushes its output into the same ring
//! and GOP cache, tagged with the derived track. Each subscriber follows exactly one audio
//! track: the derived one if it wants that codec and the track is usable, otherwise the
//! published one (then the frames' `codec` tells it what it got).
//!
//! The track stops [`DERIVED_LINGER`] after its last wanting subscriber left (a viewer that
//! reconnects meanwhile finds it running), when the published audio changes to another codec
//! (a new one is started from the new codec if wanted and possible), and when the stream
//! ends. A subscriber that wanted a codec before the stream had audio gets the derived track
//! as soon as the published codec is known; it never sees the published audio meanwhile.
//!
//! ```no_run
//! # fn main() -> Result<(), hub::HubError> {
//! use hub::{Hub, HubConfig, Transform, TransformError, Want};
//! use media::{Codec, Frame};
//! let hub = Hub::new(HubConfig::default());
//! // At startup, in the binary's wiring (the engines live in crates/transcode):
//! hub.register_transform(Codec::Opus, Codec::Aac, |header: Option<&Frame>| {
//!     let _opus_head = header.map(|h| h.payload());
//!     // e.g. transcode::OpusToAac, wrapped so that each call turns its output into
//!     // FLV-bodied frames: the AudioSpecificConfig as a SequenceHeader first, then AAC.
//!     let engine = |input: &Frame, out: &mut Vec<Frame>| -> Result<(), TransformError> {
//!         let _ = (input, out);
//!         Ok(())
//!     };
//!     Ok(Box::new(engine) as Box<dyn Transform>)
//! });
//! // An FLV viewer of a WHIP publisher's stream:
//! let mut viewer = hub.subscribe_with("live/cam", Want::audio(Codec::Aac))?;
//! # let _ = &mut viewer; Ok(()) }
//! ```
//!
//! How a frame says which track it is on: the ring and GOP entries carry a track tag next to
//! the `Arc<Frame>` (the publisher's tracks, or one number per derived track), so [`Frame`]
//! is unchanged; a subscriber compares the tag with the track it follows, which it only
//! re-chooses when the stream's context pointer changes. What a consumer sees is the frame's
//! `codec`.
//!
//! Costs and bounds: the publisher's push is unchanged (one short lock per frame; a change of
//! the published audio codec also stops or starts derived tracks under it). The derived task
//! takes the same lock once per source frame that produced output. Derived frames share the
//! stream's ring and GOP cache and their limits, so memory stays bounded; a derived track that
//! falls behind the ring skips ahead like a viewer (counted in
//! [`DerivedTrackSnapshot::lagged`]).
//!
//! Timing: a derived frame enters the ring after the published frames pushed while it was
//! being made (one frame or so, more with an encoder's look-ahead), with its own dts (from
//! the engine). Each track's dts is non-decreasing; across tracks the ring is in arrival
//! order, not dts order, as with any publisher whose audio and video are not interleaved.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use media::{Codec, Frame, FrameRole, MediaKind};
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use crate::stream::{Item, PUBLISHED, Stream, TrackId};

/// How long a derived track keeps running after its last wanting subscriber left: a viewer
/// reconnecting (a page reload, an HLS muxer restart) finds it running and gets its cached
/// frames instead of waiting for a new engine's first output.
pub const DERIVED_LINGER: Duration = Duration::from_secs(10);

/// Consecutive frames a transform may fail before the hub stops feeding it and its
/// subscribers fall back to the published audio (about a second of 20-ms audio); a new
/// published sequence header makes a new engine.
pub const MAX_CONSECUTIVE_TRANSFORM_ERRORS: u32 = 50;

/// An error of a transform engine (the engines live in other crates and keep their own
/// error types; the hub only counts and logs them).
pub type TransformError = Box<dyn std::error::Error + Send + Sync>;

/// Makes an engine for one configuration of the source track: called with the source's
/// sequence header, or with `None` when the source has sent coded frames without one.
pub type TransformFactory =
    Arc<dyn Fn(Option<&Frame>) -> Result<Box<dyn Transform>, TransformError> + Send + Sync>;

/// A synchronous engine turning the source track's coded frames into the derived track's
/// frames (its decoder configuration, as a `SequenceHeader` frame, before its first coded
/// frame and again when it changes: the hub drops a header equal to the previous one).
///
/// Output frames must be `MediaKind::Audio` of the registered target codec (others are dropped
/// and counted as errors). Their `dts` is on the stream timeline (derive it from the input's
/// `dts`, in milliseconds); the hub keeps it non-decreasing. An engine may buffer (return
/// nothing for some inputs) and may fail a frame (the hub skips it).
///
/// Closures `FnMut(&Frame, &mut Vec<Frame>) -> Result<(), TransformError>` are transforms.
pub trait Transform: Send {
    /// Feeds one coded source frame; appends the derived frames it completes to `out`.
    fn push(&mut self, input: &Frame, out: &mut Vec<Frame>) -> Result<(), TransformError>;
}

impl<F> Transform for F
where
    F: FnMut(&Frame, &mut Vec<Frame>) -> Result<(), TransformError> + Send,
{
    fn push(&mut self, input: &Frame, out: &mut Vec<Frame>) -> Result<(), TransformError> {
        self(input, out)
    }
}

/// What a subscriber wants from a stream. The default is everything as published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    /// The audio codec this subscriber can play; `None` takes the published audio. When the
    /// stream publishes another codec and a transform is registered, the subscriber gets the
    /// derived track instead; when not, it gets the published audio.
    pub audio: Option<Codec>,
}

impl Want {
    /// Every track as published.
    pub const AS_PUBLISHED: Want = Want { audio: None };

    /// Audio in `codec` (derived if the stream publishes another codec and a transform
    /// exists), video as published.
    pub const fn audio(codec: Codec) -> Want {
        Want { audio: Some(codec) }
    }
}

/// A point-in-time view of one derived track.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DerivedTrackSnapshot {
    /// The published codec it is made from.
    pub from: Codec,
    /// The codec it carries.
    pub codec: Codec,
    /// False while its engine cannot run (its factory or too many frames failed); its
    /// subscribers then get the published audio.
    pub usable: bool,
    /// Frames (headers included) it pushed into the stream.
    pub frames_out: u64,
    /// Source frames its engine failed, outputs it dropped, and failed engine creations.
    pub errors: u64,
    /// Source frames it missed because it fell behind the ring.
    pub lagged: u64,
}

/// Start and stop signals of one derived track's task.
#[derive(Debug, Default)]
pub(crate) struct Ctl {
    /// Wakes the task: its wanting subscribers went to zero, or it must stop.
    pub(crate) notify: Notify,
    stop: AtomicBool,
}

impl Ctl {
    /// Tells the task to stop (it exits without pushing anything more).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Counters of one derived track.
#[derive(Debug, Default)]
pub(crate) struct DerivedStats {
    pub(crate) frames_out: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) lagged: AtomicU64,
}

/// A running derived track, in the stream's state.
#[derive(Debug)]
pub(crate) struct DerivedRun {
    pub(crate) track: TrackId,
    pub(crate) from: Codec,
    pub(crate) to: Codec,
    pub(crate) ctl: Arc<Ctl>,
    pub(crate) stats: Arc<DerivedStats>,
    /// Last dts pushed (the track is kept non-decreasing).
    pub(crate) last_dts: u64,
}

impl DerivedRun {
    /// A snapshot, given whether the track is usable now.
    pub(crate) fn snapshot(&self, usable: bool) -> DerivedTrackSnapshot {
        DerivedTrackSnapshot {
            from: self.from,
            codec: self.to,
            usable,
            frames_out: self.stats.frames_out.load(Ordering::Relaxed),
            errors: self.stats.errors.load(Ordering::Relaxed),
            lagged: self.stats.lagged.load(Ordering::Relaxed),
        }
    }
}

/// Everything a derived track's task owns.
pub(crate) struct Task {
    pub(crate) stream: Arc<Stream>,
    pub(crate) track: TrackId,
    pub(crate) from: Codec,
    pub(crate) to: Codec,
    pub(crate) factory: TransformFactory,
    /// The stream's ring, subscribed when the track was created (so nothing is missed).
    pub(crate) rx: broadcast::Receiver<Item>,
    /// The published audio header in effect when the track was created.
    pub(crate) header: Option<Arc<Frame>>,
    pub(crate) ctl: Arc<Ctl>,
    pub(crate) stats: Arc<DerivedStats>,
}

/// The engine of a derived track.
enum Engine {
    /// Not made yet: the source has sent no header and no coded frame since the track began.
    Fresh,
    Ready(Box<dyn Transform>),
    /// The factory or the engine failed for the current source configuration.
    Failed,
}

/// Removes the track from the stream however the task ends (a panic, or a runtime dropping
/// it before it ever ran, included), so its subscribers fall back to the published audio
/// instead of waiting for it.
impl Drop for Task {
    fn drop(&mut self) {
        self.stream.retire(self.track);
    }
}

/// The derived track's task: reads the published audio, runs the engine, pushes the output.
pub(crate) async fn run(mut t: Task) {
    tracing::debug!(key = %t.stream.key, from = ?t.from, to = ?t.to, "derived track started");
    let mut st = RunState {
        engine: Engine::Fresh,
        config: None,
        errors: 0,
        out: Vec::new(),
    };
    if let Some(h) = t.header.take() {
        st.config = Some(h.payload());
        st.engine = t.make(Some(&h));
    }
    let mut idle_since: Option<Instant> = None;
    loop {
        if t.ctl.stopped() {
            break;
        }
        let deadline = idle_since.map(|s| s + DERIVED_LINGER);
        tokio::select! {
            biased;
            () = t.ctl.notify.notified() => match t.stream.derived_wanted(t.track) {
                None => break,
                Some(true) => idle_since = None,
                // The count just dropped to zero: the linger runs from now.
                Some(false) => idle_since = Some(Instant::now()),
            },
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                if t.stream.retire_if_idle(t.track) {
                    break;
                }
                idle_since = None;
            }
            r = t.rx.recv() => match r {
                Ok(item) => t.on_item(&mut st, item),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    t.stats.lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    tracing::debug!(key = %t.stream.key, to = ?t.to, "derived track stopped");
}

/// The task's engine state.
struct RunState {
    engine: Engine,
    /// The source configuration the engine was made for.
    config: Option<Bytes>,
    /// Consecutive failed frames.
    errors: u32,
    out: Vec<Frame>,
}

impl Task {
    /// Makes an engine; a failure (or a panic) makes the track unusable until the next
    /// source configuration.
    fn make(&self, header: Option<&Frame>) -> Engine {
        match catch_unwind(AssertUnwindSafe(|| (self.factory)(header))) {
            Ok(Ok(engine)) => {
                self.stream.set_usable(self.track, true);
                Engine::Ready(engine)
            }
            Ok(Err(e)) => {
                tracing::warn!(key = %self.stream.key, from = ?self.from, to = ?self.to,
                    "derived track: cannot make a transform for this source: {e}");
                self.fail()
            }
            Err(_) => {
                tracing::warn!(key = %self.stream.key, to = ?self.to, "derived track: transform factory panicked");
                self.fail()
            }
        }
    }

    fn fail(&self) -> Engine {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.stream.set_usable(self.track, false);
        Engine::Failed
    }

    fn on_item(&self, st: &mut RunState, item: Item) {
        let f = &item.frame;
        if item.track != PUBLISHED || f.kind != MediaKind::Audio || f.codec != self.from {
            return;
        }
        match f.role {
            FrameRole::SequenceHeader => {
                let config = f.payload();
                if st.config.as_ref() == Some(&config) && !matches!(st.engine, Engine::Fresh) {
                    return; // a repeated header: keep the engine (and its buffered samples)
                }
                st.config = Some(config);
                st.errors = 0;
                st.engine = self.make(Some(f));
            }
            FrameRole::Coded => {
                if matches!(st.engine, Engine::Fresh) {
                    st.engine = self.make(None);
                }
                self.transform(st, f);
            }
            FrameRole::SequenceEnd | FrameRole::Metadata => {}
        }
    }

    fn transform(&self, st: &mut RunState, f: &Frame) {
        let Engine::Ready(engine) = &mut st.engine else {
            return;
        };
        st.out.clear();
        let out = &mut st.out;
        let failed = match catch_unwind(AssertUnwindSafe(|| engine.push(f, out))) {
            Ok(Ok(())) => {
                st.errors = 0;
                if !st.out.is_empty() {
                    self.stream.push_derived(self.track, &mut st.out, f.arrival);
                }
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(key = %self.stream.key, to = ?self.to, "derived track: frame skipped: {e}");
                st.errors += 1;
                st.errors >= MAX_CONSECUTIVE_TRANSFORM_ERRORS
            }
            Err(_) => {
                tracing::warn!(key = %self.stream.key, to = ?self.to, "derived track: transform panicked");
                true
            }
        };
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        if failed {
            tracing::warn!(key = %self.stream.key, to = ?self.to,
                "derived track: transform keeps failing; subscribers get the published audio");
            st.engine = Engine::Failed;
            self.stream.set_usable(self.track, false);
        }
    }
}
