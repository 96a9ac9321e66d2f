//! The built-in demo publisher: loops a small embedded H.264 + AAC clip into the hub in real
//! time, so a fresh install has something to watch (`sluice --demo`).

use std::sync::Arc;
use std::time::Duration;

use hub::{Hub, PublisherInfo};
use media::{Frame, FrameRole};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ServerError;
use control::StreamCounters;

/// The embedded clip (`fixtures/demo.flv`, made by `fixtures/make-demo.sh`).
pub static DEMO_FLV: &[u8] = include_bytes!("../../../fixtures/demo.flv");
/// Where the demo is published.
pub const DEMO_KEY: &str = "live/demo";
/// Wait before retrying when the demo key is taken by a real publisher.
const RETRY: Duration = Duration::from_secs(1);

/// Publishes the clip in a loop with continuous timestamps.
pub(crate) struct DemoPublisher {
    hub: Arc<Hub>,
    key: String,
    frames: Vec<Frame>,
    /// Length of one loop in ms (last timestamp plus one frame).
    loop_ms: u64,
    /// The stream's counters (resolution and sample rate for metrics and the API).
    counters: Arc<StreamCounters>,
}

impl DemoPublisher {
    pub(crate) fn new(
        hub: &Arc<Hub>,
        key: &str,
        counters: Arc<StreamCounters>,
    ) -> Result<Self, ServerError> {
        let tags = flv::read_all_tags(DEMO_FLV).map_err(|e| ServerError::Demo(e.to_string()))?;
        let mut frames = Vec::with_capacity(tags.len());
        for tag in tags {
            let f = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body)
                .map_err(|e| ServerError::Demo(e.to_string()))?;
            frames.push(f);
        }
        let last = frames.iter().map(|f| f.dts).max().unwrap_or(0);
        // One video frame at 25 fps after the last timestamp closes the loop.
        Ok(Self {
            hub: hub.clone(),
            key: key.to_owned(),
            frames,
            loop_ms: last + 40,
            counters,
        })
    }

    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut publisher = loop {
            match self.hub.publish(
                &self.key,
                PublisherInfo {
                    protocol: "demo",
                    remote: "built-in".into(),
                },
            ) {
                Ok(p) => break p,
                Err(e) => {
                    tracing::warn!(key = %self.key, "demo not published yet: {e}");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        };
        tracing::info!(key = %self.key, "demo clip publishing");
        let start = Instant::now();
        for round in 0u64.. {
            let offset = round * self.loop_ms;
            for f in &self.frames {
                let is_header = f.role != FrameRole::Coded;
                if round > 0 && is_header {
                    continue;
                }
                let at = offset + f.dts;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(start + Duration::from_millis(at)) => {}
                }
                let mut frame = f.clone();
                // The publisher's clock is RTMP-like: 32-bit milliseconds.
                frame.dts = at & 0xFFFF_FFFF;
                self.counters.observe(&frame);
                publisher.push(frame);
            }
        }
    }
}
