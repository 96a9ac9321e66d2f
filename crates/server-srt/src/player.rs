//! An SRT player (`m=request`): the hub's frames (the GOP cache first, so it starts on a
//! keyframe) muxed to MPEG-TS with the PAT and PMT before every keyframe, sent as they
//! arrive in datagrams of up to [`crate::TS_PACKETS_PER_DATAGRAM`] packets. A player that
//! falls behind skips to the next keyframe in the hub, like every other viewer.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use control::{Control, Playing};
use futures_util::{SinkExt, StreamExt};
use media::FrameRole;
use mpegts::{TS_PACKET_LEN, TsMuxer};
use srt_tokio::SrtSocket;
use tokio_util::sync::CancellationToken;

use crate::TS_PACKETS_PER_DATAGRAM;
use crate::listener::{OpenGuard, close};
use crate::stats::SrtStats;

/// How long a new player's first media waits after its handshake was answered: a libsrt
/// caller that gets data before the handshake's conclusion drops it and asks for the
/// handshake again (seen with ffmpeg's libsrt 1.5 on loopback), so its start is lost.
pub const FIRST_SEND_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs one player until it leaves, the stream ends, it is kicked, or the server stops.
pub(crate) async fn run(
    ctl: &Arc<Control>,
    stats: &SrtStats,
    mut socket: SrtSocket,
    mut playing: Playing,
    kick: CancellationToken,
) {
    let _open = OpenGuard::new(stats);
    let key = playing.name.key().to_owned();
    let mut mux = TsMuxer::new();
    let mut out = BytesMut::new();
    let mut started = false;
    let mut clock: Option<(tokio::time::Instant, u64)> = None;
    tokio::time::sleep(FIRST_SEND_DELAY).await;
    loop {
        let frame = tokio::select! {
            _ = kick.cancelled() => break,
            _ = ctl.shutdown.cancelled() => break,
            // A player sends nothing but SRT control packets; its end closes the session.
            peer = socket.next() => match peer {
                Some(Ok(_)) => continue,
                _ => break,
            },
            f = playing.subscriber.recv() => match f {
                Some(f) => f,
                None => break,
            },
        };
        // Paced by timestamp: the GOP cache (older frames) goes out at the stream's own
        // rate, not as one burst.
        if frame.role == FrameRole::Coded {
            let (t0, d0) = *clock.get_or_insert((tokio::time::Instant::now(), frame.dts));
            let due = t0 + std::time::Duration::from_millis(frame.dts.saturating_sub(d0));
            tokio::select! {
                _ = kick.cancelled() => break,
                _ = ctl.shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        if frame.role == FrameRole::Coded && (!started || frame.is_video_keyframe()) {
            mux.write_tables(&mut out);
            started = true;
        }
        if let Err(e) = mux.push(&frame, &mut out) {
            tracing::debug!(stream = %key, "srt player: frame not muxed: {e}");
        }
        let mut sent = 0;
        while !out.is_empty() {
            let n = out.len().min(TS_PACKETS_PER_DATAGRAM * TS_PACKET_LEN);
            let datagram = out.split_to(n).freeze();
            sent += n;
            if socket.send((Instant::now(), datagram)).await.is_err() {
                out.clear();
                break;
            }
        }
        if sent > 0 {
            playing.session.bytes(sent);
            playing.viewer.sent(sent);
        }
    }
    tracing::info!(stream = %key, "srt player left");
    drop(playing);
    close(socket).await;
}
