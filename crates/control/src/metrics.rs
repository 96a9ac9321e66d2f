//! `GET /metrics`: the Prometheus text exposition, rendered on each scrape.
//!
//! The media path only bumps relaxed atomics (in [`crate::ServerStats`], the hub's per-stream
//! stats and [`crate::StreamCounters`]). A scrape reads the same snapshots the REST API uses,
//! registers every series with its absolute value on a fresh `PrometheusRecorder` (nothing
//! global is installed, and series of streams that ended simply are not registered again) and
//! renders it.
//!
//! Bitrates are not computed here: byte counters are exported and
//! `rate(sluice_stream_ingest_bytes_total[1m]) * 8` gives the ingest bitrate.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::Control;
use crate::api::codec_name;
use crate::counters::{StreamCounters, ViewerProtocol};
use crate::procfs::ProcessStats;
use crate::webhooks::EventKind;

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric of the server.
pub fn render(ctl: &Control) -> String {
    let sources = ctl.sources();
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe();
        server(ctl);
        streams(ctl);
        webhooks(ctl);
        ctl.auth.metrics();
        crate::limits::metrics(ctl);
        for s in &sources {
            s.metrics();
        }
    });
    let mut text = handle.render();
    text.push_str(&ctl.latency.render());
    for s in &sources {
        text.push_str(&s.metrics_text());
    }
    text
}

fn describe() {
    describe_counter!(
        "sluice_connections_accepted_total",
        "Connections accepted: RTMP connections, and HTTP-FLV/WebSocket-FLV viewer requests (protocol=\"http\")."
    );
    describe_counter!(
        "sluice_connections_refused_total",
        "Connections or viewer requests refused, by protocol and reason (limit: a configured limit was reached; max_connections, per_ip_connections, per_ip_rate, ip_table_full, viewers_per_stream, publishers_per_app: that [limits] key; pending_peers, pending_peers_per_ip: webrtc.max_pending_peers and max_pending_peers_per_ip)."
    );
    describe_gauge!("sluice_connections_active", "RTMP connections open now.");
    describe_gauge!(
        "sluice_rtmp_partial_bytes",
        "Bytes RTMP connections hold now in incomplete messages (bounded by limits.max_rtmp_partial_bytes)."
    );
    describe_counter!(
        "sluice_rtmp_partial_refused_total",
        "RTMP connections closed because their incomplete messages would have passed limits.max_rtmp_partial_bytes."
    );
    describe_counter!(
        "sluice_rtmp_errors_total",
        "RTMP connections closed for a protocol error, bad media or a timeout."
    );
    describe_counter!(
        "sluice_rtmp_digest_handshakes_total",
        "RTMP clients that used the digest (Flash Player 9) handshake."
    );
    describe_gauge!(
        "sluice_viewers",
        "Viewers attached now, by protocol (hls: client addresses that fetched a playlist in the last 10 s)."
    );
    describe_gauge!(
        "sluice_hls_muxers",
        "HLS muxers running now (one per stream being watched over HLS)."
    );
    describe_gauge!(
        "sluice_hls_memory_bytes",
        "Segment and part bytes held in memory by all HLS muxers."
    );
    describe_counter!(
        "sluice_ingress_bytes_total",
        "Bytes read from clients, by protocol."
    );
    describe_counter!(
        "sluice_egress_bytes_total",
        "Bytes sent to viewers, by protocol."
    );
    describe_counter!(
        "sluice_viewer_writes_total",
        "Socket writes, HTTP chunks and WebSocket messages sent to viewers."
    );
    describe_gauge!(
        "sluice_streams",
        "Streams in the hub (live or in their publisher grace period)."
    );
    describe_gauge!(
        "sluice_process_cpu_seconds",
        "User plus system CPU time of the process, in seconds."
    );
    describe_gauge!(
        "sluice_process_resident_memory_bytes",
        "Resident set size of the process, in bytes."
    );
    describe_gauge!(
        "sluice_process_open_fds",
        "Open file descriptors of the process."
    );
    describe_gauge!("sluice_uptime_seconds", "Seconds since the server started.");
    describe_gauge!("sluice_build_info", "Build information; always 1.");
    describe_gauge!(
        "sluice_stream_live",
        "1 while the stream has a publisher, 0 during its grace period."
    );
    describe_gauge!(
        "sluice_stream_publisher_info",
        "The stream's current publisher protocol; always 1."
    );
    describe_counter!(
        "sluice_stream_ingest_bytes_total",
        "FLV body bytes pushed by the stream's publishers (rate() * 8 is the ingest bitrate)."
    );
    describe_counter!(
        "sluice_stream_ingest_frames_total",
        "Frames pushed by the stream's publishers."
    );
    describe_gauge!(
        "sluice_stream_keyframe_interval_seconds",
        "Interval between the last two video keyframes, in seconds."
    );
    describe_gauge!(
        "sluice_stream_info",
        "Codecs and parameters of the stream (empty label when unknown); always 1."
    );
    describe_gauge!(
        "sluice_stream_viewers",
        "Viewers of the stream attached now, by protocol."
    );
    describe_counter!(
        "sluice_stream_egress_bytes_total",
        "Bytes sent to the stream's viewers, by protocol."
    );
    describe_counter!(
        "sluice_stream_dropped_frames_total",
        "Frames skipped by the stream's viewers that fell behind."
    );
    describe_gauge!(
        "sluice_stream_gop_cache_frames",
        "Frames in the stream's GOP cache."
    );
    describe_gauge!(
        "sluice_stream_gop_cache_bytes",
        "Bytes in the stream's GOP cache."
    );
    describe_counter!(
        "sluice_stream_publisher_reconnects_total",
        "Publisher connects to the stream after the first one."
    );
}

fn webhooks(ctl: &Control) {
    describe_counter!(
        "sluice_webhook_events_total",
        "Webhook events emitted, by event (only while webhook URLs are configured)."
    );
    describe_counter!(
        "sluice_webhook_deliveries_total",
        "Webhook deliveries (event x URL) by result: ok (2xx), failed (gave up after max_attempts), dropped (queue full or shutdown)."
    );
    let w = &ctl.stats.webhooks;
    for kind in EventKind::ALL {
        counter!("sluice_webhook_events_total", "event" => kind.as_str()).absolute(w.events(kind));
    }
    for (result, a) in [
        ("ok", &w.delivered),
        ("failed", &w.failed),
        ("dropped", &w.dropped),
    ] {
        counter!("sluice_webhook_deliveries_total", "result" => result)
            .absolute(a.load(Ordering::Relaxed));
    }
}

fn server(ctl: &Control) {
    let s = &ctl.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    counter!("sluice_connections_accepted_total", "protocol" => "rtmp")
        .absolute(load(&s.rtmp_connections));
    counter!("sluice_connections_accepted_total", "protocol" => "http")
        .absolute(load(&s.flv_viewers));
    // Every TCP connection counts against `limits.max_connections`; RTMP and RTMPS are the
    // RTMP connections.
    let c = &ctl.limits.connections;
    let rtmp = c.open(crate::ListenerKind::Rtmp) + c.open(crate::ListenerKind::Rtmps);
    gauge!("sluice_connections_active", "protocol" => "rtmp").set(rtmp as f64);
    counter!("sluice_rtmp_errors_total").absolute(load(&s.rtmp_errors));
    gauge!("sluice_rtmp_partial_bytes").set(load(&s.rtmp_partial_bytes) as f64);
    counter!("sluice_rtmp_partial_refused_total").absolute(load(&s.rtmp_partial_refused));
    counter!("sluice_rtmp_digest_handshakes_total").absolute(load(&s.rtmp_digest_handshakes));
    counter!("sluice_ingress_bytes_total", "protocol" => "rtmp").absolute(load(&s.rtmp_bytes_in));
    for p in ViewerProtocol::ALL {
        gauge!("sluice_viewers", "protocol" => p.as_str()).set(s.viewers.get(p) as f64);
        counter!("sluice_egress_bytes_total", "protocol" => p.as_str())
            .absolute(s.bytes_out.get(p));
    }
    counter!("sluice_egress_bytes_total", "protocol" => "vod").absolute(load(&s.vod_bytes_out));
    counter!("sluice_viewer_writes_total").absolute(load(&s.viewer_writes));
    let proc = ProcessStats::read();
    if let Some(v) = proc.cpu_seconds {
        gauge!("sluice_process_cpu_seconds").set(v);
    }
    if let Some(v) = proc.resident_bytes {
        gauge!("sluice_process_resident_memory_bytes").set(v as f64);
    }
    if let Some(v) = proc.open_fds {
        gauge!("sluice_process_open_fds").set(v as f64);
    }
    gauge!("sluice_uptime_seconds").set(ctl.started.elapsed().as_secs_f64());
    gauge!("sluice_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

fn streams(ctl: &Control) {
    let snaps = ctl.hub.streams();
    ctl.streams
        .retain_streams(snaps.iter().map(|s| s.key.as_str()));
    gauge!("sluice_streams").set(snaps.len() as f64);
    for snap in snaps {
        let key = snap.key.clone();
        let c: Arc<StreamCounters> = ctl.streams.get(&key).unwrap_or_default();
        gauge!("sluice_stream_live", "stream" => key.clone())
            .set(f64::from(u8::from(snap.is_live)));
        if let Some(p) = &snap.publisher {
            gauge!("sluice_stream_publisher_info", "protocol" => p.protocol, "stream" => key.clone())
                .set(1.0);
        }
        counter!("sluice_stream_ingest_bytes_total", "stream" => key.clone())
            .absolute(snap.bytes_in);
        counter!("sluice_stream_ingest_frames_total", "stream" => key.clone())
            .absolute(snap.frames_in);
        if let Some(ms) = snap.keyframe_interval_ms {
            gauge!("sluice_stream_keyframe_interval_seconds", "stream" => key.clone())
                .set(ms as f64 / 1000.0);
        }
        let num = |a| {
            StreamCounters::known(a)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        gauge!(
            "sluice_stream_info",
            "audio_codec" => snap.audio_codec.map(codec_name).unwrap_or_default(),
            "height" => num(&c.height),
            "sample_rate" => num(&c.sample_rate),
            "stream" => key.clone(),
            "video_codec" => snap.video_codec.map(codec_name).unwrap_or_default(),
            "width" => num(&c.width),
        )
        .set(1.0);
        for p in ViewerProtocol::ALL {
            gauge!("sluice_stream_viewers", "protocol" => p.as_str(), "stream" => key.clone())
                .set(c.viewers.get(p) as f64);
            counter!("sluice_stream_egress_bytes_total", "protocol" => p.as_str(), "stream" => key.clone())
                .absolute(c.egress_bytes.get(p));
        }
        counter!("sluice_stream_dropped_frames_total", "stream" => key.clone())
            .absolute(snap.dropped_frames);
        gauge!("sluice_stream_gop_cache_frames", "stream" => key.clone())
            .set(snap.gop_frames as f64);
        gauge!("sluice_stream_gop_cache_bytes", "stream" => key.clone()).set(snap.gop_bytes as f64);
        counter!("sluice_stream_publisher_reconnects_total", "stream" => key)
            .absolute(snap.publisher_connects.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use hub::PublisherInfo;

    use crate::viewer::ViewerGuard;

    use super::*;

    /// The committed demo clip (H.264 + AAC).
    static DEMO_FLV: &[u8] = include_bytes!("../../../fixtures/demo.flv");

    fn test_config() -> config::Config {
        let mut cfg = config::Config::default();
        cfg.rtmp.listen = "127.0.0.1:0".parse().unwrap();
        cfg.http.listen = "127.0.0.1:0".parse().unwrap();
        cfg
    }

    /// The value of the series whose line starts with `prefix` (name and labels).
    fn value(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[tokio::test]
    async fn renders_server_and_stream_series() {
        let addrs = crate::ListenerAddrs {
            rtmp: "127.0.0.1:1935".parse().unwrap(),
            http: "127.0.0.1:8080".parse().unwrap(),
        };
        let ctl = Arc::new(
            Control::new(test_config(), hub::Hub::new(Default::default()), addrs).unwrap(),
        );
        let info = PublisherInfo {
            protocol: "rtmp",
            remote: "10.0.0.1:5000".into(),
        };
        let mut publisher = ctl.hub.publish("live/m", info).unwrap();
        let counters = ctl.streams.get_or_create("live/m");
        for tag in flv::read_all_tags(DEMO_FLV).unwrap().into_iter().take(20) {
            let f = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body).unwrap();
            counters.observe(&f);
            publisher.push(f);
        }
        let viewer = ViewerGuard::new(&ctl, "live/m", ViewerProtocol::HttpFlv);
        viewer.sent(1000);
        let text = render(&ctl);
        assert!(text.contains("# HELP sluice_stream_viewers "), "{text}");
        assert!(text.contains("# TYPE sluice_stream_ingest_bytes_total counter"));
        assert_eq!(
            value(
                &text,
                r#"sluice_stream_viewers{protocol="http-flv",stream="live/m"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                r#"sluice_stream_viewers{protocol="rtmp",stream="live/m"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&text, r#"sluice_egress_bytes_total{protocol="http-flv"}"#),
            Some(1000.0)
        );
        assert!(
            value(
                &text,
                r#"sluice_stream_ingest_bytes_total{stream="live/m"}"#
            )
            .unwrap()
                > 0.0
        );
        assert!(
            text.contains(r#"width="640""#) && text.contains(r#"height="360""#),
            "{text}"
        );
        assert!(text.contains(r#"video_codec="h264""#) && text.contains(r#"audio_codec="aac""#));
        assert!(text.contains(r#"sluice_build_info{version=""#));
        assert!(value(&text, "sluice_uptime_seconds").unwrap() > 0.0);
        assert!(value(&text, "sluice_process_resident_memory_bytes").unwrap() > 0.0);

        // The viewer leaves and the stream ends: its series vanish and its counters go.
        drop(viewer);
        drop(counters);
        ctl.hub.shutdown();
        drop(publisher);
        let text = render(&ctl);
        assert!(!text.contains("live/m"), "{text}");
        assert_eq!(
            value(&text, r#"sluice_viewers{protocol="http-flv"}"#),
            Some(0.0)
        );
        assert!(ctl.streams.is_empty());
    }
}
