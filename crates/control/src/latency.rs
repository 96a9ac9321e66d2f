//! Delivery latency: the time from a frame entering the hub to its bytes being written to a
//! viewer's socket (for HLS: to the part or segment holding it becoming available), as a
//! Prometheus histogram per protocol (`sluice_delivery_latency_seconds{protocol}`).
//!
//! Each viewer samples one write in [`SAMPLE_EVERY`] (the oldest frame of that write), so
//! the cost stays a few relaxed atomics per write whatever the audience. The histograms live
//! in a long-lived recorder of their own (the rest of `/metrics` is rendered from snapshots
//! per scrape); an upkeep task folds the samples into buckets every [`UPKEEP`], so memory
//! stays bounded even when nobody scrapes.

use std::time::{Duration, Instant};

use metrics::{Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::counters::ViewerProtocol;

/// The histogram's name.
pub const LATENCY_METRIC: &str = "sluice_delivery_latency_seconds";
/// Bucket upper bounds in seconds: sub-millisecond (RTMP on a fast path) to seconds (HLS).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// A viewer reports one write in this many.
pub const SAMPLE_EVERY: u32 = 16;
/// How often samples are folded into buckets.
pub const UPKEEP: Duration = Duration::from_secs(5);

/// The per-protocol latency histograms.
pub struct LatencyMetrics {
    // Kept so the histograms' storage lives as long as the handles.
    _recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    per_protocol: Vec<Histogram>,
}

impl std::fmt::Debug for LatencyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyMetrics").finish_non_exhaustive()
    }
}

impl Default for LatencyMetrics {
    fn default() -> Self {
        let builder = PrometheusBuilder::new();
        // The bucket list is a non-empty constant: this cannot fail.
        let builder = builder
            .set_buckets_for_metric(Matcher::Full(LATENCY_METRIC.to_owned()), &BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!(
                LATENCY_METRIC,
                metrics::Unit::Seconds,
                "Time from a frame entering the hub to its bytes being written to a viewer (sampled, 1 write in 16), or for HLS to its part or segment being available, by protocol."
            );
        });
        let meta = Metadata::new(module_path!(), Level::INFO, None);
        let per_protocol = ViewerProtocol::ALL
            .iter()
            .map(|p| {
                let key = Key::from_parts(LATENCY_METRIC, vec![Label::new("protocol", p.as_str())]);
                recorder.register_histogram(&key, &meta)
            })
            .collect();
        Self {
            _recorder: recorder,
            handle,
            per_protocol,
        }
    }
}

impl LatencyMetrics {
    /// Records one latency for `protocol`.
    pub fn observe(&self, protocol: ViewerProtocol, latency: Duration) {
        if let Some(h) = self.per_protocol.get(protocol.index()) {
            h.record(latency.as_secs_f64());
        }
    }

    /// The histograms in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds pending samples into buckets.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// One viewer's sampler: remembers when the oldest frame not yet written entered the hub,
/// and reports a latency once in [`SAMPLE_EVERY`] completed writes (the 16th, 32nd, ...:
/// the join burst of cached frames at the start is not a delay).
#[derive(Debug, Default)]
pub struct LatencyProbe {
    oldest: Option<Instant>,
    writes: u32,
}

impl LatencyProbe {
    /// A frame was queued for this viewer.
    pub fn queued(&mut self, arrival: Option<Instant>) {
        if self.oldest.is_none() {
            self.oldest = arrival;
        }
    }

    /// Everything queued has been written at `now`: a latency when this write is sampled.
    pub fn written(&mut self, now: Instant) -> Option<Duration> {
        let oldest = self.oldest.take()?;
        self.writes = self.writes.wrapping_add(1);
        // Never the first writes: they carry the GOP cache, old by design, not late.
        self.writes
            .is_multiple_of(SAMPLE_EVERY)
            .then(|| now.saturating_duration_since(oldest))
    }
}

/// Folds latency samples into buckets periodically until shutdown, so they never pile up
/// unscraped.
pub async fn upkeep(ctl: std::sync::Arc<crate::Control>) {
    let mut tick = tokio::time::interval(UPKEEP);
    loop {
        tokio::select! {
            _ = ctl.shutdown.cancelled() => return,
            _ = tick.tick() => ctl.latency.upkeep(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_samples_one_write_in_n_from_the_oldest_frame() {
        let mut p = LatencyProbe::default();
        let t0 = Instant::now();
        let mut samples = 0;
        for i in 0..(SAMPLE_EVERY * 4) {
            p.queued(Some(t0));
            p.queued(Some(t0 + Duration::from_millis(5)));
            if let Some(d) = p.written(t0 + Duration::from_millis(10)) {
                assert_eq!(
                    d,
                    Duration::from_millis(10),
                    "write {i}: the oldest frame counts"
                );
                samples += 1;
            }
        }
        assert_eq!(samples, 4);
        assert_eq!(p.written(t0), None, "nothing queued, nothing sampled");
    }

    #[test]
    fn histograms_render_with_buckets_per_protocol() {
        let m = LatencyMetrics::default();
        m.observe(ViewerProtocol::Rtmp, Duration::from_millis(3));
        m.observe(ViewerProtocol::Hls, Duration::from_millis(300));
        m.upkeep();
        let text = m.render();
        assert!(
            text.contains("# TYPE sluice_delivery_latency_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                "sluice_delivery_latency_seconds_bucket{protocol=\"rtmp\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("sluice_delivery_latency_seconds_bucket{protocol=\"hls\",le=\"0.25\"} 0"),
            "{text}"
        );
        assert!(text.contains("sluice_delivery_latency_seconds_count{protocol=\"hls\"} 1"));
    }
}
