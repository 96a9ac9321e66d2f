//! Hub frames to the bytes one RTMP viewer receives: the frame's chunked body is built once
//! per frame and shared; only the small per-viewer message header (whose timestamp is rebased
//! to the viewer's own start) is written per viewer.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use hub::viewer::ViewerClock;
use media::{Frame, MediaKind};

/// Most slices handed to one vectored write.
pub(crate) const MAX_IOVECS: usize = 64;
/// Capacity reserved at a time for a viewer's RTMP chunk headers.
const RTMP_SCRATCH: usize = 1024;

/// Bytes waiting for one socket, as shared slices in order.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl OutQueue {
    pub(crate) fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.chunks.push_back(b);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `dst` with the queued slices (as many as fit) for one vectored write, without
    /// allocating; returns how many were filled.
    pub(crate) fn fill_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, b) in dst.iter_mut().zip(self.chunks.iter()) {
            *slot = IoSlice::new(b);
            n += 1;
        }
        n
    }

    /// Drops `n` written bytes from the front.
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

fn rtmp_message_type(kind: MediaKind) -> (u8, u32) {
    match kind {
        MediaKind::Audio => (rtmp::message::MSG_AUDIO, rtmp::chunk::CSID_AUDIO),
        MediaKind::Video => (rtmp::message::MSG_VIDEO, rtmp::chunk::CSID_VIDEO),
        MediaKind::Data => (rtmp::message::MSG_DATA_AMF0, rtmp::chunk::CSID_DATA),
    }
}

/// One RTMP viewer's encoder.
#[derive(Debug)]
pub(crate) struct RtmpEgress {
    clock: ViewerClock,
    stream_id: u32,
    chunk_size: u32,
    scratch: BytesMut,
}

impl RtmpEgress {
    pub(crate) fn new(stream_id: u32, chunk_size: u32) -> Self {
        Self {
            clock: ViewerClock::default(),
            stream_id,
            chunk_size,
            scratch: BytesMut::new(),
        }
    }

    /// Appends the chunks of `frame` to `out`: a per-viewer header and the shared body.
    pub(crate) fn push(&mut self, frame: &Frame, out: &mut OutQueue) {
        let ts = self.clock.timestamp(frame);
        let (msg_type, csid) = rtmp_message_type(frame.kind);
        let len = frame.body.len() as u32;
        if self.scratch.capacity() < 32 {
            self.scratch.reserve(RTMP_SCRATCH);
        }
        if ts >= 0x00FF_FFFF {
            // Extended timestamps repeat on every continuation chunk: per-viewer bytes.
            rtmp::chunk::encode_message(
                &mut self.scratch,
                csid,
                ts,
                msg_type,
                self.stream_id,
                &frame.body,
                self.chunk_size,
            );
            out.push(self.scratch.split().freeze());
            return;
        }
        rtmp::chunk::write_message_header(
            &mut self.scratch,
            csid,
            ts,
            len,
            msg_type,
            self.stream_id,
        );
        out.push(self.scratch.split().freeze());
        let chunk_size = self.chunk_size;
        let shared = frame.wire.rtmp_chunks.get_or_init(|| {
            (
                chunk_size,
                rtmp::chunk::chunk_body(&frame.body, chunk_size, csid),
            )
        });
        if shared.0 == chunk_size {
            out.push(shared.1.clone());
        } else {
            out.push(rtmp::chunk::chunk_body(&frame.body, chunk_size, csid));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::FrameRole;

    use media::fixtures::frame;

    #[test]
    fn out_queue_advances_across_chunks() {
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::from_static(b"defg"));
        q.advance(4);
        assert_eq!(q.len(), 3);
        let mut s = [IoSlice::new(&[]); MAX_IOVECS];
        assert_eq!(q.fill_slices(&mut s), 1);
        assert_eq!(&*s[0], b"efg");
        q.advance(3);
        assert!(q.is_empty());
    }

    #[test]
    fn rtmp_body_is_shared_between_viewers() {
        let f = frame(MediaKind::Video, FrameRole::Coded, 0);
        let (mut a, mut b) = (RtmpEgress::new(1, 4096), RtmpEgress::new(1, 4096));
        let (mut qa, mut qb) = (OutQueue::default(), OutQueue::default());
        a.push(&f, &mut qa);
        b.push(&f, &mut qb);
        let body_a = qa.chunks[1].clone();
        let body_b = qb.chunks[1].clone();
        assert_eq!(
            body_a.as_ptr(),
            body_b.as_ptr(),
            "one chunked body for all viewers"
        );
    }
}
