//! The client session: handshake, chunk layer, control messages and the
//! connect / publish / play command flow, as a sans-IO state machine.
//!
//! Used by end-to-end tests, relays and the load tool, so a session is small
//! (nothing is preallocated; buffers grow on demand) and received media is
//! handed out as `Bytes` slices of the reassembled messages.
//!
//! ```
//! # use rtmp::client::{ClientConfig, ClientEvent, ClientSession};
//! let mut c = ClientSession::new(ClientConfig::default());
//! c.connect("live", "rtmp://127.0.0.1/live");
//! c.play("stream");
//! while let Some(bytes) = c.take_output() { /* write C0+C1 */ let _ = bytes; }
//! # let received: &[u8] = &[];
//! c.handle_input(received).expect("close on error");
//! while let Some(ev) = c.poll_event() {
//!     if let ClientEvent::Media { .. } = ev { /* first frame */ }
//! }
//! ```

use std::collections::VecDeque;

use amf::Value;
use bytes::{Bytes, BytesMut};

use crate::RtmpError;
use crate::chunk::{
    CSID_AUDIO, CSID_COMMAND, CSID_DATA, CSID_PROTOCOL_CONTROL, CSID_VIDEO, ChunkDecoder,
    ChunkEncoder, DEFAULT_MAX_CHUNK_STREAMS, DEFAULT_MAX_MESSAGE_LEN, MAX_CHUNK_SIZE,
    MAX_ENCODED_LEN, Message,
};
use crate::command::{Command, build, object};
use crate::handshake::ClientHandshake;
use crate::incoming::{Incoming, dispatch};
use crate::message::*;

/// Most events queued before the caller drains them; beyond it is an error
/// (the caller must poll events after each `handle_input`).
pub const MAX_QUEUED_EVENTS: usize = 1 << 16;
/// Most `publish`/`play` requests waiting for `connect` or `createStream`
/// answers at once; further requests are dropped.
pub const MAX_PENDING_REQUESTS: usize = 16;
/// Chunk stream used for commands on a created message stream (as librtmp).
pub const CSID_STREAM_COMMAND: u32 = 8;
/// Transaction id of our `connect`.
const CONNECT_TID: f64 = 1.0;

/// Client session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Our outgoing chunk size, announced right after the handshake.
    pub chunk_size: u32,
    /// Window Acknowledgement Size we announce once connected.
    pub window_ack_size: u32,
    /// Largest incoming message accepted.
    pub max_message_len: u32,
    /// Most distinct incoming chunk stream ids.
    pub max_chunk_streams: usize,
    /// Buffer length (ms) announced with User Control SetBufferLength before `play`.
    pub buffer_length_ms: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_chunk_streams: DEFAULT_MAX_CHUNK_STREAMS,
            buffer_length_ms: 1000,
        }
    }
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// Waiting for S0+S1+S2.
    Handshaking,
    /// Handshake done; `connect` sent (or waiting for [`ClientSession::connect`]).
    Connecting,
    /// `connect` succeeded.
    Connected,
    /// NetStream.Publish.Start received: [`ClientSession::send_media`] works.
    Publishing,
    /// NetStream.Play.Start received.
    Playing,
    /// Connect rejected or a protocol error: input is ignored from now on.
    Closed,
}

/// What the session reports to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `connect` answered with `_result` (NetConnection.Connect.Success).
    Connected,
    /// `connect` answered with `_error`; the session is closed.
    ConnectFailed {
        /// Info object `code`, e.g. NetConnection.Connect.Rejected.
        code: String,
        /// Info object `description`.
        description: String,
    },
    /// onStatus NetStream.Publish.Start (follows its [`ClientEvent::Status`]).
    PublishStarted {
        /// Message stream id.
        stream_id: u32,
    },
    /// onStatus NetStream.Play.Start (follows its [`ClientEvent::Status`]).
    PlayStarted {
        /// Message stream id.
        stream_id: u32,
    },
    /// Every onStatus command, and every `_error` other than connect's
    /// (with level "error").
    Status {
        /// Message stream id the status arrived on.
        stream_id: u32,
        /// `status`, `warning` or `error`.
        level: String,
        /// e.g. NetStream.Play.StreamNotFound.
        code: String,
        /// Free text.
        description: String,
    },
    /// User Control Stream EOF.
    StreamEof {
        /// Message stream id.
        stream_id: u32,
    },
    /// Audio (8), video (9) or data (18; type 15 normalised to 18), also
    /// from aggregates. `|RtmpSampleAccess` and `onStatus` data messages are
    /// protocol chatter and are not reported.
    Media {
        /// 8, 9 or 18.
        msg_type: u8,
        /// Message stream id.
        stream_id: u32,
        /// Absolute timestamp (ms, wrapping).
        timestamp: u32,
        /// The payload, untouched (a slice of the received message).
        payload: Bytes,
    },
}

/// A publish or play waiting for its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Publish(String),
    Play(String),
}

/// The client side of one RTMP connection.
#[derive(Debug)]
pub struct ClientSession {
    cfg: ClientConfig,
    state: ClientState,
    handshake: ClientHandshake,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    out: BytesMut,
    events: VecDeque<ClientEvent>,
    bytes_received: u64,
    ack: AckWindow,
    /// `(app, tcUrl)` given before the handshake finished.
    pending_connect: Option<(String, String)>,
    connect_sent: bool,
    /// Requests made before `connect` succeeded.
    waiting: Vec<Request>,
    /// `createStream` transactions in flight.
    creating: Vec<(f64, Request)>,
    next_tid: f64,
    publish_stream: Option<u32>,
}

impl ClientSession {
    /// A session whose output already holds C0+C1.
    pub fn new(cfg: ClientConfig) -> Self {
        let decoder = ChunkDecoder::new(cfg.max_message_len, cfg.max_chunk_streams);
        let mut handshake = ClientHandshake::new();
        let out = handshake
            .take_output()
            .map(|b| BytesMut::from(&b[..]))
            .unwrap_or_default();
        Self {
            cfg,
            state: ClientState::Handshaking,
            handshake,
            decoder,
            encoder: ChunkEncoder::new(),
            out,
            events: VecDeque::new(),
            bytes_received: 0,
            ack: AckWindow::default(),
            pending_connect: None,
            connect_sent: false,
            waiting: Vec::new(),
            creating: Vec::new(),
            next_tid: CONNECT_TID + 1.0,
            publish_stream: None,
        }
    }

    /// Feeds received bytes. Any error means: close the connection (the
    /// session is then [`ClientState::Closed`] and ignores further input).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        if self.state == ClientState::Closed {
            return Ok(());
        }
        let r = self.input(data);
        if r.is_err() {
            self.state = ClientState::Closed;
        }
        r
    }

    fn input(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        self.bytes_received += data.len() as u64;
        let mut data = data;
        if !self.handshake.is_done() {
            let used = self.handshake.handle_input(data)?;
            if let Some(c2) = self.handshake.take_output() {
                self.out.extend_from_slice(&c2);
            }
            data = data.get(used..).unwrap_or_default();
            if self.handshake.is_done() {
                self.handshake_done();
            }
        }
        if !data.is_empty() {
            self.decoder.push(data);
        }
        while let Some(msg) = self.decoder.poll()? {
            self.handle_message(msg)?;
            if self.events.len() > MAX_QUEUED_EVENTS {
                return Err(RtmpError::MalformedMessage {
                    msg_type: 0,
                    reason: "event queue overflow (caller not draining)",
                });
            }
            if self.state == ClientState::Closed {
                break;
            }
        }
        if let Some(seq) = self.ack.due(self.bytes_received) {
            self.send_control(ControlMessage::Acknowledgement(seq));
        }
        Ok(())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Everything the session wants to send, in order.
    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Bytes received so far (handshake included).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Where the connection stands.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// The message stream id we publish on, once NetStream.Publish.Start arrived.
    pub fn publish_stream_id(&self) -> Option<u32> {
        self.publish_stream
    }

    /// Sends `connect` (at once, or as soon as the handshake completes).
    /// Only the first call counts.
    pub fn connect(&mut self, app: &str, tc_url: &str) {
        if self.connect_sent || self.pending_connect.is_some() {
            return;
        }
        self.pending_connect = Some((app.to_owned(), tc_url.to_owned()));
        if self.state == ClientState::Connecting {
            self.send_connect();
        }
    }

    /// Publishes `stream_name` (live): releaseStream, FCPublish and
    /// createStream, then `publish` on the created stream. Before the
    /// connection is up the request waits for it.
    pub fn publish(&mut self, stream_name: &str) {
        self.request(Request::Publish(stream_name.to_owned()));
    }

    /// Plays `stream_name`: createStream, then SetBufferLength and
    /// `play(name, -2)` on the created stream. Before the connection is up
    /// the request waits for it.
    pub fn play(&mut self, stream_name: &str) {
        self.request(Request::Play(stream_name.to_owned()));
    }

    /// Sends one audio (8), video (9) or data (18) message on the publishing
    /// stream, payload as is. Errors if not publishing, for another type, or
    /// for a payload over [`MAX_ENCODED_LEN`]; nothing is sent then.
    pub fn send_media(
        &mut self,
        msg_type: u8,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), RtmpError> {
        let csid = match msg_type {
            MSG_AUDIO => CSID_AUDIO,
            MSG_VIDEO => CSID_VIDEO,
            MSG_DATA_AMF0 => CSID_DATA,
            _ => {
                return Err(RtmpError::MalformedMessage {
                    msg_type,
                    reason: "send_media takes audio (8), video (9) or data (18)",
                });
            }
        };
        let Some(stream_id) = self
            .publish_stream
            .filter(|_| self.state == ClientState::Publishing)
        else {
            return Err(RtmpError::MalformedMessage {
                msg_type,
                reason: "send_media before NetStream.Publish.Start",
            });
        };
        if payload.len() > MAX_ENCODED_LEN {
            return Err(RtmpError::MessageTooLarge {
                len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
                max: MAX_ENCODED_LEN as u32,
            });
        }
        self.encoder
            .encode(&mut self.out, csid, timestamp, msg_type, stream_id, payload);
        Ok(())
    }

    fn request(&mut self, r: Request) {
        match self.state {
            ClientState::Connected | ClientState::Publishing | ClientState::Playing => {
                self.start_request(r)
            }
            ClientState::Handshaking | ClientState::Connecting => {
                if self.waiting.len() < MAX_PENDING_REQUESTS {
                    self.waiting.push(r);
                }
            }
            ClientState::Closed => {}
        }
    }

    fn tid(&mut self) -> f64 {
        let t = self.next_tid;
        self.next_tid += 1.0;
        t
    }

    fn start_request(&mut self, r: Request) {
        if self.creating.len() >= MAX_PENDING_REQUESTS {
            return;
        }
        if let Request::Publish(name) = &r {
            let name = Value::from(name.as_str());
            let t = self.tid();
            self.send_command(0, "releaseStream", t, std::slice::from_ref(&name));
            let t = self.tid();
            self.send_command(0, "FCPublish", t, &[name]);
        }
        let t = self.tid();
        self.send_command(0, "createStream", t, &[]);
        self.creating.push((t, r));
    }

    fn handshake_done(&mut self) {
        self.state = ClientState::Connecting;
        let size = self.cfg.chunk_size.clamp(1, MAX_CHUNK_SIZE);
        self.send_control(ControlMessage::SetChunkSize(size));
        self.encoder.set_chunk_size(size);
        if self.pending_connect.is_some() {
            self.send_connect();
        }
    }

    fn send_connect(&mut self) {
        let Some((app, tc_url)) = self.pending_connect.take() else {
            return;
        };
        self.connect_sent = true;
        let obj = object(&[
            ("app", app.into()),
            ("type", "nonprivate".into()),
            ("flashVer", "FMLE/3.0 (compatible; Sluice)".into()),
            ("tcUrl", tc_url.into()),
            ("fpad", Value::Boolean(false)),
            ("capabilities", 15.0.into()),
            ("audioCodecs", 4071.0.into()),
            ("videoCodecs", 252.0.into()),
            ("videoFunction", 1.0.into()),
            ("objectEncoding", 0.0.into()),
            (
                "fourCcList",
                Value::StrictArray(vec!["av01".into(), "vp09".into(), "hvc1".into()]),
            ),
        ]);
        let p = build("connect", CONNECT_TID, &obj, &[]);
        self.send(CSID_COMMAND, 0, MSG_COMMAND_AMF0, 0, &p);
    }

    fn send(&mut self, csid: u32, timestamp: u32, msg_type: u8, stream_id: u32, payload: &[u8]) {
        self.encoder
            .encode(&mut self.out, csid, timestamp, msg_type, stream_id, payload);
    }

    fn send_control(&mut self, m: ControlMessage) {
        let (t, p) = m.encode();
        self.send(CSID_PROTOCOL_CONTROL, 0, t, 0, &p);
    }

    fn send_command(&mut self, stream_id: u32, name: &str, tid: f64, args: &[Value]) {
        let p = build(name, tid, &Value::Null, args);
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM_COMMAND
        };
        self.send(csid, 0, MSG_COMMAND_AMF0, stream_id, &p);
    }

    fn push_event(&mut self, ev: ClientEvent) {
        self.events.push_back(ev);
    }

    fn handle_message(&mut self, msg: Message) -> Result<(), RtmpError> {
        dispatch(msg, |incoming| match incoming {
            Incoming::Control(c) => self.handle_control(c),
            Incoming::Media {
                msg_type,
                stream_id,
                timestamp,
                payload,
            } => self.media(msg_type, stream_id, timestamp, payload),
            Incoming::Command { stream_id, command } => self.handle_command(stream_id, command),
        })
    }

    fn handle_control(&mut self, c: ControlMessage) {
        match c {
            ControlMessage::WindowAckSize(size) => self.ack.set_window(size),
            ControlMessage::UserControl(UserControlEvent::PingRequest(ts)) => self.send_control(
                ControlMessage::UserControl(UserControlEvent::PingResponse(ts)),
            ),
            ControlMessage::UserControl(UserControlEvent::StreamEof(stream_id)) => {
                self.push_event(ClientEvent::StreamEof { stream_id });
            }
            _ => {}
        }
    }

    fn media(&mut self, msg_type: u8, stream_id: u32, timestamp: u32, payload: Bytes) {
        if msg_type == MSG_DATA_AMF0 && is_protocol_data(&payload) {
            return;
        }
        self.push_event(ClientEvent::Media {
            msg_type,
            stream_id,
            timestamp,
            payload,
        });
    }

    fn handle_command(&mut self, stream_id: u32, cmd: Command) {
        let tid = cmd.transaction_id;
        let info = cmd.args.first();
        match cmd.name.as_str() {
            "_result" if tid == CONNECT_TID && self.state == ClientState::Connecting => {
                self.state = ClientState::Connected;
                self.push_event(ClientEvent::Connected);
                self.send_control(ControlMessage::WindowAckSize(self.cfg.window_ack_size));
                for r in std::mem::take(&mut self.waiting) {
                    self.start_request(r);
                }
            }
            "_error" if tid == CONNECT_TID && self.state == ClientState::Connecting => {
                self.state = ClientState::Closed;
                self.push_event(ClientEvent::ConnectFailed {
                    code: prop(info, "code"),
                    description: prop(info, "description"),
                });
            }
            "_result" => {
                let Some(i) = self.creating.iter().position(|(t, _)| *t == tid) else {
                    return; // releaseStream, FCPublish, ...
                };
                let (_, req) = self.creating.swap_remove(i);
                let Some(id) = info
                    .and_then(Value::as_f64)
                    .filter(|v| v.is_finite() && *v >= 0.0 && *v <= f64::from(u32::MAX))
                else {
                    self.push_event(ClientEvent::Status {
                        stream_id,
                        level: "error".into(),
                        code: "NetConnection.Call.Failed".into(),
                        description: "createStream returned no stream id".into(),
                    });
                    return;
                };
                let id = id as u32;
                match req {
                    Request::Publish(name) => {
                        let t = self.tid();
                        self.send_command(id, "publish", t, &[name.into(), "live".into()]);
                    }
                    Request::Play(name) => {
                        self.send_control(ControlMessage::UserControl(
                            UserControlEvent::SetBufferLength {
                                stream_id: id,
                                buffer_ms: self.cfg.buffer_length_ms,
                            },
                        ));
                        let t = self.tid();
                        self.send_command(id, "play", t, &[name.into(), Value::Number(-2.0)]);
                    }
                }
            }
            "_error" => {
                if let Some(i) = self.creating.iter().position(|(t, _)| *t == tid) {
                    self.creating.swap_remove(i);
                }
                self.push_event(ClientEvent::Status {
                    stream_id,
                    level: "error".into(),
                    code: prop(info, "code"),
                    description: prop(info, "description"),
                });
            }
            "onStatus" => {
                let code = prop(info, "code");
                let started = match code.as_str() {
                    "NetStream.Publish.Start" => {
                        self.state = ClientState::Publishing;
                        self.publish_stream = Some(stream_id);
                        Some(ClientEvent::PublishStarted { stream_id })
                    }
                    "NetStream.Play.Start" => {
                        self.state = ClientState::Playing;
                        Some(ClientEvent::PlayStarted { stream_id })
                    }
                    _ => None,
                };
                self.push_event(ClientEvent::Status {
                    stream_id,
                    level: prop(info, "level"),
                    code,
                    description: prop(info, "description"),
                });
                if let Some(ev) = started {
                    self.push_event(ev);
                }
            }
            _ => {} // onBWDone, onFCPublish, unknown commands
        }
    }
}

/// A string property of an info object, or "".
fn prop(info: Option<&Value>, key: &str) -> String {
    info.and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// True for data messages that are RTMP chatter rather than stream data:
/// `|RtmpSampleAccess` and `onStatus` (NetStream.Data.Start). Checked on the
/// raw AMF0 bytes (string marker, u16 length, text) without decoding.
fn is_protocol_data(payload: &[u8]) -> bool {
    let name = match payload {
        [0x02, hi, lo, rest @ ..] => rest.get(..usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    };
    matches!(name, Some(b"|RtmpSampleAccess" | b"onStatus"))
}

#[cfg(test)]
mod tests;
