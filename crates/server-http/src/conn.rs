//! Time limits of every phase of an HTTP connection (HTTP/1.1 and HTTP/2, plain and TLS),
//! so no connection holds a slot of `limits.max_connections` by doing nothing:
//!
//! | phase | limit | then |
//! |---|---|---|
//! | the first request head, from the accept (a silent connection, slowloris, an HTTP/2 connection that never makes a request) | `http_header_timeout_ms` | closed |
//! | a later HTTP/1.1 request head, from its first byte | `http_header_timeout_ms` | closed |
//! | no request in flight (keep-alive, HTTP/1.1 and HTTP/2) | `http_idle_timeout_ms` | closed (HTTP/2: GOAWAY) |
//! | a request body: the next bytes, and the average rate | `http_body_timeout_ms`, `http_body_min_bytes_per_s` | the handler reads an error ([`BodyTimeout`]), answers 408 |
//! | a response the client does not take (socket or HTTP/2 window full) | `http_send_timeout_ms` | closed |
//! | an HTTP/2 peer that does not answer PINGs while requests are in flight | `http2_keepalive_*` | closed (hyper) |
//!
//! A response that is merely waiting for its own data (HTTP-FLV before the next frame, an HLS
//! blocking request, a WebSocket after the upgrade) is in none of these phases: it is never
//! cut, however long it runs.
//!
//! How: one [`ConnState`] per connection, shared by the socket wrapper ([`Watched`]: notes
//! the first byte of a head), the service (each request in flight, each response body
//! handing chunks to hyper: [`TrackedBody`]) and a watchdog future ([`watch`]) that sleeps
//! until the next deadline of the current phase. Wake-ups: one per request start and end,
//! one per idle period's first byte, and one every half `http_send_timeout_ms` while a
//! response is in flight.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use control::http_error::BodyTimeout;
use control::limits::ConnectionPermit;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use config::LimitsConfig;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Time a connection closed for being idle (or never asking anything) gets to say goodbye
/// (an HTTP/2 GOAWAY) before it is dropped.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The time limits of `[limits]` that apply to HTTP connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    header: Duration,
    idle: Duration,
    body: Duration,
    body_min_bytes_per_s: u64,
    send: Duration,
}

impl Timeouts {
    pub(crate) fn new(l: &LimitsConfig) -> Self {
        Self {
            header: Duration::from_millis(l.http_header_timeout_ms),
            idle: Duration::from_millis(l.http_idle_timeout_ms),
            body: Duration::from_millis(l.http_body_timeout_ms),
            body_min_bytes_per_s: l.http_body_min_bytes_per_s,
            send: Duration::from_millis(l.http_send_timeout_ms),
        }
    }
}

/// Which limit closed a connection (logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// No complete first request within `http_header_timeout_ms` of the accept.
    FirstRequest,
    /// A later request head took longer than `http_header_timeout_ms`.
    Head,
    /// No request in flight for `http_idle_timeout_ms`.
    Idle,
    /// A response waited `http_send_timeout_ms` for the client to take more bytes.
    SendStalled,
}

impl Expired {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::FirstRequest => "no request within limits.http_header_timeout_ms",
            Self::Head => "request head slower than limits.http_header_timeout_ms",
            Self::Idle => "idle for limits.http_idle_timeout_ms",
            Self::SendStalled => "client took no bytes for limits.http_send_timeout_ms",
        }
    }
}

/// What the watchdog knows about one connection. Times are milliseconds since `started`.
#[derive(Debug)]
pub(crate) struct ConnState {
    started: Instant,
    /// Requests whose response has not finished (the service was called and the response
    /// body is not yet dropped).
    in_flight: AtomicUsize,
    /// Requests finished so far (0: the first is still awaited).
    served: AtomicU64,
    /// When the last request finished.
    idle_since: AtomicU64,
    /// 1 + when the first byte arrived while no request was in flight (0: none yet).
    head_started: AtomicU64,
    /// HTTP/2 (known from the first request): its idle reads are PINGs and window updates,
    /// not request heads.
    h2: AtomicBool,
    /// Response bodies that handed hyper a chunk and were not polled again since.
    waiting: AtomicUsize,
    /// When a chunk was last handed over, or a waiting body polled again (send progress).
    sent_at: AtomicU64,
    notify: Notify,
}

impl ConnState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            sent_at: AtomicU64::new(0),
            notify: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    /// Bytes arrived from the client.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == 0
        {
            self.head_started
                .store(self.now_ms().saturating_add(1), Ordering::Release);
            self.notify.notify_one();
        }
    }

    /// The deadline of the current phase, or which one has passed.
    fn next(&self, t: &Timeouts, now: u64) -> Result<u64, Expired> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let check = |deadline: u64, why| {
            if now >= deadline {
                Err(why)
            } else {
                Ok(deadline)
            }
        };
        if self.in_flight.load(Ordering::Acquire) > 0 {
            if self.waiting.load(Ordering::Acquire) > 0 {
                let since = self.sent_at.load(Ordering::Acquire);
                return check(since.saturating_add(ms(t.send)), Expired::SendStalled);
            }
            // Streaming or waiting for data: look again later (a stall starts meanwhile).
            return Ok(now.saturating_add(ms(t.send) / 2).max(now + 1));
        }
        if self.served.load(Ordering::Acquire) == 0 {
            return check(ms(t.header), Expired::FirstRequest);
        }
        let head = self.head_started.load(Ordering::Acquire);
        if head > 0 && !self.h2.load(Ordering::Acquire) {
            return check((head - 1).saturating_add(ms(t.header)), Expired::Head);
        }
        let idle = self.idle_since.load(Ordering::Acquire);
        check(idle.saturating_add(ms(t.idle)), Expired::Idle)
    }
}

/// Sleeps until a phase of the connection outlives its limit; returns which.
pub(crate) async fn watch(state: &ConnState, t: &Timeouts) -> Expired {
    // Bounded: each pass sleeps until a deadline or a state change.
    loop {
        let notified = state.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let deadline = match state.next(t, state.now_ms()) {
            Ok(d) => d,
            Err(why) => return why,
        };
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(state.at(deadline)) => {}
        }
    }
}

/// One request in flight, from the service call until its response body is dropped.
pub(crate) struct InFlight {
    state: Arc<ConnState>,
}

impl InFlight {
    pub(crate) fn start(state: &Arc<ConnState>, h2: bool) -> Self {
        if h2 {
            state.h2.store(true, Ordering::Release);
        }
        if state.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            state.head_started.store(0, Ordering::Release);
            state.notify.notify_one();
        }
        Self {
            state: Arc::clone(state),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.state;
        s.served.fetch_add(1, Ordering::AcqRel);
        s.idle_since.store(s.now_ms(), Ordering::Release);
        if s.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            s.head_started.store(0, Ordering::Release);
            s.notify.notify_one();
        }
    }
}

/// A response body that reports to the watchdog when it hands hyper a chunk and when hyper
/// comes back for the next (the socket or the HTTP/2 window took it), and ends its request
/// when dropped.
pub(crate) struct TrackedBody {
    inner: Body,
    waiting: bool,
    request: InFlight,
}

impl TrackedBody {
    pub(crate) fn new(inner: Body, request: InFlight) -> Self {
        Self {
            inner,
            waiting: false,
            request,
        }
    }

    fn progress(&mut self) {
        let s = &self.request.state;
        s.sent_at.store(s.now_ms(), Ordering::Release);
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.waiting {
            self.waiting = false;
            self.request.state.waiting.fetch_sub(1, Ordering::AcqRel);
            self.progress();
        }
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && f.data_ref().is_some_and(|d| !d.is_empty())
        {
            self.progress();
            self.waiting = true;
            self.request.state.waiting.fetch_add(1, Ordering::AcqRel);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if self.waiting {
            self.request.state.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A request body that fails with [`BodyTimeout`] when no bytes come for
/// `http_body_timeout_ms`, or when, after that long, fewer than `http_body_min_bytes_per_s`
/// bytes per second have come on average. The clock starts when a handler first reads it.
pub(crate) struct TimedBody<B> {
    inner: B,
    gap: Duration,
    min_rate: u64,
    start: Option<Instant>,
    last: Option<Instant>,
    bytes: u64,
    sleep: Option<(Pin<Box<Sleep>>, Instant)>,
}

impl<B> TimedBody<B> {
    pub(crate) fn new(inner: B, t: &Timeouts) -> Self {
        Self {
            inner,
            gap: t.body,
            min_rate: t.body_min_bytes_per_s,
            start: None,
            last: None,
            bytes: 0,
            sleep: None,
        }
    }

    /// When the body is late: `gap` after the last bytes, or when the average rate since
    /// `start + gap` falls below the minimum.
    fn deadline(&self, start: Instant, last: Instant) -> Instant {
        let stalled = last + self.gap;
        if self.min_rate == 0 {
            return stalled;
        }
        let earned_ms = self.bytes.saturating_mul(1000) / self.min_rate;
        stalled.min(start + self.gap + Duration::from_millis(earned_ms))
    }
}

impl<B> hyper::body::Body for TimedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let last = *self.last.get_or_insert(now);
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes = self.bytes.saturating_add(d.len() as u64);
                    if !d.is_empty() {
                        self.last = Some(now);
                    }
                }
                if self.deadline(start, now) <= now {
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = self.deadline(start, last);
                match &mut self.sleep {
                    Some((sleep, at)) if *at == deadline => {
                        if sleep.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
                        }
                    }
                    slot => {
                        let mut sleep = Box::pin(tokio::time::sleep_until(deadline));
                        if sleep.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
                        }
                        *slot = Some((sleep, deadline));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket (TCP or TLS): notes the first byte of each request head for the
/// watchdog, and holds the connection's permit of `[limits]` for as long as the socket lives,
/// upgraded (WebSocket-FLV) or not.
pub(crate) struct Watched<S> {
    io: S,
    state: Arc<ConnState>,
    _permit: Option<ConnectionPermit>,
}

impl<S> Watched<S> {
    pub(crate) fn new(io: S, state: Arc<ConnState>, permit: Option<ConnectionPermit>) -> Self {
        Self {
            io,
            state,
            _permit: permit,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn timeouts(ms: u64) -> Timeouts {
        Timeouts {
            header: Duration::from_millis(ms),
            idle: Duration::from_millis(ms * 2),
            body: Duration::from_millis(ms),
            body_min_bytes_per_s: 1000,
            send: Duration::from_millis(ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn phases_have_their_own_deadlines() {
        let t = timeouts(1000);
        let s = ConnState::new();
        // Nothing asked yet: the header timeout from the start.
        assert_eq!(s.next(&t, 0), Ok(1000));
        assert_eq!(s.next(&t, 1000), Err(Expired::FirstRequest));
        let req = InFlight::start(&s, false);
        // In flight, nothing waiting: look again in half the send timeout.
        assert_eq!(s.next(&t, 1500), Ok(2000));
        s.sent_at.store(1500, Ordering::Release);
        s.waiting.store(1, Ordering::Release);
        assert_eq!(s.next(&t, 1600), Ok(2500));
        assert_eq!(s.next(&t, 2500), Err(Expired::SendStalled));
        s.waiting.store(0, Ordering::Release);
        tokio::time::advance(Duration::from_millis(3000)).await;
        drop(req);
        // Idle since 3000: the idle timeout, until a byte starts a head.
        assert_eq!(s.next(&t, 3000), Ok(5000));
        tokio::time::advance(Duration::from_millis(500)).await;
        s.on_read();
        assert_eq!(s.next(&t, 3500), Ok(4500));
        assert_eq!(s.next(&t, 4500), Err(Expired::Head));
        // HTTP/2: bytes while idle are not heads.
        s.h2.store(true, Ordering::Release);
        assert_eq!(s.next(&t, 4500), Ok(5000));
        assert_eq!(s.next(&t, 5000), Err(Expired::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn watch_wakes_for_a_new_phase() {
        let t = timeouts(1000);
        let s = ConnState::new();
        let req = InFlight::start(&s, false);
        let watcher = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { watch(&s, &t).await })
        };
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!watcher.is_finished(), "a request in flight is never idle");
        drop(req);
        let started = Instant::now();
        assert_eq!(watcher.await.unwrap(), Expired::Idle);
        assert_eq!(started.elapsed(), Duration::from_millis(2000));
    }

    /// Frames of a test body.
    type FrameStream =
        Pin<Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send>>;

    /// A body whose frames come from a channel.
    fn channel_body() -> (
        tokio::sync::mpsc::Sender<Bytes>,
        TimedBody<http_body_util::StreamBody<FrameStream>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
        });
        let body = http_body_util::StreamBody::new(Box::pin(stream) as FrameStream);
        (tx, TimedBody::new(body, &timeouts(1000)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let (tx, mut body) = channel_body();
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "abc");
        let started = Instant::now();
        let e = body.frame().await.unwrap().unwrap_err();
        assert!(e.is::<BodyTimeout>());
        assert_eq!(started.elapsed(), Duration::from_millis(1000));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dripping_body_times_out_by_its_rate() {
        let (tx, mut body) = channel_body();
        let feeder = tokio::spawn(async move {
            // 10 bytes every 500 ms: never a 1 s gap, but 20 B/s against 1000 B/s.
            for _ in 0..100 {
                if tx.send(Bytes::from_static(b"0123456789")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let started = Instant::now();
        let mut got = 0;
        let err = loop {
            match body.frame().await {
                Some(Ok(f)) => got += f.into_data().map_or(0, |d| d.len()),
                Some(Err(e)) => break e,
                None => panic!("the body ended"),
            }
        };
        assert!(err.is::<BodyTimeout>());
        // After the 1 s grace, 10 bytes earn 10 ms each: cut soon after the grace.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_millis(1600),
            "{took:?}"
        );
        assert!(got <= 40, "{got}");
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_minimum_rate_is_never_cut() {
        let (tx, mut body) = channel_body();
        let feeder = tokio::spawn(async move {
            // 600 bytes every 500 ms: 1200 B/s for 30 s.
            for _ in 0..60 {
                tx.send(Bytes::from(vec![0u8; 600])).await.unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let mut got = 0;
        while let Some(f) = body.frame().await {
            got += f.expect("no timeout").into_data().map_or(0, |d| d.len());
        }
        assert_eq!(got, 36_000);
        feeder.await.unwrap();
    }
}
