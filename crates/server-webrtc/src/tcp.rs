//! ICE-TCP: a passive TCP host candidate (RFC 6544) for viewers whose UDP is blocked, with
//! RFC 4571 framing (a 2-byte big-endian length before each STUN, DTLS or SRTP packet).
//!
//! Each accepted connection is tied to a peer by the local ufrag in the USERNAME of its
//! first frame, which must be a STUN request for a live peer (as `udp` routes an unknown
//! address); every later frame goes to that peer. The peer's str0m sees them as
//! `Protocol::Tcp` input arriving on our TCP candidate, and its TCP transmits (addressed to
//! the connection's remote address) go to that connection's bounded write queue: dropped
//! and counted when full, so a slow reader never blocks the peer task.
//!
//! A connection is closed, and counted in `tcp_invalid`, on a frame length of 0 or above
//! [`MAX_TCP_FRAME`], on a first frame that is not a STUN request for a live peer, or when no
//! complete frame arrives within `webrtc.ice_timeout_ms` (a slow drip never completes one).
//! It is also closed, without counting, when its peer ends, and its table entry goes with
//! it. At most `webrtc.max_tcp_connections` are open; further ones are closed at accept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use str0m::net::Protocol;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Datagram, MAX_DATAGRAM, PeerRoute, WebRtc};

/// Largest RFC 4571 frame accepted: the largest datagram accepted over UDP (STUN, DTLS and
/// SRTP packets are sized for UDP paths, about 1200-1500 bytes). A longer length closes the
/// connection.
pub const MAX_TCP_FRAME: usize = MAX_DATAGRAM;
/// Packets queued for writing on one connection; beyond it transmits are dropped (and
/// counted), as a congested network would (about half a second of 5 Mbit/s video).
pub const TCP_WRITE_QUEUE: usize = 256;
/// Longest a single write may take before the connection is considered dead.
pub const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ICE-TCP listener and the write queues of its open connections, by remote address.
#[derive(Debug)]
pub(crate) struct TcpSide {
    /// The bound TCP address.
    pub(crate) local: SocketAddr,
    listener: Mutex<Option<TcpListener>>,
    conns: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
    max: usize,
    /// `webrtc.ice_timeout_ms`: the longest wait for a complete valid frame.
    idle: Duration,
}

impl TcpSide {
    /// Binds the listener (taken by [`run`]); `max` connections at once, each closed when
    /// no complete valid frame arrives within `idle`.
    pub(crate) async fn bind(
        addr: SocketAddr,
        max: usize,
        idle: Duration,
    ) -> std::io::Result<Self> {
        let l = TcpListener::bind(addr).await?;
        Ok(Self {
            local: l.local_addr()?,
            listener: Mutex::new(Some(l)),
            conns: Mutex::new(HashMap::new()),
            max,
            idle,
        })
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<SocketAddr, mpsc::Sender<Bytes>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `contents`, framed, on the connection from `remote`; false when there is no
    /// such connection or its queue is full.
    pub(crate) fn send(&self, remote: SocketAddr, contents: &[u8]) -> bool {
        let Some(tx) = self.conns().get(&remote).cloned() else {
            return false;
        };
        let Ok(len) = u16::try_from(contents.len()) else {
            return false;
        };
        let mut framed = Vec::with_capacity(contents.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(contents);
        tx.try_send(Bytes::from(framed)).is_ok()
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.conns().len()
    }
}

/// Accepts connections until shutdown.
pub(crate) async fn run(wr: Arc<WebRtc>, shutdown: CancellationToken, tracker: TaskTracker) {
    let Some(tcp) = wr.tcp.as_ref() else { return };
    let Some(listener) = tcp
        .listener
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
        return;
    };
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("webrtc tcp accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (tx, rx) = mpsc::channel(TCP_WRITE_QUEUE);
        {
            let mut conns = tcp.conns();
            if conns.len() >= tcp.max {
                drop(conns);
                wr.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%remote, "webrtc tcp refused: webrtc.max_tcp_connections");
                continue;
            }
            conns.insert(remote, tx);
        }
        wr.stats.tcp_accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        tracker.spawn(connection(
            Arc::clone(&wr),
            stream,
            remote,
            rx,
            shutdown.clone(),
        ));
    }
}

/// Removes a connection's write queue from the table when its task ends.
struct Forget<'a> {
    tcp: &'a TcpSide,
    remote: SocketAddr,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.tcp.conns().remove(&self.remote);
    }
}

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
enum FrameError {
    /// The connection closed or failed.
    Closed,
    /// A length of 0 or above [`MAX_TCP_FRAME`].
    BadLength(usize),
}

/// Reads one RFC 4571 frame into `buf`.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<(), FrameError> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len)
        .await
        .map_err(|_| FrameError::Closed)?;
    let n = usize::from(u16::from_be_bytes(len));
    if n == 0 || n > MAX_TCP_FRAME {
        return Err(FrameError::BadLength(n));
    }
    buf.resize(n, 0);
    r.read_exact(buf).await.map_err(|_| FrameError::Closed)?;
    Ok(())
}

async fn peer_gone(route: &Option<PeerRoute>) {
    match route {
        Some(r) => r.tx.closed().await,
        None => std::future::pending().await,
    }
}

/// One connection: reads frames and routes them; a writer task drains the write queue.
async fn connection(
    wr: Arc<WebRtc>,
    stream: TcpStream,
    remote: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    shutdown: CancellationToken,
) {
    let (Some(tcp), Some(destination)) = (wr.tcp.as_ref(), wr.tcp_destination()) else {
        return;
    };
    let _forget = Forget { tcp, remote };
    let (mut rd, mut wh) = stream.into_split();
    let done = CancellationToken::new();
    let writer_done = done.clone();
    let writer = tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                _ = writer_done.cancelled() => break,
                f = rx.recv() => match f { Some(f) => f, None => break },
            };
            match tokio::time::timeout(TCP_WRITE_TIMEOUT, wh.write_all(&frame)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        writer_done.cancel();
        let _ = wh.shutdown().await;
    });
    let timeout = tcp.idle;
    let mut deadline = Instant::now() + timeout;
    let mut route: Option<PeerRoute> = None;
    let mut buf = Vec::with_capacity(MAX_TCP_FRAME);
    let invalid = |why: &str| {
        wr.stats.tcp_invalid.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%remote, "webrtc tcp connection closed: {why}");
    };
    loop {
        let r = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = done.cancelled() => break,
            _ = peer_gone(&route) => break,
            r = tokio::time::timeout_at(deadline, read_frame(&mut rd, &mut buf)) => r,
        };
        match r {
            Err(_) => {
                if route.is_none() {
                    invalid("no valid frame in time");
                }
                break;
            }
            Ok(Err(FrameError::Closed)) => break,
            Ok(Err(FrameError::BadLength(n))) => {
                invalid(&format!("bad frame length {n}"));
                break;
            }
            Ok(Ok(())) => {}
        }
        if route.is_none() {
            route =
                super::udp::local_ufrag(&buf).and_then(|u| wr.tables().by_ufrag.get(&u).cloned());
            if route.is_none() {
                invalid("first frame is not a STUN request for a live peer");
                break;
            }
        }
        let Some(r) = route.as_ref() else { break };
        deadline = Instant::now() + timeout;
        wr.stats.tcp_frames_in.fetch_add(1, Ordering::Relaxed);
        let d = Datagram {
            source: remote,
            destination,
            proto: Protocol::Tcp,
            data: buf.clone(),
            at: std::time::Instant::now(),
        };
        match r.tx.try_send(d) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                wr.stats.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
    done.cancel();
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WebRtcConfig;
    use crate::udp::tests::stun_request;

    fn framed(data: &[u8]) -> Vec<u8> {
        let mut v = (data.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(data);
        v
    }

    async fn service(max: usize) -> (Arc<WebRtc>, CancellationToken, TaskTracker) {
        let cfg = WebRtcConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tcp_listen: "127.0.0.1:0".to_owned(),
            udp_sockets: 1,
            max_tcp_connections: max,
            ice_timeout_ms: 1000,
            ..Default::default()
        };
        let wr = Arc::new(WebRtc::bind(&cfg).await.unwrap());
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        wr.spawn_io(&shutdown, &tracker);
        (wr, shutdown, tracker)
    }

    /// Reads until EOF (bounded): true when the server closed the connection.
    async fn closed_by_server(c: &mut TcpStream) -> bool {
        let mut b = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, c.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    #[tokio::test]
    async fn routes_by_first_stun_then_by_connection_and_writes_framed() {
        let (wr, shutdown, tracker) = service(10).await;
        let tcp_addr = wr.tcp.as_ref().unwrap().local;
        assert_eq!(wr.tcp_candidates, vec![tcp_addr]);
        let (tx, mut rx) = mpsc::channel(8);
        wr.tables()
            .by_ufrag
            .insert("tcpfrag".to_owned(), PeerRoute { id: 5, tx });
        let mut c = TcpStream::connect(tcp_addr).await.unwrap();
        let me = c.local_addr().unwrap();
        // Two frames in one write, split across the length prefix: framing is by length.
        let mut bytes = framed(&stun_request("tcpfrag:remote"));
        bytes.extend(framed(&[22, 254, 253, 1]));
        c.write_all(&bytes[..1]).await.unwrap();
        c.write_all(&bytes[1..]).await.unwrap();
        let d = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.proto, d.source, d.destination),
            (Protocol::Tcp, me, tcp_addr)
        );
        assert_eq!(d.data, stun_request("tcpfrag:remote"));
        let d = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.data, [22, 254, 253, 1]);
        // A TCP transmit to this connection's address comes back framed.
        let t = str0m::net::Transmit {
            proto: Protocol::Tcp,
            source: tcp_addr,
            destination: me,
            contents: vec![7u8; 5].into(),
        };
        assert_eq!(wr.send(&t), Some(5));
        let mut got = [0u8; 7];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [0, 5, 7, 7, 7, 7, 7]);
        // To an address with no connection: dropped and counted.
        let t = str0m::net::Transmit {
            destination: "127.0.0.1:9".parse().unwrap(),
            ..t
        };
        assert_eq!(wr.send(&t), None);
        assert_eq!(wr.stats.tcp_send_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(wr.stats.tcp_frames_in.load(Ordering::Relaxed), 2);
        // The peer ending closes the connection and frees its entry.
        wr.tables().by_ufrag.clear();
        drop(rx);
        assert!(closed_by_server(&mut c).await);
        let deadline = Instant::now() + Duration::from_secs(5);
        while wr.tcp.as_ref().unwrap().open() != 0 {
            assert!(Instant::now() < deadline, "connection entry left");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(wr.stats.tcp_invalid.load(Ordering::Relaxed), 0);
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn junk_is_closed_and_counted_and_connections_are_capped() {
        let (wr, shutdown, tracker) = service(3).await;
        let tcp_addr = wr.tcp.as_ref().unwrap().local;
        let (tx, _rx) = mpsc::channel(8);
        wr.tables()
            .by_ufrag
            .insert("known".to_owned(), PeerRoute { id: 6, tx });
        // A length above MAX_TCP_FRAME, then nothing.
        let mut a = TcpStream::connect(tcp_addr).await.unwrap();
        a.write_all(&[0xFF, 0xFF]).await.unwrap();
        // A well-framed first frame that is not STUN.
        let mut b = TcpStream::connect(tcp_addr).await.unwrap();
        b.write_all(&framed(&[0x80, 0x60, 0, 1])).await.unwrap();
        // STUN for a ufrag nobody has.
        let mut c = TcpStream::connect(tcp_addr).await.unwrap();
        c.write_all(&framed(&stun_request("nobody:x")))
            .await
            .unwrap();
        for s in [&mut a, &mut b, &mut c] {
            assert!(closed_by_server(s).await);
        }
        // A slow drip of a valid frame never completes within ice_timeout (1 s).
        let mut d = TcpStream::connect(tcp_addr).await.unwrap();
        let frame = framed(&stun_request("known:x"));
        let t0 = Instant::now();
        for byte in frame.iter().take(4) {
            // The server may already have closed it: a failed write is what we expect.
            let _ = d.write_all(&[*byte]).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(closed_by_server(&mut d).await);
        assert!(t0.elapsed() >= Duration::from_millis(900));
        assert_eq!(wr.stats.tcp_invalid.load(Ordering::Relaxed), 4);
        // At most 3 open: the 4th is closed at accept and counted.
        let deadline = Instant::now() + Duration::from_secs(5);
        while wr.tcp.as_ref().unwrap().open() != 0 {
            assert!(Instant::now() < deadline, "closed connections left entries");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(TcpStream::connect(tcp_addr).await.unwrap());
        }
        while wr.tcp.as_ref().unwrap().open() != 3 {
            assert!(Instant::now() < deadline, "held connections not accepted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut over = TcpStream::connect(tcp_addr).await.unwrap();
        assert!(closed_by_server(&mut over).await);
        assert_eq!(wr.stats.tcp_refused.load(Ordering::Relaxed), 1);
        assert_eq!(wr.stats.tcp_accepted.load(Ordering::Relaxed), 7);
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn frames_are_read_and_bad_lengths_refused() {
        let mut buf = Vec::new();
        let mut ok: &[u8] = &[0, 3, 1, 2, 3, 0, 1, 9];
        assert_eq!(read_frame(&mut ok, &mut buf).await, Ok(()));
        assert_eq!(buf, [1, 2, 3]);
        assert_eq!(read_frame(&mut ok, &mut buf).await, Ok(()));
        assert_eq!(buf, [9]);
        assert_eq!(read_frame(&mut ok, &mut buf).await, Err(FrameError::Closed));
        let mut zero: &[u8] = &[0, 0];
        assert_eq!(
            read_frame(&mut zero, &mut buf).await,
            Err(FrameError::BadLength(0))
        );
        let mut huge: &[u8] = &[0xFF, 0xFF, 1, 2];
        assert_eq!(
            read_frame(&mut huge, &mut buf).await,
            Err(FrameError::BadLength(65535))
        );
        let mut short: &[u8] = &[0, 5, 1, 2];
        assert_eq!(
            read_frame(&mut short, &mut buf).await,
            Err(FrameError::Closed)
        );
    }
}
