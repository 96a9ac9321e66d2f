//! The relay's pulling side: a play of a stream the local hub lacks brings it from its owner.
//!
//! [`Remote`] is the control plane's [`control::RemoteStreams`]: the first play of a missing
//! stream starts one pull task for it; later plays (whatever their protocol) join it and
//! wait for the same readiness, so one upstream connection serves every local viewer. The
//! task looks the owner up in Redis, connects to its relay with the cluster secret, and
//! publishes what it receives into the local hub as an ingest of protocol
//! [`crate::RELAY_PROTOCOL`] through the one admission path ([`Control::publish`]). The play
//! is let through once a video keyframe (or, for audio only, a coded frame) is in the local
//! hub: its join then gets the headers and the GOP.
//!
//! A relay that breaks (owner gone, silence past [`READ_TIMEOUT`]) is retried with back-off
//! after a new lookup, for [`RECONNECT_WINDOW`]; the local stream and its viewers stay
//! meanwhile (frames already pushed are not pushed twice when the same owner answers
//! again). Redis being down never stops a relay that flows: lookups happen only to start or
//! restart one. The pull ends when the owner says the stream ended, when no local viewer
//! has watched for [`crate::PULL_IDLE`], on an API kick, or at shutdown.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use control::Control;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use media::{FrameRole, MediaKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::registry::Owner;
use crate::{Cluster, ClusterError, PULL_IDLE, RELAY_PROTOCOL};

/// Time limit to connect to an owner and get its response head.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Silence on a relay (no record, not even a keepalive) after which the edge drops it and
/// looks the owner up again: three keepalive intervals.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a broken relay is retried (new lookup each time) before the local stream is let
/// go: long enough for an owner record to expire and a reconnecting publisher's node to
/// claim it.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(10);

/// First wait between two attempts; doubles up to [`MAX_RETRY_DELAY`].
pub const RETRY_DELAY: Duration = Duration::from_millis(100);

/// Longest wait between two attempts: an attempt is one Redis `GET` (and a connection when
/// an owner is there), cheap enough to make a few times a second during a failover, where
/// each wait adds to the viewers' stall.
pub const MAX_RETRY_DELAY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullState {
    Starting,
    Ready,
    Failed,
}

/// One pull under way: its readiness (the sender closes when its task ends) and what stops
/// it.
#[derive(Debug, Clone)]
struct Pull {
    state: watch::Receiver<PullState>,
    kick: CancellationToken,
}

/// The pulls under way, one per stream key.
#[derive(Debug, Default)]
pub struct Pulls {
    map: Mutex<HashMap<String, Pull>>,
}

impl Pulls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pull>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pulls under way now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no pull is under way.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The cluster as the control plane's source of streams the local hub lacks.
pub(crate) struct Remote(pub(crate) Arc<Cluster>);

impl control::RemoteStreams for Remote {
    fn fetch(&self, key: &str) -> Pin<Box<dyn Future<Output = bool> + Send + 'static>> {
        let c = Arc::clone(&self.0);
        let key = key.to_owned();
        Box::pin(async move { fetch(c, key).await })
    }

    fn release(&self, key: &str) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let pull = self.0.pulls.lock().get(key).cloned();
        let key = key.to_owned();
        Box::pin(async move {
            let Some(mut pull) = pull else {
                return;
            };
            tracing::info!(%key, "cluster: a publisher here takes the stream; stopping the pull");
            pull.kick.cancel();
            // The task drops its publisher, then the sender: wait for the sender.
            while pull.state.changed().await.is_ok() {}
        })
    }
}

async fn fetch(c: Arc<Cluster>, key: String) -> bool {
    let mut rx = {
        let mut map = c.pulls.lock();
        match map.get(&key) {
            Some(pull) => pull.state.clone(),
            None => {
                if c.ctl.hub.contains(&key) {
                    return true;
                }
                let (tx, rx) = watch::channel(PullState::Starting);
                let kick = CancellationToken::new();
                map.insert(
                    key.clone(),
                    Pull {
                        state: rx.clone(),
                        kick: kick.clone(),
                    },
                );
                let task = Arc::clone(&c);
                c.ctl.tracker.spawn(async move {
                    let entry = Entry {
                        c: Arc::clone(&task),
                        key: key.clone(),
                    };
                    run(&task, &key, &tx, kick).await;
                    if *tx.borrow() == PullState::Starting {
                        let _ = tx.send(PullState::Failed);
                    }
                    drop(entry);
                });
                rx
            }
        }
    };
    matches!(
        rx.wait_for(|s| *s != PullState::Starting).await.as_deref(),
        Ok(PullState::Ready)
    )
}

/// Removes the pull's entry when its task ends.
struct Entry {
    c: Arc<Cluster>,
    key: String,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.c.pulls.lock().remove(&self.key);
    }
}

/// Counts an open relay connection.
struct Active<'a>(&'a Cluster);

impl<'a> Active<'a> {
    fn new(c: &'a Cluster) -> Self {
        c.stats.pulls_total.fetch_add(1, Ordering::Relaxed);
        c.stats.pulls_active.fetch_add(1, Ordering::Relaxed);
        Active(c)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.stats.pulls_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a relay connection stopped.
enum Stop {
    /// The owner ended the stream, the pull went idle, was kicked, or shutdown: stop.
    Done { ended_upstream: bool },
    /// The connection broke: look up and reconnect.
    Broken(ClusterError),
}

/// What survives a reconnection: the last coded dts pushed per kind (so a replayed GOP from
/// the same owner is not pushed twice) and whether the waiting plays were let through. Pure:
/// [`Progress::admit`] decides per frame.
#[derive(Debug, Default)]
struct Progress {
    upstream: Option<(String, u64)>,
    last_dts: HashMap<MediaKind, u64>,
    /// Kinds whose frames are still the replay of what was pushed before.
    replaying: Vec<MediaKind>,
    video_config: bool,
    ready: bool,
}

/// What to do with one received frame.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    /// Already pushed on an earlier connection to the same owner: drop it.
    Skip,
    /// Push it.
    Push,
    /// Push it, then let the waiting plays through (a player joining now starts on it).
    PushAndReady,
}

impl Progress {
    /// A new connection to `owner` at `epoch`: the same owner and epoch replays its headers
    /// and GOP cache, which the local stream already has; another one starts afresh.
    fn connected(&mut self, owner: &str, epoch: u64) {
        let same = self
            .upstream
            .as_ref()
            .is_some_and(|(n, e)| n == owner && *e == epoch);
        self.replaying.clear();
        if same {
            self.replaying.extend(self.last_dts.keys().copied());
        } else {
            self.last_dts.clear();
        }
        self.upstream = Some((owner.to_owned(), epoch));
    }

    /// Decides on one received frame.
    fn admit(&mut self, f: &media::Frame) -> Admit {
        if f.role == FrameRole::Coded {
            let last = self.last_dts.get(&f.kind).copied();
            if self.replaying.contains(&f.kind) && last.is_some_and(|l| f.dts <= l) {
                return Admit::Skip;
            }
            self.replaying.retain(|k| *k != f.kind);
            self.last_dts.insert(f.kind, f.dts);
        }
        if f.kind == MediaKind::Video && f.role == FrameRole::SequenceHeader {
            self.video_config = true;
        }
        let starts = f.is_video_keyframe()
            || (f.role == FrameRole::Coded && f.kind == MediaKind::Audio && !self.video_config);
        if starts && !self.ready {
            self.ready = true;
            return Admit::PushAndReady;
        }
        Admit::Push
    }
}

async fn run(c: &Arc<Cluster>, key: &str, tx: &watch::Sender<PullState>, kick: CancellationToken) {
    let Ok(name) = access::StreamName::from_key(key) else {
        return;
    };
    let mut publishing: Option<control::Publishing> = None;
    let mut progress = Progress::default();
    let mut broken_since: Option<Instant> = None;
    let mut delay = RETRY_DELAY;
    let mut ended_upstream = false;
    loop {
        if c.ctl.shutdown.is_cancelled() || kick.is_cancelled() {
            break;
        }
        if let Some(since) = broken_since {
            if publishing.is_none() || since.elapsed() > RECONNECT_WINDOW {
                tracing::info!(key, "cluster: giving up on the relay");
                break;
            }
            tokio::select! {
                _ = c.ctl.shutdown.cancelled() => break,
                _ = kick.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
        let owner = match c.registry.lookup(key).await {
            Ok(Some(o)) if o.node != c.node_id => o,
            Ok(_) => {
                tracing::debug!(key, "cluster: no other node owns the stream");
                broken_since.get_or_insert_with(Instant::now);
                continue;
            }
            Err(e) => {
                tracing::warn!(key, "cluster: owner lookup failed: {e}");
                broken_since.get_or_insert_with(Instant::now);
                continue;
            }
        };
        let body = match connect(c, &name, &owner).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(key, owner = %owner.node, "cluster: relay connect failed: {e}");
                broken_since.get_or_insert_with(Instant::now);
                continue;
            }
        };
        let active = Active::new(c);
        if publishing.is_none() {
            let auth = c.ctl.authorize_internal(name.clone());
            match c
                .ctl
                .publish(auth, RELAY_PROTOCOL, owner.advertise.clone(), kick.clone())
            {
                Ok(p) => publishing = Some(p),
                Err(r) => {
                    tracing::warn!(key, "cluster: relayed stream refused locally: {r}");
                    return;
                }
            }
        }
        let Some(p) = publishing.as_mut() else {
            return;
        };
        progress.connected(&owner.node, owner.epoch);
        tracing::info!(key, owner = %owner.node, epoch = owner.epoch, "cluster: pulling");
        let stop = read(
            &c.ctl,
            key,
            body,
            &mut p.publisher,
            &mut progress,
            tx,
            &kick,
        )
        .await;
        drop(active);
        match stop {
            Stop::Done { ended_upstream: e } => {
                ended_upstream = e;
                break;
            }
            Stop::Broken(e) => {
                tracing::warn!(key, owner = %owner.node, "cluster: relay broke: {e}");
                broken_since = Some(Instant::now());
                delay = RETRY_DELAY;
            }
        }
    }
    drop(publishing);
    if ended_upstream {
        // The owner's stream is over (its own grace included): end ours now.
        c.ctl.hub.end_stream(key);
    }
    tracing::info!(key, "cluster: pull ended");
}

/// Opens the relay on `owner`: the response body when it answers 200.
async fn connect(
    c: &Cluster,
    name: &access::StreamName,
    owner: &Owner,
) -> Result<Incoming, ClusterError> {
    let err = |e: &dyn std::fmt::Display| ClusterError::Relay(e.to_string());
    let head = async {
        let tcp = tokio::net::TcpStream::connect(owner.advertise.as_str())
            .await
            .map_err(|e| err(&e))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| err(&e))?;
        c.ctl.tracker.spawn(async move {
            let _ = conn.await;
        });
        let uri = format!(
            "/_cluster/relay/{}/{}?epoch={}",
            encode_segment(name.app()),
            encode_segment(name.stream()),
            owner.epoch
        );
        let req = hyper::Request::get(uri)
            .header(hyper::header::HOST, owner.advertise.as_str())
            .header(hyper::header::AUTHORIZATION, format!("Bearer {}", c.secret))
            .body(Empty::<Bytes>::new())
            .map_err(|e| err(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| err(&e))?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(ClusterError::Relay(format!(
                "owner answered {}",
                resp.status()
            )));
        }
        Ok(resp.into_body())
    };
    tokio::time::timeout(CONNECT_TIMEOUT, head)
        .await
        .map_err(|_| ClusterError::Relay("connect timed out".into()))?
}

/// Reads one relay body into the local hub until it stops.
async fn read(
    ctl: &Control,
    key: &str,
    mut body: Incoming,
    publisher: &mut hub::Publisher,
    progress: &mut Progress,
    tx: &watch::Sender<PullState>,
    kick: &CancellationToken,
) -> Stop {
    let mut decoder = relay::Decoder::new();
    let mut idle_check = tokio::time::interval(Duration::from_millis(500));
    let mut idle_since: Option<Instant> = None;
    loop {
        let next = tokio::select! {
            _ = ctl.shutdown.cancelled() => return Stop::Done { ended_upstream: false },
            _ = kick.cancelled() => return Stop::Done { ended_upstream: false },
            _ = idle_check.tick() => {
                let watched = ctl.hub.stream(key).is_some_and(|s| s.subscribers > 0);
                if watched || !progress.ready {
                    idle_since = None;
                } else if idle_since.get_or_insert_with(Instant::now).elapsed() > PULL_IDLE {
                    tracing::info!(key, "cluster: no local viewer left; stopping the pull");
                    return Stop::Done { ended_upstream: false };
                }
                continue;
            }
            n = tokio::time::timeout(READ_TIMEOUT, body.frame()) => n,
        };
        let data = match next {
            Err(_) => return Stop::Broken(ClusterError::Relay("silent".into())),
            Ok(None) => return Stop::Broken(ClusterError::Relay("closed by the owner".into())),
            Ok(Some(Err(e))) => return Stop::Broken(ClusterError::Relay(e.to_string())),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
        };
        if let Err(e) = decoder.push(&data) {
            return Stop::Broken(ClusterError::Relay(e.to_string()));
        }
        loop {
            let msg = match decoder.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => return Stop::Broken(ClusterError::Relay(e.to_string())),
            };
            match msg {
                relay::Message::Frame(f) => match progress.admit(&f) {
                    Admit::Skip => {}
                    Admit::Push => publisher.push(f),
                    Admit::PushAndReady => {
                        publisher.push(f);
                        let _ = tx.send(PullState::Ready);
                    }
                },
                relay::Message::Keepalive => {
                    // The owner has nothing more now: what is here is what a player gets.
                    if !progress.ready && ctl.hub.stream(key).is_some_and(|s| s.frames_in > 0) {
                        progress.ready = true;
                        let _ = tx.send(PullState::Ready);
                    }
                }
                relay::Message::End => {
                    return Stop::Done {
                        ended_upstream: true,
                    };
                }
            }
        }
    }
}

/// Percent-encodes a path segment (everything but RFC 3986's unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: MediaKind, role: FrameRole, dts: u64, key: bool) -> media::Frame {
        media::Frame {
            kind,
            codec: if kind == MediaKind::Video {
                media::Codec::H264
            } else {
                media::Codec::Aac
            },
            role,
            dts,
            cts: 0,
            keyframe: key,
            body: Bytes::from_static(b"x"),
            payload_offset: 0,
            wire: media::WireCache::default(),
            arrival: None,
        }
    }

    #[test]
    fn plays_go_through_on_the_first_video_keyframe() {
        let mut p = Progress::default();
        p.connected("a", 1);
        assert_eq!(
            p.admit(&frame(MediaKind::Video, FrameRole::SequenceHeader, 0, true)),
            Admit::Push
        );
        // Audio before the keyframe of a stream with video does not start a player.
        assert_eq!(
            p.admit(&frame(MediaKind::Audio, FrameRole::Coded, 0, true)),
            Admit::Push
        );
        assert_eq!(
            p.admit(&frame(MediaKind::Video, FrameRole::Coded, 0, true)),
            Admit::PushAndReady
        );
        assert_eq!(
            p.admit(&frame(MediaKind::Video, FrameRole::Coded, 40, true)),
            Admit::Push
        );
        // Audio only: the first coded frame.
        let mut p = Progress::default();
        p.connected("a", 1);
        assert_eq!(
            p.admit(&frame(MediaKind::Audio, FrameRole::SequenceHeader, 0, true)),
            Admit::Push
        );
        assert_eq!(
            p.admit(&frame(MediaKind::Audio, FrameRole::Coded, 0, true)),
            Admit::PushAndReady
        );
    }

    #[test]
    fn a_replayed_gop_from_the_same_owner_is_not_pushed_twice() {
        let mut p = Progress::default();
        p.connected("a", 3);
        for dts in [0, 40, 80] {
            p.admit(&frame(MediaKind::Video, FrameRole::Coded, dts, dts == 0));
        }
        p.admit(&frame(MediaKind::Audio, FrameRole::Coded, 70, true));
        // Reconnected to the same owner at the same epoch: its GOP cache comes again.
        p.connected("a", 3);
        let header = frame(MediaKind::Video, FrameRole::SequenceHeader, 0, true);
        assert_eq!(
            p.admit(&header),
            Admit::Push,
            "headers pass (the hub dedupes)"
        );
        for dts in [0, 40, 80] {
            let f = frame(MediaKind::Video, FrameRole::Coded, dts, dts == 0);
            assert_eq!(p.admit(&f), Admit::Skip, "dts {dts}");
        }
        assert_eq!(
            p.admit(&frame(MediaKind::Video, FrameRole::Coded, 120, false)),
            Admit::Push
        );
        // Each kind replays on its own: audio up to what was pushed is still skipped.
        assert_eq!(
            p.admit(&frame(MediaKind::Audio, FrameRole::Coded, 50, true)),
            Admit::Skip
        );
        assert_eq!(
            p.admit(&frame(MediaKind::Audio, FrameRole::Coded, 93, true)),
            Admit::Push
        );
        // Once live, nothing is skipped.
        assert_eq!(
            p.admit(&frame(MediaKind::Video, FrameRole::Coded, 160, false)),
            Admit::Push
        );
        // A new owner (or epoch) has its own timeline: nothing is skipped.
        p.connected("b", 4);
        assert_eq!(
            p.admit(&frame(MediaKind::Video, FrameRole::Coded, 0, true)),
            Admit::Push
        );
    }

    #[test]
    fn segments_are_encoded_and_decode_back() {
        assert_eq!(encode_segment("cam-1_a.b~"), "cam-1_a.b~");
        assert_eq!(encode_segment("a b/é"), "a%20b%2F%C3%A9");
        let name = access::StreamName::from_path_segments("live", &encode_segment("a b")).unwrap();
        assert_eq!(name.key(), "live/a b");
    }
}
