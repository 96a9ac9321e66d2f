//! The single-threaded fan-out loop: accept players, pace the clip, write shared batches.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::request::{HeaderStatus, MAX_REQUEST_HEADER_LEN, header_status};
use crate::schedule::{Batch, Clip, Schedule, build_batch};

/// The response head: no length and no chunked encoding, the body runs until close.
pub const RESPONSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\n";
/// How long a connection may take to send its request header.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Players that finished their request but are not yet in the fan-out loop.
pub const ACCEPT_QUEUE: usize = 1_024;
/// Most players attached at once; more are closed after their request.
pub const MAX_PLAYERS: usize = 100_000;
/// Most buffers handed to one vectored write.
pub const MAX_IOVECS: usize = 64;
/// Default for [`FloorConfig::max_backlog`].
pub const DEFAULT_MAX_BACKLOG: usize = 1024 * 1024;

/// Settings of the floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorConfig {
    /// Batching window in ms: 0 writes each tag as it is due.
    pub batch_ms: u64,
    /// Unwritten bytes kept per player; beyond it the player's backlog is dropped and it
    /// restarts at the next keyframe.
    pub max_backlog: usize,
}

impl Default for FloorConfig {
    fn default() -> Self {
        Self {
            batch_ms: 0,
            max_backlog: DEFAULT_MAX_BACKLOG,
        }
    }
}

/// Serves the clip to every player that connects to `listener`; runs until dropped.
/// Runs on the caller's task (meant for a current-thread runtime); request headers are read
/// by one small task per connection.
pub async fn serve(listener: TcpListener, clip: Clip, cfg: FloorConfig) -> anyhow::Result<()> {
    let mut preamble = Vec::with_capacity(RESPONSE_HEAD.len() + clip.preamble.len());
    preamble.extend_from_slice(RESPONSE_HEAD);
    preamble.extend_from_slice(&clip.preamble);
    let preamble = Bytes::from(preamble);

    let (tx, mut rx) = mpsc::channel::<TcpStream>(ACCEPT_QUEUE);
    let mut schedule = Schedule::new(cfg.batch_ms);
    let mut players: Vec<Player> = Vec::new();
    let start = Instant::now();
    loop {
        // An empty clip never has a next write: then only accept (and hold) players.
        let next = schedule
            .next_write_ms(&clip)
            .map(|ms| start + Duration::from_millis(ms));
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, _)) => {
                    let _ = sock.set_nodelay(true);
                    tokio::spawn(read_request(sock, tx.clone()));
                }
                // Out of descriptors and the like: back off briefly instead of spinning.
                Err(e) => {
                    eprintln!("sluice-floor: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(sock) = rx.recv() => {
                if players.len() < MAX_PLAYERS {
                    let mut p = Player::new(sock, preamble.clone());
                    if p.flush() {
                        players.push(p);
                    }
                }
            }
            () = sleep_until(next) => {
                let now_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                let items = schedule.take_batch(&clip, now_ms);
                if items.is_empty() {
                    continue;
                }
                let batch = build_batch(&clip, &items);
                players.retain_mut(|p| p.offer(&batch, cfg.max_backlog));
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads and discards the request header (bounded in size and time), then hands the socket
/// to the fan-out loop. Any request is answered with the stream.
async fn read_request(mut sock: TcpStream, tx: mpsc::Sender<TcpStream>) {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            match header_status(&buf, MAX_REQUEST_HEADER_LEN) {
                HeaderStatus::Complete { .. } => return true,
                HeaderStatus::TooLong => return false,
                HeaderStatus::Partial => {}
            }
            let room = MAX_REQUEST_HEADER_LEN
                .saturating_sub(buf.len())
                .clamp(1, chunk.len());
            match sock.read(&mut chunk[..room]).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
    };
    if let Ok(true) = tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        let _ = tx.send(sock).await;
    }
}

/// One player: its socket and the shared slices it has not been able to take yet.
struct Player {
    sock: TcpStream,
    queue: VecDeque<Bytes>,
    queued: usize,
    /// The front buffer was partly written: it must be finished to keep tags whole.
    front_partial: bool,
    /// Media flows: the player got a keyframe and has not been dropped since.
    started: bool,
}

impl Player {
    fn new(sock: TcpStream, preamble: Bytes) -> Self {
        let queued = preamble.len();
        Self {
            sock,
            queue: VecDeque::from([preamble]),
            queued,
            front_partial: false,
            started: false,
        }
    }

    /// Queues the batch (from its keyframe if the player waits for one) and writes once.
    /// False when the player is gone.
    fn offer(&mut self, batch: &Batch, max_backlog: usize) -> bool {
        let mut bytes = if self.started {
            Some(batch.bytes.clone())
        } else {
            batch.keyframe_at.map(|k| batch.bytes.slice(k..))
        };
        if let Some(b) = &bytes
            && self.queued.saturating_add(b.len()) > max_backlog
        {
            self.drop_backlog();
            bytes = batch.keyframe_at.map(|k| batch.bytes.slice(k..));
        }
        if let Some(b) = bytes
            && !b.is_empty()
            && self.queued.saturating_add(b.len()) <= max_backlog
        {
            self.queued += b.len();
            self.queue.push_back(b);
            self.started = true;
        }
        self.flush()
    }

    /// Keeps only the rest of a partly written tag; media resumes at the next keyframe.
    fn drop_backlog(&mut self) {
        let keep = if self.front_partial {
            self.queue.pop_front()
        } else {
            None
        };
        self.queue.clear();
        self.queued = 0;
        if let Some(front) = keep {
            self.queued = front.len();
            self.queue.push_back(front);
        }
        self.started = false;
    }

    /// One non-blocking vectored write of what is queued. False when the player is gone.
    fn flush(&mut self) -> bool {
        if self.queue.is_empty() {
            return true;
        }
        // The common case, a player that keeps up: one plain write of the shared batch.
        let written = if let [only] = self.queue.as_slices().0
            && self.queue.len() == 1
        {
            self.sock.try_write(only)
        } else {
            let slices: Vec<IoSlice<'_>> = self
                .queue
                .iter()
                .take(MAX_IOVECS)
                .map(|b| IoSlice::new(b))
                .collect();
            self.sock.try_write_vectored(&slices)
        };
        match written {
            Ok(0) => false,
            Ok(n) => {
                self.consume(n);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(_) => false,
        }
    }

    fn consume(&mut self, mut n: usize) {
        self.queued = self.queued.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            if n < front.len() {
                front.advance(n);
                self.front_partial = true;
                return;
            }
            n -= front.len();
            self.queue.pop_front();
            self.front_partial = false;
        }
    }
}
