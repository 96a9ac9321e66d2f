//! The SRT listener: each caller's stream id is parsed and decided (access control, limits,
//! hub) before its handshake is answered; then its publish or play runs on its own task.
//! Everything `srt-tokio` is used for is in this module and the two loops it starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use access::srt::SrtStreamId;
use access::{Action, StreamName};
use control::limits::ListenerKind;
use control::{Caller, Control, Refusal, ViewerProtocol};
use futures_util::StreamExt;
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::options::{KeySize, Passphrase};
use srt_tokio::{ConnectionRequest, SrtListener, SrtSocket};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use crate::stats::SrtStats;
use crate::{SrtError, ingest, player};

/// How long the rest of an accepted caller's handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The SRT rejection code a caller gets for `refusal` (the server range of the SRT access
/// control codes, which ffmpeg and srt-live-transmit print).
pub fn reject_code(refusal: &Refusal) -> ServerRejectReason {
    match refusal {
        Refusal::BadName(_) => ServerRejectReason::BadRequest,
        Refusal::Access(_) => ServerRejectReason::Unauthorized,
        Refusal::Limit(_) => ServerRejectReason::Overload,
        Refusal::AlreadyPublishing(_) => ServerRejectReason::Conflict,
        Refusal::NotFound(_) => ServerRejectReason::Notfound,
        _ => ServerRejectReason::Down,
    }
}

/// Binds `srt.listen` and spawns the accept loop; returns the bound address.
pub(crate) async fn start(
    ctl: &Arc<Control>,
    stats: Arc<SrtStats>,
) -> Result<SocketAddr, SrtError> {
    let cfg = &ctl.config.srt;
    let bind_err = |source| SrtError::Bind {
        addr: cfg.listen,
        source,
    };
    let socket = UdpSocket::bind(cfg.listen).await.map_err(bind_err)?;
    let addr = socket.local_addr().map_err(bind_err)?;
    let (server, mut incoming) = SrtListener::builder()
        .latency(Duration::from_millis(cfg.latency_ms))
        .socket(socket)
        .bind(addr)
        .await
        .map_err(bind_err)?;
    let _ = stats.listen.set(addr);
    tracing::info!(%addr, "srt listening");
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let ctl2 = ctl.clone();
    ctl.tracker.spawn(async move {
        // The listener lives as long as this loop: dropping it stops every connection.
        let mut server = server;
        let incoming = incoming.incoming();
        loop {
            let req = tokio::select! {
                _ = ctl2.shutdown.cancelled() => break,
                r = incoming.next() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(remote = %req.remote(), "srt: srt.max_connections reached, caller rejected");
                reject(req, ServerRejectReason::Overload);
                continue;
            };
            // The server-wide connection limits (`[limits]`: in total, per address, rate)
            // count an SRT caller like a TCP connection; refusals are logged there.
            let Some(permit) = control::limits::on_accept(&ctl2, ListenerKind::Srt, req.remote())
            else {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                reject(req, ServerRejectReason::Overload);
                continue;
            };
            let (ctl, stats) = (ctl2.clone(), stats.clone());
            ctl2.tracker.spawn(async move {
                caller(&ctl, &stats, req).await;
                drop((slot, permit));
            });
        }
        server.close().await;
    });
    Ok(addr)
}

/// Answers a rejection without waiting on it (the listener's task sends it).
fn reject(req: ConnectionRequest, reason: ServerRejectReason) {
    tokio::spawn(async move {
        let _ = req.reject(RejectReason::Server(reason)).await;
    });
}

/// Decides one caller and runs its session.
async fn caller(ctl: &Arc<Control>, stats: &SrtStats, req: ConnectionRequest) {
    let remote = req.remote();
    let raw = req.stream_id().map(|s| s.to_string()).unwrap_or_default();
    let refuse = |why: &dyn std::fmt::Display| {
        stats.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%remote, stream_id = %access::escape_for_log(&raw), "srt caller rejected: {why}");
    };
    let parsed = SrtStreamId::parse(&raw)
        .map_err(|e| e.to_string())
        .and_then(|id| match StreamName::new(&id.app, &id.stream) {
            Ok(name) => Ok((id, name)),
            Err(e) => Err(e.to_string()),
        });
    let (id, name) = match parsed {
        Ok(v) => v,
        Err(why) => {
            refuse(&why);
            let _ = req
                .reject(RejectReason::Server(ServerRejectReason::BadRequest))
                .await;
            return;
        }
    };
    let caller = Caller {
        query: id.query.as_deref(),
        ..Caller::new("srt", Some(remote.ip()))
    };
    let auth = match ctl.authorize(id.action, name, &caller).await {
        Ok(a) => a,
        Err(r) => {
            let code = reject_code(&r);
            refuse(&r);
            let _ = req.reject(RejectReason::Server(code)).await;
            return;
        }
    };
    let keys = ctl
        .config
        .srt
        .encryption
        .get(auth.name().app())
        .and_then(|e| {
            let key_size = match KeySize::try_from(e.key_length) {
                Ok(KeySize::Unspecified) | Err(_) => req.key_size(),
                Ok(k) => k,
            };
            let passphrase = Passphrase::try_from(e.passphrase.clone()).ok()?;
            Some(srt_protocol::settings::KeySettings {
                key_size,
                passphrase,
            })
        });
    let key = auth.name().key().to_owned();
    let kick = ctl.shutdown.child_token();
    let peer = remote.to_string();
    let admitted = match id.action {
        Action::Publish => ctl
            .publish(auth, "srt", peer, kick.clone())
            .map(Admitted::Publish),
        Action::Play => ctl
            .play(auth, ViewerProtocol::Srt, peer, kick.clone())
            .map(Admitted::Play),
    };
    let admitted = match admitted {
        Ok(a) => a,
        Err(r) => {
            let code = reject_code(&r);
            refuse(&r);
            let _ = req.reject(RejectReason::Server(code)).await;
            return;
        }
    };
    let Some(socket) = accept(stats, req, keys).await else {
        return;
    };
    tracing::info!(%remote, stream = %key, user = ?id.user, action = id.action.as_str(), "srt caller admitted");
    match admitted {
        Admitted::Publish(p) => ingest::run(ctl, stats, socket, p, kick).await,
        Admitted::Play(p) => player::run(ctl, stats, socket, p, kick).await,
    }
}

/// An admitted caller, before its handshake completes.
enum Admitted {
    Publish(control::Publishing),
    Play(control::Playing),
}

/// Completes an admitted caller's handshake (with its app's passphrase, if it has one).
async fn accept(
    stats: &SrtStats,
    req: ConnectionRequest,
    keys: Option<srt_protocol::settings::KeySettings>,
) -> Option<SrtSocket> {
    let remote = req.remote();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, req.accept(keys)).await {
        Ok(Ok(socket)) => {
            stats.accepted.fetch_add(1, Ordering::Relaxed);
            Some(socket)
        }
        Ok(Err(e)) => {
            tracing::warn!(%remote, "srt handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::warn!(%remote, "srt handshake timed out");
            None
        }
    }
}

/// Keeps [`SrtStats::open`] right while a connection lives.
pub(crate) struct OpenGuard<'a>(&'a SrtStats);

impl<'a> OpenGuard<'a> {
    pub(crate) fn new(stats: &'a SrtStats) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Closes `socket` (SRT shutdown to the peer), bounded in time.
pub(crate) async fn close(mut socket: SrtSocket) {
    use futures_util::SinkExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close()).await;
}
