//! `sluice-bench`: a load tool for live media servers.
//!
//! Publishes an FLV file over RTMP in real time (looping, monotonic timestamps), opens many
//! RTMP / HTTP-FLV / WS-FLV players with a ramp, and measures per player bytes, media
//! duration, stalls, first-frame time and delivery latency (publisher send to player
//! receive, same process and clock, frames matched by payload fingerprint), plus the
//! server's CPU and RSS from /proc. [`run`] is the entry point; `main.rs` is a thin CLI.
//! [`rtc::run`] is a separate mode: rooms signalling load (LiveKit's `/rtc` joins timed to
//! their JoinResponse).
#![forbid(unsafe_code)]

pub mod chunked;
pub mod cli;
mod error;
pub mod fingerprint;
pub mod flood;
pub mod flvparse;
pub mod player;
pub mod procstat;
pub mod publish;
pub mod report;
pub mod rtc;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use cli::{Opts, Scheme, Url};
pub use error::{BenchError, Result};
pub use report::Report;

use report::{LatencyReport, Percentiles, ServerReport, ToolReport};
use stats::{Histogram, Phase, Shared};

/// How long players may take, after the last one started, to connect or fail.
pub const CONNECT_GRACE: Duration = Duration::from_secs(10);
/// How long stopped players may take to finish.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// /proc readings over the measured window.
#[derive(Debug, Default)]
struct Sampler {
    rss_max: u64,
    rss_sum: u128,
    rss_n: u64,
}

impl Sampler {
    fn add(&mut self, rss: u64) {
        self.rss_max = self.rss_max.max(rss);
        self.rss_sum += u128::from(rss);
        self.rss_n += 1;
    }
}

/// Runs one benchmark as `opts` describes and returns its report. Errors when a publisher
/// cannot start or when players were requested and none connected.
pub async fn run(opts: Opts) -> Result<Report> {
    opts.validate()?;
    let play_url = opts
        .play
        .as_deref()
        .map(Url::parse)
        .transpose()?
        .map(Arc::new);
    let publish_url = opts.publish.as_deref().map(Url::parse).transpose()?;
    let plan = match &publish_url {
        Some(_) => Some(Arc::new(publish::Plan::load(&opts.file)?)),
        None => None,
    };
    let index = plan.as_ref().map(|p| Arc::new(p.frame_index()));
    let ambiguous = index.as_ref().map_or(0, |i| i.ambiguous());
    let shared = Arc::new(Shared::new(index));

    // Publishers: all must start before players do.
    let mut publishers = Vec::new();
    if let (Some(url), Some(plan)) = (&publish_url, &plan) {
        let mut waits = Vec::new();
        for i in 0..opts.publishers {
            let u = if opts.publishers > 1 {
                url.with_stream_suffix(&format!("-{i}"))
            } else {
                url.clone()
            };
            let (h, rx) = publish::spawn(u.clone(), plan.clone(), shared.clone(), i == 0);
            publishers.push(h);
            waits.push((u, rx));
        }
        for (u, rx) in waits {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    shared.stop.cancel();
                    return Err(BenchError::Publish {
                        stream: u.raw,
                        reason: e.to_string(),
                    });
                }
                Err(_) => {
                    shared.stop.cancel();
                    return Err(BenchError::Publish {
                        stream: u.raw,
                        reason: "publisher task ended".into(),
                    });
                }
            }
        }
    }
    let server_before = opts.server_pid.and_then(|p| procstat::sample(Some(p)));
    let progress = tokio::spawn(progress(shared.clone(), opts.clone()));

    // Ramp (WHEP: at most MAX_WHEP_RAMP per second).
    let mut players = Vec::with_capacity(opts.players);
    if let Some(url) = &play_url {
        let ramp = if url.scheme == Scheme::Whep {
            opts.ramp.min(player::whep::MAX_WHEP_RAMP)
        } else {
            opts.ramp
        };
        let t0 = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while players.len() < opts.players {
            tick.tick().await;
            let due = (t0.elapsed().as_secs_f64() * f64::from(ramp)).ceil() as usize;
            while players.len() < due.min(opts.players) {
                players.push(tokio::spawn(player::run(
                    url.clone(),
                    shared.clone(),
                    opts.idle,
                )));
            }
        }
        let deadline = tokio::time::Instant::now() + CONNECT_GRACE;
        while (shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed))
            < opts.players as u64
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    shared.set_phase(Phase::Warmup);
    tokio::time::sleep(Duration::from_secs_f64(opts.warmup)).await;

    // Measured window.
    let tool0 = procstat::sample(None);
    let server0 = opts.server_pid.and_then(|p| procstat::sample(Some(p)));
    let bytes0 = shared.bytes.load(Ordering::Relaxed);
    let w0 = tokio::time::Instant::now();
    shared.set_phase(Phase::Measuring);
    let mut sampler = Sampler::default();
    let window = Duration::from_secs_f64(opts.duration);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Some(s) = opts.server_pid.and_then(|p| procstat::sample(Some(p))) {
            sampler.add(s.rss_bytes);
        }
        let left = window.saturating_sub(w0.elapsed());
        if left.is_zero() {
            break;
        }
        if left < Duration::from_secs(1) {
            tokio::time::sleep(left).await;
            if let Some(s) = opts.server_pid.and_then(|p| procstat::sample(Some(p))) {
                sampler.add(s.rss_bytes);
            }
            break;
        }
    }
    let measured = w0.elapsed().as_secs_f64();
    let bytes = shared.bytes.load(Ordering::Relaxed).saturating_sub(bytes0);
    let tool1 = procstat::sample(None);
    let server1 = opts.server_pid.and_then(|p| procstat::sample(Some(p)));
    shared.set_phase(Phase::Done);
    shared.stop.cancel();
    progress.abort();

    let mut results = Vec::with_capacity(players.len());
    for h in players {
        if let Ok(Ok(st)) = tokio::time::timeout(JOIN_TIMEOUT, h).await {
            results.push(st);
        }
    }
    let mut publishers_failed = 0;
    for h in publishers {
        if !matches!(tokio::time::timeout(JOIN_TIMEOUT, h).await, Ok(Ok(Ok(())))) {
            publishers_failed += 1;
        }
    }

    // Aggregate.
    let mut errors = BTreeMap::new();
    let mut latency = Histogram::default();
    let mut first_frame = Vec::new();
    let mut connect = Vec::new();
    let (mut media_ms, mut stalls, mut stalled_end, mut clean, mut connected) = (0u64, 0, 0, 0, 0);
    let mut per_player = report::PerPlayer::default();
    for st in &results {
        if let Some(e) = st.error {
            let k = serde_json::to_value(e)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *errors.entry(k).or_insert(0) += 1;
        }
        latency.merge(&st.latency);
        stalls += u64::from(st.stalls);
        stalled_end += usize::from(st.stalled);
        if let Some(c) = st.connect_ns {
            connected += 1;
            connect.push(c as f64 / 1e6);
            media_ms += st.media_ms;
            per_player.add(st);
            if st.video_frames > 0 && st.stalls == 0 {
                clean += 1;
            }
        }
        if let Some(f) = st.first_frame_ns {
            first_frame.push(f as f64 / 1e6);
        }
    }
    if opts.players > 0 && connected == 0 {
        let first_error = errors
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| "none".into());
        return Err(BenchError::NoPlayerConnected {
            requested: opts.players,
            first_error,
        });
    }
    let ms = |ns: Option<u64>| ns.map(|v| v as f64 / 1e6);
    let latency_ms = LatencyReport {
        p50: ms(latency.percentile_ns(50.0)),
        p95: ms(latency.percentile_ns(95.0)),
        p99: ms(latency.percentile_ns(99.0)),
        max: ms((latency.count() > 0).then(|| latency.max_ns())),
        samples: latency.count(),
        matching: if shared.index.is_some() {
            "payload-fingerprint".into()
        } else {
            "none: attach mode (no publisher in this process), latency not measured".into()
        },
        sampling: "every video frame of every player, in the measured window".into(),
        ambiguous_frames: ambiguous,
    };
    let server = match (opts.server_pid, server0, server1) {
        (Some(pid), Some(a), Some(b)) => {
            let cpu = (b.cpu_secs - a.cpu_secs).max(0.0);
            let before = server_before.map_or(a.rss_bytes, |s| s.rss_bytes);
            let rss_max = sampler.rss_max.max(b.rss_bytes);
            Some(ServerReport {
                pid,
                cpu_percent_of_one_core: 100.0 * cpu / measured,
                cpu_seconds: cpu,
                rss_max_bytes: rss_max,
                rss_mean_bytes: if sampler.rss_n > 0 {
                    (sampler.rss_sum / u128::from(sampler.rss_n)) as u64
                } else {
                    b.rss_bytes
                },
                rss_before_players_bytes: before,
                rss_per_player_bytes: (connected > 0)
                    .then(|| rss_max.saturating_sub(before) / connected as u64),
                cpu_seconds_per_gb_delivered: (bytes > 0).then(|| cpu / (bytes as f64 / 1e9)),
            })
        }
        _ => None,
    };
    per_player.finish(connected, measured);
    let players_per_core = server
        .as_ref()
        .filter(|s| s.cpu_seconds > 0.0 && connected > 0)
        .map(|s| connected as f64 / (s.cpu_seconds / measured));
    let tool_cpu = match (tool0, tool1) {
        (Some(a), Some(b)) => (b.cpu_secs - a.cpu_secs).max(0.0),
        _ => 0.0,
    };
    Ok(Report {
        label: opts.label.clone(),
        protocol: play_url.as_ref().map(|u| u.scheme.name().to_owned()),
        url: opts.play.clone(),
        publish_url: opts.publish.clone(),
        publishers: if opts.publish.is_some() {
            opts.publishers
        } else {
            0
        },
        publishers_failed,
        idle: opts.idle,
        players_requested: opts.players,
        players_connected: connected,
        players_failed: results.iter().filter(|s| s.error.is_some()).count()
            + (opts.players - results.len()),
        players_without_stalls: clean,
        errors,
        measured_secs: measured,
        bytes_total: bytes,
        mbit_per_s: bytes as f64 * 8.0 / measured / 1e6,
        media_secs_per_player: if connected > 0 {
            media_ms as f64 / 1000.0 / connected as f64
        } else {
            0.0
        },
        stalls_total: stalls,
        stalled_at_end: stalled_end,
        connect_ms: Percentiles::of(connect),
        first_frame_ms: Percentiles::of(first_frame),
        latency_ms,
        per_player,
        players_per_core,
        resources_deleted: results.iter().filter(|s| s.resource_deleted).count(),
        load_average: procstat::load_average(),
        server,
        tool: ToolReport {
            cpu_percent_of_one_core: 100.0 * tool_cpu / measured,
            cpu_seconds: tool_cpu,
            rss_bytes: tool1.map_or(0, |s| s.rss_bytes),
            threads: opts.threads,
        },
    })
}

/// One line per second to stderr: phase, players, Mbit/s, stalled players, CPU.
async fn progress(shared: Arc<Shared>, opts: Opts) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last_bytes = 0u64;
    let mut last_tool = procstat::sample(None);
    let mut last_server = opts.server_pid.and_then(|p| procstat::sample(Some(p)));
    let mut last_t = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let dt = last_t.elapsed().as_secs_f64().max(1e-3);
        last_t = tokio::time::Instant::now();
        let bytes = shared.bytes.load(Ordering::Relaxed);
        let mbit = (bytes - last_bytes) as f64 * 8.0 / dt / 1e6;
        last_bytes = bytes;
        let cpu = |now: Option<procstat::ProcSample>, last: &mut Option<procstat::ProcSample>| {
            let r = match (now, *last) {
                (Some(n), Some(l)) => format!("{:.0}%", 100.0 * (n.cpu_secs - l.cpu_secs) / dt),
                _ => "-".into(),
            };
            *last = now;
            r
        };
        let tool = cpu(procstat::sample(None), &mut last_tool);
        let server = match opts.server_pid {
            Some(p) => {
                let s = procstat::sample(Some(p));
                let rss = s.map_or(0, |s| s.rss_bytes);
                format!(
                    " server cpu {} rss {:.1} MB",
                    cpu(s, &mut last_server),
                    rss as f64 / 1e6
                )
            }
            None => String::new(),
        };
        if !opts.quiet {
            eprintln!(
                "[{:6.1}s {:?}] players {}/{} failed {} | {:.2} Mbit/s | stalled {} | tool cpu {}{}",
                shared.now_ns() as f64 / 1e9,
                shared.phase(),
                shared.connected.load(Ordering::Relaxed),
                opts.players,
                shared.failed.load(Ordering::Relaxed),
                mbit,
                shared.stalled_now.load(Ordering::Relaxed),
                tool,
                server
            );
        }
    }
}
