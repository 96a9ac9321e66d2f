//! Reading (and discarding) an HTTP request header.

/// Longest request header accepted, terminator included; a longer one closes the connection.
pub const MAX_REQUEST_HEADER_LEN: usize = 8 * 1024;

/// The end of an HTTP header block.
const TERMINATOR: &[u8] = b"\r\n\r\n";

/// What the bytes read so far say about the request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStatus {
    /// The header is complete: it is the first `len` bytes (terminator included).
    Complete {
        /// Header length, `\r\n\r\n` included.
        len: usize,
    },
    /// No terminator yet and still under the limit: read more.
    Partial,
    /// No terminator within `max` bytes.
    TooLong,
}

/// Looks for the `\r\n\r\n` that ends a request header within the first `max` bytes of `buf`.
pub fn header_status(buf: &[u8], max: usize) -> HeaderStatus {
    let window = buf.get(..max).unwrap_or(buf);
    match window
        .windows(TERMINATOR.len())
        .position(|w| w == TERMINATOR)
    {
        Some(pos) => HeaderStatus::Complete {
            len: pos + TERMINATOR.len(),
        },
        None if buf.len() >= max => HeaderStatus::TooLong,
        None => HeaderStatus::Partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: &[u8] =
        b"GET /live/demo.flv HTTP/1.1\r\nHost: 127.0.0.1:8090\r\nUser-Agent: t\r\n\r\n";

    #[test]
    fn complete_request() {
        assert_eq!(
            header_status(GET, MAX_REQUEST_HEADER_LEN),
            HeaderStatus::Complete { len: GET.len() }
        );
    }

    #[test]
    fn trailing_bytes_are_not_part_of_the_header() {
        let mut buf = GET.to_vec();
        buf.extend_from_slice(b"extra");
        assert_eq!(
            header_status(&buf, MAX_REQUEST_HEADER_LEN),
            HeaderStatus::Complete { len: GET.len() }
        );
    }

    #[test]
    fn every_prefix_is_partial() {
        for cut in 0..GET.len() {
            assert_eq!(
                header_status(&GET[..cut], MAX_REQUEST_HEADER_LEN),
                HeaderStatus::Partial,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn bare_newlines_do_not_end_the_header() {
        assert_eq!(
            header_status(b"GET / HTTP/1.1\n\n", MAX_REQUEST_HEADER_LEN),
            HeaderStatus::Partial
        );
    }

    #[test]
    fn too_long() {
        let buf = vec![b'a'; 100];
        assert_eq!(header_status(&buf, 100), HeaderStatus::TooLong);
        assert_eq!(header_status(&buf[..99], 100), HeaderStatus::Partial);
        // A terminator past the limit does not count.
        let mut late = vec![b'a'; 98];
        late.extend_from_slice(b"\r\n\r\n");
        assert_eq!(header_status(&late, 100), HeaderStatus::TooLong);
        // One that ends exactly at the limit does.
        let mut edge = vec![b'a'; 96];
        edge.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            header_status(&edge, 100),
            HeaderStatus::Complete { len: 100 }
        );
    }
}
