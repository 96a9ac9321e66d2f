//! Lifecycle events: what happens to streams, for consumers that act once per stream (the HLS
//! muxer service, the recorder, webhooks, a cluster registry) instead of being called by every
//! ingest.
//!
//! [`crate::Hub::events`] hands out a receiver of a bounded broadcast channel
//! ([`EVENT_CAPACITY`]). Sending never waits: a consumer that falls more than
//! [`EVENT_CAPACITY`] events behind gets [`RecvError::Lagged`] on its next `recv` (the oldest
//! events are gone) and must resynchronise from [`crate::Hub::streams`], which lists every
//! stream with its publisher and codecs, then carry on receiving. After
//! [`crate::Hub::shutdown`] a receiver gets the remaining events (the `Unpublished` of every
//! stream included) and then [`RecvError::Closed`].
//!
//! Per stream key the events form this sequence, each emitted exactly once:
//!
//! ```text
//! Published{resumed: false} (CodecChanged)* ( PublisherLeft Published{resumed: true} (CodecChanged)* )*
//!     [PublisherLeft] Unpublished
//! ```
//!
//! and they are ordered against the stream's frames and registry entry:
//! - `Published` is sent before [`crate::Hub::publish`] returns, so before the publisher's first
//!   frame is visible to any subscriber; the stream is already in [`crate::Hub::streams`].
//! - `CodecChanged` is sent by the publisher's push before the frame that carries the change
//!   (a sequence header, or the first coded frame of a codec that has none) enters the fan-out.
//! - `PublisherLeft` is sent when the stream enters its grace period (not when the stream is
//!   ended with its publisher attached: then only `Unpublished` follows).
//! - `Unpublished` is sent after the stream's fan-out is closed and it left the registry, and
//!   before a new stream of the same key can be published (so its `Published` comes after).
//!
//! Events of different keys interleave in no particular order.
//!
//! A consumer that subscribes to a stream when it gets `Published` misses no decodable data:
//! the join hands it the headers and cached GOP, which cover what was pushed meanwhile.

use std::sync::Arc;

use bytes::Bytes;
use media::{Codec, MediaKind};

pub use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// Events buffered for each consumer: about a hundred publishes and unpublishes a second for
/// several seconds. A consumer further behind gets [`RecvError::Lagged`] and resynchronises
/// from [`crate::Hub::streams`].
pub const EVENT_CAPACITY: usize = 1024;

/// A receiver of [`HubEvent`]s (see the [module docs](self) for the lag contract).
pub type Events = tokio::sync::broadcast::Receiver<HubEvent>;

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// Its publisher left and did not come back within the grace period.
    GraceExpired,
    /// [`crate::Hub::end_stream`] ended it.
    Ended,
    /// [`crate::Hub::shutdown`] ended it.
    Shutdown,
}

/// Something that happened to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubEvent {
    /// A publisher attached: a new stream, or (`resumed`) a publisher coming back to a stream
    /// in its grace period, whose subscribers stayed attached.
    Published {
        /// The stream key.
        key: Arc<str>,
        /// Ingest protocol, e.g. `"rtmp"`.
        protocol: &'static str,
        /// Peer address.
        remote: String,
        /// True when the publisher took over a stream in its grace period.
        resumed: bool,
    },
    /// The publisher left; the stream's grace period starts (its subscribers stay).
    PublisherLeft {
        /// The stream key.
        key: Arc<str>,
    },
    /// The stream is gone: its subscribers got `None`, the key is free.
    Unpublished {
        /// The stream key.
        key: Arc<str>,
        /// Why it ended.
        reason: EndReason,
    },
    /// A published track changed codec or decoder configuration: a sequence header whose codec
    /// or bytes differ from the track's previous one (the first header included), or a coded
    /// frame of a new codec that has no header (e.g. MP3). A publisher coming back with the
    /// same configuration sends none. Derived tracks send none.
    CodecChanged {
        /// The stream key.
        key: Arc<str>,
        /// Audio or video.
        kind: MediaKind,
        /// The new codec.
        codec: Codec,
        /// The new sequence header's codec payload (AVC/HEVC decoder configuration record, AAC
        /// AudioSpecificConfig, ...); `None` when the change came with a coded frame.
        config: Option<Bytes>,
    },
}

impl HubEvent {
    /// The stream key the event is about.
    pub fn key(&self) -> &str {
        match self {
            HubEvent::Published { key, .. }
            | HubEvent::PublisherLeft { key }
            | HubEvent::Unpublished { key, .. }
            | HubEvent::CodecChanged { key, .. } => key,
        }
    }
}
