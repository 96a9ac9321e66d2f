//! The plain-HTTP accept loop: each connection is admitted by the connection limits right
//! after accept, then served by the same hyper connection code as HTTPS (which applies
//! `limits.http_max_header_bytes` and the time limits of `crate::conn`).

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use control::ListenerKind;

use crate::Shared;

/// Accepts plain-HTTP connections until shutdown (the main listener, or the `/metrics` one,
/// which counts as `http` too); each runs in a task of the server's tracker, holding its
/// connection permit.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener, app: Router) {
    while let Some((sock, peer, permit)) =
        control::limits::accept(&shared.ctl, &listener, ListenerKind::Http).await
    {
        let (conn_shared, app) = (shared.clone(), app.clone());
        shared.ctl.tracker.spawn(async move {
            crate::https::connection(&conn_shared, sock, peer, app, Some(permit)).await;
        });
    }
}
