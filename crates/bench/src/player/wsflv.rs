//! WebSocket-FLV player: binary messages concatenated into the header-only FLV parser.

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::{CONNECT_TIMEOUT, connect_tcp, hold_idle, stall_ticker};
use crate::cli::Url;
use crate::player::httpflv::FlvBody;
use crate::stats::{PlayerError, PlayerStats, Shared};

/// Plays `url` (or holds an idle TCP connection with no upgrade, when `idle`) until
/// `shared.stop`.
pub async fn play(
    url: &Url,
    shared: &Shared,
    idle: bool,
    st: &mut PlayerStats,
) -> Result<(), PlayerError> {
    let sock = connect_tcp(url).await?;
    if idle {
        st.connected(shared, shared.now_ns());
        return hold_idle(sock, shared, st).await;
    }
    let handshake = tokio_tungstenite::client_async(url.raw.as_str(), sock);
    let (mut ws, _resp) = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Err(_) => return Err(PlayerError::ConnectFailed),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(_))) => {
            return Err(PlayerError::Refused);
        }
        Ok(Err(_)) => return Err(PlayerError::Protocol),
        Ok(Ok(v)) => v,
    };
    st.connected(shared, shared.now_ns());
    let mut body = FlvBody::new(false);
    let mut ticker = stall_ticker();
    let stop = shared.stop.cancelled();
    tokio::pin!(stop);
    loop {
        let msg = tokio::select! {
            biased;
            _ = &mut stop => return Ok(()),
            _ = ticker.tick() => {
                st.check_stall(shared, shared.now_ns());
                continue;
            }
            m = ws.next() => match m {
                None | Some(Err(_)) => return Err(PlayerError::ClosedEarly),
                Some(Ok(m)) => m,
            },
        };
        match msg {
            Message::Binary(b) => {
                st.received(shared, b.len());
                body.feed(&b, shared, shared.now_ns(), st)
                    .map_err(|_| PlayerError::Protocol)?;
            }
            Message::Close(_) => return Err(PlayerError::ClosedEarly),
            other => st.received(shared, other.len()),
        }
    }
}
