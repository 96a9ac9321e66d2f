//! HTTP-FLV player: a raw HTTP/1.1 GET, a streaming chunked decoder and the header-only FLV
//! parser; only the first bytes of each video body are ever kept.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{CONNECT_TIMEOUT, READ_BUF, connect_tcp, hold_idle, stall_ticker};
use crate::chunked::ChunkedDecoder;
use crate::cli::Url;
use crate::error::{BenchError, Result};
use crate::flvparse::FlvHeaderParser;
use crate::stats::{PlayerError, PlayerStats, Shared};

/// Longest HTTP response head accepted.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// What the response head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// Length of the head including the blank line.
    pub len: usize,
}

/// Parses a response head from the start of `buf`: `Ok(None)` until the blank line arrived.
pub fn parse_head(buf: &[u8]) -> Result<Option<ResponseHead>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD_LEN {
            return Err(BenchError::HttpHead {
                reason: "head too long",
                len: buf.len(),
            });
        }
        return Ok(None);
    };
    let bad = |reason| BenchError::HttpHead { reason, len: end };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().unwrap_or_default().starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1.x status line"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(bad("bad status code"))?;
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("transfer-encoding")
        {
            chunked = value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    Ok(Some(ResponseHead {
        status,
        chunked,
        len: end + 4,
    }))
}

/// The body decoder: optional chunked coding, then FLV tag headers into the stats.
#[derive(Debug, Default)]
pub struct FlvBody {
    chunked: Option<ChunkedDecoder>,
    flv: FlvHeaderParser,
}

impl FlvBody {
    /// A body decoder; `chunked` from the response head.
    pub fn new(chunked: bool) -> Self {
        Self {
            chunked: chunked.then(ChunkedDecoder::new),
            flv: FlvHeaderParser::new(),
        }
    }

    /// Feeds body bytes received at `now_ns`, reporting tags to `st`.
    pub fn feed(
        &mut self,
        data: &[u8],
        shared: &Shared,
        now_ns: u64,
        st: &mut PlayerStats,
    ) -> Result<()> {
        let flv = &mut self.flv;
        let mut on_data = |d: &[u8]| {
            flv.feed(d, |t| {
                st.media(
                    shared,
                    now_ns,
                    t.tag_type,
                    t.timestamp,
                    t.len as usize,
                    t.prefix,
                )
            })
        };
        match &mut self.chunked {
            None => on_data(data),
            Some(c) => {
                let mut err = None;
                c.feed(data, |d| {
                    if err.is_none()
                        && let Err(e) = on_data(d)
                    {
                        err = Some(e);
                    }
                })?;
                err.map_or(Ok(()), Err)
            }
        }
    }

    /// True once a chunked body ended.
    pub fn is_done(&self) -> bool {
        self.chunked.as_ref().is_some_and(ChunkedDecoder::is_done)
    }
}

/// Plays `url` (or holds an idle TCP connection, when `idle`) until `shared.stop`.
pub async fn play(
    url: &Url,
    shared: &Shared,
    idle: bool,
    st: &mut PlayerStats,
) -> Result<(), PlayerError> {
    let mut sock = connect_tcp(url).await?;
    if idle {
        st.connected(shared, shared.now_ns());
        return hold_idle(sock, shared, st).await;
    }
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sluice-bench\r\nAccept: */*\r\n\r\n",
        url.path,
        url.authority()
    );
    sock.write_all(req.as_bytes())
        .await
        .map_err(|_| PlayerError::ConnectFailed)?;
    let mut buf = vec![0u8; READ_BUF];
    let mut head: Vec<u8> = Vec::new();
    let mut body: Option<FlvBody> = None;
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut ticker = stall_ticker();
    let stop = shared.stop.cancelled();
    tokio::pin!(stop);
    loop {
        let n = tokio::select! {
            biased;
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep_until(deadline), if body.is_none() => {
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
        let now = shared.now_ns();
        let data = buf.get(..n).unwrap_or_default();
        match &mut body {
            Some(b) => {
                b.feed(data, shared, now, st)
                    .map_err(|_| PlayerError::Protocol)?;
                if b.is_done() {
                    return Err(PlayerError::ClosedEarly);
                }
            }
            None => {
                head.extend_from_slice(data);
                let Some(h) = parse_head(&head).map_err(|_| PlayerError::Protocol)? else {
                    continue;
                };
                if h.status != 200 {
                    return Err(PlayerError::Refused);
                }
                st.connected(shared, now);
                let mut b = FlvBody::new(h.chunked);
                b.feed(head.get(h.len..).unwrap_or_default(), shared, now, st)
                    .map_err(|_| PlayerError::Protocol)?;
                head = Vec::new();
                body = Some(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\nFLV";
        let h = parse_head(r).unwrap().unwrap();
        assert_eq!((h.status, h.chunked, h.len), (200, true, r.len() - 3));
        let h = parse_head(b"HTTP/1.0 404 Not Found\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.chunked), (404, false));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nX: y\r\n").unwrap(), None);
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_head(&[b'a'; MAX_HEAD_LEN + 1]).is_err());
    }

    #[test]
    fn chunked_flv_body_in_odd_pieces() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/demo.flv"
        ))
        .unwrap();
        let video = flv::read_all_tags(&file)
            .unwrap()
            .iter()
            .filter(|t| {
                t.tag_type == flv::TAG_VIDEO && !crate::publish::is_config_tag(t.tag_type, &t.body)
            })
            .count() as u64;
        // Coded video frames only: the sequence header is not a frame.
        // Chunk the file in 1000-byte chunks, then deliver the coded body in 333-byte reads.
        let mut coded = Vec::new();
        for c in file.chunks(1000) {
            coded.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            coded.extend_from_slice(c);
            coded.extend_from_slice(b"\r\n");
        }
        let shared = Shared::new(None);
        let mut st = PlayerStats::new(0);
        let mut b = FlvBody::new(true);
        for piece in coded.chunks(333) {
            b.feed(piece, &shared, 1, &mut st).unwrap();
        }
        assert_eq!(st.video_frames, video);
        assert!(st.first_frame_ns.is_some());
        assert!(!b.is_done());
        b.feed(b"0\r\n\r\n", &shared, 1, &mut st).unwrap();
        assert!(b.is_done());
    }
}
