//! Connection flood: while a normal run (a publisher and players) measures what a viewer
//! receives, workers open TCP connections to one listener as fast as they can (connect,
//! optionally send junk, close) and count what happened. The viewer's figures (bitrate,
//! stalls) are in the run's [`Report`]; the flood's in [`FloodReport`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::error::{BenchError, Result};
use crate::{Opts, Report};

/// Most flood workers (each holds at most one connection at a time).
pub const MAX_FLOOD_WORKERS: usize = 4096;
/// Most junk bytes sent per flood connection.
pub const MAX_FLOOD_JUNK: usize = 64 * 1024;
/// A connect attempt that takes longer counts as timed out (a full accept queue drops SYNs).
pub const FLOOD_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the flood did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FloodReport {
    /// The flooded `host:port`.
    pub target: String,
    /// Concurrent workers.
    pub workers: usize,
    /// Junk bytes sent on each connection.
    pub junk_bytes: usize,
    /// Seconds the flood ran.
    pub seconds: f64,
    /// Connection attempts.
    pub attempted: u64,
    /// Connects that succeeded (the kernel completed the handshake).
    pub accepted: u64,
    /// Connects refused or reset.
    pub refused: u64,
    /// Connects that timed out.
    pub timed_out: u64,
    /// Accepted connections the server had already closed when the worker looked (refused
    /// by a limit after accept).
    pub closed_by_server: u64,
}

impl FloodReport {
    /// Connection attempts per second.
    pub fn attempts_per_s(&self) -> f64 {
        self.attempted as f64 / self.seconds.max(1e-9)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for FloodReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "flood {} for {:.1} s, {} workers, {} junk bytes each",
            self.target, self.seconds, self.workers, self.junk_bytes
        )?;
        writeln!(
            f,
            "  attempted {} ({:.0}/s), accepted {} ({:.0}/s), refused {}, timed out {}, \
             closed by server {}",
            self.attempted,
            self.attempts_per_s(),
            self.accepted,
            self.accepted as f64 / self.seconds.max(1e-9),
            self.refused,
            self.timed_out,
            self.closed_by_server
        )
    }
}

#[derive(Debug, Default)]
struct Counters {
    attempted: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
    closed_by_server: AtomicU64,
}

async fn worker(target: String, junk: Arc<Vec<u8>>, c: Arc<Counters>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        c.attempted.fetch_add(1, Ordering::Relaxed);
        let conn = tokio::time::timeout(FLOOD_CONNECT_TIMEOUT, TcpStream::connect(&target)).await;
        let mut sock = match conn {
            Err(_) => {
                c.timed_out.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Ok(Err(_)) => {
                c.refused.fetch_add(1, Ordering::Relaxed);
                // Do not spin on an address that refuses everything.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            Ok(Ok(s)) => s,
        };
        c.accepted.fetch_add(1, Ordering::Relaxed);
        if !junk.is_empty() {
            let _ = sock.write_all(&junk).await;
        }
        let mut probe = [0u8; 1];
        match sock.try_read(&mut probe) {
            Ok(0) => {
                c.closed_by_server.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                c.closed_by_server.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// Runs `opts` (a viewer, and a publisher if given) while flooding `opts.flood`; returns the
/// flood's figures and the run's report.
pub async fn run(opts: Opts) -> Result<(FloodReport, Report)> {
    let Some(target) = opts.flood.clone() else {
        return Err(BenchError::BadOptions("--flood needs host:port".into()));
    };
    if opts.flood_workers == 0 || opts.flood_workers > MAX_FLOOD_WORKERS {
        return Err(BenchError::BadOptions(format!(
            "--flood-workers must be 1..={MAX_FLOOD_WORKERS}"
        )));
    }
    if opts.flood_junk > MAX_FLOOD_JUNK {
        return Err(BenchError::BadOptions(format!(
            "--flood-junk must be at most {MAX_FLOOD_JUNK}"
        )));
    }
    let junk: Arc<Vec<u8>> = Arc::new(
        (0..opts.flood_junk)
            .map(|i| (i as u8).wrapping_mul(151).wrapping_add(7))
            .collect(),
    );
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let started = tokio::time::Instant::now();
    let workers: Vec<_> = (0..opts.flood_workers)
        .map(|_| {
            tokio::spawn(worker(
                target.clone(),
                junk.clone(),
                counters.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let report = crate::run(opts.clone()).await;
    stop.cancel();
    for w in workers {
        let _ = tokio::time::timeout(FLOOD_CONNECT_TIMEOUT * 2, w).await;
    }
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let flood = FloodReport {
        target,
        workers: opts.flood_workers,
        junk_bytes: opts.flood_junk,
        seconds: started.elapsed().as_secs_f64(),
        attempted: load(&counters.attempted),
        accepted: load(&counters.accepted),
        refused: load(&counters.refused),
        timed_out: load(&counters.timed_out),
        closed_by_server: load(&counters.closed_by_server),
    };
    Ok((flood, report?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[tokio::test]
    async fn counts_accepts_and_server_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // A server that accepts and closes at once.
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        let c = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let w = tokio::spawn(worker(addr, Arc::new(vec![1; 10]), c.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
        w.await.unwrap();
        let accepted = c.accepted.load(Ordering::Relaxed);
        assert!(accepted > 10, "accepted {accepted}");
        assert_eq!(c.attempted.load(Ordering::Relaxed), accepted);
        assert_eq!(c.refused.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn refused_connects_are_counted() {
        // A port nothing listens on: bind, learn the port, close.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let c = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let w = tokio::spawn(worker(addr, Arc::new(Vec::new()), c.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
        w.await.unwrap();
        assert!(c.refused.load(Ordering::Relaxed) > 0);
        assert_eq!(c.accepted.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn bad_flood_options_are_refused() {
        let mut o = Opts::try_parse_from(["sluice-bench", "--flood", "127.0.0.1:1"]).unwrap();
        o.flood_workers = 0;
        assert!(matches!(run(o).await, Err(BenchError::BadOptions(_))));
    }
}
