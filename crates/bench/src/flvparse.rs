//! Incremental, header-only FLV parser for players: it never buffers a tag body, only the
//! first [`FINGERPRINT_PREFIX`] bytes of each video body (for latency matching).

use crate::error::{BenchError, Result};
use crate::fingerprint::FINGERPRINT_PREFIX;

/// Largest FLV DataOffset accepted (real files use 9).
pub const MAX_HEADER_LEN: u32 = flv::MAX_HEADER_LEN;
/// Largest tag body accepted.
pub const MAX_TAG_LEN: u32 = flv::MAX_TAG_LEN;

const FILE_HEADER_LEN: usize = 9;
const TAG_HEADER_LEN: usize = 11;
const PREV_SIZE_LEN: usize = 4;

/// One tag seen by [`FlvHeaderParser`], reported once its body is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagSeen<'a> {
    /// Tag type (8 audio, 9 video, 18 script, ...).
    pub tag_type: u8,
    /// Timestamp (ms) including the extended byte.
    pub timestamp: u32,
    /// Body length.
    pub len: u32,
    /// The first bytes of the body: up to [`FINGERPRINT_PREFIX`] for video tags (latency
    /// matching), [`AUDIO_PREFIX`] for audio tags (enough to tell a sequence header), none
    /// for other tags.
    pub prefix: &'a [u8],
}

/// Bytes of an audio body kept: sound format and AAC packet type.
pub const AUDIO_PREFIX: usize = 2;

/// How many leading body bytes are kept for a tag type.
fn prefix_len_for(tag_type: u8) -> usize {
    match tag_type {
        flv::TAG_VIDEO => FINGERPRINT_PREFIX,
        flv::TAG_AUDIO => AUDIO_PREFIX,
        _ => 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FileHeader,
    /// Skipping the rest of the header and PreviousTagSize0.
    Skip(u32),
    TagHeader,
    Body(u32),
    PrevSize,
}

/// Push-bytes FLV parser that reports tag headers (see [`TagSeen`]); about 120 bytes of
/// state, whatever the tag sizes.
#[derive(Debug, Clone)]
pub struct FlvHeaderParser {
    state: State,
    head: [u8; TAG_HEADER_LEN],
    have: usize,
    tag_type: u8,
    timestamp: u32,
    len: u32,
    prefix: [u8; FINGERPRINT_PREFIX],
    prefix_len: usize,
}

impl Default for FlvHeaderParser {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvHeaderParser {
    /// A parser expecting the FLV file header.
    pub fn new() -> Self {
        Self {
            state: State::FileHeader,
            head: [0; TAG_HEADER_LEN],
            have: 0,
            tag_type: 0,
            timestamp: 0,
            len: 0,
            prefix: [0; FINGERPRINT_PREFIX],
            prefix_len: 0,
        }
    }

    /// Feeds bytes; calls `on_tag` for every tag whose body completes in them. An error
    /// means the stream is corrupt (the parser should be dropped).
    pub fn feed(&mut self, mut data: &[u8], mut on_tag: impl FnMut(TagSeen<'_>)) -> Result<()> {
        while !data.is_empty() {
            match self.state {
                State::FileHeader | State::TagHeader | State::PrevSize => {
                    let need = match self.state {
                        State::FileHeader => FILE_HEADER_LEN,
                        State::TagHeader => TAG_HEADER_LEN,
                        _ => PREV_SIZE_LEN,
                    };
                    let take = (need - self.have).min(data.len());
                    let (now, rest) = data.split_at(take);
                    // have + take <= need <= head.len()
                    self.head[self.have..self.have + take].copy_from_slice(now);
                    self.have += take;
                    data = rest;
                    if self.have == need {
                        self.have = 0;
                        self.header_done()?;
                        if self.state == State::Body(0) {
                            self.emit(&mut on_tag);
                        }
                    }
                }
                State::Skip(n) => {
                    let take = (n as usize).min(data.len());
                    data = &data[take..];
                    let left = n - take as u32;
                    self.state = if left == 0 {
                        State::TagHeader
                    } else {
                        State::Skip(left)
                    };
                }
                State::Body(n) => {
                    let take = (n as usize).min(data.len());
                    let (now, rest) = data.split_at(take);
                    let keep = prefix_len_for(self.tag_type);
                    if self.prefix_len < keep {
                        let k = (keep - self.prefix_len).min(now.len());
                        self.prefix[self.prefix_len..self.prefix_len + k]
                            .copy_from_slice(&now[..k]);
                        self.prefix_len += k;
                    }
                    data = rest;
                    // take <= n
                    let left = n - take as u32;
                    self.state = State::Body(left);
                    if left == 0 {
                        self.emit(&mut on_tag);
                    }
                }
            }
        }
        Ok(())
    }

    fn emit(&mut self, on_tag: &mut impl FnMut(TagSeen<'_>)) {
        on_tag(TagSeen {
            tag_type: self.tag_type,
            timestamp: self.timestamp,
            len: self.len,
            prefix: &self.prefix[..self.prefix_len],
        });
        self.state = State::PrevSize;
    }

    /// A fixed-size piece (file header, tag header, PreviousTagSize) is complete in `head`.
    fn header_done(&mut self) -> Result<()> {
        let h = self.head;
        match self.state {
            State::FileHeader => {
                if &h[..3] != b"FLV" {
                    return Err(BenchError::FlvStream {
                        reason: "bad signature",
                        value: u64::from(u32::from_be_bytes([0, h[0], h[1], h[2]])),
                    });
                }
                let off = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
                if !(FILE_HEADER_LEN as u32..=MAX_HEADER_LEN).contains(&off) {
                    return Err(BenchError::FlvStream {
                        reason: "bad DataOffset",
                        value: u64::from(off),
                    });
                }
                self.state = State::Skip(off - FILE_HEADER_LEN as u32 + PREV_SIZE_LEN as u32);
            }
            State::TagHeader => {
                self.tag_type = h[0] & 0x1F;
                self.len = u32::from_be_bytes([0, h[1], h[2], h[3]]);
                self.timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
                if self.len > MAX_TAG_LEN {
                    return Err(BenchError::FlvStream {
                        reason: "tag too large",
                        value: u64::from(self.len),
                    });
                }
                self.prefix_len = 0;
                self.state = State::Body(self.len);
            }
            State::PrevSize => {
                let found = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
                if found != self.len + TAG_HEADER_LEN as u32 {
                    return Err(BenchError::FlvStream {
                        reason: "bad PreviousTagSize",
                        value: u64::from(found),
                    });
                }
                self.state = State::TagHeader;
            }
            State::Skip(_) | State::Body(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/demo.flv"
        ))
        .unwrap()
    }

    type Seen = (u8, u32, u32, Vec<u8>);

    fn parse_in_pieces(file: &[u8], piece: usize) -> Vec<Seen> {
        let mut p = FlvHeaderParser::new();
        let mut out = Vec::new();
        for c in file.chunks(piece) {
            p.feed(c, |t| {
                out.push((t.tag_type, t.timestamp, t.len, t.prefix.to_vec()))
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn matches_flv_reader_in_any_split() {
        let file = fixture();
        let want: Vec<Seen> = flv::read_all_tags(&file)
            .unwrap()
            .into_iter()
            .map(|t| {
                let prefix = t.body[..t.body.len().min(prefix_len_for(t.tag_type))].to_vec();
                (t.tag_type, t.timestamp, t.body.len() as u32, prefix)
            })
            .collect();
        assert!(want.len() > 100);
        for piece in 1..=97 {
            assert_eq!(parse_in_pieces(&file, piece), want, "piece size {piece}");
        }
        assert_eq!(parse_in_pieces(&file, file.len()), want);
    }

    #[test]
    fn wire_fixture_with_extended_timestamp_and_empty_tag() {
        let bytes: &[u8] = &[
            b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0, // header + PTS0
            9, 0, 0, 2, 0, 0, 0x10, 0x01, 0, 0, 0, 0x17, 0x01, 0, 0, 0, 13, // video
            8, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 11, // empty audio tag
        ];
        let mut seen = Vec::new();
        FlvHeaderParser::new()
            .feed(bytes, |t| {
                seen.push((t.tag_type, t.timestamp, t.len, t.prefix.to_vec()))
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![(9, 0x0100_0010, 2, vec![0x17, 0x01]), (8, 0x20, 0, vec![])]
        );
    }

    #[test]
    fn rejects_garbage() {
        let mut p = FlvHeaderParser::new();
        assert!(p.feed(b"GET / HTTP/1.1", |_| {}).is_err());
        let mut p = FlvHeaderParser::new();
        let big = [
            b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0, 9, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0,
            0,
        ];
        assert!(p.feed(&big, |_| {}).is_err());
        let mut p = FlvHeaderParser::new();
        let bad_prev = [
            b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0, 8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xAF,
            0, 0, 0, 99,
        ];
        assert!(p.feed(&bad_prev, |_| {}).is_err());
    }
}
