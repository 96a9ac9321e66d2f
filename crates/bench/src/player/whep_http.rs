//! The WHEP signalling a viewer needs: one HTTP/1.1 request per TCP connection
//! (`Connection: close`), a bounded response reader, and `Location` resolution.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::Url;
use crate::error::{BenchError, Result};

/// Longest WHEP response (head + SDP answer) read; the server's answers are a few KB.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;

/// A whole HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The body (at most `Content-Length` bytes, or to the end of the connection).
    pub body: String,
}

/// Parses a complete response (the connection ended or `Content-Length` bytes arrived):
/// `Ok(None)` while more bytes are needed, i.e. the head is incomplete or the body is
/// shorter than `Content-Length` and `eof` is false.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if eof || buf.len() > MAX_RESPONSE_LEN {
            return Err(BenchError::HttpHead {
                reason: "no complete response head",
                len: buf.len(),
            });
        }
        return Ok(None);
    };
    let bad = |reason| BenchError::HttpHead { reason, len: end };
    let head =
        std::str::from_utf8(buf.get(..end).unwrap_or_default()).map_err(|_| bad("not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().splitn(3, ' ');
    if !parts.next().unwrap_or_default().starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1.x status line"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(bad("bad status code"))?;
    let (mut location, mut content_length) = (None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("location") {
            location = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| bad("bad Content-Length"))?;
            if n > MAX_RESPONSE_LEN {
                return Err(bad("Content-Length over MAX_RESPONSE_LEN"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("Transfer-Encoding not supported for WHEP answers"));
        }
    }
    let body = buf.get(end + 4..).unwrap_or_default();
    let body = match content_length {
        Some(n) if body.len() >= n => body.get(..n).unwrap_or_default(),
        Some(_) if !eof => return Ok(None),
        Some(_) => return Err(bad("connection closed inside the body")),
        None if !eof => return Ok(None),
        None => body,
    };
    let body = String::from_utf8(body.to_vec()).map_err(|_| bad("body not UTF-8"))?;
    Ok(Some(Response {
        status,
        location,
        body,
    }))
}

/// Where a `Location` header points: `(authority, path)` for the next request.
/// Absolute `http://` URLs, absolute paths and paths relative to `base`'s path
/// (RFC 3986 merge: replace the last segment) are accepted.
pub fn resolve_location(base: &Url, location: &str) -> Result<(String, String)> {
    if location.contains("://") {
        let u = Url::parse(location)?;
        return Ok((u.authority(), u.path));
    }
    if location.is_empty() {
        return Err(BenchError::HttpHead {
            reason: "empty Location",
            len: 0,
        });
    }
    if location.starts_with('/') {
        return Ok((base.authority(), location.to_owned()));
    }
    let dir = base.path.split('?').next().unwrap_or_default();
    let dir = dir.rsplit_once('/').map_or("", |(d, _)| d);
    Ok((base.authority(), format!("{dir}/{location}")))
}

/// Sends one request (`Connection: close`) to `authority` and reads the whole response
/// (at most [`MAX_RESPONSE_LEN`] bytes). The caller bounds the time.
pub async fn request(
    authority: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> Result<Response> {
    let mut sock = tokio::net::TcpStream::connect(authority).await?;
    let _ = sock.set_nodelay(true);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: sluice-bench\r\n\
         Connection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    sock.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await?;
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(r) = parse_response(&buf, n == 0)? {
            return Ok(r);
        }
        if buf.len() > MAX_RESPONSE_LEN {
            return Err(BenchError::HttpHead {
                reason: "response over MAX_RESPONSE_LEN",
                len: buf.len(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "HTTP/1.1 201 Created\r\ncontent-type: application/sdp\r\n\
        location: /live/demo/whep/00ff\r\netag: \"1-00ff\"\r\ncontent-length: 5\r\n\r\nv=0\r\n";

    #[test]
    fn parses_created_answer_in_pieces() {
        let b = ANSWER.as_bytes();
        // Every prefix short of the whole is incomplete, never an error.
        for cut in 0..b.len() {
            assert_eq!(parse_response(&b[..cut], false).unwrap(), None, "cut {cut}");
        }
        let r = parse_response(b, false).unwrap().unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.location.as_deref(), Some("/live/demo/whep/00ff"));
        assert_eq!(r.body, "v=0\r\n");
        // Bytes past Content-Length are not body.
        let mut more = b.to_vec();
        more.extend_from_slice(b"junk");
        assert_eq!(
            parse_response(&more, true).unwrap().unwrap().body,
            "v=0\r\n"
        );
    }

    #[test]
    fn body_to_eof_and_errors() {
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\n{\"code\":1}", true)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.status, r.location, r.body.as_str()),
            (404, None, "{\"code\":1}")
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\nab", false).unwrap(),
            None
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n", true).is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n", true).is_err());
        assert!(parse_response(b"HTTP/1.1 2x OK\r\n\r\n", true).is_err());
        let short = b"HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\nv=0";
        assert!(parse_response(short, true).is_err());
        let huge = format!(
            "HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n",
            MAX_RESPONSE_LEN + 1
        );
        assert!(parse_response(huge.as_bytes(), false).is_err());
        let chunked = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(parse_response(chunked, false).is_err());
        assert!(parse_response(&[b'a'; MAX_RESPONSE_LEN + 1], false).is_err());
    }

    #[test]
    fn resolves_locations() {
        let base = Url::parse("http://127.0.0.1:8080/live/demo/whep?token=t").unwrap();
        let r = |l| resolve_location(&base, l).unwrap();
        assert_eq!(
            r("/live/demo/whep/ab"),
            ("127.0.0.1:8080".into(), "/live/demo/whep/ab".into())
        );
        assert_eq!(
            r("whep/ab"),
            ("127.0.0.1:8080".into(), "/live/demo/whep/ab".into())
        );
        assert_eq!(
            r("http://[::1]:9000/x/y"),
            ("[::1]:9000".into(), "/x/y".into())
        );
        assert!(resolve_location(&base, "").is_err());
        assert!(resolve_location(&base, "ftp://h/x").is_err());
    }
}
