//! Hub frames to the bytes one FLV viewer (HTTP-FLV, WebSocket-FLV) receives: the frame's
//! FLV body is shared; only the 11-byte tag header (whose timestamp is rebased to the viewer's
//! own start) and the previous-tag-size are written per viewer.

use bytes::{Bytes, BytesMut};
use control::latency::LatencyProbe;
use hub::viewer::{AudioHold, ViewerClock};
use media::{Frame, MediaKind};

/// Initial capacity of a viewer's FLV batch buffer (it grows with the stream's bitrate).
const FLV_BUF_INITIAL: usize = 4 * 1024;

/// One FLV viewer's encoder (HTTP-FLV and WebSocket-FLV): tags appended to one batch buffer
/// so each batch is a single write.
#[derive(Debug)]
pub(crate) struct FlvEgress {
    clock: ViewerClock,
    buf: BytesMut,
    /// Whether the pending bytes end with audio that may wait for video.
    pub(crate) hold: AudioHold,
    /// Samples the delivery latency of the batches.
    pub(crate) probe: LatencyProbe,
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
            probe: LatencyProbe::default(),
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
