//! One viewer's place in the counters and the limits while it plays: what
//! [`crate::Control::play`] hands every protocol, dropped on every exit path.

use std::sync::Arc;

use crate::counters::{StreamCounters, ViewerProtocol};
use crate::limits::StreamSlot;

/// Counts one viewer while alive: increments the server-wide and per-stream gauges of its
/// protocol on creation and decrements them on drop, so every exit path is covered.
#[derive(Debug)]
pub struct ViewerGuard {
    protocol: ViewerProtocol,
    ctl: Arc<crate::Control>,
    stream: Arc<StreamCounters>,
    /// The viewer's place under `limits.max_viewers_per_stream`, released with the guard.
    _slot: Option<StreamSlot>,
}

impl ViewerGuard {
    /// Starts counting a viewer of `key`.
    pub fn new(ctl: &Arc<crate::Control>, key: &str, protocol: ViewerProtocol) -> Self {
        let stream = ctl.streams.get_or_create(key);
        ctl.stats.viewers.add(protocol, 1);
        stream.viewers.add(protocol, 1);
        Self {
            protocol,
            ctl: Arc::clone(ctl),
            stream,
            _slot: None,
        }
    }

    /// Holds `slot` (from `limits::admit_viewer`) for as long as this viewer is counted.
    pub fn holding(mut self, slot: StreamSlot) -> Self {
        self._slot = Some(slot);
        self
    }

    /// Records a delivery latency sample of this viewer.
    pub fn latency(&self, d: std::time::Duration) {
        self.stream.observe_latency(&self.ctl, self.protocol, d);
    }

    /// Counts `n` bytes sent to this viewer (server-wide and per stream).
    pub fn sent(&self, n: usize) {
        let n = n as u64;
        self.ctl.stats.bytes_out.add(self.protocol, n);
        self.stream.egress_bytes.add(self.protocol, n);
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.ctl.stats.viewers.dec(self.protocol);
        self.stream.viewers.dec(self.protocol);
        if self.stream.viewers.get(self.protocol) == 0 {
            // No viewer left to measure: the last sample would only go stale.
            self.stream.latency_us.set(self.protocol, 0);
        }
    }
}
