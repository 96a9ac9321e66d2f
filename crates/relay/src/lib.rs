//! The cluster relay's wire framing: a node's hub frames carried to another node, sans-IO.
//!
//! An edge node pulls a stream from its owner over one HTTP response body. The body is the
//! [`MAGIC`] preamble, then records, each a big-endian `u32` length (of what follows it) and
//! a type byte:
//!
//! ```text
//! record    = len:u32 type:u8 rest
//! FRAME (1) = kind:u8 role:u8 flags:u8 codec:u8 codec_id:u32 dts:u64 cts:i32 offset:u32 body
//! KEEPALIVE (2), END (3): nothing after the type
//! ```
//!
//! A frame travels as the hub carries it: its FLV tag body untouched (every codec the hub
//! knows, sequence headers and metadata included), its hub-timeline `dts`, `cts`, keyframe
//! flag and payload offset, so the edge's hub sees exactly what the owner's hub saw. The
//! owner sends `KEEPALIVE` when it has had no frame to send for a while (the edge times the
//! connection out on silence) and `END` when the stream ended (the edge then stops instead
//! of reconnecting).
//!
//! [`Decoder`] is a pure state machine: push bytes in, take [`Message`]s out; "need more
//! bytes" is `Ok(None)`. Every length is checked against [`MAX_RECORD_LEN`] before anything
//! is allocated, and a body is a zero-copy slice of the received bytes.
#![forbid(unsafe_code)]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use media::{Codec, Frame, FrameRole, MediaKind, WireCache};

/// The first bytes of every relay body: the protocol and its version, so an edge talking to
/// a node of another version (or to something that is not a relay) fails at once.
pub const MAGIC: [u8; 8] = *b"SLRELAY1";

/// Bytes of a frame record's fixed header after the type byte.
pub const FRAME_HEADER_LEN: usize = 24;

/// Largest record (its length field), in bytes: an RTMP message carries at most 16 MiB
/// (a 24-bit length) and the hub carries FLV bodies of that size at most; the frame header
/// comes on top. Anything longer is a broken or hostile peer.
pub const MAX_RECORD_LEN: usize = (16 << 20) + 1 + FRAME_HEADER_LEN;

const TYPE_FRAME: u8 = 1;
const TYPE_KEEPALIVE: u8 = 2;
const TYPE_END: u8 = 3;

/// Errors of the relay framing; each ends that one relay connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The body does not start with [`MAGIC`].
    #[error("not a relay stream (bad preamble)")]
    BadMagic,
    /// A record's length is zero or above [`MAX_RECORD_LEN`].
    #[error("relay record of {0} bytes (1..={MAX_RECORD_LEN})")]
    BadLength(usize),
    /// An unknown record type.
    #[error("unknown relay record type {0}")]
    UnknownType(u8),
    /// A record whose fields do not make sense.
    #[error("malformed relay record: {0}")]
    Malformed(&'static str),
    /// More bytes were pushed than one record can need: the caller did not drain
    /// [`Decoder::next_message`] between pushes.
    #[error("relay decoder buffer over its bound")]
    Overflow,
}

/// One decoded record.
#[derive(Debug, Clone)]
pub enum Message {
    /// A hub frame, as the owner's hub carried it.
    Frame(Frame),
    /// Nothing to send for a while; the connection is alive.
    Keepalive,
    /// The stream ended on the owner.
    End,
}

/// Writes the preamble that starts every relay body.
pub fn encode_preamble(out: &mut BytesMut) {
    out.put_slice(&MAGIC);
}

/// Writes one frame record (the body is copied once, into `out`).
pub fn encode_frame(frame: &Frame, out: &mut BytesMut) {
    let len = 1 + FRAME_HEADER_LEN + frame.body.len();
    out.reserve(4 + len);
    out.put_u32(len as u32);
    out.put_u8(TYPE_FRAME);
    out.put_u8(kind_tag(frame.kind));
    out.put_u8(role_tag(frame.role));
    out.put_u8(u8::from(frame.keyframe));
    let (tag, id) = codec_tag(frame.codec);
    out.put_u8(tag);
    out.put_u32(id);
    out.put_u64(frame.dts);
    out.put_i32(frame.cts);
    out.put_u32(frame.payload_offset.min(frame.body.len()) as u32);
    out.put_slice(&frame.body);
}

/// Writes a keepalive record.
pub fn encode_keepalive(out: &mut BytesMut) {
    out.put_u32(1);
    out.put_u8(TYPE_KEEPALIVE);
}

/// Writes the end-of-stream record.
pub fn encode_end(out: &mut BytesMut) {
    out.put_u32(1);
    out.put_u8(TYPE_END);
}

/// The receiving side: bytes in, [`Message`]s out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
    preamble_seen: bool,
}

impl Decoder {
    /// A decoder expecting the preamble.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes. Call [`Decoder::next_message`] until it returns `Ok(None)`
    /// before pushing more: the decoder then never holds more than one partial record and
    /// the last push.
    pub fn push(&mut self, data: &[u8]) -> Result<(), RelayError> {
        if self.buf.len() > 4 + MAX_RECORD_LEN {
            return Err(RelayError::Overflow);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete record, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, RelayError> {
        if !self.preamble_seen {
            let n = self.buf.len().min(MAGIC.len());
            if self.buf[..n] != MAGIC[..n] {
                return Err(RelayError::BadMagic);
            }
            if n < MAGIC.len() {
                return Ok(None);
            }
            self.buf.advance(MAGIC.len());
            self.preamble_seen = true;
        }
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len == 0 || len > MAX_RECORD_LEN {
            return Err(RelayError::BadLength(len));
        }
        if self.buf.len() < 4 + len {
            // Reserve what the record still needs (bounded above), so pushes do not regrow.
            self.buf.reserve(4 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(4);
        let mut record = self.buf.split_to(len).freeze();
        let ty = record.get_u8();
        match ty {
            TYPE_FRAME => decode_frame(record).map(|f| Some(Message::Frame(f))),
            TYPE_KEEPALIVE | TYPE_END if !record.is_empty() => Err(RelayError::Malformed(
                "bytes after a keepalive or end record",
            )),
            TYPE_KEEPALIVE => Ok(Some(Message::Keepalive)),
            TYPE_END => Ok(Some(Message::End)),
            other => Err(RelayError::UnknownType(other)),
        }
    }
}

fn decode_frame(mut r: Bytes) -> Result<Frame, RelayError> {
    if r.len() < FRAME_HEADER_LEN {
        return Err(RelayError::Malformed(
            "frame record shorter than its header",
        ));
    }
    let kind = match r.get_u8() {
        0 => MediaKind::Audio,
        1 => MediaKind::Video,
        2 => MediaKind::Data,
        _ => return Err(RelayError::Malformed("unknown media kind")),
    };
    let role = match r.get_u8() {
        0 => FrameRole::SequenceHeader,
        1 => FrameRole::Coded,
        2 => FrameRole::SequenceEnd,
        3 => FrameRole::Metadata,
        _ => return Err(RelayError::Malformed("unknown frame role")),
    };
    let keyframe = match r.get_u8() {
        0 => false,
        1 => true,
        _ => return Err(RelayError::Malformed("unknown frame flags")),
    };
    let tag = r.get_u8();
    let id = r.get_u32();
    let codec = match (tag, id) {
        (0, 0) => Codec::H264,
        (1, 0) => Codec::H265,
        (2, 0) => Codec::Av1,
        (3, 0) => Codec::Vp9,
        (4, 0) => Codec::Vp8,
        (5, 0) => Codec::Aac,
        (6, 0) => Codec::Mp3,
        (7, 0) => Codec::Opus,
        (8, 0) => Codec::Script,
        (255, id) => Codec::Other(id),
        _ => return Err(RelayError::Malformed("unknown codec")),
    };
    let dts = r.get_u64();
    let cts = r.get_i32();
    let payload_offset = r.get_u32() as usize;
    if payload_offset > r.len() {
        return Err(RelayError::Malformed("payload offset beyond the body"));
    }
    Ok(Frame {
        kind,
        codec,
        role,
        dts,
        cts,
        keyframe,
        body: r,
        payload_offset,
        wire: WireCache::default(),
        arrival: None,
    })
}

fn kind_tag(kind: MediaKind) -> u8 {
    match kind {
        MediaKind::Audio => 0,
        MediaKind::Video => 1,
        MediaKind::Data => 2,
    }
}

fn role_tag(role: FrameRole) -> u8 {
    match role {
        FrameRole::SequenceHeader => 0,
        FrameRole::Coded => 1,
        FrameRole::SequenceEnd => 2,
        FrameRole::Metadata => 3,
    }
}

fn codec_tag(codec: Codec) -> (u8, u32) {
    match codec {
        Codec::H264 => (0, 0),
        Codec::H265 => (1, 0),
        Codec::Av1 => (2, 0),
        Codec::Vp9 => (3, 0),
        Codec::Vp8 => (4, 0),
        Codec::Aac => (5, 0),
        Codec::Mp3 => (6, 0),
        Codec::Opus => (7, 0),
        Codec::Script => (8, 0),
        Codec::Other(id) => (255, id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: MediaKind, codec: Codec, role: FrameRole, dts: u64, body: &[u8]) -> Frame {
        Frame {
            kind,
            codec,
            role,
            dts,
            cts: -40,
            keyframe: role != FrameRole::Coded || dts == 0,
            body: Bytes::copy_from_slice(body),
            payload_offset: body.len().min(5),
            wire: WireCache::default(),
            arrival: None,
        }
    }

    fn same(a: &Frame, b: &Frame) -> bool {
        a.kind == b.kind
            && a.codec == b.codec
            && a.role == b.role
            && a.dts == b.dts
            && a.cts == b.cts
            && a.keyframe == b.keyframe
            && a.body == b.body
            && a.payload_offset == b.payload_offset
    }

    fn all_frames() -> Vec<Frame> {
        let mut v = Vec::new();
        for (i, codec) in [
            Codec::H264,
            Codec::H265,
            Codec::Av1,
            Codec::Vp9,
            Codec::Vp8,
            Codec::Aac,
            Codec::Mp3,
            Codec::Opus,
            Codec::Script,
            Codec::Other(u32::from_be_bytes(*b"fLaC")),
        ]
        .into_iter()
        .enumerate()
        {
            let kind = match codec {
                Codec::Aac | Codec::Mp3 | Codec::Opus => MediaKind::Audio,
                Codec::Script => MediaKind::Data,
                _ => MediaKind::Video,
            };
            for role in [
                FrameRole::SequenceHeader,
                FrameRole::Coded,
                FrameRole::SequenceEnd,
                FrameRole::Metadata,
            ] {
                v.push(frame(kind, codec, role, i as u64 * 1000, &[i as u8; 9]));
            }
        }
        v.push(frame(
            MediaKind::Video,
            Codec::H264,
            FrameRole::Coded,
            u64::MAX,
            b"",
        ));
        v
    }

    fn encode_all(frames: &[Frame]) -> BytesMut {
        let mut out = BytesMut::new();
        encode_preamble(&mut out);
        for f in frames {
            encode_frame(f, &mut out);
        }
        encode_keepalive(&mut out);
        encode_end(&mut out);
        out
    }

    #[test]
    fn every_codec_and_role_round_trips() {
        let frames = all_frames();
        let wire = encode_all(&frames);
        let mut d = Decoder::new();
        d.push(&wire).unwrap();
        for f in &frames {
            match d.next_message().unwrap() {
                Some(Message::Frame(g)) => assert!(same(f, &g), "{f:?} != {g:?}"),
                other => panic!("expected a frame, got {other:?}"),
            }
        }
        assert!(matches!(d.next_message(), Ok(Some(Message::Keepalive))));
        assert!(matches!(d.next_message(), Ok(Some(Message::End))));
        assert!(matches!(d.next_message(), Ok(None)));
    }

    #[test]
    fn byte_at_a_time_gives_the_same_messages() {
        let frames = all_frames();
        let wire = encode_all(&frames);
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            d.push(&[*b]).unwrap();
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), frames.len() + 2);
        for (f, m) in frames.iter().zip(&got) {
            let Message::Frame(g) = m else {
                panic!("expected a frame")
            };
            assert!(same(f, g));
        }
        assert!(matches!(got[frames.len() + 1], Message::End));
    }

    #[test]
    fn bad_preamble_is_refused_early() {
        let mut d = Decoder::new();
        d.push(b"HTTP/1.1").unwrap();
        assert_eq!(d.next_message().unwrap_err(), RelayError::BadMagic);
        let mut d = Decoder::new();
        d.push(b"SLR").unwrap();
        assert!(
            d.next_message().unwrap().is_none(),
            "a prefix of the magic waits"
        );
        d.push(b"x").unwrap();
        assert_eq!(d.next_message().unwrap_err(), RelayError::BadMagic);
    }

    fn with_record(record: &[u8]) -> Result<Option<Message>, RelayError> {
        let mut d = Decoder::new();
        d.push(&MAGIC).unwrap();
        d.push(record).unwrap();
        d.next_message()
    }

    #[test]
    fn lengths_are_bounded_before_allocating() {
        assert_eq!(
            with_record(&[0, 0, 0, 0]).unwrap_err(),
            RelayError::BadLength(0)
        );
        let too_long = (MAX_RECORD_LEN as u32 + 1).to_be_bytes();
        assert_eq!(
            with_record(&too_long).unwrap_err(),
            RelayError::BadLength(MAX_RECORD_LEN + 1)
        );
        // A maximal length only waits for bytes.
        assert!(
            with_record(&(MAX_RECORD_LEN as u32).to_be_bytes())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn malformed_records_are_errors() {
        assert_eq!(
            with_record(&[0, 0, 0, 1, 9]).unwrap_err(),
            RelayError::UnknownType(9)
        );
        assert!(matches!(
            with_record(&[0, 0, 0, 2, TYPE_KEEPALIVE, 0]),
            Err(RelayError::Malformed(_))
        ));
        // A frame record shorter than its header.
        assert!(matches!(
            with_record(&[0, 0, 0, 3, TYPE_FRAME, 0, 0]),
            Err(RelayError::Malformed(_))
        ));
        // A payload offset past the body, a bad kind, a codec id on a known codec.
        let f = frame(MediaKind::Video, Codec::H264, FrameRole::Coded, 5, b"abc");
        let mut out = BytesMut::new();
        encode_frame(&f, &mut out);
        let mut bad = out.to_vec();
        bad[4 + 1 + 20..4 + 1 + 24].copy_from_slice(&4u32.to_be_bytes());
        assert!(matches!(with_record(&bad), Err(RelayError::Malformed(_))));
        let mut bad = out.to_vec();
        bad[5] = 7;
        assert!(matches!(with_record(&bad), Err(RelayError::Malformed(_))));
        let mut bad = out.to_vec();
        bad[4 + 1 + 4..4 + 1 + 8].copy_from_slice(&1u32.to_be_bytes());
        assert!(matches!(with_record(&bad), Err(RelayError::Malformed(_))));
    }

    #[test]
    fn an_undrained_decoder_refuses_more() {
        let mut d = Decoder::new();
        d.push(&MAGIC).unwrap();
        let big = vec![0u8; 4 + MAX_RECORD_LEN + 1];
        d.push(&big).unwrap();
        assert_eq!(d.push(b"x").unwrap_err(), RelayError::Overflow);
    }

    #[test]
    fn bodies_are_slices_of_the_received_bytes() {
        let f = frame(MediaKind::Audio, Codec::Aac, FrameRole::Coded, 7, &[1; 100]);
        let mut out = BytesMut::new();
        encode_preamble(&mut out);
        encode_frame(&f, &mut out);
        let mut d = Decoder::new();
        d.push(&out).unwrap();
        let Some(Message::Frame(g)) = d.next_message().unwrap() else {
            panic!("a frame")
        };
        assert_eq!(g.payload(), f.payload());
        assert_eq!(g.payload().len(), 95);
    }
}
