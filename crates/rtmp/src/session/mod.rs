//! The server session: handshake, chunk layer, control messages and the
//! NetConnection / NetStream command flow, as a sans-IO state machine.
//!
//! Drive it like this:
//! ```
//! # use rtmp::session::{ServerConfig, ServerSession, ServerEvent};
//! let mut s = ServerSession::new(ServerConfig::default());
//! # let received: &[u8] = &[];
//! s.handle_input(received).expect("close on error");
//! while let Some(ev) = s.poll_event() {
//!     if let ServerEvent::Connect { .. } = ev { s.accept_connect(); }
//! }
//! while let Some(bytes) = s.take_output() { /* write to the socket */ let _ = bytes; }
//! ```

use std::collections::{HashMap, VecDeque};

use amf::Value;
use bytes::{Bytes, BytesMut};

use crate::RtmpError;
use crate::chunk::{
    COMMAND_PARTIAL_BUDGET, CSID_COMMAND, CSID_PROTOCOL_CONTROL, ChunkDecoder, ChunkEncoder,
    DEFAULT_MAX_CHUNK_STREAMS, DEFAULT_MAX_MESSAGE_LEN, MAX_CHUNK_SIZE, Message,
    media_partial_budget,
};
use crate::command::{Command, build, object, status_info};
use crate::handshake::ServerHandshake;
use crate::incoming::{Incoming, dispatch};
use crate::message::*;

/// Most message streams (createStream) one connection may create.
pub const MAX_STREAMS_PER_CONNECTION: usize = 16;
/// Most events queued before the adapter drains them; beyond it is an error
/// (the adapter must poll events after each `handle_input`).
pub const MAX_QUEUED_EVENTS: usize = 1 << 16;

/// Server session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Our outgoing chunk size, announced after connect.
    pub chunk_size: u32,
    /// Window Acknowledgement Size we announce (the peer acks us this often).
    pub window_ack_size: u32,
    /// Set Peer Bandwidth we announce.
    pub peer_bandwidth: u32,
    /// Largest incoming message accepted.
    pub max_message_len: u32,
    /// Most distinct incoming chunk stream ids.
    pub max_chunk_streams: usize,
    /// Most bytes incomplete incoming messages may hold together (allocated
    /// capacity included) until a publish is accepted, and for players:
    /// commands and control only ([`COMMAND_PARTIAL_BUDGET`]).
    pub max_partial_bytes: usize,
    /// The same while a publish is accepted: at least `max_message_len`, or
    /// the largest messages accepted cannot arrive
    /// ([`media_partial_budget`]`(max_message_len)`).
    pub max_partial_bytes_publishing: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_chunk_streams: DEFAULT_MAX_CHUNK_STREAMS,
            max_partial_bytes: COMMAND_PARTIAL_BUDGET,
            max_partial_bytes_publishing: media_partial_budget(DEFAULT_MAX_MESSAGE_LEN),
        }
    }
}

/// What the session asks the adapter to decide or act on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// `connect`: answer with `accept_connect` or `reject_connect`.
    Connect {
        /// Transaction id of the connect command.
        transaction_id: f64,
        /// Application name, without any `?query`.
        app: String,
        /// The part of `app` after the first `?`.
        app_query: Option<String>,
        /// `tcUrl`.
        tc_url: Option<String>,
        /// `objectEncoding` (0 = AMF0, 3 = AMF3).
        object_encoding: f64,
        /// `flashVer`.
        flash_ver: Option<String>,
        /// `swfUrl`.
        swf_url: Option<String>,
        /// `pageUrl`.
        page_url: Option<String>,
        /// The whole command object.
        command_object: Value,
    },
    /// `publish`: answer with `accept_publish` or `reject_publish`.
    Publish {
        /// Message stream id.
        stream_id: u32,
        /// Transaction id.
        transaction_id: f64,
        /// Stream name before the first `?`.
        name: String,
        /// The part after the first `?`.
        query: Option<String>,
        /// `live`, `record` or `append`.
        publish_type: String,
    },
    /// `play` or `play2`: answer with `accept_play` or `reject_play`.
    Play {
        /// Message stream id.
        stream_id: u32,
        /// Stream name before the first `?`.
        name: String,
        /// The part after the first `?`.
        query: Option<String>,
        /// Start (-2 live or recorded, -1 live only, >= 0 seconds).
        start: f64,
        /// Duration (-1 until the end).
        duration: f64,
        /// Reset flag.
        reset: bool,
    },
    /// Audio (8), video (9) or data (18) on a publishing stream.
    Media {
        /// Message stream id.
        stream_id: u32,
        /// 8, 9 or 18.
        msg_type: u8,
        /// Absolute timestamp (ms, wrapping).
        timestamp: u32,
        /// Payload; for data, AMF0 starting with the handler name
        /// (`@setDataFrame` stripped).
        payload: Bytes,
    },
    /// The publisher stopped (FCUnpublish, or deleteStream while publishing).
    Unpublish {
        /// Message stream id.
        stream_id: u32,
    },
    /// `deleteStream` or `closeStream`.
    DeleteStream {
        /// Message stream id.
        stream_id: u32,
    },
    /// `pause`.
    Pause {
        /// Message stream id.
        stream_id: u32,
        /// True to pause, false to resume.
        pause: bool,
        /// Position in milliseconds.
        position_ms: f64,
    },
    /// `receiveAudio`.
    ReceiveAudio {
        /// Message stream id.
        stream_id: u32,
        /// Whether the viewer wants audio.
        enabled: bool,
    },
    /// `receiveVideo`.
    ReceiveVideo {
        /// Message stream id.
        stream_id: u32,
        /// Whether the viewer wants video.
        enabled: bool,
    },
    /// Answer to our `send_ping`.
    PingResponse {
        /// The timestamp we sent.
        timestamp: u32,
    },
}

#[derive(Debug, Default)]
struct StreamState {
    /// Set by a publish command (media passes from then on), cleared by
    /// reject, unpublish or delete.
    publishing: Option<String>,
    /// The adapter accepted the publish: the session's budget of bytes in
    /// incomplete messages is the publishing one.
    admitted: bool,
}

/// The server side of one RTMP connection.
#[derive(Debug)]
pub struct ServerSession {
    cfg: ServerConfig,
    handshake: ServerHandshake,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    out: BytesMut,
    events: VecDeque<ServerEvent>,
    bytes_received: u64,
    bytes_sent: u64,
    ack: AckWindow,
    peer_bandwidth: Option<(u32, u8)>,
    last_ack_received: u32,
    buffer_lengths: HashMap<u32, u32>,
    connect_tid: Option<f64>,
    object_encoding: f64,
    streams: HashMap<u32, StreamState>,
    next_stream_id: u32,
    /// The adapter's cap on bytes in incomplete messages (its share of a
    /// server-wide budget); `usize::MAX` when it sets none.
    partial_grant: usize,
    /// Connect, Publish and Play events queued and not yet polled.
    decisions_queued: usize,
}

fn split_query(s: &str) -> (String, Option<String>) {
    match s.split_once('?') {
        Some((a, q)) => (a.to_owned(), Some(q.to_owned())),
        None => (s.to_owned(), None),
    }
}

fn str_prop(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl ServerSession {
    /// A session waiting for the handshake.
    pub fn new(cfg: ServerConfig) -> Self {
        let mut decoder = ChunkDecoder::new(cfg.max_message_len, cfg.max_chunk_streams);
        decoder.set_max_partial_bytes(cfg.max_partial_bytes);
        Self {
            cfg,
            handshake: ServerHandshake::new(),
            decoder,
            encoder: ChunkEncoder::new(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            bytes_received: 0,
            bytes_sent: 0,
            ack: AckWindow::default(),
            peer_bandwidth: None,
            last_ack_received: 0,
            buffer_lengths: HashMap::new(),
            connect_tid: None,
            object_encoding: 0.0,
            streams: HashMap::new(),
            next_stream_id: 1,
            partial_grant: usize::MAX,
            decisions_queued: 0,
        }
    }

    /// Bytes held now by incomplete incoming messages (allocated capacity
    /// included), across every chunk stream.
    pub fn partial_bytes(&self) -> usize {
        self.decoder.partial_bytes()
    }

    /// The session's own budget for [`ServerSession::partial_bytes`]:
    /// `max_partial_bytes_publishing` while a publish is accepted, else
    /// `max_partial_bytes`. Growing past it is
    /// [`RtmpError::PartialBudgetExceeded`].
    pub fn partial_budget(&self) -> usize {
        if self.streams.values().any(|s| s.admitted) {
            self.cfg.max_partial_bytes_publishing
        } else {
            self.cfg.max_partial_bytes
        }
    }

    /// Caps the budget below the session's own (the adapter's share of a
    /// server-wide budget, granted before each `handle_input`); `usize::MAX`
    /// removes the cap. The budget in force is the smaller of the two, so a
    /// [`RtmpError::PartialBudgetExceeded`] whose `budget` is below
    /// [`ServerSession::partial_budget`] was caused by this cap.
    pub fn set_partial_grant(&mut self, bytes: usize) {
        self.partial_grant = bytes;
        self.apply_partial_budget();
    }

    fn apply_partial_budget(&mut self) {
        let budget = self.partial_budget().min(self.partial_grant);
        self.decoder.set_max_partial_bytes(budget);
    }

    /// True while a Connect, Publish or Play event waits in the queue: an
    /// adapter that reads ahead should answer it first (a publisher's media
    /// then meets the publishing budget, not the command one).
    pub fn awaits_decision(&self) -> bool {
        self.decisions_queued > 0
    }

    /// True when the client used the digest ("complex", Flash Player 9) handshake.
    pub fn is_digest_handshake(&self) -> bool {
        self.handshake.is_digest()
    }

    /// Feeds received bytes. Any error means: close the connection.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        self.bytes_received += data.len() as u64;
        let mut data = data;
        if !self.handshake.is_done() {
            let used = self.handshake.handle_input(data)?;
            if let Some(b) = self.handshake.take_output() {
                self.out.extend_from_slice(&b);
            }
            data = data.get(used..).unwrap_or_default();
        }
        if !data.is_empty() {
            self.decoder.push(data);
        }
        while let Some(msg) = self.decoder.poll()? {
            self.handle_message(msg)?;
            if self.events.len() > MAX_QUEUED_EVENTS {
                return Err(RtmpError::MalformedMessage {
                    msg_type: 0,
                    reason: "event queue overflow (adapter not draining)",
                });
            }
        }
        if let Some(seq) = self.ack.due(self.bytes_received) {
            self.send_control(ControlMessage::Acknowledgement(seq));
        }
        Ok(())
    }

    /// The next event for the adapter.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        let ev = self.events.pop_front()?;
        if is_decision(&ev) {
            self.decisions_queued -= 1;
        }
        Some(ev)
    }

    fn push_event(&mut self, ev: ServerEvent) {
        if is_decision(&ev) {
            self.decisions_queued += 1;
        }
        self.events.push_back(ev);
    }

    /// Everything the session wants to send, in order.
    pub fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        let b = self.out.split().freeze();
        self.bytes_sent += b.len() as u64;
        Some(b)
    }

    /// Our current outgoing chunk size (media chunked by the adapter must use it).
    pub fn out_chunk_size(&self) -> u32 {
        self.encoder.chunk_size()
    }

    /// Bytes received so far (handshake included).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Bytes handed out by `take_output` plus those reported with `add_bytes_sent`.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Records media bytes the adapter wrote itself.
    pub fn add_bytes_sent(&mut self, n: u64) {
        self.bytes_sent += n;
    }

    /// True once C2 has arrived.
    pub fn is_handshake_done(&self) -> bool {
        self.handshake.is_done()
    }

    /// The last Acknowledgement sequence number the peer sent.
    pub fn last_ack_received(&self) -> u32 {
        self.last_ack_received
    }

    /// The peer's Window Acknowledgement Size (0 until it sends one).
    pub fn peer_window_ack_size(&self) -> u32 {
        self.ack.window()
    }

    /// The peer's Set Peer Bandwidth `(size, limit type)`, if it sent one.
    pub fn peer_bandwidth(&self) -> Option<(u32, u8)> {
        self.peer_bandwidth
    }

    /// The buffer length the peer announced for `stream_id` (ms).
    pub fn buffer_length(&self, stream_id: u32) -> Option<u32> {
        self.buffer_lengths.get(&stream_id).copied()
    }

    /// True if `stream_id` has an active (or requested) publish.
    pub fn is_publishing(&self, stream_id: u32) -> bool {
        self.streams
            .get(&stream_id)
            .is_some_and(|s| s.publishing.is_some())
    }

    fn send(&mut self, csid: u32, msg_type: u8, stream_id: u32, payload: &[u8]) {
        self.encoder
            .encode(&mut self.out, csid, 0, msg_type, stream_id, payload);
    }

    fn send_control(&mut self, m: ControlMessage) {
        let (t, p) = m.encode();
        self.send(CSID_PROTOCOL_CONTROL, t, 0, &p);
    }

    fn send_command(&mut self, stream_id: u32, name: &str, tid: f64, obj: &Value, args: &[Value]) {
        let p = build(name, tid, obj, args);
        self.send(CSID_COMMAND, MSG_COMMAND_AMF0, stream_id, &p);
    }

    fn send_data(&mut self, stream_id: u32, values: &[Value]) {
        let mut b = BytesMut::new();
        amf::encode_all(values, &mut b);
        self.send(CSID_COMMAND, MSG_DATA_AMF0, stream_id, &b);
    }

    /// Sends a Ping Request; the answer arrives as [`ServerEvent::PingResponse`].
    pub fn send_ping(&mut self, timestamp: u32) {
        self.send_control(ControlMessage::UserControl(UserControlEvent::PingRequest(
            timestamp,
        )));
    }

    /// Sends User Control Stream Begin.
    pub fn send_stream_begin(&mut self, stream_id: u32) {
        self.send_control(ControlMessage::UserControl(UserControlEvent::StreamBegin(
            stream_id,
        )));
    }

    /// Sends User Control Stream EOF.
    pub fn send_stream_eof(&mut self, stream_id: u32) {
        self.send_control(ControlMessage::UserControl(UserControlEvent::StreamEof(
            stream_id,
        )));
    }

    /// Sends `onStatus` with `{level, code, description}` on `stream_id`.
    pub fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        let info = status_info(level, code, description);
        self.send_command(stream_id, "onStatus", 0.0, &Value::Null, &[info]);
    }

    /// Accepts the pending connect: Window Ack Size, Set Peer Bandwidth,
    /// Set Chunk Size, `_result`, `onBWDone`.
    pub fn accept_connect(&mut self) {
        let tid = self.connect_tid.take().unwrap_or(1.0);
        self.send_control(ControlMessage::WindowAckSize(self.cfg.window_ack_size));
        self.send_control(ControlMessage::SetPeerBandwidth {
            size: self.cfg.peer_bandwidth,
            limit_type: PEER_BANDWIDTH_DYNAMIC,
        });
        let size = self.cfg.chunk_size.clamp(1, MAX_CHUNK_SIZE);
        self.send_control(ControlMessage::SetChunkSize(size));
        self.encoder.set_chunk_size(size);
        let props = object(&[
            ("fmsVer", "FMS/3,0,1,123".into()),
            ("capabilities", 31.0.into()),
            ("mode", 1.0.into()),
        ]);
        let info = object(&[
            ("level", "status".into()),
            ("code", "NetConnection.Connect.Success".into()),
            ("description", "Connection succeeded.".into()),
            ("objectEncoding", self.object_encoding.into()),
        ]);
        self.send_command(0, "_result", tid, &props, &[info]);
        self.send_command(0, "onBWDone", 0.0, &Value::Null, &[]);
    }

    /// Rejects the pending connect with `_error` NetConnection.Connect.Rejected.
    pub fn reject_connect(&mut self, description: &str) {
        let tid = self.connect_tid.take().unwrap_or(1.0);
        let info = status_info("error", "NetConnection.Connect.Rejected", description);
        self.send_command(0, "_error", tid, &Value::Null, &[info]);
    }

    /// Accepts a publish: onStatus NetStream.Publish.Start. From now on the
    /// budget of bytes in incomplete messages is the publishing one.
    pub fn accept_publish(&mut self, stream_id: u32) {
        let mut name = String::new();
        if let Some(s) = self.streams.get_mut(&stream_id)
            && let Some(n) = &s.publishing
        {
            name.clone_from(n);
            s.admitted = true;
        }
        self.apply_partial_budget();
        self.send_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &format!("{name} is now published."),
        );
    }

    /// Rejects a publish with onStatus level "error" and `code`.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        if let Some(s) = self.streams.get_mut(&stream_id) {
            s.publishing = None;
            s.admitted = false;
        }
        self.apply_partial_budget();
        self.send_status(stream_id, "error", code, description);
    }

    /// Accepts a play: Stream Begin, Play.Reset, Play.Start,
    /// `|RtmpSampleAccess`, Data.Start.
    pub fn accept_play(&mut self, stream_id: u32) {
        self.send_stream_begin(stream_id);
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Reset",
            "Playing and resetting.",
        );
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            "Started playing.",
        );
        self.send_data(
            stream_id,
            &[
                "|RtmpSampleAccess".into(),
                Value::Boolean(true),
                Value::Boolean(true),
            ],
        );
        self.send_data(
            stream_id,
            &[
                "onStatus".into(),
                object(&[("code", "NetStream.Data.Start".into())]),
            ],
        );
    }

    /// Rejects a play with onStatus level "error" and `code`.
    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str) {
        self.send_status(stream_id, "error", code, description);
    }

    fn handle_message(&mut self, msg: Message) -> Result<(), RtmpError> {
        dispatch(msg, |incoming| match incoming {
            Incoming::Control(c) => self.handle_control(c),
            Incoming::Media {
                msg_type: MSG_DATA_AMF0,
                stream_id,
                timestamp,
                payload,
            } => self.data(stream_id, timestamp, payload),
            Incoming::Media {
                msg_type,
                stream_id,
                timestamp,
                payload,
            } => self.media(stream_id, msg_type, timestamp, payload),
            Incoming::Command { stream_id, command } => self.handle_command(stream_id, command),
        })
    }

    fn handle_control(&mut self, c: ControlMessage) {
        match c {
            ControlMessage::Acknowledgement(seq) => self.last_ack_received = seq,
            ControlMessage::WindowAckSize(size) => self.ack.set_window(size),
            ControlMessage::SetPeerBandwidth { size, limit_type } => {
                self.peer_bandwidth = Some((size, limit_type));
            }
            ControlMessage::UserControl(ev) => match ev {
                UserControlEvent::PingRequest(ts) => self.send_control(
                    ControlMessage::UserControl(UserControlEvent::PingResponse(ts)),
                ),
                UserControlEvent::PingResponse(timestamp) => {
                    self.events
                        .push_back(ServerEvent::PingResponse { timestamp });
                }
                UserControlEvent::SetBufferLength {
                    stream_id,
                    buffer_ms,
                } if self.buffer_lengths.len() < MAX_STREAMS_PER_CONNECTION
                    || self.buffer_lengths.contains_key(&stream_id) =>
                {
                    self.buffer_lengths.insert(stream_id, buffer_ms);
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Media from a stream that is not publishing is ignored.
    fn media(&mut self, stream_id: u32, msg_type: u8, timestamp: u32, payload: Bytes) {
        if self.is_publishing(stream_id) {
            self.events.push_back(ServerEvent::Media {
                stream_id,
                msg_type,
                timestamp,
                payload,
            });
        }
    }

    fn data(&mut self, stream_id: u32, timestamp: u32, body: Bytes) {
        let mut rest: &[u8] = &body;
        let payload = match amf::decode(&mut rest) {
            Ok(Value::String(s)) if s == "@setDataFrame" => body.slice(body.len() - rest.len()..),
            _ => body,
        };
        self.media(stream_id, MSG_DATA_AMF0, timestamp, payload);
    }

    fn call_failed(&mut self, tid: f64, description: &str) {
        let info = status_info("error", "NetConnection.Call.Failed", description);
        self.send_command(0, "_error", tid, &Value::Null, &[info]);
    }

    fn result(&mut self, tid: f64, args: &[Value]) {
        if tid != 0.0 {
            self.send_command(0, "_result", tid, &Value::Null, args);
        }
    }

    fn arg_str(cmd: &Command, i: usize) -> String {
        cmd.args
            .get(i)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    fn handle_command(&mut self, stream_id: u32, cmd: Command) {
        let tid = cmd.transaction_id;
        match cmd.name.as_str() {
            "connect" => {
                let o = &cmd.object;
                let (app, app_query) = split_query(&str_prop(o, "app").unwrap_or_default());
                self.object_encoding = o
                    .get("objectEncoding")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                self.connect_tid = Some(tid);
                self.push_event(ServerEvent::Connect {
                    transaction_id: tid,
                    app,
                    app_query,
                    tc_url: str_prop(o, "tcUrl"),
                    object_encoding: self.object_encoding,
                    flash_ver: str_prop(o, "flashVer"),
                    swf_url: str_prop(o, "swfUrl"),
                    page_url: str_prop(o, "pageUrl"),
                    command_object: cmd.object,
                });
            }
            "releaseStream" | "_checkbw" => self.result(tid, &[Value::Undefined]),
            "getStreamLength" => self.result(tid, &[Value::Number(0.0)]),
            "FCPublish" => {
                let name = Self::arg_str(&cmd, 0);
                let info = object(&[
                    ("code", "NetStream.Publish.Start".into()),
                    ("description", name.into()),
                ]);
                self.send_command(0, "onFCPublish", 0.0, &Value::Null, &[info]);
                self.result(tid, &[Value::Undefined]);
            }
            "FCUnpublish" => {
                let full = Self::arg_str(&cmd, 0);
                let (name, _) = split_query(&full);
                let info = object(&[
                    ("code", "NetStream.Unpublish.Success".into()),
                    ("description", full.clone().into()),
                ]);
                self.send_command(0, "onFCUnpublish", 0.0, &Value::Null, &[info]);
                self.result(tid, &[Value::Undefined]);
                let found = self
                    .streams
                    .iter()
                    .find(|(_, s)| s.publishing.as_deref() == Some(name.as_str()))
                    .map(|(id, _)| *id);
                if let Some(id) = found {
                    self.unpublish(id);
                }
            }
            "createStream" => {
                if self.streams.len() >= MAX_STREAMS_PER_CONNECTION {
                    self.call_failed(tid, "too many streams");
                    return;
                }
                let id = self.next_stream_id;
                self.next_stream_id = self.next_stream_id.wrapping_add(1).max(1);
                self.streams.insert(id, StreamState::default());
                self.result(tid, &[Value::Number(f64::from(id))]);
            }
            "publish" => {
                let (name, query) = split_query(&Self::arg_str(&cmd, 0));
                let publish_type = cmd
                    .args
                    .get(1)
                    .and_then(Value::as_str)
                    .unwrap_or("live")
                    .to_owned();
                match self.streams.get_mut(&stream_id) {
                    Some(s) => s.publishing = Some(name.clone()),
                    None => {
                        self.send_status(
                            stream_id,
                            "error",
                            "NetStream.Publish.BadName",
                            "unknown stream id",
                        );
                        return;
                    }
                }
                self.push_event(ServerEvent::Publish {
                    stream_id,
                    transaction_id: tid,
                    name,
                    query,
                    publish_type,
                });
            }
            "play" => {
                let (name, query) = split_query(&Self::arg_str(&cmd, 0));
                let num = |i: usize, d: f64| cmd.args.get(i).and_then(Value::as_f64).unwrap_or(d);
                let start = num(1, -2.0);
                let duration = num(2, -1.0);
                let reset = match cmd.args.get(3) {
                    Some(Value::Boolean(b)) => *b,
                    Some(Value::Number(n)) => *n != 0.0,
                    _ => true,
                };
                self.push_event(ServerEvent::Play {
                    stream_id,
                    name,
                    query,
                    start,
                    duration,
                    reset,
                });
            }
            "play2" => {
                let p = cmd.args.first().cloned().unwrap_or(Value::Null);
                let (name, query) = split_query(&str_prop(&p, "streamName").unwrap_or_default());
                let num = |k: &str, d: f64| p.get(k).and_then(Value::as_f64).unwrap_or(d);
                self.push_event(ServerEvent::Play {
                    stream_id,
                    name,
                    query,
                    start: num("start", -2.0),
                    duration: num("len", -1.0),
                    reset: false,
                });
            }
            "deleteStream" => {
                let id = cmd
                    .args
                    .first()
                    .and_then(Value::as_f64)
                    .map(|v| v as u32)
                    .unwrap_or(stream_id);
                self.delete_stream(id);
            }
            "closeStream" => self.delete_stream(stream_id),
            "receiveAudio" | "receiveVideo" => {
                let enabled = cmd.args.first().and_then(Value::as_bool).unwrap_or(true);
                self.events.push_back(if cmd.name == "receiveAudio" {
                    ServerEvent::ReceiveAudio { stream_id, enabled }
                } else {
                    ServerEvent::ReceiveVideo { stream_id, enabled }
                });
            }
            "pause" | "pauseRaw" => {
                let pause = cmd.args.first().and_then(Value::as_bool).unwrap_or(true);
                let position_ms = cmd.args.get(1).and_then(Value::as_f64).unwrap_or(0.0);
                self.events.push_back(ServerEvent::Pause {
                    stream_id,
                    pause,
                    position_ms,
                });
            }
            "_result" | "_error" | "onStatus" | "onBWDone" | "onBWCheck" => {}
            other => {
                if tid != 0.0 {
                    let d = format!("unknown command {other}");
                    self.call_failed(tid, &d);
                }
            }
        }
    }

    fn unpublish(&mut self, stream_id: u32) {
        if let Some(s) = self.streams.get_mut(&stream_id)
            && s.publishing.take().is_some()
        {
            s.admitted = false;
            self.apply_partial_budget();
            self.events.push_back(ServerEvent::Unpublish { stream_id });
        }
    }

    fn delete_stream(&mut self, stream_id: u32) {
        self.unpublish(stream_id);
        self.buffer_lengths.remove(&stream_id);
        if self.streams.remove(&stream_id).is_some() {
            self.apply_partial_budget();
            self.events
                .push_back(ServerEvent::DeleteStream { stream_id });
        }
    }
}

/// Events the adapter must answer (accept or reject).
fn is_decision(ev: &ServerEvent) -> bool {
    matches!(
        ev,
        ServerEvent::Connect { .. } | ServerEvent::Publish { .. } | ServerEvent::Play { .. }
    )
}

#[cfg(test)]
mod tests;
