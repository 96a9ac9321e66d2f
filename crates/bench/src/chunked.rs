//! Streaming decoder for HTTP/1.1 chunked transfer coding (RFC 9112 section 7.1): hands out
//! data as slices of the input, never buffers it.

use crate::error::{BenchError, Result};

/// Largest chunk size accepted (the decoder streams, so this only rejects nonsense).
pub const MAX_CHUNK_LEN: u64 = 1 << 32;
/// Longest chunk-extension or trailer line skipped.
pub const MAX_LINE_LEN: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `digits` seen so far.
    Size {
        digits: u8,
    },
    /// After the size: whitespace or an extension until CR.
    Ext {
        skipped: u32,
    },
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line.
    TrailerStart,
    TrailerLine {
        skipped: u32,
    },
    EndLf,
    Done,
}

/// Chunked-body decoder state.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
        }
    }

    /// True once the last chunk and trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, calling `out` with each run of body data. Bytes after the end of
    /// the body are ignored.
    pub fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) -> Result<()> {
        let bad = |reason, byte| Err(BenchError::Chunked { reason, byte });
        while let Some((&b, rest)) = input.split_first() {
            match self.state {
                State::Data(n) => {
                    let take = (n.min(input.len() as u64)) as usize;
                    let (data, rest) = input.split_at(take);
                    out(data);
                    input = rest;
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::Done => return Ok(()),
                State::Size { digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        self.size = self.size * 16 + u64::from(d);
                        if self.size > MAX_CHUNK_LEN {
                            return bad("chunk size too large", b);
                        }
                        self.state = State::Size {
                            digits: digits.saturating_add(1),
                        };
                    } else if digits == 0 {
                        return bad("chunk size expected", b);
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if matches!(b, b';' | b' ' | b'\t') {
                        self.state = State::Ext { skipped: 0 };
                    } else {
                        return bad("bad chunk size", b);
                    }
                }
                State::Ext { skipped } => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if skipped >= MAX_LINE_LEN {
                        return bad("chunk extension too long", b);
                    } else {
                        self.state = State::Ext {
                            skipped: skipped + 1,
                        };
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return bad("LF expected after chunk size", b);
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(self.size)
                    };
                    self.size = 0;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return bad("CR expected after chunk data", b);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return bad("LF expected after chunk data", b);
                    }
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' {
                        State::EndLf
                    } else {
                        State::TrailerLine { skipped: 1 }
                    };
                }
                State::TrailerLine { skipped } => {
                    if b == b'\n' {
                        self.state = State::TrailerStart;
                    } else if skipped >= MAX_LINE_LEN {
                        return bad("trailer line too long", b);
                    } else {
                        self.state = State::TrailerLine {
                            skipped: skipped + 1,
                        };
                    }
                }
                State::EndLf => {
                    if b != b'\n' {
                        return bad("LF expected at end of body", b);
                    }
                    self.state = State::Done;
                }
            }
            input = rest;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"4\r\nWiki\r\n7;ext=1\r\npedia i\r\nB\r\nn \r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nextra";

    fn decode_in_pieces(input: &[u8], piece: usize) -> (Vec<u8>, bool) {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for c in input.chunks(piece) {
            d.feed(c, |s| out.extend_from_slice(s)).unwrap();
        }
        (out, d.is_done())
    }

    #[test]
    fn decodes_in_any_split() {
        for piece in 1..=BODY.len() {
            let (out, done) = decode_in_pieces(BODY, piece);
            assert_eq!(out, b"Wikipedia in \r\nchunks.", "piece {piece}");
            assert!(done);
        }
    }

    #[test]
    fn streams_partial_chunks() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        d.feed(b"10\r\n0123", |s| out.extend_from_slice(s)).unwrap();
        assert_eq!(out, b"0123", "data handed out before the chunk ends");
        d.feed(b"456789abcdef\r\n", |s| out.extend_from_slice(s))
            .unwrap();
        assert_eq!(out, b"0123456789abcdef");
        assert!(!d.is_done());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b"\r\n"[..],
            b"zz\r\n",
            b"4\r\nWikiXX",
            b"4\rX",
            b"FFFFFFFFFFFF\r\n",
        ] {
            let mut d = ChunkedDecoder::new();
            assert!(d.feed(bad, |_| {}).is_err(), "{bad:?}");
        }
    }
}
