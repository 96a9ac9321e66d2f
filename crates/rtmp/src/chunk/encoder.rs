//! Chunk encoding. Always fmt 0 for the first chunk, type 3 for the rest.

use bytes::{BufMut, Bytes, BytesMut};

use super::{DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP};

/// Longest payload a message header can describe (24-bit length).
/// Longer payloads passed to the encoder are truncated to this.
pub const MAX_ENCODED_LEN: usize = 0xFF_FFFF;

/// Writes a basic header (1, 2 or 3 bytes). `csid` is clamped to 2..=65599.
pub fn write_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let csid = csid.clamp(super::MIN_CSID, super::MAX_CSID);
    let fmt = (fmt & 3) << 6;
    if csid < 64 {
        out.put_u8(fmt | csid as u8);
    } else if csid < 64 + 256 {
        out.put_u8(fmt);
        out.put_u8((csid - 64) as u8);
    } else {
        out.put_u8(fmt | 1);
        let v = csid - 64;
        out.put_u8((v & 0xFF) as u8);
        out.put_u8((v >> 8) as u8);
    }
}

/// Writes a fmt-0 chunk header, with the 4-byte extended timestamp when
/// `timestamp >= 0xFFFFFF`. `msg_len` is masked to 24 bits.
pub fn write_message_header(
    out: &mut BytesMut,
    csid: u32,
    timestamp: u32,
    msg_len: u32,
    msg_type: u8,
    stream_id: u32,
) {
    write_basic_header(out, 0, csid);
    out.put_uint(u64::from(timestamp.min(EXTENDED_TIMESTAMP)), 3);
    out.put_uint(u64::from(msg_len & 0xFF_FFFF), 3);
    out.put_u8(msg_type);
    out.put_u32_le(stream_id);
    if timestamp >= EXTENDED_TIMESTAMP {
        out.put_u32(timestamp);
    }
}

fn pieces(payload: &[u8], chunk_size: u32) -> impl Iterator<Item = &[u8]> {
    let size = (chunk_size.max(1) as usize).max(1);
    let payload = &payload[..payload.len().min(MAX_ENCODED_LEN)];
    payload.chunks(size)
}

/// The payload split at `chunk_size` with a type-3 basic header between
/// pieces and no extended timestamps: what follows [`write_message_header`]
/// when the timestamp is below 0xFFFFFF. Built once, shared by every viewer.
pub fn chunk_body(payload: &[u8], chunk_size: u32, csid: u32) -> Bytes {
    let size = chunk_size.max(1) as usize;
    let mut out = BytesMut::with_capacity(payload.len() + payload.len() / size * 3 + 3);
    for (i, p) in pieces(payload, chunk_size).enumerate() {
        if i > 0 {
            write_basic_header(&mut out, 3, csid);
        }
        out.put_slice(p);
    }
    out.freeze()
}

/// Encodes a whole message: fmt-0 header, then type-3 continuation chunks
/// (repeating the extended timestamp on them when the timestamp needs one).
pub fn encode_message(
    out: &mut BytesMut,
    csid: u32,
    timestamp: u32,
    msg_type: u8,
    stream_id: u32,
    payload: &[u8],
    chunk_size: u32,
) {
    let len = payload.len().min(MAX_ENCODED_LEN) as u32;
    write_message_header(out, csid, timestamp, len, msg_type, stream_id);
    for (i, p) in pieces(payload, chunk_size).enumerate() {
        if i > 0 {
            write_basic_header(out, 3, csid);
            if timestamp >= EXTENDED_TIMESTAMP {
                out.put_u32(timestamp);
            }
        }
        out.put_slice(p);
    }
}

/// Stateful encoder that remembers the outgoing chunk size.
#[derive(Debug, Clone)]
pub struct ChunkEncoder {
    chunk_size: u32,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkEncoder {
    /// An encoder at the default chunk size (128).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current outgoing chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the outgoing chunk size (call after sending Set Chunk Size).
    /// Clamped to 1..=0x7FFFFFFF.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, super::MAX_CHUNK_SIZE);
    }

    /// Encodes one message at the current chunk size.
    pub fn encode(
        &self,
        out: &mut BytesMut,
        csid: u32,
        timestamp: u32,
        msg_type: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        encode_message(
            out,
            csid,
            timestamp,
            msg_type,
            stream_id,
            payload,
            self.chunk_size,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_headers() {
        let mut b = BytesMut::new();
        write_basic_header(&mut b, 3, 3);
        write_basic_header(&mut b, 0, 64);
        write_basic_header(&mut b, 1, 319);
        write_basic_header(&mut b, 2, 320);
        write_basic_header(&mut b, 0, 65599);
        assert_eq!(
            &b[..],
            &[
                0xC3, 0x00, 0x00, 0x40, 0xFF, 0x81, 0x00, 0x01, 0x01, 0xFF, 0xFF
            ]
        );
    }

    #[test]
    fn header_and_body() {
        let mut b = BytesMut::new();
        write_message_header(&mut b, 4, 0x123456, 300, 8, 1);
        assert_eq!(
            &b[..],
            &[0x04, 0x12, 0x34, 0x56, 0x00, 0x01, 0x2C, 0x08, 1, 0, 0, 0]
        );
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let body = chunk_body(&payload, 128, 4);
        assert_eq!(body.len(), 302);
        assert_eq!(body[128], 0xC4);
        assert_eq!(body[257], 0xC4);
        // Same as the general path when no extended timestamp is needed.
        let mut general = BytesMut::new();
        encode_message(&mut general, 4, 0x123456, 8, 1, &payload, 128);
        b.extend_from_slice(&body);
        assert_eq!(b, general);
    }

    #[test]
    fn extended_timestamp_repeated() {
        let mut b = BytesMut::new();
        encode_message(&mut b, 3, 0x0100_0000, 20, 0, &[7u8; 5], 3);
        assert_eq!(
            &b[..],
            &[
                0x03, 0xFF, 0xFF, 0xFF, 0, 0, 5, 20, 0, 0, 0, 0, 1, 0, 0, 0, 7, 7, 7, //
                0xC3, 1, 0, 0, 0, 7, 7
            ]
        );
    }
}
