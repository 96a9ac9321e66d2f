//! The RTMP listener: accepts connections, enforces the connection limit, and runs one
//! task per connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{Shared, rtmp_conn};

/// Accepts RTMP connections until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, listener: TcpListener, tracker: TaskTracker) {
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
        // Every line of this connection carries its peer, and its stream once known.
        let span = tracing::info_span!("rtmp", %peer, stream = tracing::field::Empty);
        tracker.spawn(
            async move {
                rtmp_conn::serve(shared, sock, peer).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}
