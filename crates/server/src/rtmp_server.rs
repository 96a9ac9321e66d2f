//! The RTMP and RTMPS listeners: accept connections, enforce the connection limit (shared by
//! both), and run one task per connection. RTMPS does the TLS handshake in that task, bounded
//! by `limits.handshake_timeout_ms`, then runs the same session code over the TLS stream.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{Shared, rtmp_conn, tls};

/// Accepts RTMP connections until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, listener: TcpListener, tracker: TaskTracker) {
    accept_loop(shared, listener, tracker, None).await;
}

/// Accepts RTMPS connections until shutdown.
pub(crate) async fn run_tls(
    shared: Arc<Shared>,
    listener: TcpListener,
    tracker: TaskTracker,
    acceptor: TlsAcceptor,
) {
    accept_loop(shared, listener, tracker, Some(acceptor)).await;
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tracker: TaskTracker,
    acceptor: Option<TlsAcceptor>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (sock, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and similar: back off briefly rather than spin.
                tracing::warn!(error = %e, "rtmp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Connection limits, before any handshake (the cheapest point to refuse).
        let kind = if acceptor.is_some() {
            crate::ListenerKind::Rtmps
        } else {
            crate::ListenerKind::Rtmp
        };
        let Some(conn) = crate::limits::on_accept(&shared, kind, peer) else {
            drop(sock);
            continue;
        };
        let Ok(permit) = shared.rtmp_slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = shared.config.limits.max_rtmp_connections,
                "rtmp connection refused: limits.max_rtmp_connections reached");
            shared.stats.rtmp_refused.fetch_add(1, Ordering::Relaxed);
            drop(sock);
            continue;
        };
        shared
            .stats
            .rtmp_connections
            .fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let _ = sock.set_nodelay(true);
        let acceptor = acceptor.clone();
        // Every line of this connection carries its peer, and its stream once known.
        let protocol = if acceptor.is_some() { "rtmps" } else { "rtmp" };
        let span = tracing::info_span!("rtmp", %peer, protocol, stream = tracing::field::Empty);
        tracker.spawn(
            async move {
                match acceptor {
                    None => rtmp_conn::serve(shared, sock, peer, "rtmp").await,
                    Some(a) => {
                        let handshake =
                            tls::handshake(&shared, &a, sock, peer, tls::Listener::Rtmps);
                        if let Some(stream) = handshake.await {
                            rtmp_conn::serve(shared, stream, peer, "rtmps").await;
                        }
                    }
                }
                drop(permit);
                drop(conn);
            }
            .instrument(span),
        );
    }
}
