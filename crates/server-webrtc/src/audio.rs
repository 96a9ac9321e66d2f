//! One AAC-to-Opus transcoder per stream, shared by all of the stream's WebRTC viewers.
//!
//! The first WebRTC viewer of a stream starts a task that subscribes to the hub once,
//! transcodes every AAC frame and fans the Opus packets out on a broadcast channel; the last
//! viewer to leave stops it (its [`AudioGuard`] drop). A viewer that falls more than
//! [`AUDIO_FANOUT`] packets behind skips ahead (the broadcast channel's lag), as the network
//! would drop them.
//!
//! A WHIP publisher's stream needs no transcoder: its ingest [`AudioHub::provide`]s the
//! publisher's own Opus packets, which feed the same broadcast channel, so WHEP viewers get
//! them bit-exact. While the [`OpusSource`] lives, `join` never starts a transcoder for the
//! stream; its drop ends the entry (viewers' receivers close).

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

/// One Opus packet as every viewer hands it to str0m: its bytes are made once per stream
/// (`Arc<[u8]>` is what str0m's writer takes), so a viewer's write neither allocates nor
/// copies them; cloning it is one reference count.
#[derive(Debug, Clone)]
pub(crate) struct OpusFrame {
    /// One Opus packet (RFC 6716), a single 20 ms frame.
    pub(crate) data: Arc<[u8]>,
    /// Hub-timeline time (ms) of the packet's first sample.
    pub(crate) dts_ms: u64,
}

impl From<&OpusPacket> for OpusFrame {
    fn from(p: &OpusPacket) -> Self {
        Self {
            data: Arc::from(p.data.as_ref()),
            dts_ms: p.dts_ms,
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// Tells guards of a replaced entry of the same key apart from this one's.
    generation: u64,
    tx: broadcast::Sender<OpusFrame>,
    viewers: usize,
    stop: CancellationToken,
    /// An [`OpusSource`] feeds `tx` (no transcoder runs).
    source: bool,
}

/// The per-stream transcoders (and WHIP Opus sources).
#[derive(Debug, Default)]
pub(crate) struct AudioHub {
    map: Arc<Mutex<HashMap<String, Entry>>>,
    generation: std::sync::atomic::AtomicU64,
}

fn lock(m: &Mutex<HashMap<String, Entry>>) -> MutexGuard<'_, HashMap<String, Entry>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a viewer counted on its stream's transcoder; the last drop stops it.
#[derive(Debug)]
pub(crate) struct AudioGuard {
    map: Arc<Mutex<HashMap<String, Entry>>>,
    key: String,
    generation: u64,
}

impl Drop for AudioGuard {
    fn drop(&mut self) {
        let mut m = lock(&self.map);
        if let Some(e) = m.get_mut(&self.key)
            && e.generation == self.generation
        {
            e.viewers = e.viewers.saturating_sub(1);
            if e.viewers == 0 && !e.source {
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
    ) -> (broadcast::Receiver<OpusFrame>, AudioGuard) {
        let mut m = lock(&self.map);
        if let Some(e) = m.get_mut(key) {
            e.viewers += 1;
            let guard = AudioGuard {
                map: Arc::clone(&self.map),
                key: key.to_owned(),
                generation: e.generation,
            };
            return (e.tx.subscribe(), guard);
        }
        let generation = self.next_generation();
        let guard = AudioGuard {
            map: Arc::clone(&self.map),
            key: key.to_owned(),
            generation,
        };
        let (tx, rx) = broadcast::channel(AUDIO_FANOUT);
        let stop = CancellationToken::new();
        if let Ok(sub) = hub.subscribe(key) {
            tracker.spawn(run(sub, tx.clone(), stop.clone()));
        }
        m.insert(
            key.to_owned(),
            Entry {
                generation,
                tx,
                viewers: 1,
                stop,
                source: false,
            },
        );
        (rx, guard)
    }

    fn next_generation(&self) -> u64 {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes the caller (a WHIP ingest) the Opus source of `key`: a transcoder running for
    /// it is stopped and its viewers get the source's packets from now on.
    pub(crate) fn provide(&self, key: &str) -> OpusSource {
        let mut m = lock(&self.map);
        let (generation, tx) = match m.get_mut(key) {
            // Viewers already joined (a takeover in the grace period): keep their channel
            // and their guards' generation, stop the transcoder.
            Some(e) => {
                e.stop.cancel();
                e.source = true;
                (e.generation, e.tx.clone())
            }
            None => {
                let generation = self.next_generation();
                let tx = broadcast::channel(AUDIO_FANOUT).0;
                m.insert(
                    key.to_owned(),
                    Entry {
                        generation,
                        tx: tx.clone(),
                        viewers: 0,
                        stop: CancellationToken::new(),
                        source: true,
                    },
                );
                (generation, tx)
            }
        };
        drop(m);
        OpusSource {
            map: Arc::clone(&self.map),
            key: key.to_owned(),
            generation,
            tx,
        }
    }

    /// Transcoders running now.
    pub(crate) fn running(&self) -> usize {
        lock(&self.map).len()
    }
}

/// Feeds a stream's WebRTC viewers with a publisher's own Opus packets; dropping it ends
/// the stream's audio entry.
#[derive(Debug)]
pub(crate) struct OpusSource {
    map: Arc<Mutex<HashMap<String, Entry>>>,
    key: String,
    generation: u64,
    tx: broadcast::Sender<OpusFrame>,
}

impl OpusSource {
    /// Hands one packet to every viewer (none listening is fine).
    pub(crate) fn push(&self, packet: OpusPacket) {
        let _ = self.tx.send(OpusFrame::from(&packet));
    }
}

impl Drop for OpusSource {
    fn drop(&mut self) {
        let mut m = lock(&self.map);
        if m.get(&self.key)
            .is_some_and(|e| e.generation == self.generation)
        {
            m.remove(&self.key);
        }
    }
}

async fn run(mut sub: hub::Subscriber, tx: broadcast::Sender<OpusFrame>, stop: CancellationToken) {
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
            let _ = tx.send(OpusFrame::from(&p));
        }
    }
    tracing::debug!(%key, "webrtc audio transcoder stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(n: u8) -> OpusPacket {
        OpusPacket {
            data: bytes::Bytes::from(vec![n; 3]),
            dts_ms: u64::from(n) * 20,
            samples: 960,
        }
    }

    #[tokio::test]
    async fn opus_source_feeds_viewers_without_a_transcoder() {
        let audio = AudioHub::default();
        let hub = Hub::new(hub::HubConfig::default());
        let tracker = TaskTracker::new();
        let src = audio.provide("live/a");
        assert_eq!(audio.running(), 1);
        let (mut rx, guard) = audio.join(&hub, &tracker, "live/a");
        assert!(tracker.is_empty(), "no transcoder started for a source");
        src.push(packet(7));
        let got = rx.recv().await.unwrap();
        assert_eq!((got.data.as_ref(), got.dts_ms), (&[7u8, 7, 7][..], 140));
        // The viewer leaving keeps the source's entry.
        drop(guard);
        assert_eq!(audio.running(), 1);
        let (mut rx, _guard) = audio.join(&hub, &tracker, "live/a");
        // The source ending closes the viewers' channel and frees the entry.
        drop(src);
        assert_eq!(audio.running(), 0);
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Closed)
        ));
    }

    /// Every viewer gets the same bytes (one allocation per packet, not one per viewer).
    #[tokio::test]
    async fn viewers_share_each_packet() {
        let audio = AudioHub::default();
        let hub = Hub::new(hub::HubConfig::default());
        let tracker = TaskTracker::new();
        let src = audio.provide("live/c");
        let (mut rx1, _g1) = audio.join(&hub, &tracker, "live/c");
        let (mut rx2, _g2) = audio.join(&hub, &tracker, "live/c");
        src.push(packet(3));
        let (a, b) = (rx1.recv().await.unwrap(), rx2.recv().await.unwrap());
        assert!(Arc::ptr_eq(&a.data, &b.data));
        assert_eq!((&a.data[..], a.dts_ms), (&[3u8, 3, 3][..], 60));
    }

    #[tokio::test]
    async fn opus_source_takes_over_a_transcoder_entry() {
        let audio = AudioHub::default();
        let hub = Hub::new(hub::HubConfig::default());
        let tracker = TaskTracker::new();
        // Viewer joined while no stream exists: an entry without a running task.
        let (mut rx, guard) = audio.join(&hub, &tracker, "live/b");
        let src = audio.provide("live/b");
        src.push(packet(1));
        assert_eq!(rx.recv().await.unwrap().dts_ms, 20);
        drop(guard);
        assert_eq!(audio.running(), 1, "the source keeps the entry");
        drop(src);
        assert_eq!(audio.running(), 0);
    }
}
