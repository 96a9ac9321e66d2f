//! Players: one tokio task each, over RTMP, HTTP-FLV, WS-FLV or WebRTC (WHEP).
//!
//! Every player keeps a small fixed read buffer ([`READ_BUF`]) and only the state its
//! protocol needs, answers what real players answer (RTMP acknowledgements and pings,
//! WebSocket pings), and records a [`PlayerStats`].

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Scheme, Url};
use crate::stats::{PlayerError, PlayerStats, Shared};

pub mod httpflv;
pub mod rtmp;
pub mod whep;
pub mod whep_http;
pub mod wsflv;

/// Read buffer per player.
pub const READ_BUF: usize = 4096;
/// How long TCP connect plus the protocol handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a player re-checks its stall state when nothing arrives.
pub const STALL_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Runs one player until `shared.stop`, or until it fails.
pub async fn run(url: Arc<Url>, shared: Arc<Shared>, idle: bool) -> PlayerStats {
    let mut st = PlayerStats::new(shared.now_ns());
    let r = match url.scheme {
        Scheme::Rtmp => rtmp::play(&url, &shared, idle, &mut st).await,
        Scheme::HttpFlv => httpflv::play(&url, &shared, idle, &mut st).await,
        Scheme::WsFlv => wsflv::play(&url, &shared, idle, &mut st).await,
        Scheme::Whep => whep::play(&url, &shared, &mut st).await,
    };
    if let Err(e) = r {
        st.fail(&shared, e);
    }
    st.check_stall(&shared, shared.now_ns());
    st.finish(&shared);
    st
}

/// A stall-check ticker that does not fire at once.
pub(crate) fn stall_ticker() -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(
        tokio::time::Instant::now() + STALL_CHECK_EVERY,
        STALL_CHECK_EVERY,
    );
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// TCP connect with [`CONNECT_TIMEOUT`].
pub(crate) async fn connect_tcp(url: &Url) -> Result<tokio::net::TcpStream, PlayerError> {
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(url.authority()),
    )
    .await
    {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        _ => Err(PlayerError::ConnectFailed),
    }
}

/// An idle connection: hold `sock` open, reading and dropping whatever comes, until stop.
pub(crate) async fn hold_idle(
    mut sock: tokio::net::TcpStream,
    shared: &Shared,
    st: &mut PlayerStats,
) -> Result<(), PlayerError> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return Ok(()),
            r = sock.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Err(PlayerError::ClosedEarly),
                Ok(n) => st.received(shared, n),
            },
        }
    }
}
