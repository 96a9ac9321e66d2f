//! Command-line options and the small URL parser the tool needs.

use std::path::PathBuf;

use clap::Parser;

use crate::error::{BenchError, Result};

/// Most players one run may open (a guard against typos such as `--players 1000000`).
pub const MAX_PLAYERS: usize = 100_000;
/// Most publishers one run may start.
pub const MAX_PUBLISHERS: usize = 10_000;

/// `sluice-bench`: load tool for live media servers (RTMP publish; RTMP, HTTP-FLV and
/// WS-FLV players). Prints one progress line per second to stderr, a summary to stdout
/// and, with `--json`, a JSON report.
#[derive(Debug, Clone, Parser)]
#[command(name = "sluice-bench", version)]
pub struct Opts {
    /// Publish to this URL (rtmp://host:port/app/stream). Omit to attach to an existing stream
    /// (latency is then not measured).
    #[arg(long)]
    pub publish: Option<String>,
    /// The FLV file to publish, looping in real time with monotonic timestamps.
    #[arg(long, default_value = "fixtures/demo.flv")]
    pub file: PathBuf,
    /// Publish N streams: the URL's stream name with `-0` .. `-{N-1}` appended (N > 1 only).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Play this URL: rtmp://host:port/app/stream, http://host:port/app/stream.flv,
    /// ws://host:port/app/stream.flv or, for WebRTC viewers, the WHEP endpoint
    /// http://host:port/app/stream/whep (ramp capped at 50/s).
    #[arg(long)]
    pub play: Option<String>,
    /// Number of players.
    #[arg(long, default_value_t = 0)]
    pub players: usize,
    /// Players started per second.
    #[arg(long, default_value_t = 1000)]
    pub ramp: u32,
    /// Measured window in seconds, after all players are up and the warm-up.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Seconds between the last player being up and the measured window.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Idle players: RTMP does handshake + connect but no play; HTTP and WS open the TCP
    /// connection and send nothing.
    #[arg(long)]
    pub idle: bool,
    /// Sample this process's CPU time and RSS from /proc over the measured window.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the JSON report to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Tokio worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Free text copied into the report.
    #[arg(long, default_value = "")]
    pub label: String,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Flood this TCP listener (host:port) for the whole run: connect, send `--flood-junk`
    /// bytes, close, as fast as `--flood-workers` can, while `--play` measures a viewer.
    #[arg(long)]
    pub flood: Option<String>,
    /// Concurrent flood workers.
    #[arg(long, default_value_t = 64)]
    pub flood_workers: usize,
    /// Junk bytes sent on each flood connection (0: connect and close).
    #[arg(long, default_value_t = 0)]
    pub flood_junk: usize,
    /// Rooms signalling load against this server (ws://host:port; its `/rtc`, LiveKit's
    /// client signalling): `--players` participants join at `--ramp` per second, each timed
    /// from connect to its JoinResponse, hold for `--hold` seconds and leave.
    #[arg(long)]
    pub rtc: Option<String>,
    /// API key the `--rtc` tokens are issued by (their `iss`).
    #[arg(long, default_value = "devkey")]
    pub rtc_key: String,
    /// API secret the `--rtc` tokens are signed with (HS256).
    #[arg(long, default_value = "secret")]
    pub rtc_secret: String,
    /// Rooms the `--rtc` participants are spread over, round robin (`bench-0`, ...).
    #[arg(long, default_value_t = 10)]
    pub rtc_rooms: usize,
    /// Seconds every `--rtc` participant holds its socket once all have joined.
    #[arg(long, default_value_t = 3.0)]
    pub hold: f64,
}

impl Opts {
    /// Options for a run with everything at its default (no publish, no players).
    pub fn defaults() -> Self {
        // Parsing an empty command line cannot fail: every option has a default.
        Self::try_parse_from(["sluice-bench"]).unwrap()
    }

    /// Checks the options that clap cannot check alone.
    pub fn validate(&self) -> Result<()> {
        if self.players > MAX_PLAYERS {
            return Err(BenchError::BadOptions(format!(
                "--players {} is over {MAX_PLAYERS}",
                self.players
            )));
        }
        if self.publishers == 0 || self.publishers > MAX_PUBLISHERS {
            return Err(BenchError::BadOptions(format!(
                "--publishers must be 1..={MAX_PUBLISHERS}"
            )));
        }
        if self.ramp == 0 {
            return Err(BenchError::BadOptions("--ramp must be > 0".into()));
        }
        let window_ok = self.duration.is_finite() && self.duration > 0.0;
        let warmup_ok = self.warmup.is_finite() && self.warmup >= 0.0;
        if !window_ok || !warmup_ok {
            return Err(BenchError::BadOptions(
                "--duration must be > 0 and --warmup >= 0".into(),
            ));
        }
        if self.threads == 0 {
            return Err(BenchError::BadOptions("--threads must be >= 1".into()));
        }
        if self.rtc.is_some() {
            return self.validate_rtc();
        }
        if self.players > 0 && self.play.is_none() {
            return Err(BenchError::BadOptions("--players needs --play URL".into()));
        }
        if self.publish.is_none() && self.players == 0 {
            return Err(BenchError::BadOptions(
                "nothing to do: give --publish and/or --play with --players".into(),
            ));
        }
        if let Some(u) = &self.publish {
            let u = Url::parse(u)?;
            if u.scheme != Scheme::Rtmp {
                return Err(BenchError::BadUrl {
                    url: u.raw,
                    reason: "--publish takes rtmp://",
                });
            }
        }
        if let Some(u) = &self.play
            && Url::parse(u)?.scheme == Scheme::Whep
        {
            if self.idle {
                return Err(BenchError::BadOptions(
                    "--idle has no WHEP form (a WHEP viewer is a whole WebRTC session)".into(),
                ));
            }
            if self.players > crate::player::whep::MAX_WHEP_VIEWERS {
                return Err(BenchError::BadOptions(format!(
                    "--players {} is over {} for WHEP",
                    self.players,
                    crate::player::whep::MAX_WHEP_VIEWERS
                )));
            }
        }
        Ok(())
    }

    /// The `--rtc` mode's own checks: participants, rooms, hold; nothing else to do.
    fn validate_rtc(&self) -> Result<()> {
        if self.players == 0 {
            return Err(BenchError::BadOptions(
                "--rtc needs --players N (participants)".into(),
            ));
        }
        if self.rtc_rooms == 0 {
            return Err(BenchError::BadOptions("--rtc-rooms must be >= 1".into()));
        }
        if !(self.hold.is_finite() && self.hold >= 0.0) {
            return Err(BenchError::BadOptions("--hold must be >= 0".into()));
        }
        if self.play.is_some() || self.publish.is_some() || self.flood.is_some() {
            return Err(BenchError::BadOptions(
                "--rtc runs alone (no --play, --publish or --flood)".into(),
            ));
        }
        Ok(())
    }
}

/// Protocol of a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// rtmp://
    Rtmp,
    /// http:// (HTTP-FLV)
    HttpFlv,
    /// ws:// (WebSocket-FLV)
    WsFlv,
    /// http://…/whep (WebRTC viewers: WHEP signalling, media over UDP)
    Whep,
}

impl Scheme {
    /// Name used in the report: "rtmp", "http-flv" or "ws-flv".
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::HttpFlv => "http-flv",
            Scheme::WsFlv => "ws-flv",
            Scheme::Whep => "whep",
        }
    }
}

/// A parsed `rtmp://`, `http://` or `ws://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The URL as given.
    pub raw: String,
    /// Its scheme.
    pub scheme: Scheme,
    /// Host (name or address; IPv6 without brackets).
    pub host: String,
    /// Port (the scheme's default when absent: 1935, 80, 80).
    pub port: u16,
    /// Path with query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses `scheme://host[:port]/path`.
    pub fn parse(raw: &str) -> Result<Self> {
        let bad = |reason| BenchError::BadUrl {
            url: raw.to_owned(),
            reason,
        };
        let (scheme, rest) = raw.split_once("://").ok_or(bad("no scheme"))?;
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => (Scheme::Rtmp, 1935),
            "http" => (Scheme::HttpFlv, 80),
            "ws" => (Scheme::WsFlv, 80),
            _ => return Err(bad("scheme must be rtmp, http or ws")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or(bad("unclosed ["))?;
            (h, p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None => default_port,
        };
        // A WHEP endpoint is an http:// URL whose path ends in `/whep`.
        let whep = path
            .split('?')
            .next()
            .unwrap_or_default()
            .ends_with("/whep");
        let scheme = if scheme == Scheme::HttpFlv && whep {
            Scheme::Whep
        } else {
            scheme
        };
        Ok(Self {
            raw: raw.to_owned(),
            scheme,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// `host:port` for `TcpStream::connect` (IPv6 hosts bracketed).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// For RTMP: `(app, stream, tcUrl)`; the app is everything up to the last `/`.
    pub fn rtmp_parts(&self) -> Result<(String, String, String)> {
        let p = self.path.trim_start_matches('/');
        let (app, stream) = p.rsplit_once('/').ok_or(BenchError::BadUrl {
            url: self.raw.clone(),
            reason: "RTMP URL needs /app/stream",
        })?;
        if app.is_empty() || stream.is_empty() {
            return Err(BenchError::BadUrl {
                url: self.raw.clone(),
                reason: "RTMP URL needs /app/stream",
            });
        }
        let tc_url = format!("rtmp://{}/{}", self.authority(), app);
        Ok((app.to_owned(), stream.to_owned(), tc_url))
    }

    /// The same URL with `suffix` appended to the RTMP stream name (before any query).
    pub fn with_stream_suffix(&self, suffix: &str) -> Self {
        let (base, query) = match self.path.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.path.as_str(), None),
        };
        let mut path = format!("{base}{suffix}");
        if let Some(q) = query {
            path.push('?');
            path.push_str(q);
        }
        let mut u = self.clone();
        u.raw = u.raw.replacen(&self.path, &path, 1);
        u.path = path;
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = Url::parse("rtmp://127.0.0.1:19935/live/demo").unwrap();
        assert_eq!(u.scheme, Scheme::Rtmp);
        assert_eq!(u.authority(), "127.0.0.1:19935");
        let (app, stream, tc) = u.rtmp_parts().unwrap();
        assert_eq!((app.as_str(), stream.as_str()), ("live", "demo"));
        assert_eq!(tc, "rtmp://127.0.0.1:19935/live");
        let u = Url::parse("http://host/live/demo.flv").unwrap();
        assert_eq!(
            (u.scheme, u.port, u.path.as_str()),
            (Scheme::HttpFlv, 80, "/live/demo.flv")
        );
        let u = Url::parse("ws://[::1]:8000/a/b.flv").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8000));
        assert_eq!(u.authority(), "[::1]:8000");
        let u = Url::parse("http://h:8080/live/demo/whep?token=a").unwrap();
        assert_eq!(
            (u.scheme, u.path.as_str()),
            (Scheme::Whep, "/live/demo/whep?token=a")
        );
        assert_eq!(
            Url::parse("http://h/whep.flv").unwrap().scheme,
            Scheme::HttpFlv
        );
        assert!(Url::parse("ftp://x/y").is_err());
        assert!(Url::parse("rtmp://:1/a/b").is_err());
        assert!(Url::parse("rtmp://h:99999/a/b").is_err());
        assert!(
            Url::parse("rtmp://h/onlyapp")
                .unwrap()
                .rtmp_parts()
                .is_err()
        );
    }

    #[test]
    fn stream_suffix() {
        let u = Url::parse("rtmp://h/live/cam?k=1")
            .unwrap()
            .with_stream_suffix("-3");
        assert_eq!(u.path, "/live/cam-3?k=1");
        assert_eq!(u.raw, "rtmp://h/live/cam-3?k=1");
        assert_eq!(u.rtmp_parts().unwrap().1, "cam-3?k=1");
    }

    #[test]
    fn validates_options() {
        let mut o = Opts::defaults();
        assert!(o.validate().is_err(), "nothing to do");
        o.play = Some("http://h/live/x.flv".into());
        o.players = 3;
        o.validate().unwrap();
        o.publish = Some("http://h/live/x".into());
        assert!(o.validate().is_err(), "publish must be rtmp");
        o.publish = None;
        o.play = Some("http://h/live/x/whep".into());
        o.validate().unwrap();
        o.idle = true;
        assert!(o.validate().is_err(), "no idle WHEP");
        o.idle = false;
        o.players = crate::player::whep::MAX_WHEP_VIEWERS + 1;
        assert!(o.validate().is_err(), "too many WHEP viewers");
    }
}
