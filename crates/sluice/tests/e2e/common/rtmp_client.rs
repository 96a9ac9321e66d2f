//! A small async RTMP client over our sans-IO `rtmp::ClientSession`, for what ffmpeg cannot
//! do in a test: time the first frame precisely and publish Enhanced RTMP tags.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rtmp::{ClientConfig, ClientEvent, ClientSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A media message as received.
#[derive(Debug, Clone)]
pub struct Media {
    pub msg_type: u8,
    pub timestamp: u32,
    pub payload: Bytes,
    pub at: Instant,
}

pub struct RtmpClient {
    sock: TcpStream,
    session: ClientSession,
    pub events: Vec<ClientEvent>,
    /// Media received so far, stamped when it was read from the socket.
    pub media: Vec<Media>,
    pub closed: bool,
}

impl RtmpClient {
    pub async fn connect(addr: SocketAddr, app: &str) -> Self {
        let sock = TcpStream::connect(addr).await.expect("connect");
        Self::over(sock, addr, app)
    }

    /// Starts the handshake and `connect(app)` over an already connected socket (one with a
    /// tiny receive buffer, say).
    pub fn over(sock: TcpStream, addr: SocketAddr, app: &str) -> Self {
        sock.set_nodelay(true).expect("nodelay");
        let mut session = ClientSession::new(ClientConfig::default());
        session.connect(app, &format!("rtmp://{addr}/{app}"));
        Self {
            sock,
            session,
            events: Vec::new(),
            media: Vec::new(),
            closed: false,
        }
    }

    async fn flush(&mut self) {
        while let Some(b) = self.session.take_output() {
            if self.sock.write_all(&b).await.is_err() {
                self.closed = true;
                return;
            }
        }
    }

    /// Reads once (bounded by `timeout`), collecting events.
    async fn pump(&mut self, timeout: Duration) {
        self.flush().await;
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::time::timeout(timeout, self.sock.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => self.closed = true,
            Ok(Ok(n)) => {
                if self.session.handle_input(&buf[..n]).is_err() {
                    self.closed = true;
                }
            }
        }
        let at = Instant::now();
        while let Some(ev) = self.session.poll_event() {
            match ev {
                ClientEvent::Media {
                    msg_type,
                    timestamp,
                    payload,
                    ..
                } => self.media.push(Media {
                    msg_type,
                    timestamp,
                    payload,
                    at,
                }),
                ev => self.events.push(ev),
            }
        }
        self.flush().await;
    }

    /// Pumps until `pred` holds for some event (bounded).
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&ClientEvent) -> bool,
    ) -> ClientEvent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pos) = self.events.iter().position(&pred) {
                return self.events.remove(pos);
            }
            assert!(
                !self.closed,
                "connection closed while waiting for {what}: {:?}",
                self.events
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.events
            );
            self.pump(Duration::from_millis(100)).await;
        }
    }

    pub async fn play(&mut self, name: &str) -> ClientEvent {
        self.session.play(name);
        self.wait_for("play result", |e| {
            matches!(e, ClientEvent::PlayStarted { .. })
                || matches!(e, ClientEvent::Status { level, .. } if level == "error")
        })
        .await
    }

    pub async fn publish(&mut self, name: &str) -> ClientEvent {
        self.session.publish(name);
        self.wait_for("publish result", |e| {
            matches!(e, ClientEvent::PublishStarted { .. })
                || matches!(e, ClientEvent::Status { level, .. } if level == "error")
        })
        .await
    }

    pub async fn send(&mut self, msg_type: u8, timestamp: u32, payload: &[u8]) {
        self.session
            .send_media(msg_type, timestamp, payload)
            .expect("send media");
        self.flush().await;
    }

    /// Sends only the first `keep` bytes of a media message's chunks (a publisher that
    /// vanishes mid-message).
    pub async fn send_partial(
        &mut self,
        msg_type: u8,
        timestamp: u32,
        payload: &[u8],
        keep: usize,
    ) {
        self.flush().await;
        self.session
            .send_media(msg_type, timestamp, payload)
            .expect("send media");
        let mut out = Vec::new();
        while let Some(b) = self.session.take_output() {
            out.extend_from_slice(&b);
        }
        out.truncate(keep);
        let _ = self.sock.write_all(&out).await;
    }

    /// The socket, for closing it abruptly.
    pub fn into_socket(self) -> TcpStream {
        self.sock
    }

    /// Media received within `dur` (or until the server closes).
    pub async fn collect_media(&mut self, dur: Duration) -> Vec<Media> {
        let deadline = Instant::now() + dur;
        let mut out = std::mem::take(&mut self.media);
        while Instant::now() < deadline && !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            self.pump(left.min(Duration::from_millis(100))).await;
        }
        out.append(&mut self.media);
        out
    }
}
