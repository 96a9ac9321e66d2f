//! One RTMP connection: a socket driving an `rtmp::ServerSession`, feeding a hub publisher or
//! draining a hub subscriber.
//!
//! Everything happens in one task with one `select!`: read the socket into the session,
//! write queued bytes with vectored writes, take frames from the hub only while the queue is
//! below its bound (so a slow player lags in the hub's ring, never in our memory), and enforce
//! the handshake and idle deadlines.
//!
//! The code is generic over the transport (plain TCP for RTMP, a TLS stream for RTMPS). One
//! future polls the transport for reading and, when there is something to send, for writing;
//! once it fires, the rest of what the transport has (or takes) is moved without waiting, by
//! polling it with a no-op waker. Plain TCP reads into the same buffer and writes the queue
//! with the same vectored writes as a readiness loop would: no copy is added.

mod admit;
mod partial;

use std::future::poll_fn;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hub::Subscriber;
use media::{Frame, MediaKind};
use rtmp::{ServerConfig, ServerEvent, ServerSession};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use access::Action;
use control::latency::LatencyProbe;
use control::{Control, SessionGuard, ViewerGuard};
use hub::viewer::{AudioHold, MAX_BATCH_FRAMES};

use crate::egress::{MAX_IOVECS, OutQueue, RtmpEgress};

/// Initial read buffer: enough for a player's acknowledgements and commands, so an idle
/// viewer costs little memory.
const READ_BUF_MIN: usize = 2 * 1024;
/// The read buffer doubles up to this while reads fill it (a publisher's media).
const READ_BUF_MAX: usize = 64 * 1024;
/// Time allowed to flush goodbye messages at shutdown.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// What the transport did when [`poll_io`] fired.
enum IoEvent {
    /// This many bytes were read into the read buffer (0: end of stream).
    Read(usize),
    /// This many queued bytes were written.
    Wrote(usize),
    /// Bytes the transport buffered (TLS records) went out.
    Flushed,
}

/// Polls `sock` for reading into `rbuf` and, when `write`, for writing the queue (or, with an
/// empty queue and `flush`, for flushing what the transport buffered).
fn poll_io<S: AsyncRead + AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    sock: &mut S,
    rbuf: &mut [u8],
    out: &OutQueue,
    write: bool,
    flush: bool,
) -> Poll<std::io::Result<IoEvent>> {
    let mut rb = ReadBuf::new(rbuf);
    if let Poll::Ready(r) = Pin::new(&mut *sock).poll_read(cx, &mut rb) {
        return Poll::Ready(r.map(|()| IoEvent::Read(rb.filled().len())));
    }
    if write && !out.is_empty() {
        let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
        let k = out.fill_slices(&mut iov);
        if let Poll::Ready(r) =
            Pin::new(&mut *sock).poll_write_vectored(cx, iov.get(..k).unwrap_or_default())
        {
            return Poll::Ready(r.map(IoEvent::Wrote));
        }
    } else if flush && let Poll::Ready(r) = Pin::new(&mut *sock).poll_flush(cx) {
        return Poll::Ready(r.map(|()| IoEvent::Flushed));
    }
    Poll::Pending
}

/// Polls once without registering for a wake-up: `WouldBlock` when the transport is not ready
/// (the caller's next `select!` polls it again with the task's waker).
fn try_now<T>(f: impl FnOnce(&mut Context<'_>) -> Poll<std::io::Result<T>>) -> std::io::Result<T> {
    match f(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r,
        Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
    }
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Rtmp(#[from] rtmp::RtmpError),
    #[error("bad media from publisher: {0}")]
    Media(#[from] flv::FlvError),
    #[error("handshake/connect not finished within {0} ms (limits.handshake_timeout_ms)")]
    HandshakeTimeout(u64),
    #[error("idle for {0} ms (limits.idle_timeout_ms)")]
    Idle(u64),
    #[error(
        "incomplete messages would hold {needed} bytes: refused by the server-wide budget \
         limits.max_rtmp_partial_bytes ({max} bytes, {in_use} held by all RTMP connections)"
    )]
    PartialBudget {
        needed: usize,
        max: usize,
        in_use: u64,
    },
}

/// A viewer's state on this connection.
struct Playing {
    stream_id: u32,
    sub: Subscriber,
    egress: RtmpEgress,
    paused: bool,
    audio: bool,
    video: bool,
    hold: AudioHold,
    /// Counts this viewer and its bytes (decrements on every exit path when dropped).
    viewer: ViewerGuard,
    /// Lists this viewer in the API while it plays.
    api: SessionGuard,
    /// Samples the delivery latency of this viewer's writes.
    probe: LatencyProbe,
}

/// Whether queued bytes may be written now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Write as soon as the socket takes it.
    Open,
    /// A batching window (`hub.viewer_batch_ms`): frames wait in the ring until it ends.
    Batching,
    /// Queued audio waits for the next video frame (`hub.audio_coalesce_ms`); frames are
    /// still taken from the ring.
    HoldingAudio,
}

/// A publisher's state on this connection.
struct Publishing {
    stream_id: u32,
    /// The hub publisher, its counters, its API entry and its limit slot.
    admitted: control::Publishing,
}

struct Conn {
    ctl: Arc<Control>,
    peer: SocketAddr,
    session: ServerSession,
    out: OutQueue,
    app: Option<String>,
    /// The `connect` query (`app` or `tcUrl`), where a client may carry its token.
    connect_query: Option<String>,
    publishing: Option<Publishing>,
    playing: Option<Playing>,
    /// Close after the queued bytes are written (e.g. the stream ended).
    closing: bool,
    /// Cancelled by the API to kick this connection's publisher or viewer session.
    kick: CancellationToken,
    /// "rtmp" or "rtmps", as publishers are listed.
    protocol: &'static str,
    /// This connection's share of `limits.max_rtmp_partial_bytes`.
    partial: partial::PartialShare,
}

/// Serves one connection (`protocol` "rtmp" over TCP, "rtmps" over TLS) to its end, logging
/// why it ended.
pub(crate) async fn serve<S>(
    ctl: Arc<Control>,
    mut sock: S,
    peer: SocketAddr,
    protocol: &'static str,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let limits = &ctl.config.limits;
    let session = ServerSession::new(ServerConfig {
        chunk_size: ctl.config.rtmp.chunk_size,
        window_ack_size: ctl.config.rtmp.window_ack_size,
        peer_bandwidth: ctl.config.rtmp.window_ack_size,
        max_message_len: limits.max_message_len,
        max_chunk_streams: limits.max_chunk_streams,
        max_partial_bytes: rtmp::chunk::COMMAND_PARTIAL_BUDGET,
        max_partial_bytes_publishing: rtmp::chunk::media_partial_budget(limits.max_message_len),
    });
    let mut conn = Conn {
        ctl: ctl.clone(),
        peer,
        session,
        out: OutQueue::default(),
        app: None,
        connect_query: None,
        publishing: None,
        playing: None,
        closing: false,
        kick: CancellationToken::new(),
        protocol,
        partial: partial::PartialShare::new(ctl.clone()),
    };
    let result = conn.run(&mut sock).await;
    // Counted and logged before the close, so whoever sees the close sees the count.
    match result {
        Ok(()) => tracing::debug!(%peer, "rtmp connection closed"),
        Err(ConnError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            tracing::debug!(%peer, "rtmp connection closed by peer: {e}");
        }
        Err(e) => {
            ctl.stats.rtmp_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "rtmp connection closed: {e}");
        }
    }
    // Ends the stream cleanly (a TLS close_notify, then FIN), bounded.
    let _ = tokio::time::timeout(SHUTDOWN_FLUSH, sock.shutdown()).await;
}

impl Conn {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        sock: &mut S,
    ) -> Result<(), ConnError> {
        let mut rbuf = vec![0u8; READ_BUF_MIN];
        let limits = self.ctl.config.limits.clone();
        let idle = Duration::from_millis(limits.idle_timeout_ms);
        let max_queued = self.ctl.config.hub.viewer_max_queued_bytes;
        let batch = Duration::from_millis(self.ctl.config.hub.viewer_batch_ms);
        let audio_hold = Duration::from_millis(self.ctl.config.hub.audio_coalesce_ms);
        let shutdown = self.ctl.shutdown.clone();
        // Futures that live across iterations: nothing is registered or torn down per frame.
        let mut cancelled = pin!(shutdown.cancelled());
        let kick = self.kick.clone();
        let mut kicked = pin!(kick.cancelled());
        let mut deadline = pin!(tokio::time::sleep(Duration::from_millis(
            limits.handshake_timeout_ms
        )));
        let mut gate_timer = pin!(tokio::time::sleep(Duration::ZERO));
        let mut last_activity = Instant::now();
        // While a batching window is open, frames wait in the hub's ring (we are not woken for
        // each) and the queue is not written; at its end everything ready goes in one write.
        let mut gate = Gate::Open;
        // False while the transport holds written bytes it has not sent (TLS records that
        // did not fit the socket); plain TCP never does.
        let mut flushed = true;
        loop {
            self.drain_session().await?;
            if gate == Gate::Open && !self.out.is_empty() && self.write_ready(sock)? {
                last_activity = Instant::now();
                flushed = false;
            }
            if !flushed {
                flushed = match try_now(|cx| Pin::new(&mut *sock).poll_flush(cx)) {
                    Ok(()) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                    Err(e) => return Err(e.into()),
                };
            }
            if self.closing && self.out.is_empty() {
                return Ok(());
            }
            let want_frames = !self.closing
                && gate != Gate::Batching
                && self.out.len() < max_queued
                && self.playing.as_ref().is_some_and(|p| !p.paused);
            let want_write = gate == Gate::Open && !self.out.is_empty();
            let out = &self.out;
            tokio::select! {
                _ = &mut cancelled => {
                    self.say_goodbye();
                    let _ = tokio::time::timeout(SHUTDOWN_FLUSH, self.flush(sock)).await;
                    return Ok(());
                }
                _ = &mut kicked => {
                    self.say_kicked();
                    let _ = tokio::time::timeout(SHUTDOWN_FLUSH, self.flush(sock)).await;
                    return Ok(());
                }
                ev = poll_fn(|cx| poll_io(cx, sock, &mut rbuf, out, want_write, !flushed)) => {
                    match ev? {
                        IoEvent::Read(0) => return Ok(()),
                        IoEvent::Read(n) => {
                            self.on_read(&mut rbuf, n)?;
                            if self.read_ready(sock, &mut rbuf)? {
                                return Ok(());
                            }
                        }
                        IoEvent::Wrote(n) => {
                            self.on_written(n);
                            flushed = false;
                        }
                        IoEvent::Flushed => flushed = true,
                    }
                    last_activity = Instant::now();
                }
                item = next_frame(&mut self.playing), if want_frames => {
                    self.on_frames(item);
                    let hold = self.playing.as_ref().is_some_and(|p| p.hold.should_hold());
                    gate = if !batch.is_zero() && self.playing.is_some() {
                        gate_timer.as_mut().reset(Instant::now() + batch);
                        Gate::Batching
                    } else if hold && !audio_hold.is_zero() {
                        if gate != Gate::HoldingAudio {
                            gate_timer.as_mut().reset(Instant::now() + audio_hold);
                        }
                        Gate::HoldingAudio
                    } else {
                        self.open_gate();
                        Gate::Open
                    };
                }
                _ = &mut gate_timer, if gate != Gate::Open => {
                    if gate == Gate::Batching {
                        self.drain_ready();
                    }
                    self.open_gate();
                    gate = Gate::Open;
                }
                _ = &mut deadline => {
                    if self.app.is_none() {
                        return Err(ConnError::HandshakeTimeout(limits.handshake_timeout_ms));
                    }
                    // Checked when the timer fires, not re-armed on every byte.
                    let due = last_activity + idle;
                    if due <= Instant::now() {
                        return Err(ConnError::Idle(limits.idle_timeout_ms));
                    }
                    deadline.as_mut().reset(due);
                }
            }
        }
    }

    /// Feeds `n` bytes just read into `rbuf` to the session, and grows the buffer when the
    /// read filled it.
    fn on_read(&mut self, rbuf: &mut Vec<u8>, n: usize) -> Result<(), ConnError> {
        self.ctl
            .stats
            .rtmp_bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Some(p) = &self.publishing {
            p.admitted.session.bytes(n);
        }
        self.feed(rbuf.get(..n).unwrap_or_default())?;
        if n == rbuf.len() && rbuf.len() < READ_BUF_MAX {
            rbuf.resize(rbuf.len() * 2, 0);
        }
        Ok(())
    }

    /// Reads everything the transport has now. Returns true at end of stream.
    fn read_ready<S: AsyncRead + Unpin>(
        &mut self,
        sock: &mut S,
        rbuf: &mut Vec<u8>,
    ) -> Result<bool, ConnError> {
        loop {
            if self.session.awaits_decision() {
                // Answer connect, publish or play before reading on: a publisher's media
                // then meets the budget of an admitted publish.
                return Ok(false);
            }
            let read = try_now(|cx| {
                let mut rb = ReadBuf::new(rbuf);
                Pin::new(&mut *sock)
                    .poll_read(cx, &mut rb)
                    .map_ok(|()| rb.filled().len())
            });
            match read {
                Ok(0) => return Ok(true),
                Ok(n) => self.on_read(rbuf, n)?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Counts `n` bytes written and drops them from the queue.
    fn on_written(&mut self, n: usize) {
        self.out.advance(n);
        if let Some(p) = &self.playing {
            self.ctl.stats.viewer_writes.fetch_add(1, Ordering::Relaxed);
            p.viewer.sent(n);
            p.api.bytes(n);
        }
    }

    /// Writes as much of the queue as the transport takes now. Returns true if anything went.
    fn write_ready<S: AsyncWrite + Unpin>(&mut self, sock: &mut S) -> Result<bool, ConnError> {
        let mut wrote = false;
        while !self.out.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let k = self.out.fill_slices(&mut iov);
            let written = try_now(|cx| {
                Pin::new(&mut *sock).poll_write_vectored(cx, iov.get(..k).unwrap_or_default())
            });
            match written {
                Ok(0) => return Err(ConnError::Io(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.on_written(n);
                    wrote = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        if self.out.is_empty()
            && let Some(p) = self.playing.as_mut()
            && let Some(d) = p.probe.written(std::time::Instant::now())
        {
            p.viewer.latency(d);
        }
        Ok(wrote)
    }

    /// Writes the whole queue and flushes the transport (at shutdown, under a timeout).
    async fn flush<S: AsyncWrite + Unpin>(&mut self, sock: &mut S) -> Result<(), ConnError> {
        while !self.out.is_empty() {
            let n = poll_fn(|cx| {
                let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
                let k = self.out.fill_slices(&mut iov);
                Pin::new(&mut *sock).poll_write_vectored(cx, iov.get(..k).unwrap_or_default())
            })
            .await?;
            if n == 0 {
                return Err(ConnError::Io(std::io::ErrorKind::WriteZero.into()));
            }
            self.on_written(n);
        }
        sock.flush().await?;
        Ok(())
    }

    /// Encodes a batch: the frame that woke us and whatever else is ready now.
    fn on_frames(&mut self, first: Option<Arc<Frame>>) {
        let Some(p) = self.playing.as_mut() else {
            return;
        };
        let Some(first) = first else {
            // The stream ended (publisher gone past its grace, or shutdown).
            let stream_id = p.stream_id;
            self.playing = None;
            self.session.send_status(
                stream_id,
                "status",
                "NetStream.Play.UnpublishNotify",
                "stream unpublished",
            );
            self.session.send_stream_eof(stream_id);
            self.closing = true;
            return;
        };
        let mut frame = Some(first);
        let mut n = 0;
        while let Some(f) = frame {
            let wanted = match f.kind {
                MediaKind::Audio => p.audio,
                MediaKind::Video => p.video,
                MediaKind::Data => true,
            };
            if wanted {
                p.egress.push(&f, &mut self.out);
                p.probe.queued(f.arrival);
                p.hold.saw(&f);
            }
            n += 1;
            if n >= MAX_BATCH_FRAMES {
                break;
            }
            frame = match p.sub.try_recv() {
                hub::TryRecv::Frame(f) => Some(f),
                // An end of stream is seen by the next recv().
                _ => None,
            };
        }
        p.api.dropped(p.sub.dropped());
    }

    /// The queued bytes are released to the socket.
    fn open_gate(&mut self) {
        if let Some(p) = self.playing.as_mut() {
            p.hold.flushed();
        }
    }

    /// At the end of a batching window: everything the ring has for us now.
    fn drain_ready(&mut self) {
        let Some(p) = self.playing.as_mut() else {
            return;
        };
        match p.sub.try_recv() {
            hub::TryRecv::Frame(f) => self.on_frames(Some(f)),
            hub::TryRecv::Ended => self.on_frames(None),
            hub::TryRecv::Empty => {}
        }
    }

    /// Moves the session's output into the queue and acts on its events.
    async fn drain_session(&mut self) -> Result<(), ConnError> {
        loop {
            while let Some(b) = self.session.take_output() {
                self.out.push(b);
            }
            let Some(ev) = self.session.poll_event() else {
                return Ok(());
            };
            self.on_event(ev).await?;
        }
    }

    async fn on_event(&mut self, ev: ServerEvent) -> Result<(), ConnError> {
        match ev {
            ServerEvent::Connect {
                app,
                app_query,
                tc_url,
                ..
            } => {
                self.connect_query =
                    access::rtmp_connect_query(app_query.as_deref(), tc_url.as_deref());
                let digest = self.session.is_digest_handshake();
                if digest {
                    self.ctl
                        .stats
                        .rtmp_digest_handshakes
                        .fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(peer = %self.peer, app = %access::escape_for_log(&app), digest, "rtmp connect");
                self.app = Some(app);
                self.session.accept_connect();
            }
            ServerEvent::Publish {
                stream_id,
                name,
                query,
                ..
            } => {
                self.admit(Action::Publish, stream_id, &name, query.as_deref())
                    .await;
            }
            ServerEvent::Play {
                stream_id,
                name,
                query,
                ..
            } => {
                self.admit(Action::Play, stream_id, &name, query.as_deref())
                    .await;
            }
            ServerEvent::Media {
                stream_id,
                msg_type,
                timestamp,
                payload,
            } => {
                let Some(p) = self
                    .publishing
                    .as_mut()
                    .filter(|p| p.stream_id == stream_id)
                else {
                    return Ok(());
                };
                if payload.is_empty() {
                    // Some encoders send empty audio/video messages; they carry nothing.
                    return Ok(());
                }
                let frame = flv::frame_from_tag(msg_type, timestamp, payload)?;
                p.admitted.counters.observe(&frame);
                p.admitted.publisher.push(frame);
            }
            ServerEvent::Unpublish { stream_id } | ServerEvent::DeleteStream { stream_id } => {
                if self
                    .publishing
                    .as_ref()
                    .is_some_and(|p| p.stream_id == stream_id)
                    && let Some(p) = self.publishing.take()
                {
                    tracing::info!(peer = %self.peer, key = p.admitted.publisher.key(), "unpublished");
                }
                if self
                    .playing
                    .as_ref()
                    .is_some_and(|p| p.stream_id == stream_id)
                {
                    self.playing = None;
                }
            }
            ServerEvent::Pause {
                stream_id, pause, ..
            } => {
                if let Some(p) = self.playing.as_mut().filter(|p| p.stream_id == stream_id) {
                    p.paused = pause;
                    let code = if pause {
                        "NetStream.Pause.Notify"
                    } else {
                        "NetStream.Unpause.Notify"
                    };
                    self.session.send_status(stream_id, "status", code, "");
                }
            }
            ServerEvent::ReceiveAudio { stream_id, enabled } => {
                if let Some(p) = self.playing.as_mut().filter(|p| p.stream_id == stream_id) {
                    p.audio = enabled;
                }
            }
            ServerEvent::ReceiveVideo { stream_id, enabled } => {
                if let Some(p) = self.playing.as_mut().filter(|p| p.stream_id == stream_id) {
                    p.video = enabled;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Kicked by the API: a viewer is told its play stopped; a publisher's stream is simply
    /// dropped (the connection closes, so the hub's publisher goes away).
    fn say_kicked(&mut self) {
        if let Some(p) = self.playing.take() {
            self.session.send_status(
                p.stream_id,
                "status",
                "NetStream.Play.Stop",
                "kicked by the API",
            );
            self.session.send_stream_eof(p.stream_id);
        }
        if let Some(p) = self.publishing.take() {
            tracing::info!(peer = %self.peer, key = p.admitted.publisher.key(), "publisher kicked");
        }
        while let Some(b) = self.session.take_output() {
            self.out.push(b);
        }
    }

    /// Tells the peer the server is going away.
    fn say_goodbye(&mut self) {
        if let Some(p) = self.playing.take() {
            self.session.send_status(
                p.stream_id,
                "status",
                "NetStream.Play.UnpublishNotify",
                "server shutting down",
            );
            self.session.send_stream_eof(p.stream_id);
        }
        if let Some(p) = self.publishing.take() {
            self.session.send_status(
                p.stream_id,
                "status",
                "NetStream.Unpublish.Success",
                "server shutting down",
            );
        }
        while let Some(b) = self.session.take_output() {
            self.out.push(b);
        }
    }
}

/// Waits for the next frame of the playing stream (pending forever when not playing).
async fn next_frame(playing: &mut Option<Playing>) -> Option<Arc<Frame>> {
    match playing {
        Some(p) => p.sub.recv().await,
        None => std::future::pending().await,
    }
}
