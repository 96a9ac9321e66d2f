//! RTMP player over [`rtmp::ClientSession`] (which acknowledges and answers pings).

use rtmp::{ClientConfig, ClientEvent, ClientSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{CONNECT_TIMEOUT, READ_BUF, connect_tcp, stall_ticker};
use crate::cli::Url;
use crate::stats::{PlayerError, PlayerStats, Shared};

/// Plays `url` (or only connects, when `idle`) until `shared.stop`.
pub async fn play(
    url: &Url,
    shared: &Shared,
    idle: bool,
    st: &mut PlayerStats,
) -> Result<(), PlayerError> {
    let (app, stream, tc_url) = url.rtmp_parts().map_err(|_| PlayerError::Refused)?;
    let mut sock = connect_tcp(url).await?;
    let mut s = ClientSession::new(ClientConfig::default());
    s.connect(&app, &tc_url);
    if !idle {
        s.play(&stream);
    }
    let mut buf = vec![0u8; READ_BUF];
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut ticker = stall_ticker();
    let stop = shared.stop.cancelled();
    tokio::pin!(stop);
    loop {
        while let Some(out) = s.take_output() {
            sock.write_all(&out)
                .await
                .map_err(|_| PlayerError::ClosedEarly)?;
        }
        let n = tokio::select! {
            biased;
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep_until(deadline), if st.connect_ns.is_none() => {
                return Err(PlayerError::ConnectFailed);
            }
            _ = ticker.tick() => {
                st.check_stall(shared, shared.now_ns());
                continue;
            }
            r = sock.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Err(PlayerError::ClosedEarly),
                Ok(n) => n,
            },
        };
        st.received(shared, n);
        s.handle_input(buf.get(..n).unwrap_or_default())
            .map_err(|_| PlayerError::Protocol)?;
        let now = shared.now_ns();
        while let Some(ev) = s.poll_event() {
            match ev {
                ClientEvent::Connected if idle => st.connected(shared, now),
                ClientEvent::PlayStarted { .. } => st.connected(shared, now),
                ClientEvent::ConnectFailed { .. } => return Err(PlayerError::Refused),
                ClientEvent::Status { level, .. } if level == "error" => {
                    return Err(PlayerError::Refused);
                }
                ClientEvent::Media {
                    msg_type,
                    timestamp,
                    payload,
                    ..
                } => {
                    // Some servers send media before NetStream.Play.Start.
                    st.connected(shared, now);
                    st.media(shared, now, msg_type, timestamp, payload.len(), &payload);
                }
                _ => {}
            }
        }
    }
}
