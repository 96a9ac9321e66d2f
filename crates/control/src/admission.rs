//! The one admission path of every ingest and every player: access control, then limits,
//! then the hub, then the session registry.
//!
//! 1. [`Control::authorize`] decides on a checked [`StreamName`] (the name the hub will use:
//!    no protocol decodes a name one way for the decision and another for the lookup), logs
//!    and counts a refusal, and returns an [`Authorized`] that only this module can make.
//!    In a cluster ([`crate::RemoteStreams`]) an allowed play of a stream the hub lacks
//!    first brings it from the node that owns it, and an allowed publish first stops a pull
//!    of the same stream, so no protocol adapter knows about other nodes.
//! 2. [`Control::publish`] or [`Control::play`] take that proof, check the per-app and
//!    per-stream limits, enter the hub, list the session in the API (which fires its
//!    webhook) and count it. What they return holds every slot it took; dropping it (on
//!    any exit path) gives them back. A play subscribes to the audio codec the protocol's
//!    players take ([`ViewerProtocol::want`]): the hub derives it from the published audio
//!    when needed (one transcode per stream, not per viewer).
//! 3. [`Control::publish_pending`] and [`Control::play_pending`] are the same chain for
//!    protocols whose sessions start later than their admission (WebRTC: the offer is
//!    answered, ICE and DTLS follow): the session is listed, and its webhook fired, when the
//!    adapter calls `start` on it; one that never starts leaves no trace.
//!
//! Each protocol maps a [`Refusal`] to its own wire error (RTMP status codes, HTTP status
//! and JSON via [`Refusal::http`]).

use std::net::IpAddr;
use std::sync::Arc;

use access::{Action, Grant, Reason, StreamName};
use hub::{HubError, PublisherInfo, Subscriber, Want};
use tokio_util::sync::CancellationToken;

use crate::Control;
use crate::counters::{StreamCounters, ViewerProtocol};
use crate::limits::{LimitRefusal, StreamSlot};
use crate::sessions::{PendingSession, SessionGuard, SessionInfo, SessionKind};
use crate::viewer::ViewerGuard;

/// Who asks, from where, with which credentials.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// Protocol label of the request (`rtmp`, `http-flv`, `ws-flv`, `hls`, `vod`, `webrtc`).
    pub protocol: &'static str,
    /// The client's address, when known.
    pub ip: Option<IpAddr>,
    /// Raw query string (without `?`), still URL-encoded.
    pub query: Option<&'a str>,
    /// Token of an `Authorization: Bearer` header.
    pub bearer: Option<&'a str>,
    /// An HLS playlist request (a webhook allow is then reused by its segments).
    pub hls_playlist: bool,
    /// An HLS segment, part or init request.
    pub hls_segment: bool,
}

impl<'a> Caller<'a> {
    /// A caller with only a protocol and an address.
    pub fn new(protocol: &'static str, ip: Option<IpAddr>) -> Self {
        Self {
            protocol,
            ip,
            query: None,
            bearer: None,
            hls_playlist: false,
            hls_segment: false,
        }
    }
}

/// Proof that access control allowed `action` on `name`: the only way to publish or play.
#[derive(Debug)]
pub struct Authorized {
    name: StreamName,
    action: Action,
    grant: Grant,
}

impl Authorized {
    /// The stream, as decided on.
    pub fn name(&self) -> &StreamName {
        &self.name
    }

    /// The query credential to carry into HLS playlist URIs (plays only).
    pub fn carry(&self) -> Option<&str> {
        self.grant.carry.as_deref()
    }
}

/// Why a publish or play was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The stream name is not acceptable.
    BadName(access::NameError),
    /// Access control said no.
    Access(access::Refusal),
    /// A limit is reached.
    Limit(LimitRefusal),
    /// The stream already has a publisher.
    AlreadyPublishing(String),
    /// No such stream (play).
    NotFound(String),
    /// The server cannot take it now (too many streams, shutting down).
    Unavailable(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadName(e) => write!(f, "{e}"),
            Self::Access(r) => write!(f, "{r}"),
            Self::Limit(r) => write!(f, "{r}"),
            Self::AlreadyPublishing(key) => write!(f, "stream {key} already has a publisher"),
            Self::NotFound(key) => write!(f, "stream {key} not found"),
            Self::Unavailable(m) => f.write_str(m),
        }
    }
}

impl From<access::NameError> for Refusal {
    fn from(e: access::NameError) -> Self {
        Self::BadName(e)
    }
}

impl Refusal {
    /// The RTMP `onStatus` code for a refused `action`.
    pub fn rtmp_code(&self, action: Action) -> &'static str {
        match (self, action) {
            (Self::Access(_), Action::Publish) => "NetStream.Publish.Unauthorized",
            (Self::Access(_), Action::Play) => "NetStream.Play.Unauthorized",
            (Self::Limit(_), Action::Publish) => "NetStream.Publish.Rejected",
            (Self::Limit(_), Action::Play) => "NetStream.Play.Failed",
            (Self::BadName(_) | Self::AlreadyPublishing(_), Action::Publish) => {
                "NetStream.Publish.BadName"
            }
            (Self::Unavailable(_), Action::Publish) => "NetStream.Publish.BadName",
            (Self::Unavailable(_), Action::Play) => "NetStream.Play.Failed",
            (_, Action::Play) => "NetStream.Play.StreamNotFound",
            (Self::NotFound(_), Action::Publish) => "NetStream.Publish.BadName",
        }
    }

    /// Whether the refusal ends the connection (access control does; the client may retry a
    /// publish or play with another name after the others).
    pub fn closes_connection(&self) -> bool {
        matches!(self, Self::Access(_))
    }
}

/// An admitted publisher: the hub handle and everything it holds. `S` is its session: a
/// [`SessionGuard`] (listed), or a [`PendingSession`] from [`Control::publish_pending`].
#[derive(Debug)]
pub struct Publishing<S = SessionGuard> {
    /// The stream.
    pub name: StreamName,
    /// Feeds the hub.
    pub publisher: hub::Publisher,
    /// The stream's counters.
    pub counters: Arc<StreamCounters>,
    /// The session's entry in the API (deregistered on drop).
    pub session: S,
    _slot: StreamSlot,
}

/// An admitted viewer: its subscription and everything it holds. `S` is its session: a
/// [`SessionGuard`] (listed), or a [`PendingSession`] from [`Control::play_pending`].
#[derive(Debug)]
pub struct Playing<S = SessionGuard> {
    /// The stream.
    pub name: StreamName,
    /// The viewer's cursor into the stream.
    pub subscriber: Subscriber,
    /// Counts the viewer (and holds its place under `limits.max_viewers_per_stream`).
    pub viewer: ViewerGuard,
    /// The session's entry in the API (deregistered on drop).
    pub session: S,
}

impl<S> Publishing<S> {
    /// The same admission with its session turned into `f(session)` (e.g. a
    /// [`crate::sessions::Session`] that the adapter starts when its peer connects).
    pub fn map_session<T>(self, f: impl FnOnce(S) -> T) -> Publishing<T> {
        Publishing {
            name: self.name,
            publisher: self.publisher,
            counters: self.counters,
            session: f(self.session),
            _slot: self._slot,
        }
    }
}

impl Publishing<PendingSession> {
    /// Lists the session now (its `publish` webhook).
    pub fn start(self) -> Publishing {
        self.map_session(PendingSession::start)
    }
}

impl<S> Playing<S> {
    /// The same admission with its session turned into `f(session)` (e.g. a
    /// [`crate::sessions::Session`] that the adapter starts when its peer connects).
    pub fn map_session<T>(self, f: impl FnOnce(S) -> T) -> Playing<T> {
        Playing {
            name: self.name,
            subscriber: self.subscriber,
            viewer: self.viewer,
            session: f(self.session),
        }
    }
}

impl Playing<PendingSession> {
    /// Lists the session now (its `play` webhook).
    pub fn start(self) -> Playing {
        self.map_session(PendingSession::start)
    }
}

impl ViewerProtocol {
    /// What a viewer of this protocol subscribes to: the audio codec its players take (the
    /// hub derives it once per stream when the stream publishes another one). WebRTC plays
    /// Opus; RTMP, HTTP-FLV and WS-FLV players (legacy FLV has no Opus) and HLS (TS and fMP4
    /// segments as players take them) get AAC.
    pub fn want(self) -> Want {
        match self {
            Self::WebRtc => Want::audio(media::Codec::Opus),
            Self::Rtmp | Self::HttpFlv | Self::WsFlv | Self::Hls | Self::Srt => {
                Want::audio(media::Codec::Aac)
            }
        }
    }
}

impl Control {
    /// Step 1: may `caller` do `action` on `name`? Refusals are logged (the name escaped,
    /// never a credential) and counted in `sluice_auth_refused_total`.
    pub async fn authorize(
        &self,
        action: Action,
        name: StreamName,
        caller: &Caller<'_>,
    ) -> Result<Authorized, Refusal> {
        let req = access::Request {
            action,
            name: &name,
            query: caller.query,
            ip: caller.ip,
            protocol: caller.protocol,
            bearer: caller.bearer,
            hls_playlist: caller.hls_playlist,
            hls_segment: caller.hls_segment,
        };
        match self.auth.check(&req).await {
            Ok(grant) => {
                match action {
                    // A stream another node has is brought here now, so the play (whatever
                    // its protocol) finds it in the hub.
                    Action::Play => self.locate(name.key()).await,
                    // A publisher here wins over a pull of the same stream from elsewhere.
                    Action::Publish => self.release_remote(name.key()).await,
                }
                Ok(Authorized {
                    name,
                    action,
                    grant,
                })
            }
            Err(r) => Err(Refusal::Access(r)),
        }
    }

    /// Step 1 for an ingest authenticated by other means than access rules: the cluster
    /// relay, whose peer proved the cluster's shared secret and whose stream was admitted
    /// on the node that owns it. Only ever a publish.
    pub fn authorize_internal(&self, name: StreamName) -> Authorized {
        Authorized {
            name,
            action: Action::Publish,
            grant: Grant::default(),
        }
    }

    /// Step 2 of a publish: the per-app publisher limit, the hub (whose `Published` event
    /// starts what follows every stream: HLS `always_on`, automatic recording), the session
    /// (`publish` webhook) and counters.
    /// `kick` ends the session when cancelled (the API's `DELETE`).
    pub fn publish(
        self: &Arc<Self>,
        auth: Authorized,
        protocol: &'static str,
        remote: String,
        kick: CancellationToken,
    ) -> Result<Publishing, Refusal> {
        self.publish_pending(auth, protocol, remote, kick)
            .map(Publishing::start)
    }

    /// [`Control::publish`] with the session listed (and its webhook fired) only when the
    /// caller starts it ([`Publishing::start`], or [`crate::sessions::Session::start`] on
    /// the session alone): for sessions that begin after their admission.
    pub fn publish_pending(
        self: &Arc<Self>,
        auth: Authorized,
        protocol: &'static str,
        remote: String,
        kick: CancellationToken,
    ) -> Result<Publishing<PendingSession>, Refusal> {
        debug_assert_eq!(auth.action, Action::Publish);
        if auth.action != Action::Publish {
            return Err(Refusal::Access(access::Refusal::new(
                Reason::WrongAction,
                "not authorized to publish",
            )));
        }
        let name = auth.name;
        let slot =
            crate::limits::admit_publisher(self, name.app(), protocol).map_err(Refusal::Limit)?;
        let info = PublisherInfo {
            protocol,
            remote: remote.clone(),
        };
        let publisher = self.hub.publish(name.key(), info).map_err(|e| {
            tracing::warn!(%name, protocol, "publish refused: {e}");
            match e {
                HubError::AlreadyPublishing { key } => Refusal::AlreadyPublishing(key),
                HubError::InvalidKey { .. } => Refusal::BadName(access::NameError::TooLong),
                other => Refusal::Unavailable(other.to_string()),
            }
        })?;
        tracing::info!(%name, protocol, %remote, "publish");
        let session = self.sessions.pending(
            SessionInfo {
                kind: SessionKind::Publisher,
                protocol,
                stream: name.key().to_owned(),
                remote,
            },
            kick,
        );
        Ok(Publishing {
            counters: self.streams.get_or_create(name.key()),
            name,
            publisher,
            session,
            _slot: slot,
        })
    }

    /// Step 2 of a play: the hub subscription (audio in the codec the protocol takes:
    /// [`ViewerProtocol::want`]), the per-stream viewer limit, the viewer counters and the
    /// session (`play` webhook).
    pub fn play(
        self: &Arc<Self>,
        auth: Authorized,
        protocol: ViewerProtocol,
        remote: String,
        kick: CancellationToken,
    ) -> Result<Playing, Refusal> {
        self.play_pending(auth, protocol, protocol.want(), remote, kick)
            .map(Playing::start)
    }

    /// [`Control::play`] subscribing with `want` (the protocol's [`ViewerProtocol::want`],
    /// or less when this viewer cannot take audio), with the session listed (and its webhook
    /// fired) only when the caller starts it: for sessions that begin after their admission.
    pub fn play_pending(
        self: &Arc<Self>,
        auth: Authorized,
        protocol: ViewerProtocol,
        want: Want,
        remote: String,
        kick: CancellationToken,
    ) -> Result<Playing<PendingSession>, Refusal> {
        let name = auth.name;
        let subscriber = self
            .hub
            .subscribe_with(name.key(), want)
            .map_err(|_| Refusal::NotFound(name.key().to_owned()))?;
        let slot =
            crate::limits::admit_viewer(self, name.key(), protocol).map_err(Refusal::Limit)?;
        let viewer = ViewerGuard::new(self, name.key(), protocol).holding(slot);
        tracing::info!(%name, protocol = protocol.as_str(), %remote, "play");
        let session = self.sessions.pending(
            SessionInfo {
                kind: SessionKind::Viewer,
                protocol: protocol.as_str(),
                stream: name.key().to_owned(),
                remote,
            },
            kick,
        );
        Ok(Playing {
            name,
            subscriber,
            viewer,
            session,
        })
    }
}
