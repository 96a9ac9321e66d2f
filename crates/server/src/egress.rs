//! Turning hub frames into the bytes one viewer receives.
//!
//! The frame's FLV body (and, for RTMP, its chunked form) is built once per frame and shared;
//! only the small per-viewer header (whose timestamp is rebased to the viewer's own start)
//! is written per viewer.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use media::{Frame, FrameRole, MediaKind};

/// Most slices handed to one vectored write.
pub(crate) const MAX_IOVECS: usize = 64;
/// Initial capacity of a viewer's FLV batch buffer (it grows with the stream's bitrate).
const FLV_BUF_INITIAL: usize = 4 * 1024;
/// Capacity reserved at a time for a viewer's RTMP chunk headers.
const RTMP_SCRATCH: usize = 1024;
/// Most frames taken from the hub for one batch before writing.
pub(crate) const MAX_BATCH_FRAMES: usize = 128;

/// A viewer's timeline: its first coded frame is at 0 and everything follows from there, so
/// every player sees monotonic timestamps starting near zero whenever it joined.
#[derive(Debug, Default)]
pub(crate) struct ViewerClock {
    base: Option<u64>,
}

impl ViewerClock {
    /// The timestamp this viewer should see for `frame` (32-bit wrap as RTMP and FLV do).
    pub(crate) fn timestamp(&mut self, frame: &Frame) -> u32 {
        if self.base.is_none() && frame.role == FrameRole::Coded && frame.kind != MediaKind::Data {
            self.base = Some(frame.dts);
        }
        match self.base {
            // Truncation to 32 bits is the wire format's own wrap-around.
            Some(base) => frame.dts.saturating_sub(base) as u32,
            None => 0,
        }
    }
}

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

/// Tracks whether a viewer's pending bytes are audio only, on a stream that has video: such
/// audio may wait for the next video frame (up to `hub.audio_coalesce_ms`) so both go out in
/// one write. Video itself is never held. At 25 fps with AAC this halves a viewer's writes,
/// and writes are the cost.
#[derive(Debug, Default)]
pub(crate) struct AudioHold {
    has_video: bool,
    pending_video: bool,
    pending_audio: bool,
}

impl AudioHold {
    /// Notes a frame queued for the viewer.
    pub(crate) fn saw(&mut self, f: &Frame) {
        if f.role != FrameRole::Coded {
            return;
        }
        match f.kind {
            MediaKind::Video => {
                self.has_video = true;
                self.pending_video = true;
            }
            MediaKind::Audio => self.pending_audio = true,
            MediaKind::Data => {}
        }
    }

    /// The pending bytes are being written.
    pub(crate) fn flushed(&mut self) {
        self.pending_video = false;
        self.pending_audio = false;
    }

    /// True when the pending bytes may wait for the next video frame.
    pub(crate) fn should_hold(&self) -> bool {
        self.has_video && self.pending_audio && !self.pending_video
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

/// One FLV viewer's encoder (HTTP-FLV and WebSocket-FLV): tags appended to one batch buffer
/// so each batch is a single write.
#[derive(Debug)]
pub(crate) struct FlvEgress {
    clock: ViewerClock,
    buf: BytesMut,
    /// Whether the pending bytes end with audio that may wait for video.
    pub(crate) hold: AudioHold,
    /// Samples the delivery latency of the batches.
    pub(crate) probe: crate::latency::LatencyProbe,
}

impl FlvEgress {
    /// Starts a viewer's stream with the FLV file header.
    pub(crate) fn new() -> Self {
        let mut buf = BytesMut::with_capacity(FLV_BUF_INITIAL);
        buf.extend_from_slice(&flv::file_header(true, true));
        Self {
            clock: ViewerClock::default(),
            buf,
            hold: AudioHold::default(),
            probe: crate::latency::LatencyProbe::default(),
        }
    }

    /// Appends one tag.
    pub(crate) fn push(&mut self, frame: &Frame) {
        let ts = self.clock.timestamp(frame);
        let tag_type = match frame.kind {
            MediaKind::Audio => flv::TAG_AUDIO,
            MediaKind::Video => flv::TAG_VIDEO,
            MediaKind::Data => flv::TAG_SCRIPT,
        };
        flv::write_tag(&mut self.buf, tag_type, ts, &frame.body);
        self.hold.saw(frame);
        self.probe.queued(frame.arrival);
    }

    /// Bytes pending since the last call. Each batch gets a buffer of its own, so a viewer
    /// holds no more than what it has queued: splitting one long-lived buffer would make every
    /// later batch allocate at the largest size seen (the start-up GOP burst), costing tens
    /// of kilobytes per idle-ish viewer.
    pub(crate) fn take(&mut self) -> Bytes {
        self.hold.flushed();
        std::mem::replace(&mut self.buf, BytesMut::with_capacity(FLV_BUF_INITIAL)).freeze()
    }

    /// Bytes pending.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: MediaKind, role: FrameRole, dts: u64) -> Frame {
        Frame {
            kind,
            codec: media::Codec::H264,
            role,
            dts,
            cts: 0,
            keyframe: true,
            body: Bytes::from_static(&[0x17, 1, 0, 0, 0, 0xAA, 0xBB]),
            payload_offset: 5,
            wire: Default::default(),
            arrival: None,
        }
    }

    #[test]
    fn viewer_clock_starts_at_first_coded_frame() {
        let mut c = ViewerClock::default();
        assert_eq!(
            c.timestamp(&frame(MediaKind::Video, FrameRole::SequenceHeader, 9000)),
            0
        );
        assert_eq!(
            c.timestamp(&frame(MediaKind::Video, FrameRole::Coded, 10_000)),
            0
        );
        assert_eq!(
            c.timestamp(&frame(MediaKind::Audio, FrameRole::Coded, 9_990)),
            0
        );
        assert_eq!(
            c.timestamp(&frame(MediaKind::Video, FrameRole::Coded, 10_040)),
            40
        );
    }

    #[test]
    fn audio_waits_for_video_only_on_streams_with_video() {
        let mut h = AudioHold::default();
        let audio = frame(MediaKind::Audio, FrameRole::Coded, 0);
        let video = frame(MediaKind::Video, FrameRole::Coded, 0);
        h.saw(&audio);
        assert!(!h.should_hold(), "audio-only stream so far: never held");
        h.saw(&video);
        h.saw(&audio);
        assert!(
            !h.should_hold(),
            "video pending: write now, with the audio after it"
        );
        h.flushed();
        h.saw(&audio);
        assert!(
            h.should_hold(),
            "only audio pending: wait for the next video frame"
        );
        h.saw(&video);
        assert!(!h.should_hold());
    }

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
