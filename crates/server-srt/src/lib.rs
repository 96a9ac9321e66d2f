//! Sluice's SRT server: MPEG-TS over SRT in live mode, through the one admission path.
//!
//! The crate's rule: a thin adapter. The transport is `srt-tokio` (pure Rust; pinned, and
//! kept behind [`listener`] so a libsrt binding could replace it); stream ids are parsed by
//! [`access::srt`]; every caller is decided by `control` (`authorize`, then `publish` or
//! `play`) before its handshake is answered, so a refusal is an SRT rejection code the
//! caller's log shows ([`reject_code`]). A publisher's bytes go through the `mpegts`
//! demuxer and [`frames`] into the hub; a player (`m=request`) gets the hub's frames muxed
//! to MPEG-TS by `mpegts`, seven packets per datagram. Like every server here it never
//! imports another server.

pub mod frames;
mod ingest;
mod listener;
mod player;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use control::Control;

pub use listener::reject_code;
pub use stats::SrtStats;

/// Everything that can stop the SRT server from starting.
#[derive(Debug, thiserror::Error)]
pub enum SrtError {
    /// The UDP address could not be bound.
    #[error("srt listener on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// MPEG-TS packets per SRT datagram: 7 × 188 = 1316 bytes, SRT's live-mode payload size.
pub const TS_PACKETS_PER_DATAGRAM: usize = 7;

/// A running SRT listener.
#[derive(Debug, Clone)]
pub struct SrtServer {
    addr: SocketAddr,
    stats: Arc<SrtStats>,
}

impl SrtServer {
    /// Binds `srt.listen` and serves callers until `ctl.shutdown` (tasks on `ctl.tracker`).
    pub async fn start(ctl: &Arc<Control>) -> Result<Self, SrtError> {
        let stats = Arc::new(SrtStats::default());
        let addr = listener::start(ctl, stats.clone()).await?;
        ctl.add_source(Arc::new(stats::Source(stats.clone())));
        Ok(Self { addr, stats })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters.
    pub fn stats(&self) -> &SrtStats {
        &self.stats
    }
}
