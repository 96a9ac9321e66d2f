//! Rooms signalling load: N participants join a server speaking LiveKit's client signalling
//! (`/rtc`, Sluice's rooms or a LiveKit server) over WebSockets, each with a token minted
//! here from an API key and secret. The figure is the time from a join's start (before its
//! TCP connect) to its `JoinResponse` decoded, per participant; then every participant holds
//! its socket (reading what the room sends: participant updates, the subscriber offer) for
//! `--hold` seconds and leaves. With `--server-pid`, the server's RSS before, while holding
//! and after, and its CPU time over the joins.
//!
//! The participants join signalling only: no WebRTC connection is ever made, so a server
//! that drops a participant whose peer connections never connect (Sluice after
//! `webrtc.ice_timeout_ms`) must be given a hold shorter than that; sockets the server
//! closes while holding are counted.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use rooms::proto;
use rooms::token::{Claims, VideoGrant};
use serde::Serialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::Opts;
use crate::cli::{Scheme, Url};
use crate::error::{BenchError, Result};
use crate::procstat;
use crate::report::Percentiles;

/// Longest a join may take (connect to `JoinResponse`) before it counts as timed out.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a leaving participant waits for the server's close answer.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the server gets, after every participant left, before its RSS is read again.
const SETTLE: Duration = Duration::from_secs(2);
/// The signalling protocol version the participants announce (LiveKit's JS SDK 2.x's).
const PROTOCOL: u32 = 16;

/// What the run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RtcReport {
    /// Free text from `--label`.
    pub label: String,
    /// The server (`ws://host:port`).
    pub target: String,
    /// Participants asked for.
    pub participants_requested: usize,
    /// Rooms they were spread over (round robin).
    pub rooms: usize,
    /// Joins started per second.
    pub ramp: u32,
    /// Participants that got their `JoinResponse`.
    pub joined: usize,
    /// Participants that did not, by reason (`http-401`, `closed-before-join`, `timeout`...).
    pub errors: BTreeMap<String, u64>,
    /// Connect start to `JoinResponse` decoded (ms), over joined participants.
    pub join_ms: Percentiles,
    /// Mean of the same (ms).
    pub join_ms_mean: Option<f64>,
    /// Seconds from the first join's start to the last `JoinResponse`.
    pub all_joined_secs: f64,
    /// Seconds every joined participant held its socket.
    pub hold_secs: f64,
    /// Joined participants whose socket the server closed before they left.
    pub closed_by_server: u64,
    /// Signal messages received after the `JoinResponse`, in all (updates, offers...).
    pub messages_after_join: u64,
    /// The server's resources, with `--server-pid`.
    pub server: Option<RtcServerReport>,
    /// This tool's CPU time over the run (s).
    pub tool_cpu_seconds: f64,
    /// The machine's load averages at the end.
    pub load_average: Option<[f64; 3]>,
}

/// The server's resident memory and CPU around the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RtcServerReport {
    /// Its pid.
    pub pid: u32,
    /// RSS before the first join (bytes).
    pub rss_before_bytes: u64,
    /// RSS with every participant joined, at the end of the hold (bytes).
    pub rss_held_bytes: u64,
    /// RSS after every participant left and [`SETTLE`] passed (bytes).
    pub rss_after_bytes: u64,
    /// (held - before) / joined (bytes).
    pub rss_per_participant_bytes: Option<u64>,
    /// CPU time from the first join to the last `JoinResponse` (s).
    pub cpu_seconds_joining: f64,
    /// CPU time per join over that span (ms).
    pub cpu_ms_per_join: Option<f64>,
}

impl RtcReport {
    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for RtcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        writeln!(
            f,
            "rtc joins {}: {}/{} joined over {} rooms (ramp {}/s), all in {:.2} s; errors {:?}",
            self.target,
            self.joined,
            self.participants_requested,
            self.rooms,
            self.ramp,
            self.all_joined_secs,
            self.errors
        )?;
        writeln!(
            f,
            "join to JoinResponse ms: p50 {} p95 {} p99 {} max {} mean {}",
            ms(self.join_ms.p50),
            ms(self.join_ms.p95),
            ms(self.join_ms.p99),
            ms(self.join_ms.max),
            ms(self.join_ms_mean)
        )?;
        writeln!(
            f,
            "held {:.1} s: {} closed by the server, {} messages after the joins; tool cpu {:.2} s",
            self.hold_secs, self.closed_by_server, self.messages_after_join, self.tool_cpu_seconds
        )?;
        if let Some(s) = &self.server {
            let mb = |b: u64| b as f64 / 1e6;
            write!(
                f,
                "server rss MB: before {:.1}, held {:.1}, after {:.1}; per participant {} KB; \
                 cpu joining {:.2} s ({} ms/join)",
                mb(s.rss_before_bytes),
                mb(s.rss_held_bytes),
                mb(s.rss_after_bytes),
                s.rss_per_participant_bytes
                    .map_or("-".to_owned(), |b| format!("{:.1}", b as f64 / 1e3)),
                s.cpu_seconds_joining,
                ms(s.cpu_ms_per_join)
            )?;
        }
        Ok(())
    }
}

/// One participant's outcome.
#[derive(Debug, Default)]
struct Outcome {
    join_ns: Option<u64>,
    error: Option<String>,
    closed_by_server: bool,
}

/// Counters the participants share.
#[derive(Debug, Default)]
struct Counters {
    joined: AtomicU64,
    done: AtomicU64,
    messages: AtomicU64,
}

/// The options of an rtc run: the target, checked.
pub fn target(opts: &Opts) -> Result<Url> {
    let raw = opts.rtc.as_deref().unwrap_or_default();
    let u = Url::parse(raw)?;
    if u.scheme != Scheme::WsFlv {
        return Err(BenchError::BadUrl {
            url: raw.to_owned(),
            reason: "--rtc takes ws://host:port (the server's /rtc is used)",
        });
    }
    Ok(u)
}

/// A join token for participant `i`, in room `bench-{i % rooms}`.
fn token(opts: &Opts, i: usize, exp: u64) -> Result<String> {
    let claims = Claims {
        iss: opts.rtc_key.clone(),
        sub: format!("bench-{i}"),
        exp,
        name: format!("bench {i}"),
        video: VideoGrant {
            room_join: true,
            room: format!("bench-{}", i % opts.rtc_rooms),
            ..VideoGrant::default()
        },
        ..Claims::default()
    };
    rooms::token::mint(&claims, &opts.rtc_secret)
        .map_err(|e| BenchError::BadOptions(format!("minting a token: {e}")))
}

/// Runs the signalling load `opts` describes.
pub async fn run(opts: Opts) -> Result<RtcReport> {
    opts.validate()?;
    let url = target(&opts)?;
    let n = opts.players;
    // Every token minted before the clock starts (HS256 signing is not the server's cost).
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let urls: Vec<String> = (0..n)
        .map(|i| {
            token(&opts, i, exp).map(|t| {
                format!(
                    "ws://{}/rtc?access_token={t}&protocol={PROTOCOL}&auto_subscribe=1&sdk=rust",
                    url.authority()
                )
            })
        })
        .collect::<Result<_>>()?;
    let counters = Arc::new(Counters::default());
    let leave = CancellationToken::new();
    let tool0 = procstat::sample(None);
    let server_before = opts.server_pid.and_then(|p| procstat::sample(Some(p)));

    // Joins, at `ramp` per second.
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let mut urls = urls.into_iter();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while tasks.len() < n {
        tick.tick().await;
        let due = ((t0.elapsed().as_secs_f64() * f64::from(opts.ramp)).ceil() as usize).max(1);
        while tasks.len() < due.min(n) {
            let Some(u) = urls.next() else { break };
            tasks.push(tokio::spawn(participant(
                u,
                Arc::clone(&counters),
                leave.clone(),
            )));
        }
    }
    // Every join answered or failed (each is bounded by JOIN_TIMEOUT).
    let deadline = Instant::now() + JOIN_TIMEOUT + Duration::from_secs(1);
    while counters.done.load(Ordering::Relaxed) < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_joined = t0.elapsed();
    let server_joined = opts.server_pid.and_then(|p| procstat::sample(Some(p)));

    // Hold, then leave.
    let hold = Duration::from_secs_f64(opts.hold);
    tokio::time::sleep(hold).await;
    let server_held = opts.server_pid.and_then(|p| procstat::sample(Some(p)));
    leave.cancel();
    let mut outcomes = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(Ok(o)) = tokio::time::timeout(LEAVE_TIMEOUT * 2, t).await {
            outcomes.push(o);
        }
    }
    tokio::time::sleep(SETTLE).await;
    let server_after = opts.server_pid.and_then(|p| procstat::sample(Some(p)));
    let tool1 = procstat::sample(None);

    let mut errors = BTreeMap::new();
    let mut join_ms = Vec::new();
    let mut closed = 0;
    for o in &outcomes {
        if let Some(e) = &o.error {
            *errors.entry(e.clone()).or_insert(0) += 1;
        }
        if let Some(ns) = o.join_ns {
            join_ms.push(ns as f64 / 1e6);
        }
        closed += u64::from(o.closed_by_server);
    }
    let lost = n - outcomes.len();
    if lost > 0 {
        *errors.entry("task-lost".to_owned()).or_insert(0) += lost as u64;
    }
    let joined = join_ms.len();
    if joined == 0 {
        return Err(BenchError::NoPlayerConnected {
            requested: n,
            first_error: errors.keys().next().cloned().unwrap_or_default(),
        });
    }
    let mean = join_ms.iter().sum::<f64>() / joined as f64;
    let server = match (opts.server_pid, server_before, server_joined, server_held) {
        (Some(pid), Some(b), Some(j), Some(h)) => {
            let cpu = (j.cpu_secs - b.cpu_secs).max(0.0);
            Some(RtcServerReport {
                pid,
                rss_before_bytes: b.rss_bytes,
                rss_held_bytes: h.rss_bytes,
                rss_after_bytes: server_after.map_or(0, |s| s.rss_bytes),
                rss_per_participant_bytes: Some(
                    h.rss_bytes.saturating_sub(b.rss_bytes) / joined as u64,
                ),
                cpu_seconds_joining: cpu,
                cpu_ms_per_join: Some(cpu * 1e3 / joined as f64),
            })
        }
        _ => None,
    };
    Ok(RtcReport {
        label: opts.label.clone(),
        target: url.raw.clone(),
        participants_requested: n,
        rooms: opts.rtc_rooms,
        ramp: opts.ramp,
        joined,
        errors,
        join_ms: Percentiles::of(join_ms),
        join_ms_mean: Some(mean),
        all_joined_secs: all_joined.as_secs_f64(),
        hold_secs: hold.as_secs_f64(),
        closed_by_server: closed,
        messages_after_join: counters.messages.load(Ordering::Relaxed),
        server,
        tool_cpu_seconds: match (tool0, tool1) {
            (Some(a), Some(b)) => (b.cpu_secs - a.cpu_secs).max(0.0),
            _ => 0.0,
        },
        load_average: procstat::load_average(),
    })
}

/// One participant: join, hold until `leave`, leave.
async fn participant(url: String, counters: Arc<Counters>, leave: CancellationToken) -> Outcome {
    let mut out = Outcome::default();
    let t0 = Instant::now();
    let joined = tokio::time::timeout(JOIN_TIMEOUT, async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| match e {
                tungstenite::Error::Http(r) => format!("http-{}", r.status().as_u16()),
                tungstenite::Error::Io(e) => format!("connect-{:?}", e.kind()),
                _ => "handshake".to_owned(),
            })?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => {
                    let r = proto::SignalResponse::decode(b.as_ref())
                        .map_err(|_| "undecodable-response".to_owned())?;
                    match r.message {
                        Some(proto::signal_response::Message::Join(_)) => return Ok(ws),
                        Some(proto::signal_response::Message::Leave(_)) => {
                            return Err("leave-before-join".to_owned());
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    return Err("closed-before-join".to_owned());
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    let mut ws = match joined {
        Err(_) => {
            out.error = Some("timeout".to_owned());
            counters.done.fetch_add(1, Ordering::Relaxed);
            return out;
        }
        Ok(Err(e)) => {
            out.error = Some(e);
            counters.done.fetch_add(1, Ordering::Relaxed);
            return out;
        }
        Ok(Ok(ws)) => ws,
    };
    out.join_ns = Some(t0.elapsed().as_nanos() as u64);
    counters.joined.fetch_add(1, Ordering::Relaxed);
    counters.done.fetch_add(1, Ordering::Relaxed);
    // Hold: read what the room sends until told to leave.
    loop {
        tokio::select! {
            () = leave.cancelled() => break,
            m = ws.next() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    out.closed_by_server = true;
                    return out;
                }
                Some(Ok(Message::Binary(_))) => {
                    counters.messages.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(_)) => {}
            },
        }
    }
    // Leave as a client does: a LeaveRequest, then the close handshake (bounded).
    let leave_req = proto::SignalRequest {
        message: Some(proto::signal_request::Message::Leave(proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated as i32,
            ..Default::default()
        })),
    };
    let _ = tokio::time::timeout(LEAVE_TIMEOUT, async {
        let _ = ws
            .send(Message::Binary(leave_req.encode_to_vec().into()))
            .await;
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn tokens_verify_with_the_key_and_spread_over_rooms() {
        let o = Opts::try_parse_from([
            "sluice-bench",
            "--rtc",
            "ws://127.0.0.1:7880",
            "--players",
            "3",
            "--rtc-rooms",
            "2",
        ])
        .unwrap();
        o.validate().unwrap();
        let keys = rooms::token::RoomKeys::new(&BTreeMap::from([(
            "devkey".to_owned(),
            "secret".to_owned(),
        )]));
        let exp = 4_000_000_000;
        let c0 = keys.verify(&token(&o, 0, exp).unwrap()).unwrap();
        let c1 = keys.verify(&token(&o, 1, exp).unwrap()).unwrap();
        let c2 = keys.verify(&token(&o, 2, exp).unwrap()).unwrap();
        assert_eq!(
            (c0.video.room.as_str(), c0.sub.as_str()),
            ("bench-0", "bench-0")
        );
        assert_eq!(c1.video.room, "bench-1");
        assert_eq!(c2.video.room, "bench-0");
        assert!(c0.video.room_join);
    }

    #[test]
    fn rtc_options_are_checked() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["sluice-bench", "--rtc", "ws://h:1", "--players", "10"];
            args.extend_from_slice(extra);
            Opts::try_parse_from(args).unwrap()
        };
        parse(&[]).validate().unwrap();
        assert!(parse(&["--rtc-rooms", "0"]).validate().is_err());
        assert!(parse(&["--hold=-1"]).validate().is_err());
        assert!(parse(&["--play", "http://h/a/b.flv"]).validate().is_err());
        let mut o = parse(&[]);
        o.rtc = Some("http://h:1".to_owned());
        assert!(target(&o).is_err());
    }
}
