//! The relay's serving side: `GET /_cluster/relay/{app}/{stream}?epoch=N` streams the hub's
//! frames of a stream this node owns, in the [`relay`] framing.
//!
//! Refusals: 401 without the cluster secret (compared in constant time), 400 for a bad
//! name or epoch, 409 when this node does not own the stream at that epoch (the edge looks
//! the owner up again), 404 when the hub has no such stream. The body starts with the
//! metadata, sequence headers and GOP cache (the hub's join), then live frames; a keepalive
//! goes out after [`KEEPALIVE`] without a frame; `END` when the stream ends. The response
//! stops when this node is fenced (another node claimed the stream with a newer epoch).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::{Bytes, BytesMut};
use hub::Subscriber;

use crate::Cluster;

/// Silence after which the owner sends a keepalive record: the edge times a relay out after
/// a few of these without any record.
pub const KEEPALIVE: Duration = Duration::from_secs(1);

/// Most frames gathered into one body chunk (fewer, larger writes under load; a frame is
/// never held back to fill a chunk).
pub const MAX_FRAMES_PER_CHUNK: usize = 64;

/// The relay route, outside the API guard (it checks the cluster secret itself).
pub(crate) fn routes(cluster: Arc<Cluster>) -> Router {
    Router::new()
        .route("/_cluster/relay/{app}/{stream}", get(relay))
        .with_state(cluster)
}

async fn relay(
    State(c): State<Arc<Cluster>>,
    Path((app, stream)): Path<(String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let refuse = |status: StatusCode, why: &'static str| {
        c.stats.refused_total.fetch_add(1, Ordering::Relaxed);
        (status, why).into_response()
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !crate::constant_time_eq(presented.as_bytes(), c.secret.as_bytes()) {
        // Debug only: whoever reaches the port could fill the log otherwise (it is counted).
        tracing::debug!("cluster: relay request with a wrong secret refused");
        return refuse(StatusCode::UNAUTHORIZED, "bad cluster secret");
    }
    let Ok(name) = access::StreamName::new(&app, &stream) else {
        return refuse(StatusCode::BAD_REQUEST, "bad stream name");
    };
    let Some(epoch) = q.get("epoch").and_then(|e| e.parse::<u64>().ok()) else {
        return refuse(StatusCode::BAD_REQUEST, "bad epoch");
    };
    let key = name.key().to_owned();
    if c.registry.owned_epoch(&key) != Some(epoch) {
        return refuse(StatusCode::CONFLICT, "not the owner at this epoch");
    }
    let Ok(sub) = c.ctl.hub.subscribe_with(&key, hub::Want::AS_PUBLISHED) else {
        return refuse(StatusCode::NOT_FOUND, "no such stream");
    };
    c.stats.served_total.fetch_add(1, Ordering::Relaxed);
    c.stats.served_active.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%key, epoch, "cluster: serving a relay");
    let state = Serving {
        c: Arc::clone(&c),
        sub,
        key,
        epoch,
        started: false,
        done: false,
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        let chunk = s.next_chunk().await?;
        s.c.stats
            .served_bytes_total
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Some((Ok::<Bytes, std::io::Error>(chunk), s))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-sluice-relay")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

struct Serving {
    c: Arc<Cluster>,
    sub: Subscriber,
    key: String,
    epoch: u64,
    started: bool,
    done: bool,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.c.stats.served_active.fetch_sub(1, Ordering::Relaxed);
        tracing::info!(key = %self.key, "cluster: relay served to its end");
    }
}

impl Serving {
    /// The next body chunk; `None` ends the body.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut out = BytesMut::new();
        if !self.started {
            self.started = true;
            relay::encode_preamble(&mut out);
        }
        if !self.c.registry.still_owns(&self.key) {
            tracing::info!(key = %self.key, epoch = self.epoch, "cluster: relay ends: no longer the owner");
            return None;
        }
        match tokio::time::timeout(KEEPALIVE, self.sub.recv()).await {
            Ok(Some(frame)) => {
                relay::encode_frame(&frame, &mut out);
                for _ in 1..MAX_FRAMES_PER_CHUNK {
                    match self.sub.try_recv() {
                        hub::TryRecv::Frame(f) => relay::encode_frame(&f, &mut out),
                        // Empty, or ended: the next call sees the end (and whether it is a shutdown).
                        _ => break,
                    }
                }
                Some(out.freeze())
            }
            Ok(None) => {
                self.done = true;
                if self.c.ctl.shutdown.is_cancelled() {
                    // This node is going away, the stream is not over: close without END so
                    // the edge keeps its viewers and re-attaches to the next owner.
                    return if out.is_empty() {
                        None
                    } else {
                        Some(out.freeze())
                    };
                }
                relay::encode_end(&mut out);
                Some(out.freeze())
            }
            Err(_) => {
                relay::encode_keepalive(&mut out);
                Some(out.freeze())
            }
        }
    }
}
