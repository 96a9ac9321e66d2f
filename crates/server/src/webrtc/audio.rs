//! One AAC-to-Opus transcoder per stream, shared by all of the stream's WebRTC viewers.
//!
//! The first WebRTC viewer of a stream starts a task that subscribes to the hub once,
//! transcodes every AAC frame and fans the Opus packets out on a broadcast channel; the last
//! viewer to leave stops it (its [`AudioGuard`] drop). A viewer that falls more than
//! [`AUDIO_FANOUT`] packets behind skips ahead (the broadcast channel's lag), as the network
//! would drop them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hub::Hub;
use media::{Codec, FrameRole, MediaKind};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transcode::{AacToOpus, OpusPacket};

/// Opus packets buffered per stream for its viewers (20 ms each: about 1.3 s).
pub const AUDIO_FANOUT: usize = 64;

#[derive(Debug)]
struct Entry {
    tx: broadcast::Sender<Arc<OpusPacket>>,
    viewers: usize,
    stop: CancellationToken,
}

/// The per-stream transcoders.
#[derive(Debug, Default)]
pub(crate) struct AudioHub {
    map: Arc<Mutex<HashMap<String, Entry>>>,
}

fn lock(m: &Mutex<HashMap<String, Entry>>) -> MutexGuard<'_, HashMap<String, Entry>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a viewer counted on its stream's transcoder; the last drop stops it.
#[derive(Debug)]
pub(crate) struct AudioGuard {
    map: Arc<Mutex<HashMap<String, Entry>>>,
    key: String,
}

impl Drop for AudioGuard {
    fn drop(&mut self) {
        let mut m = lock(&self.map);
        if let Some(e) = m.get_mut(&self.key) {
            e.viewers = e.viewers.saturating_sub(1);
            if e.viewers == 0 {
                e.stop.cancel();
                m.remove(&self.key);
            }
        }
    }
}

impl AudioHub {
    /// Joins the transcoder of `key`, starting it if this is its first viewer.
    pub(crate) fn join(
        &self,
        hub: &Arc<Hub>,
        tracker: &TaskTracker,
        key: &str,
    ) -> (broadcast::Receiver<Arc<OpusPacket>>, AudioGuard) {
        let mut m = lock(&self.map);
        let guard = AudioGuard {
            map: Arc::clone(&self.map),
            key: key.to_owned(),
        };
        if let Some(e) = m.get_mut(key) {
            e.viewers += 1;
            return (e.tx.subscribe(), guard);
        }
        let (tx, rx) = broadcast::channel(AUDIO_FANOUT);
        let stop = CancellationToken::new();
        if let Ok(sub) = hub.subscribe(key) {
            tracker.spawn(run(sub, tx.clone(), stop.clone()));
        }
        m.insert(
            key.to_owned(),
            Entry {
                tx,
                viewers: 1,
                stop,
            },
        );
        (rx, guard)
    }

    /// Transcoders running now.
    pub(crate) fn running(&self) -> usize {
        lock(&self.map).len()
    }
}

async fn run(
    mut sub: hub::Subscriber,
    tx: broadcast::Sender<Arc<OpusPacket>>,
    stop: CancellationToken,
) {
    let key = sub.key().to_owned();
    tracing::debug!(%key, "webrtc audio transcoder started");
    let mut enc: Option<AacToOpus> = None;
    let mut out = Vec::new();
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break,
            f = sub.recv() => match f { Some(f) => f, None => break },
        };
        if frame.kind != MediaKind::Audio || frame.codec != Codec::Aac {
            continue;
        }
        if frame.role == FrameRole::SequenceHeader {
            enc = match AacToOpus::new(&frame.payload()) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(%key, "webrtc audio: cannot transcode this AAC: {e}");
                    None
                }
            };
            continue;
        }
        let Some(e) = enc.as_mut() else { continue };
        out.clear();
        if let Err(err) = e.push(&frame.payload(), frame.dts, &mut out) {
            tracing::debug!(%key, "webrtc audio: frame skipped: {err}");
            continue;
        }
        for p in out.drain(..) {
            // No receiver (all lagging or gone) is fine: the guard stops us when the last goes.
            let _ = tx.send(Arc::new(p));
        }
    }
    tracing::debug!(%key, "webrtc audio transcoder stopped");
}
