//! Sorting received messages by what a session does with them, shared by the server and
//! client sessions: protocol control, media (aggregates split, AMF3 data normalised) and
//! commands.

use bytes::Bytes;

use crate::RtmpError;
use crate::chunk::Message;
use crate::command::{Command, amf0_body};
use crate::message::*;

/// A received message, by what it carries.
#[derive(Debug)]
pub enum Incoming {
    /// A protocol control or user control message (Set Chunk Size and Abort are applied by
    /// the chunk decoder and not reported).
    Control(ControlMessage),
    /// Audio (8), video (9) or AMF0 data (18; AMF3 data is reported as 18 with its format
    /// byte removed). Aggregates are reported as their sub-messages.
    Media {
        /// 8, 9 or 18.
        msg_type: u8,
        /// Message stream id.
        stream_id: u32,
        /// Timestamp (ms, 32-bit).
        timestamp: u32,
        /// The message body.
        payload: Bytes,
    },
    /// A command (AMF0, or AMF3 with its format byte removed).
    Command {
        /// Message stream id.
        stream_id: u32,
        /// The parsed command.
        command: Command,
    },
}

/// Sorts one message, calling `on` for each item it carries (an aggregate carries several).
/// Shared objects and unknown message types are ignored; malformed control messages,
/// aggregates and commands are errors.
pub fn dispatch(msg: Message, mut on: impl FnMut(Incoming)) -> Result<(), RtmpError> {
    match msg.msg_type {
        MSG_SET_CHUNK_SIZE | MSG_ABORT => {} // applied by the decoder
        MSG_ACKNOWLEDGEMENT | MSG_USER_CONTROL | MSG_WINDOW_ACK_SIZE | MSG_SET_PEER_BANDWIDTH => {
            if let Some(c) = ControlMessage::parse(msg.msg_type, &msg.payload)? {
                on(Incoming::Control(c));
            }
        }
        MSG_AUDIO | MSG_VIDEO | MSG_DATA_AMF0 | MSG_DATA_AMF3 => {
            on(media(
                msg.msg_type,
                msg.stream_id,
                msg.timestamp,
                &msg.payload,
            ));
        }
        MSG_AGGREGATE => {
            for sub in split_aggregate(&msg.payload, msg.timestamp)? {
                if matches!(
                    sub.msg_type,
                    MSG_AUDIO | MSG_VIDEO | MSG_DATA_AMF0 | MSG_DATA_AMF3
                ) {
                    on(media(
                        sub.msg_type,
                        msg.stream_id,
                        sub.timestamp,
                        &sub.payload,
                    ));
                }
            }
        }
        MSG_COMMAND_AMF0 | MSG_COMMAND_AMF3 => {
            let body = amf0_body(msg.msg_type, &msg.payload);
            let command = Command::parse(&body)?;
            on(Incoming::Command {
                stream_id: msg.stream_id,
                command,
            });
        }
        _ => {}
    }
    Ok(())
}

fn media(msg_type: u8, stream_id: u32, timestamp: u32, payload: &Bytes) -> Incoming {
    let (msg_type, payload) = if msg_type == MSG_DATA_AMF3 {
        (MSG_DATA_AMF0, amf0_body(msg_type, payload))
    } else {
        (msg_type, payload.clone())
    };
    Incoming::Media {
        msg_type,
        stream_id,
        timestamp,
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(msg_type: u8, ts: u32, data: &[u8], out: &mut Vec<u8>) {
        let len = data.len() as u32;
        out.push(msg_type);
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(data);
        out.extend_from_slice(&(len + 11).to_be_bytes());
    }

    fn message(msg_type: u8, payload: Vec<u8>) -> Message {
        Message {
            csid: 4,
            timestamp: 1000,
            msg_type,
            stream_id: 1,
            payload: Bytes::from(payload),
        }
    }

    #[test]
    fn aggregates_split_and_amf3_data_normalised() {
        let mut agg = Vec::new();
        sub(MSG_AUDIO, 500, &[0xAF, 1, 7], &mut agg);
        sub(MSG_DATA_AMF3, 540, &[0, 2, 0, 1, b'x'], &mut agg);
        sub(MSG_COMMAND_AMF0, 560, &[5], &mut agg); // not media: ignored inside aggregates
        let mut seen = Vec::new();
        dispatch(message(MSG_AGGREGATE, agg), |i| seen.push(i)).expect("valid");
        assert_eq!(seen.len(), 2);
        match &seen[0] {
            Incoming::Media {
                msg_type,
                timestamp,
                payload,
                stream_id,
            } => {
                assert_eq!((*msg_type, *timestamp, *stream_id), (MSG_AUDIO, 1000, 1));
                assert_eq!(&payload[..], &[0xAF, 1, 7]);
            }
            other => panic!("{other:?}"),
        }
        match &seen[1] {
            Incoming::Media {
                msg_type,
                timestamp,
                payload,
                ..
            } => {
                assert_eq!((*msg_type, *timestamp), (MSG_DATA_AMF0, 1040));
                assert_eq!(&payload[..], &[2, 0, 1, b'x'], "AMF3 format byte removed");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn control_and_bad_commands() {
        let mut seen = Vec::new();
        let ack = message(MSG_WINDOW_ACK_SIZE, 2_500_000u32.to_be_bytes().to_vec());
        dispatch(ack, |i| seen.push(i)).expect("valid");
        assert!(matches!(
            seen[..],
            [Incoming::Control(ControlMessage::WindowAckSize(2_500_000))]
        ));
        assert!(dispatch(message(MSG_COMMAND_AMF0, vec![0xFF, 0xFF]), |_| {}).is_err());
        assert!(dispatch(message(MSG_AGGREGATE, vec![8, 0, 0, 9]), |_| {}).is_err());
        dispatch(message(19, vec![1, 2, 3]), |_| {
            panic!("shared objects are ignored")
        })
        .expect("ok");
    }
}
