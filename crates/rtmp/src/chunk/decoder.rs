//! Chunk decoding: reassembles messages from interleaved chunk streams.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

use super::{
    DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP, MAX_CHUNK_SIZE, MAX_PARTIAL_MESSAGES,
    media_partial_budget,
};
use crate::RtmpError;
use crate::message::{MSG_ABORT, MSG_SET_CHUNK_SIZE};

/// One reassembled RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wrapping u32).
    pub timestamp: u32,
    /// Message type id.
    pub msg_type: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// The payload.
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    delta: u32,
    msg_len: u32,
    msg_type: u8,
    stream_id: u32,
    /// The extended timestamp field of the last fmt 0/1/2 header, if it had one.
    ext: Option<u32>,
    /// The message received so far. Its capacity grows only as bytes arrive
    /// (never from the announced length alone) and never past `msg_len`, so
    /// the completed message is handed out without a copy or spare capacity.
    payload: Vec<u8>,
    in_progress: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    Payload { csid: u32, remaining: u32 },
}

/// Sans-IO chunk stream decoder. Feed bytes with [`ChunkDecoder::push`] and
/// drain messages with [`ChunkDecoder::poll`]. Set Chunk Size and Abort
/// messages are applied here (and still returned, for bookkeeping).
///
/// Buffering is bounded: the input buffer only ever holds an incomplete chunk
/// header (or whatever was pushed but not yet polled), and payload bytes are
/// moved into the message as they arrive. The messages still incomplete hold
/// at most [`ChunkDecoder::max_partial_bytes`] bytes together (allocated
/// capacity included), on at most [`MAX_PARTIAL_MESSAGES`] chunk streams.
#[derive(Debug)]
pub struct ChunkDecoder {
    buf: BytesMut,
    state: State,
    chunk_size: u32,
    streams: HashMap<u32, ChunkStream>,
    max_message_len: u32,
    max_chunk_streams: usize,
    /// Sum of the capacities of every stream's `payload`.
    partial_bytes: usize,
    /// Streams with `in_progress` set.
    partial_messages: usize,
    max_partial_bytes: usize,
}

impl ChunkDecoder {
    /// A decoder with the given limits and the default chunk size (128). The
    /// budget of bytes in incomplete messages is
    /// [`media_partial_budget`]`(max_message_len)`; see
    /// [`ChunkDecoder::set_max_partial_bytes`].
    pub fn new(max_message_len: u32, max_chunk_streams: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            state: State::Header,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            max_message_len,
            max_chunk_streams,
            partial_bytes: 0,
            partial_messages: 0,
            max_partial_bytes: media_partial_budget(max_message_len),
        }
    }

    /// Sets the budget of bytes that incomplete messages may hold together,
    /// allocated capacity included. Bytes already held stay; a message that
    /// needs to grow past the budget is [`RtmpError::PartialBudgetExceeded`].
    pub fn set_max_partial_bytes(&mut self, bytes: usize) {
        self.max_partial_bytes = bytes;
    }

    /// The budget of bytes in incomplete messages.
    pub fn max_partial_bytes(&self) -> usize {
        self.max_partial_bytes
    }

    /// Bytes held now by incomplete messages: their allocated capacity, which
    /// is less than twice the bytes received and never more than the budget.
    pub fn partial_bytes(&self) -> usize {
        self.partial_bytes
    }

    /// Chunk streams with an incomplete message now.
    pub fn partial_messages(&self) -> usize {
        self.partial_messages
    }

    /// The incoming chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies a Set Chunk Size from the peer (1..=0x7FFFFFFF).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), RtmpError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(RtmpError::BadChunkSize { size });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Drops the partial message on `csid` (Abort Message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            self.partial_bytes -= s.payload.capacity();
            s.payload = Vec::new();
            if s.in_progress {
                s.in_progress = false;
                self.partial_messages -= 1;
            }
        }
        if let State::Payload { csid: c, .. } = self.state
            && c == csid
        {
            // The abort arrived on another chunk stream, so we are between chunks.
            self.state = State::Header;
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes pushed but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn poll(&mut self) -> Result<Option<Message>, RtmpError> {
        loop {
            match self.state {
                State::Header => {
                    if !self.read_header()? {
                        return Ok(None);
                    }
                    if let Some(m) = self.finish_if_complete()? {
                        return Ok(Some(m));
                    }
                }
                State::Payload { csid, remaining } => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (remaining as usize).min(self.buf.len());
                    self.append(csid, n)?;
                    let remaining = remaining - n as u32;
                    if remaining > 0 {
                        self.state = State::Payload { csid, remaining };
                        return Ok(None);
                    }
                    self.state = State::Header;
                    if let Some(m) = self.complete(csid)? {
                        return Ok(Some(m));
                    }
                }
            }
        }
    }

    /// Moves the next `n` buffered bytes into the message on `csid`, growing
    /// its buffer within the budget: geometrically (amortised copies), but
    /// never past the message's length, and past the bytes actually received
    /// only as far as the budget leaves room. Bytes that complete the message
    /// are exempt: it leaves the decoder at once (as every complete message
    /// does), so a full budget never stops a connection's small messages
    /// (acknowledgements, commands, audio) that arrive whole.
    fn append(&mut self, csid: u32, n: usize) -> Result<(), RtmpError> {
        let Some(s) = self.streams.get_mut(&csid) else {
            self.buf.advance(n);
            return Ok(());
        };
        let needed = s.payload.len() + n;
        let cap = s.payload.capacity();
        if needed > cap {
            let completes = needed >= s.msg_len as usize;
            let others = self.partial_bytes - cap;
            let room = self.max_partial_bytes.saturating_sub(others);
            if needed > room && !completes {
                return Err(RtmpError::PartialBudgetExceeded {
                    csid,
                    needed: others + needed,
                    budget: self.max_partial_bytes,
                });
            }
            let target = if completes {
                needed
            } else {
                cap.saturating_mul(2)
                    .min(s.msg_len as usize)
                    .min(room)
                    .max(needed)
            };
            s.payload.reserve_exact(target - s.payload.len());
            self.partial_bytes = others + s.payload.capacity();
        }
        s.payload.extend_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        Ok(())
    }

    /// After a header with an empty chunk body (zero-length message).
    fn finish_if_complete(&mut self) -> Result<Option<Message>, RtmpError> {
        if let State::Payload { csid, remaining: 0 } = self.state {
            self.state = State::Header;
            return self.complete(csid);
        }
        Ok(None)
    }

    fn complete(&mut self, csid: u32) -> Result<Option<Message>, RtmpError> {
        let Some(s) = self.streams.get_mut(&csid) else {
            return Ok(None);
        };
        if s.payload.len() < s.msg_len as usize {
            return Ok(None);
        }
        if s.in_progress {
            s.in_progress = false;
            self.partial_messages -= 1;
        }
        self.partial_bytes -= s.payload.capacity();
        let msg = Message {
            csid,
            timestamp: s.timestamp,
            msg_type: s.msg_type,
            stream_id: s.stream_id,
            payload: Bytes::from(std::mem::take(&mut s.payload)),
        };
        match msg.msg_type {
            MSG_SET_CHUNK_SIZE => {
                let size = read_u32(&msg.payload, MSG_SET_CHUNK_SIZE)?;
                self.set_chunk_size(size)?;
            }
            MSG_ABORT => {
                let c = read_u32(&msg.payload, MSG_ABORT)?;
                self.abort(c);
            }
            _ => {}
        }
        Ok(Some(msg))
    }

    /// Parses one chunk header if complete; returns false if more bytes are needed.
    fn read_header(&mut self) -> Result<bool, RtmpError> {
        let b = &self.buf[..];
        let Some(&b0) = b.first() else {
            return Ok(false);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3F {
            0 => match b.get(1) {
                Some(&v) => (64 + u32::from(v), 2),
                None => return Ok(false),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&lo), Some(&hi)) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                _ => return Ok(false),
            },
            v => (u32::from(v), 1),
        };
        let mh_len = [11usize, 7, 3, 0][usize::from(fmt)];
        let Some(mh_slice) = b.get(pos..pos + mh_len) else {
            return Ok(false);
        };
        let mut mh = [0u8; 11];
        mh[..mh_len].copy_from_slice(mh_slice);
        pos += mh_len;
        let known = self.streams.contains_key(&csid);
        if !known {
            if fmt != 0 {
                return Err(RtmpError::UnknownChunkStream { csid, fmt });
            }
            if self.streams.len() >= self.max_chunk_streams {
                return Err(RtmpError::TooManyChunkStreams {
                    csid,
                    max: self.max_chunk_streams,
                });
            }
        }
        let field = if mh_len >= 3 { be24(&mh[0..3]) } else { 0 };
        let prev_ext = self.streams.get(&csid).and_then(|s| s.ext);
        let in_progress = self.streams.get(&csid).is_some_and(|s| s.in_progress);
        // A header that starts a message on a stream with none in progress.
        if !in_progress && self.partial_messages >= MAX_PARTIAL_MESSAGES {
            return Err(RtmpError::TooManyPartialMessages {
                csid,
                max: MAX_PARTIAL_MESSAGES,
            });
        }
        // Extended timestamp.
        let mut ext = None;
        if fmt < 3 && field == EXTENDED_TIMESTAMP {
            let Some(e) = b.get(pos..pos + 4) else {
                return Ok(false);
            };
            ext = Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
            pos += 4;
        } else if fmt == 3
            && let Some(prev) = prev_ext
        {
            let Some(e) = b.get(pos..pos + 4) else {
                return Ok(false);
            };
            let v = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            // A new message always carries it; a continuation chunk only
            // if the encoder repeats it (then it equals the stored value).
            if !in_progress || v == prev {
                pos += 4;
            }
        }
        if fmt <= 1 {
            let len = be24(&mh[3..6]);
            if len > self.max_message_len {
                return Err(RtmpError::MessageTooLarge {
                    len,
                    max: self.max_message_len,
                });
            }
        }
        // The header is complete and valid: consume it and update state.
        self.buf.advance(pos);
        let s = self.streams.entry(csid).or_default();
        let effective = ext.unwrap_or(field);
        if fmt < 3 {
            s.ext = ext;
            if s.in_progress {
                // A new header in the middle of a message: the old one is abandoned.
                self.partial_bytes -= s.payload.capacity();
                s.payload = Vec::new();
                s.in_progress = false;
                self.partial_messages -= 1;
            }
        }
        match fmt {
            0 => {
                s.timestamp = effective;
                s.delta = effective;
                s.msg_len = be24(&mh[3..6]);
                s.msg_type = mh[6];
                s.stream_id = u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]);
            }
            1 => {
                s.delta = effective;
                s.timestamp = s.timestamp.wrapping_add(effective);
                s.msg_len = be24(&mh[3..6]);
                s.msg_type = mh[6];
            }
            2 => {
                s.delta = effective;
                s.timestamp = s.timestamp.wrapping_add(effective);
            }
            _ => {
                if !s.in_progress {
                    s.timestamp = s.timestamp.wrapping_add(s.delta);
                }
            }
        }
        if !s.in_progress {
            // Nothing is reserved from the announced length: the buffer grows
            // as bytes arrive (see `append`).
            s.in_progress = true;
            self.partial_messages += 1;
        }
        let left = s.msg_len as usize - s.payload.len().min(s.msg_len as usize);
        let remaining = left.min(self.chunk_size as usize) as u32;
        self.state = State::Payload { csid, remaining };
        Ok(true)
    }
}

fn be24(b: &[u8]) -> u32 {
    b.iter()
        .take(3)
        .fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
}

fn read_u32(payload: &[u8], msg_type: u8) -> Result<u32, RtmpError> {
    payload
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(RtmpError::MalformedMessage {
            msg_type,
            reason: "payload shorter than 4 bytes",
        })
}

#[cfg(test)]
mod tests;
