//! Sluice's RTMP and RTMPS server: accept connections, enforce the connection limits (before
//! any handshake), and run one task per connection. RTMPS does the TLS handshake in that
//! task, bounded by `limits.handshake_timeout_ms`, then runs the same session code over the
//! TLS stream.
//!
//! The crate's rule: a thin adapter. The protocol is the `rtmp` crate's sans-IO session;
//! admission is the control plane's ([`control::Control::authorize`], `publish`, `play`);
//! this crate moves bytes between sockets, the session and the hub, and imports no other
//! server.
#![forbid(unsafe_code)]

mod conn;
mod egress;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use control::tls::{self, TlsService};
use control::{Control, ListenerKind};
use tokio::net::TcpListener;
use tracing::Instrument;

/// Accepts RTMP connections until shutdown.
pub async fn run(ctl: Arc<Control>, listener: TcpListener) {
    accept_loop(ctl, listener, None).await;
}

/// Accepts RTMPS connections until shutdown (handshakes with `tls.rtmps`).
pub async fn run_tls(ctl: Arc<Control>, listener: TcpListener, tls: Arc<TlsService>) {
    accept_loop(ctl, listener, Some(tls)).await;
}

async fn accept_loop(ctl: Arc<Control>, listener: TcpListener, tls: Option<Arc<TlsService>>) {
    let kind = if tls.is_some() {
        ListenerKind::Rtmps
    } else {
        ListenerKind::Rtmp
    };
    // Connection limits, before any handshake (the cheapest point to refuse).
    while let Some((sock, peer, permit)) = control::limits::accept(&ctl, &listener, kind).await {
        ctl.stats.rtmp_connections.fetch_add(1, Ordering::Relaxed);
        let ctl = ctl.clone();
        let tls = tls.clone();
        // Every line of this connection carries its peer, and its stream once known.
        let protocol = if tls.is_some() { "rtmps" } else { "rtmp" };
        let span = tracing::info_span!("rtmp", %peer, protocol, stream = tracing::field::Empty);
        let tracker = ctl.tracker.clone();
        tracker.spawn(
            async move {
                match tls {
                    None => conn::serve(ctl, sock, peer, "rtmp").await,
                    Some(t) => {
                        let handshake =
                            tls::handshake(&ctl, &t, &t.rtmps, sock, peer, tls::Listener::Rtmps);
                        if let Some(stream) = handshake.await {
                            conn::serve(ctl, stream, peer, "rtmps").await;
                        }
                    }
                }
                drop(permit);
            }
            .instrument(span),
        );
    }
}
