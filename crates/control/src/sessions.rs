//! The session registry: every publisher and viewer (RTMP, HTTP-FLV, WS-FLV) while it runs,
//! for `GET /api/v1/sessions` and for kicking one (`DELETE /api/v1/sessions/{id}`).
//!
//! The registry's lock is taken only when a session starts or ends and by the API; while it
//! runs a session touches only relaxed atomics (its byte and dropped-frame counters).
//!
//! A session is listed (and its `publish` or `play` webhook fired) when it starts: at once for
//! most protocols ([`SessionRegistry::register`]), and when the peer really connects for
//! WebRTC, whose offers are answered before ICE and DTLS run ([`SessionRegistry::pending`],
//! [`Session`]): an offer that never connects is never listed and fires no webhook.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::time::rfc3339;
use crate::webhooks::{EventKind, WebhookEvent, Webhooks};

/// Whether a session sends or receives a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Publishes a stream (RTMP `publish`).
    Publisher,
    /// Plays a stream (RTMP `play`, HTTP-FLV, WS-FLV).
    Viewer,
}

impl SessionKind {
    /// The API's name for the kind (`publisher`, `viewer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publisher => "publisher",
            Self::Viewer => "viewer",
        }
    }
}

/// One running session.
#[derive(Debug)]
pub struct SessionEntry {
    /// Unique id (never reused while the server runs).
    pub id: u64,
    /// Publisher or viewer.
    pub kind: SessionKind,
    /// `rtmp`, `http-flv` or `ws-flv`.
    pub protocol: &'static str,
    /// The stream key (`app/name`).
    pub stream: String,
    /// The peer's address (empty when unknown).
    pub remote: String,
    /// When the session started (monotonic).
    pub started: Instant,
    /// When the session started, as an RFC 3339 UTC timestamp.
    pub started_at: String,
    /// Bytes received from a publisher or sent to a viewer.
    pub bytes: AtomicU64,
    /// Frames the hub dropped for a viewer that lagged.
    pub dropped_frames: AtomicU64,
    /// Cancelled to kick the session.
    kick: CancellationToken,
    /// Protocol details (e.g. a WebRTC viewer's quality), replaced as the session runs.
    detail: Mutex<Option<serde_json::Value>>,
}

impl SessionEntry {
    /// Asks the session to end (it closes on its own task).
    pub fn kick(&self) {
        self.kick.cancel();
    }

    /// The protocol details last attached with [`SessionGuard::set_detail`].
    pub fn detail(&self) -> Option<serde_json::Value> {
        self.detail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Every running session, by id.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    next_id: AtomicU64,
    map: Mutex<HashMap<u64, Arc<SessionEntry>>>,
    /// Told of every session start and end (publish/play, unpublish/stop), when configured.
    webhooks: Option<Webhooks>,
}

/// What a session is, given to [`SessionRegistry::register`].
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Publisher or viewer.
    pub kind: SessionKind,
    /// Protocol label (`rtmp`, `http-flv`, ...).
    pub protocol: &'static str,
    /// The stream key (`app/name`).
    pub stream: String,
    /// The peer's address (empty when unknown).
    pub remote: String,
}

impl SessionRegistry {
    /// A registry that emits webhook events for every session start and end.
    pub fn with_webhooks(webhooks: Option<Webhooks>) -> Self {
        Self {
            webhooks,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<SessionEntry>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a session that ends when `kick` is cancelled; it stays listed until the
    /// returned guard is dropped.
    pub fn register(self: &Arc<Self>, info: SessionInfo, kick: CancellationToken) -> SessionGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(SessionEntry {
            id,
            kind: info.kind,
            protocol: info.protocol,
            stream: info.stream,
            remote: info.remote,
            started: Instant::now(),
            started_at: rfc3339(SystemTime::now()),
            bytes: AtomicU64::new(0),
            dropped_frames: AtomicU64::new(0),
            kick,
            detail: Mutex::new(None),
        });
        self.lock().insert(id, Arc::clone(&entry));
        tracing::info!(
            session = id,
            kind = entry.kind.as_str(),
            protocol = entry.protocol,
            stream = %entry.stream,
            remote = %entry.remote,
            "session started"
        );
        if let Some(w) = &self.webhooks {
            w.emit(WebhookEvent::session_started(&entry));
        }
        SessionGuard {
            registry: Arc::clone(self),
            entry,
        }
    }

    /// A session admitted now and listed later, when [`PendingSession::start`] is called
    /// (nothing is listed or announced before; dropping it unstarted leaves no trace).
    pub fn pending(self: &Arc<Self>, info: SessionInfo, kick: CancellationToken) -> PendingSession {
        PendingSession {
            registry: Arc::clone(self),
            info,
            kick,
            bytes: AtomicU64::new(0),
        }
    }

    /// Every session, sorted by id.
    pub fn list(&self) -> Vec<Arc<SessionEntry>> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by_key(|e| e.id);
        v
    }

    /// Kicks session `id`; false if there is none.
    pub fn kick(&self, id: u64) -> bool {
        match self.lock().get(&id) {
            Some(e) => {
                e.kick();
                true
            }
            None => false,
        }
    }

    /// Kicks the publisher sessions of `stream`; returns how many.
    pub fn kick_publishers(&self, stream: &str) -> usize {
        let map = self.lock();
        let mut n = 0;
        for e in map
            .values()
            .filter(|e| e.kind == SessionKind::Publisher && e.stream == stream)
        {
            e.kick();
            n += 1;
        }
        n
    }

    /// Number of running sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a session listed while alive and deregisters it on drop (every exit path).
#[derive(Debug)]
pub struct SessionGuard {
    registry: Arc<SessionRegistry>,
    entry: Arc<SessionEntry>,
}

impl SessionGuard {
    /// Counts `n` bytes (one relaxed add).
    pub fn bytes(&self, n: usize) {
        self.entry.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records the viewer's dropped-frame count (one relaxed store).
    pub fn dropped(&self, total: u64) {
        self.entry.dropped_frames.store(total, Ordering::Relaxed);
    }

    /// Attaches protocol details to the session (shown by the API; replaces earlier ones).
    /// Takes the entry's own lock, not the registry's: call it at most every second or so.
    pub fn set_detail(&self, detail: serde_json::Value) {
        *self.entry.detail.lock().unwrap_or_else(|e| e.into_inner()) = Some(detail);
    }

    /// The session's entry.
    #[cfg(test)]
    pub fn entry(&self) -> &Arc<SessionEntry> {
        &self.entry
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.entry.id);
        let e = &self.entry;
        tracing::info!(
            session = e.id,
            kind = e.kind.as_str(),
            protocol = e.protocol,
            stream = %e.stream,
            remote = %e.remote,
            bytes = e.bytes.load(Ordering::Relaxed),
            duration_ms = e.started.elapsed().as_millis() as u64,
            dropped_frames = e.dropped_frames.load(Ordering::Relaxed),
            "session ended"
        );
        if let Some(w) = &self.registry.webhooks {
            w.emit(WebhookEvent::session_ended(&self.entry));
        }
    }
}

/// A session admitted but not started: not listed, no webhook yet. Bytes counted meanwhile
/// (a WebRTC peer's handshakes) are carried into the session when it starts.
#[derive(Debug)]
pub struct PendingSession {
    registry: Arc<SessionRegistry>,
    info: SessionInfo,
    kick: CancellationToken,
    bytes: AtomicU64,
}

impl PendingSession {
    /// Lists the session (firing its `publish` or `play` webhook) and returns its guard.
    pub fn start(self) -> SessionGuard {
        let guard = self.registry.register(self.info, self.kick);
        guard
            .entry
            .bytes
            .fetch_add(self.bytes.into_inner(), Ordering::Relaxed);
        guard
    }
}

/// A session that may not have started yet: what a WebRTC peer holds from its offer to its
/// end. The counters work in both states; [`Session::start`] lists it.
#[derive(Debug)]
pub struct Session {
    /// `Some` until started.
    pending: Option<PendingSession>,
    /// `Some` once started (dropping it ends it: the `unpublish` or `stop` webhook).
    started: Option<SessionGuard>,
}

impl From<PendingSession> for Session {
    fn from(p: PendingSession) -> Self {
        Self {
            pending: Some(p),
            started: None,
        }
    }
}

impl Session {
    /// Lists the session if it is still pending (later calls do nothing).
    pub fn start(&mut self) {
        if let Some(p) = self.pending.take() {
            self.started = Some(p.start());
        }
    }

    /// True once started.
    pub fn is_started(&self) -> bool {
        self.started.is_some()
    }

    /// Counts `n` bytes (one relaxed add).
    pub fn bytes(&self, n: usize) {
        if let Some(g) = &self.started {
            g.bytes(n);
        } else if let Some(p) = &self.pending {
            p.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Attaches protocol details (only a started session shows them; earlier ones are
    /// dropped).
    pub fn set_detail(&self, detail: serde_json::Value) {
        if let Some(g) = &self.started {
            g.set_detail(detail);
        }
    }
}

impl WebhookEvent {
    /// `publish` or `play` for a session that just registered.
    pub fn session_started(e: &SessionEntry) -> Self {
        let kind = match e.kind {
            SessionKind::Publisher => EventKind::Publish,
            SessionKind::Viewer => EventKind::Play,
        };
        Self::of_session(kind, e)
    }

    /// `unpublish` or `stop` with the session's totals, for a session that just ended.
    pub fn session_ended(e: &SessionEntry) -> Self {
        let kind = match e.kind {
            SessionKind::Publisher => EventKind::Unpublish,
            SessionKind::Viewer => EventKind::Stop,
        };
        let millis = e.started.elapsed().as_millis();
        Self {
            bytes: Some(e.bytes.load(Ordering::Relaxed)),
            duration_ms: Some(u64::try_from(millis).unwrap_or(u64::MAX)),
            dropped_frames: Some(e.dropped_frames.load(Ordering::Relaxed)),
            ..Self::of_session(kind, e)
        }
    }

    fn of_session(kind: EventKind, e: &SessionEntry) -> Self {
        Self {
            session_id: Some(e.id.to_string()),
            protocol: Some(e.protocol.to_owned()),
            remote: Some(e.remote.clone()),
            ..Self::new(kind, &e.stream)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: SessionKind, stream: &str) -> SessionInfo {
        SessionInfo {
            kind,
            protocol: "rtmp",
            stream: stream.into(),
            remote: "192.0.2.1:1935".into(),
        }
    }

    #[test]
    fn registers_lists_and_deregisters_on_drop() {
        let r = Arc::new(SessionRegistry::default());
        let a = r.register(info(SessionKind::Publisher, "live/a"), Default::default());
        let b = r.register(info(SessionKind::Viewer, "live/a"), Default::default());
        assert_eq!(r.list().iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
        a.bytes(10);
        a.bytes(5);
        b.dropped(3);
        assert_eq!(a.entry().bytes.load(Ordering::Relaxed), 15);
        assert_eq!(b.entry().dropped_frames.load(Ordering::Relaxed), 3);
        assert!(a.entry().started_at.ends_with('Z'));
        assert_eq!(b.entry().detail(), None);
        b.set_detail(serde_json::json!({"rtt_ms": 1.5}));
        b.set_detail(serde_json::json!({"rtt_ms": 2.5}));
        assert_eq!(b.entry().detail(), Some(serde_json::json!({"rtt_ms": 2.5})));
        drop(a);
        assert_eq!(r.list().iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
        let c = r.register(info(SessionKind::Viewer, "live/b"), Default::default());
        assert_eq!(c.entry().id, 3, "ids are not reused");
        drop((b, c));
        assert!(r.is_empty());
    }

    /// A pending session is not listed and announces nothing until it starts; then it is
    /// an ordinary session carrying the bytes counted before.
    #[tokio::test]
    async fn pending_sessions_are_listed_only_once_started() {
        let r = Arc::new(SessionRegistry::default());
        let kick = CancellationToken::new();
        let mut s = Session::from(r.pending(info(SessionKind::Viewer, "live/a"), kick.clone()));
        s.bytes(100);
        s.set_detail(serde_json::json!({"rtt_ms": 1}));
        assert!(r.is_empty() && !s.is_started());
        s.start();
        s.start();
        assert!(s.is_started());
        let listed = r.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].bytes.load(Ordering::Relaxed), 100);
        assert_eq!(listed[0].detail(), None);
        s.bytes(5);
        assert_eq!(listed[0].bytes.load(Ordering::Relaxed), 105);
        // The kick given at admission kicks the started session.
        assert!(r.kick(listed[0].id));
        assert!(kick.is_cancelled());
        drop(s);
        assert!(r.is_empty());
        // Dropped before it started: no trace.
        drop(r.pending(
            info(SessionKind::Publisher, "live/b"),
            CancellationToken::new(),
        ));
        assert!(r.is_empty());
    }

    #[test]
    fn kicks_by_id_and_publishers_by_stream() {
        let r = Arc::new(SessionRegistry::default());
        let (ta, tb, tc) = (
            CancellationToken::new(),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let _a = r.register(info(SessionKind::Publisher, "live/a"), ta.clone());
        let _b = r.register(info(SessionKind::Viewer, "live/a"), tb.clone());
        let _c = r.register(info(SessionKind::Publisher, "live/b"), tc.clone());
        assert_eq!(r.kick_publishers("live/a"), 1);
        assert!(ta.is_cancelled() && !tb.is_cancelled() && !tc.is_cancelled());
        assert!(r.kick(2));
        assert!(tb.is_cancelled());
        assert!(!r.kick(99));
        assert_eq!(r.kick_publishers("live/none"), 0);
        assert!(!tc.is_cancelled());
    }
}
