//! Message type ids, protocol control messages, user control events and
//! aggregate messages.

use bytes::{BufMut, Bytes, BytesMut};

use crate::RtmpError;

/// Set Chunk Size.
pub const MSG_SET_CHUNK_SIZE: u8 = 1;
/// Abort Message.
pub const MSG_ABORT: u8 = 2;
/// Acknowledgement.
pub const MSG_ACKNOWLEDGEMENT: u8 = 3;
/// User Control Message.
pub const MSG_USER_CONTROL: u8 = 4;
/// Window Acknowledgement Size.
pub const MSG_WINDOW_ACK_SIZE: u8 = 5;
/// Set Peer Bandwidth.
pub const MSG_SET_PEER_BANDWIDTH: u8 = 6;
/// Audio data.
pub const MSG_AUDIO: u8 = 8;
/// Video data.
pub const MSG_VIDEO: u8 = 9;
/// Data message, AMF3 (a format byte, then AMF0 in practice).
pub const MSG_DATA_AMF3: u8 = 15;
/// Shared object, AMF3.
pub const MSG_SHARED_OBJECT_AMF3: u8 = 16;
/// Command message, AMF3 (a format byte, then AMF0 with avmplus switches).
pub const MSG_COMMAND_AMF3: u8 = 17;
/// Data message, AMF0 (metadata).
pub const MSG_DATA_AMF0: u8 = 18;
/// Shared object, AMF0.
pub const MSG_SHARED_OBJECT_AMF0: u8 = 19;
/// Command message, AMF0.
pub const MSG_COMMAND_AMF0: u8 = 20;
/// Aggregate message.
pub const MSG_AGGREGATE: u8 = 22;

/// Set Peer Bandwidth limit type "dynamic".
pub const PEER_BANDWIDTH_DYNAMIC: u8 = 2;

/// A User Control event (message type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserControlEvent {
    /// Stream Begin (0).
    StreamBegin(u32),
    /// Stream EOF (1).
    StreamEof(u32),
    /// Stream Dry (2).
    StreamDry(u32),
    /// Set Buffer Length (3).
    SetBufferLength {
        /// Stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// Stream Is Recorded (4).
    StreamIsRecorded(u32),
    /// Ping Request (6) with the sender's timestamp.
    PingRequest(u32),
    /// Ping Response (7) echoing the request's timestamp.
    PingResponse(u32),
    /// Any other event type, kept raw.
    Other {
        /// Event type.
        event_type: u16,
        /// Event data.
        data: Bytes,
    },
}

impl UserControlEvent {
    /// Parses a User Control message payload.
    pub fn parse(payload: &Bytes) -> Result<Self, RtmpError> {
        let bad = RtmpError::MalformedMessage {
            msg_type: MSG_USER_CONTROL,
            reason: "user control event too short",
        };
        let t = payload
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(bad.clone())?;
        let u32_at = |i: usize| {
            payload
                .get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(bad.clone())
        };
        Ok(match t {
            0 => Self::StreamBegin(u32_at(2)?),
            1 => Self::StreamEof(u32_at(2)?),
            2 => Self::StreamDry(u32_at(2)?),
            3 => Self::SetBufferLength {
                stream_id: u32_at(2)?,
                buffer_ms: u32_at(6)?,
            },
            4 => Self::StreamIsRecorded(u32_at(2)?),
            6 => Self::PingRequest(u32_at(2)?),
            7 => Self::PingResponse(u32_at(2)?),
            other => Self::Other {
                event_type: other,
                data: payload.slice(2..),
            },
        })
    }

    /// The message payload for this event.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(10);
        match self {
            Self::StreamBegin(v) => put(&mut b, 0, &[*v]),
            Self::StreamEof(v) => put(&mut b, 1, &[*v]),
            Self::StreamDry(v) => put(&mut b, 2, &[*v]),
            Self::SetBufferLength {
                stream_id,
                buffer_ms,
            } => put(&mut b, 3, &[*stream_id, *buffer_ms]),
            Self::StreamIsRecorded(v) => put(&mut b, 4, &[*v]),
            Self::PingRequest(v) => put(&mut b, 6, &[*v]),
            Self::PingResponse(v) => put(&mut b, 7, &[*v]),
            Self::Other { event_type, data } => {
                b.put_u16(*event_type);
                b.put_slice(data);
            }
        }
        b.freeze()
    }
}

fn put(b: &mut BytesMut, t: u16, vals: &[u32]) {
    b.put_u16(t);
    for v in vals {
        b.put_u32(*v);
    }
}

/// A protocol control message (types 1-6), payload only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlMessage {
    /// Set Chunk Size.
    SetChunkSize(u32),
    /// Abort Message for a chunk stream.
    Abort(u32),
    /// Acknowledgement: bytes received so far.
    Acknowledgement(u32),
    /// User Control.
    UserControl(UserControlEvent),
    /// Window Acknowledgement Size.
    WindowAckSize(u32),
    /// Set Peer Bandwidth.
    SetPeerBandwidth {
        /// Window size.
        size: u32,
        /// 0 hard, 1 soft, 2 dynamic.
        limit_type: u8,
    },
}

impl ControlMessage {
    /// Parses a control message; `Ok(None)` if `msg_type` is not one.
    pub fn parse(msg_type: u8, payload: &Bytes) -> Result<Option<Self>, RtmpError> {
        let u32_0 = || {
            payload
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(RtmpError::MalformedMessage {
                    msg_type,
                    reason: "control message too short",
                })
        };
        Ok(Some(match msg_type {
            MSG_SET_CHUNK_SIZE => Self::SetChunkSize(u32_0()?),
            MSG_ABORT => Self::Abort(u32_0()?),
            MSG_ACKNOWLEDGEMENT => Self::Acknowledgement(u32_0()?),
            MSG_USER_CONTROL => Self::UserControl(UserControlEvent::parse(payload)?),
            MSG_WINDOW_ACK_SIZE => Self::WindowAckSize(u32_0()?),
            MSG_SET_PEER_BANDWIDTH => Self::SetPeerBandwidth {
                size: u32_0()?,
                // Some clients omit the limit type; treat as dynamic.
                limit_type: payload.get(4).copied().unwrap_or(PEER_BANDWIDTH_DYNAMIC),
            },
            _ => return Ok(None),
        }))
    }

    /// `(message type, payload)` for sending.
    pub fn encode(&self) -> (u8, Bytes) {
        let u = |v: u32| Bytes::copy_from_slice(&v.to_be_bytes());
        match self {
            Self::SetChunkSize(v) => (MSG_SET_CHUNK_SIZE, u(*v)),
            Self::Abort(v) => (MSG_ABORT, u(*v)),
            Self::Acknowledgement(v) => (MSG_ACKNOWLEDGEMENT, u(*v)),
            Self::UserControl(e) => (MSG_USER_CONTROL, e.encode()),
            Self::WindowAckSize(v) => (MSG_WINDOW_ACK_SIZE, u(*v)),
            Self::SetPeerBandwidth { size, limit_type } => {
                let mut b = BytesMut::with_capacity(5);
                b.put_u32(*size);
                b.put_u8(*limit_type);
                (MSG_SET_PEER_BANDWIDTH, b.freeze())
            }
        }
    }
}

/// When we owe the peer an Acknowledgement: it announced a window (Window Acknowledgement
/// Size) and we have received that many bytes since our last one. Shared by the server and
/// client sessions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AckWindow {
    window: u32,
    last_acked: u64,
}

impl AckWindow {
    /// Records the peer's Window Acknowledgement Size (0: the peer wants no acks).
    pub fn set_window(&mut self, window: u32) {
        self.window = window;
    }

    /// The peer's window.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Given the total bytes received, the sequence number to acknowledge now, if one is due.
    pub fn due(&mut self, received: u64) -> Option<u32> {
        if self.window == 0 || received.saturating_sub(self.last_acked) < u64::from(self.window) {
            return None;
        }
        self.last_acked = received;
        // The sequence number wraps at 32 bits by definition.
        Some(received as u32)
    }
}

/// One message inside an aggregate message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubMessage {
    /// Message type id.
    pub msg_type: u8,
    /// Timestamp, rebased onto the aggregate's timestamp.
    pub timestamp: u32,
    /// Payload (a slice of the aggregate payload).
    pub payload: Bytes,
}

/// Splits an aggregate message (type 22) into its sub-messages. Timestamps
/// are offset so the first sub-message has `aggregate_ts`. Each sub-message
/// is: type(1) length(3) timestamp(3+1 high byte) stream id(3) data
/// back-pointer(4).
pub fn split_aggregate(payload: &Bytes, aggregate_ts: u32) -> Result<Vec<SubMessage>, RtmpError> {
    let bad = |reason| RtmpError::MalformedMessage {
        msg_type: MSG_AGGREGATE,
        reason,
    };
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut offset = None;
    while pos < payload.len() {
        let h = payload
            .get(pos..pos + 11)
            .ok_or(bad("truncated sub-message header"))?;
        let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = pos + 11;
        let end = start
            .checked_add(len)
            .filter(|&e| e + 4 <= payload.len())
            .ok_or(bad("sub-message longer than aggregate"))?;
        let off = *offset.get_or_insert(aggregate_ts.wrapping_sub(ts));
        out.push(SubMessage {
            msg_type: h[0],
            timestamp: ts.wrapping_add(off),
            payload: payload.slice(start..end),
        });
        pos = end + 4;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_window_acknowledges_once_per_window() {
        let mut a = AckWindow::default();
        assert_eq!(a.due(10_000_000), None, "no window announced: no acks");
        a.set_window(1000);
        assert_eq!(a.due(999), None);
        assert_eq!(a.due(1000), Some(1000));
        assert_eq!(a.due(1999), None);
        assert_eq!(a.due(5000), Some(5000));
        assert_eq!(
            a.due((1 << 32) + 7000),
            Some(7000),
            "sequence numbers wrap at 32 bits"
        );
    }

    #[test]
    fn user_control_round_trip() {
        let cases = [
            (UserControlEvent::StreamBegin(1), vec![0, 0, 0, 0, 0, 1]),
            (
                UserControlEvent::SetBufferLength {
                    stream_id: 1,
                    buffer_ms: 3000,
                },
                vec![0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8],
            ),
            (UserControlEvent::PingRequest(7), vec![0, 6, 0, 0, 0, 7]),
        ];
        for (ev, wire) in cases {
            assert_eq!(&ev.encode()[..], &wire[..]);
            assert_eq!(UserControlEvent::parse(&Bytes::from(wire)).unwrap(), ev);
        }
        assert!(UserControlEvent::parse(&Bytes::from_static(&[0, 6, 0])).is_err());
    }

    #[test]
    fn control_messages() {
        let m = ControlMessage::SetPeerBandwidth {
            size: 2_500_000,
            limit_type: 2,
        };
        let (t, p) = m.encode();
        assert_eq!(t, 6);
        assert_eq!(&p[..], &[0x00, 0x26, 0x25, 0xA0, 2]);
        assert_eq!(ControlMessage::parse(t, &p).unwrap(), Some(m));
        assert_eq!(ControlMessage::parse(8, &p).unwrap(), None);
        assert!(ControlMessage::parse(5, &Bytes::from_static(&[1])).is_err());
    }

    #[test]
    fn aggregate() {
        let mut b = Vec::new();
        // audio at 1000, 2 bytes
        b.extend([
            8, 0, 0, 2, 0, 0x03, 0xE8, 0, 0, 0, 1, 0xAA, 0xBB, 0, 0, 0, 13,
        ]);
        // video at 1040, 1 byte
        b.extend([9, 0, 0, 1, 0, 0x04, 0x10, 0, 0, 0, 1, 0xCC, 0, 0, 0, 12]);
        let subs = split_aggregate(&Bytes::from(b.clone()), 5000).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!((subs[0].msg_type, subs[0].timestamp), (8, 5000));
        assert_eq!(&subs[0].payload[..], &[0xAA, 0xBB]);
        assert_eq!((subs[1].msg_type, subs[1].timestamp), (9, 5040));
        b.truncate(b.len() - 2);
        assert!(split_aggregate(&Bytes::from(b), 0).is_err());
    }
}
