//! The stream hub: publishers, subscribers, GOP cache and bounded fan-out.
//!
//! A [`Hub`] is a registry of streams keyed by `app/stream`. An ingest session calls
//! [`Hub::publish`] and feeds [`Frame`]s to its [`Publisher`]; viewers call [`Hub::subscribe`]
//! and drain their [`Subscriber`]:
//!
//! ```no_run
//! # async fn demo(frames: Vec<media::Frame>) -> Result<(), hub::HubError> {
//! use hub::{Hub, HubConfig, PublisherInfo};
//! let hub = Hub::new(HubConfig::default());
//! let mut publisher = hub.publish("live/cam", PublisherInfo { protocol: "rtmp", remote: "10.0.0.1:5000".into() })?;
//! let mut viewer = hub.subscribe("live/cam")?;
//! for f in frames { publisher.push(f); }
//! drop(publisher); // grace period, then the stream ends
//! while let Some(frame) = viewer.recv().await { /* write frame.body */ let _ = frame; }
//! # Ok(()) }
//! ```
//!
//! Per stream, the publisher takes a short mutex per frame (timestamp normalisation, headers,
//! GOP cache, send into the ring); joins take the same mutex so a new viewer gets headers +
//! GOP and then live frames with no gap and no duplicate. Viewers never take it per frame: the
//! fan-out is a bounded `tokio::sync::broadcast` ring of `Arc`s, one cursor per viewer, so the
//! publisher never waits and memory per stream is bounded whatever viewers do.
//!
//! Two more things hang off the hub:
//! - **Lifecycle events** ([`Hub::events`], [`HubEvent`]): published, publisher left,
//!   unpublished, codec changed, for consumers that act once per stream (HLS, recording,
//!   webhooks) instead of being called by every ingest. See [`events`] for the order and lag
//!   contract.
//! - **Derived tracks** ([`Hub::subscribe_with`], [`Hub::register_transform`]): a stream
//!   carries its tracks as published; a subscriber that wants another audio codec gets a
//!   track the hub derives once per stream with a registered [`Transform`]. See [`derived`].
//!
//! ```no_run
//! # async fn demo(hub: std::sync::Arc<hub::Hub>) {
//! use hub::{HubEvent, RecvError};
//! let mut events = hub.events();
//! loop {
//!     match events.recv().await {
//!         Ok(HubEvent::Published { key, resumed: false, .. }) => { /* start the HLS muxer */ let _ = key; }
//!         Ok(HubEvent::Unpublished { key, .. }) => { /* stop it */ let _ = key; }
//!         Ok(_) => {}
//!         // Missed events: rebuild the picture from the registry, then carry on.
//!         Err(RecvError::Lagged(_)) => { let _streams = hub.streams(); }
//!         Err(RecvError::Closed) => break, // the hub shut down
//!     }
//! }
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod derived;
pub mod events;
mod gop;
mod stream;
mod subscriber;
mod timeline;
mod track;
pub mod viewer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use media::{Codec, Frame};
use tokio::sync::broadcast;

pub use derived::{
    DERIVED_LINGER, DerivedTrackSnapshot, MAX_CONSECUTIVE_TRANSFORM_ERRORS, Transform,
    TransformError, TransformFactory, Want,
};
pub use events::{EVENT_CAPACITY, EndReason, Events, HubEvent, RecvError, TryRecvError};
pub use gop::AUDIO_ONLY_WINDOW_MS;
pub use subscriber::{Subscriber, TryRecv};
pub use timeline::{MAX_BACKWARD_JITTER_MS, MAX_STEP_MS, MAX_TIMESTAMP_GAP_MS};

use gop::GopLimits;
use stream::Stream;

/// Longest accepted stream key, in bytes.
pub const MAX_KEY_LEN: usize = 1_024;

/// Largest fan-out ring; larger configured values are clamped to it.
pub const MAX_RING_CAPACITY: usize = 1 << 16;

/// Hub limits and timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Most frames in one stream's GOP cache; a longer GOP clears the cache (late joiners then
    /// wait for the next keyframe).
    pub gop_max_frames: usize,
    /// Most bytes (FLV bodies) in one stream's GOP cache.
    pub gop_max_bytes: usize,
    /// Longest GOP cached, in ms (dts of the last frame minus the keyframe's).
    pub gop_max_duration_ms: u64,
    /// Frames in each stream's fan-out ring: how far a viewer may fall behind before it skips
    /// to the next keyframe. Clamped to `1..=MAX_RING_CAPACITY` (and rounded up to a power of
    /// two).
    pub ring_capacity: usize,
    /// How long a stream outlives its publisher, waiting for it to come back, in ms.
    pub publisher_grace_ms: u64,
    /// Most streams in the registry.
    pub max_streams: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            gop_max_frames: 1024,
            gop_max_bytes: 16 * 1024 * 1024,
            gop_max_duration_ms: 10_000,
            ring_capacity: 1024,
            publisher_grace_ms: 5_000,
            max_streams: 1024,
        }
    }
}

/// Errors of the hub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The key already has a live publisher (which is left untouched).
    #[error("stream {key:?} already has a publisher")]
    AlreadyPublishing {
        /// The stream key.
        key: String,
    },
    /// The registry is full.
    #[error("too many streams (limit {limit})")]
    TooManyStreams {
        /// The configured `max_streams`.
        limit: usize,
    },
    /// No stream (live or in its grace period) has this key.
    #[error("stream {key:?} not found")]
    NotFound {
        /// The stream key.
        key: String,
    },
    /// The key is empty or longer than [`MAX_KEY_LEN`].
    #[error("invalid stream key of {len} bytes (1..={max})")]
    InvalidKey {
        /// The key's length in bytes.
        len: usize,
        /// [`MAX_KEY_LEN`].
        max: usize,
    },
    /// [`Hub::shutdown`] was called.
    #[error("the hub is shutting down")]
    ShuttingDown,
}

/// Who publishes a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherInfo {
    /// Ingest protocol, e.g. `"rtmp"`.
    pub protocol: &'static str,
    /// Peer address.
    pub remote: String,
}

/// A point-in-time view of one stream, for the API and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamSnapshot {
    /// The stream key.
    pub key: String,
    /// The current publisher, `None` during the grace period.
    pub publisher: Option<PublisherInfo>,
    /// True while a publisher is attached.
    pub is_live: bool,
    /// Subscribers attached now.
    pub subscribers: u64,
    /// Subscribers ever attached.
    pub subscribers_total: u64,
    /// Frames pushed by publishers.
    pub frames_in: u64,
    /// FLV body bytes pushed by publishers.
    pub bytes_in: u64,
    /// Frames skipped by subscribers that fell behind (sum over subscribers).
    pub dropped_frames: u64,
    /// Publisher connects, the first one included (takeovers add one each).
    pub publisher_connects: u64,
    /// Frames in the GOP cache.
    pub gop_frames: usize,
    /// Bytes in the GOP cache.
    pub gop_bytes: usize,
    /// Times the GOP cache was cleared because a GOP exceeded a limit.
    pub gop_overflows: u64,
    /// Interval between the last two video keyframes, in ms.
    pub keyframe_interval_ms: Option<u64>,
    /// Timestamp jumps re-based by the timeline normalisation.
    pub timestamp_discontinuities: u64,
    /// Last video codec seen.
    pub video_codec: Option<Codec>,
    /// Last audio codec seen.
    pub audio_codec: Option<Codec>,
    /// Derived tracks running now.
    pub derived_tracks: Vec<DerivedTrackSnapshot>,
}

/// What streams share with the hub: the event channel and the registered transforms.
pub(crate) struct Core {
    /// `None` after shutdown (receivers then see the channel closed).
    events: Mutex<Option<broadcast::Sender<HubEvent>>>,
    transforms: RwLock<HashMap<(Codec, Codec), TransformFactory>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transforms: Vec<(Codec, Codec)> = self
            .transforms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        f.debug_struct("Core")
            .field("transforms", &transforms)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// Sends an event to every receiver; never waits (a full channel drops the oldest event
    /// for a lagging receiver, which is told so).
    pub(crate) fn emit(&self, event: HubEvent) {
        tracing::trace!(?event, "hub event");
        if let Some(tx) = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            // An error only means nobody listens right now.
            let _ = tx.send(event);
        }
    }

    /// The factory of the transform `from` -> `to`, if registered.
    pub(crate) fn transform(&self, from: Codec, to: Codec) -> Option<TransformFactory> {
        self.transforms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(from, to))
            .cloned()
    }
}

/// The registry of streams. Shared as `Arc<Hub>`; the registry lock is taken only by
/// publish / subscribe / listing / grace expiry, never per frame.
#[derive(Debug)]
pub struct Hub {
    cfg: HubConfig,
    streams: Mutex<HashMap<Arc<str>, Arc<Stream>>>,
    shut_down: AtomicBool,
    core: Arc<Core>,
}

impl Hub {
    /// A new, empty hub.
    pub fn new(cfg: HubConfig) -> Arc<Hub> {
        Arc::new(Hub {
            cfg,
            streams: Mutex::new(HashMap::new()),
            shut_down: AtomicBool::new(false),
            core: Arc::new(Core {
                events: Mutex::new(Some(broadcast::channel(EVENT_CAPACITY).0)),
                transforms: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// A receiver of the hub's lifecycle events from now on (see [`events`] for their order
    /// and what to do on [`RecvError::Lagged`]). After shutdown it is closed.
    pub fn events(&self) -> Events {
        match self
            .core
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// Registers the engine factory that derives `to` audio from `from` audio (replacing an
    /// earlier one for the pair; `from == to` is ignored). Register at startup: derived
    /// tracks started before keep the factory they started with.
    ///
    /// The factory runs in the derived track's task, once per source configuration: with the
    /// source's sequence header, or `None` if the source has none. An error (or a panic)
    /// makes the track unusable for that configuration: its subscribers get the published
    /// audio.
    pub fn register_transform<F>(&self, from: Codec, to: Codec, factory: F)
    where
        F: Fn(Option<&Frame>) -> Result<Box<dyn Transform>, TransformError> + Send + Sync + 'static,
    {
        if from == to {
            return;
        }
        self.core
            .transforms
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((from, to), Arc::new(factory));
    }

    /// The configuration in use.
    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    fn registry(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Becomes the publisher of `key`. Creates the stream, or takes over a stream in its grace
    /// period (its subscribers stay attached and timestamps continue).
    ///
    /// Errors: [`HubError::AlreadyPublishing`] (the existing publisher is untouched),
    /// [`HubError::TooManyStreams`], [`HubError::InvalidKey`], [`HubError::ShuttingDown`].
    pub fn publish(
        self: &Arc<Self>,
        key: &str,
        info: PublisherInfo,
    ) -> Result<Publisher, HubError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(HubError::InvalidKey {
                len: key.len(),
                max: MAX_KEY_LEN,
            });
        }
        let mut reg = self.registry();
        if self.shut_down.load(Ordering::Acquire) {
            return Err(HubError::ShuttingDown);
        }
        if let Some(stream) = reg.get(key) {
            let mut st = stream.lock();
            if st.publisher.is_some() {
                return Err(HubError::AlreadyPublishing {
                    key: key.to_owned(),
                });
            }
            stream.take_over(&mut st, info);
            let epoch = st.epoch;
            drop(st);
            tracing::info!(
                key,
                "publisher took over the stream during its grace period"
            );
            return Ok(Publisher {
                hub: Arc::clone(self),
                stream: Arc::clone(stream),
                epoch,
            });
        }
        if reg.len() >= self.cfg.max_streams {
            return Err(HubError::TooManyStreams {
                limit: self.cfg.max_streams,
            });
        }
        let limits = GopLimits {
            max_frames: self.cfg.gop_max_frames,
            max_bytes: self.cfg.gop_max_bytes,
            max_duration_ms: self.cfg.gop_max_duration_ms,
        };
        let ring = self.cfg.ring_capacity.clamp(1, MAX_RING_CAPACITY);
        let event = HubEvent::Published {
            key: Arc::from(key),
            protocol: info.protocol,
            remote: info.remote.clone(),
            resumed: false,
        };
        let stream = Arc::new(Stream::new(key, info, ring, limits, Arc::clone(&self.core)));
        reg.insert(Arc::clone(&stream.key), Arc::clone(&stream));
        // Under the registry lock: ordered after the previous stream's `Unpublished`.
        self.core.emit(event);
        tracing::info!(key, "stream published");
        Ok(Publisher {
            hub: Arc::clone(self),
            stream,
            epoch: 0,
        })
    }

    /// Subscribes to `key` (live or in its grace period) with every track as published. The
    /// subscriber first gets the metadata, sequence headers and cached GOP, then live frames.
    pub fn subscribe(&self, key: &str) -> Result<Subscriber, HubError> {
        self.subscribe_with(key, Want::AS_PUBLISHED)
    }

    /// Subscribes to `key` asking for what `want` says, e.g. `Want::audio(Codec::Aac)` for an
    /// FLV viewer. If the stream publishes another audio codec and a transform to the wanted
    /// one is registered, the subscriber gets the stream's derived track in that codec
    /// (started now if it is the first to want it; it has no audio until the engine's first
    /// output). Otherwise it gets the published audio: compare the frames' `codec`.
    pub fn subscribe_with(&self, key: &str, want: Want) -> Result<Subscriber, HubError> {
        let not_found = || HubError::NotFound {
            key: key.to_owned(),
        };
        let stream = self.registry().get(key).cloned().ok_or_else(not_found)?;
        let join = stream.join(want).ok_or_else(not_found)?;
        Ok(Subscriber::new(stream, join, want))
    }

    /// True when `key` is in the registry (live or in its grace period).
    pub fn contains(&self, key: &str) -> bool {
        self.registry().contains_key(key)
    }

    /// Snapshots of every stream.
    pub fn streams(&self) -> Vec<StreamSnapshot> {
        let streams: Vec<Arc<Stream>> = self.registry().values().cloned().collect();
        streams.iter().map(|s| s.snapshot()).collect()
    }

    /// Snapshot of one stream.
    pub fn stream(&self, key: &str) -> Option<StreamSnapshot> {
        let stream = self.registry().get(key).cloned()?;
        Some(stream.snapshot())
    }

    /// Ends every stream (subscribers get their buffered frames, then `None`; each stream
    /// sends [`HubEvent::Unpublished`]), refuses further publishes, and closes the event
    /// channel.
    pub fn shutdown(&self) {
        let mut reg = self.registry();
        self.shut_down.store(true, Ordering::Release);
        for (_, s) in reg.drain() {
            s.end(EndReason::Shutdown);
        }
        self.core
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(reg);
        tracing::info!("hub shut down");
    }

    /// Ends `key` now, without waiting for its publisher grace: subscribers get what they
    /// hold, then `None`; the stream is removed (a later publish creates a new one), and a
    /// publisher still attached has its frames ignored. Returns false if there was no such
    /// stream.
    pub fn end_stream(&self, key: &str) -> bool {
        let mut reg = self.registry();
        let Some(stream) = reg.remove(key) else {
            return false;
        };
        // Under the registry lock: `Unpublished` precedes a new publish's `Published`.
        stream.end(EndReason::Ended);
        drop(reg);
        tracing::info!(key, "stream ended on request");
        true
    }

    /// Grace timer fired: ends and removes the stream if no publisher came back meanwhile.
    fn expire(&self, stream: &Arc<Stream>, epoch: u64) {
        let mut reg = self.registry();
        let st = stream.lock();
        if st.epoch != epoch || st.publisher.is_some() {
            return;
        }
        drop(st);
        if reg.get(&stream.key).is_some_and(|s| Arc::ptr_eq(s, stream)) {
            reg.remove(&stream.key);
        }
        stream.end(EndReason::GraceExpired);
        drop(reg);
        tracing::info!(key = %stream.key, "stream ended: publisher did not come back");
    }
}

/// The publishing side of a stream, owned by the ingest session. Dropping it starts the
/// stream's grace period.
#[derive(Debug)]
pub struct Publisher {
    hub: Arc<Hub>,
    stream: Arc<Stream>,
    epoch: u64,
}

impl Publisher {
    /// Feeds one frame whose `dts` is the publisher's raw 32-bit RTMP timestamp: the hub
    /// rewrites it onto the stream timeline (see [`MAX_TIMESTAMP_GAP_MS`]), updates headers
    /// and the GOP cache, and fans it out. Never blocks on subscribers, never fails (after the
    /// stream ended, e.g. on shutdown, frames are ignored).
    pub fn push(&mut self, mut frame: Frame) {
        frame.arrival = Some(std::time::Instant::now());
        self.stream.push(frame);
    }

    /// The stream key.
    pub fn key(&self) -> &str {
        &self.stream.key
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let epoch = {
            let mut st = self.stream.lock();
            if st.epoch != self.epoch || st.publisher.is_none() {
                return;
            }
            st.publisher = None;
            st.epoch += 1;
            // Under the stream lock: after every frame and event of this publisher.
            self.stream.emit(HubEvent::PublisherLeft {
                key: Arc::clone(&self.stream.key),
            });
            st.epoch
        };
        let grace = self.hub.cfg.publisher_grace_ms;
        tracing::info!(key = %self.stream.key, grace_ms = grace, "publisher left; grace period");
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if grace > 0 => {
                let hub = Arc::clone(&self.hub);
                let stream = Arc::clone(&self.stream);
                rt.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(grace)).await;
                    hub.expire(&stream, epoch);
                });
            }
            // No runtime to time the grace period (or no grace configured): end now.
            _ => self.hub.expire(&self.stream, epoch),
        }
    }
}
