use super::*;
use crate::chunk::{chunk_body, encode_message, write_message_header};
use crate::handshake::HANDSHAKE_SIZE;
use crate::session::{ServerConfig, ServerEvent, ServerSession};

/// Odd piece sizes used when moving bytes between the peers.
const PIECES: [usize; 8] = [1, 3, 7, 64, 129, 500, 1537, 4099];

/// A client and a server wired together in memory.
struct Pair {
    client: ClientSession,
    server: ServerSession,
    client_events: Vec<ClientEvent>,
    server_events: Vec<ServerEvent>,
    piece: usize,
}

impl Pair {
    fn new(server_cfg: ServerConfig) -> Self {
        Self {
            client: ClientSession::new(ClientConfig::default()),
            server: ServerSession::new(server_cfg),
            client_events: Vec::new(),
            server_events: Vec::new(),
            piece: 0,
        }
    }

    fn next_piece(&mut self) -> usize {
        self.piece += 1;
        PIECES[self.piece % PIECES.len()]
    }

    fn feed_client(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (a, b) = rest.split_at(self.next_piece().min(rest.len()));
            self.client.handle_input(a).unwrap();
            rest = b;
        }
        self.client_events
            .extend(std::iter::from_fn(|| self.client.poll_event()));
    }

    fn feed_server(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (a, b) = rest.split_at(self.next_piece().min(rest.len()));
            self.server.handle_input(a).unwrap();
            rest = b;
        }
        self.server_events
            .extend(std::iter::from_fn(|| self.server.poll_event()));
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(b) = self.client.take_output() {
                self.feed_server(&b);
                moved = true;
            }
            while let Some(b) = self.server.take_output() {
                self.feed_client(&b);
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    fn take_client_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }

    fn take_server_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.server_events)
    }

    /// Handshake and an accepted connect.
    fn connected(server_cfg: ServerConfig) -> Self {
        let mut p = Self::new(server_cfg);
        p.client.connect("live", "rtmp://127.0.0.1/live");
        p.pump();
        match &p.take_server_events()[..] {
            [ServerEvent::Connect { app, tc_url, .. }] => {
                assert_eq!(app, "live");
                assert_eq!(tc_url.as_deref(), Some("rtmp://127.0.0.1/live"));
            }
            other => panic!("unexpected {other:?}"),
        }
        p.server.accept_connect();
        p.pump();
        assert_eq!(p.take_client_events(), vec![ClientEvent::Connected]);
        assert_eq!(p.client.state(), ClientState::Connected);
        p
    }

    /// Connected, then an accepted publish of `key`; returns the stream id.
    fn publishing() -> (Self, u32) {
        let mut p = Self::connected(ServerConfig::default());
        p.client.publish("key");
        p.pump();
        let sid = match &p.take_server_events()[..] {
            [
                ServerEvent::Publish {
                    stream_id,
                    name,
                    publish_type,
                    ..
                },
            ] => {
                assert_eq!((name.as_str(), publish_type.as_str()), ("key", "live"));
                *stream_id
            }
            other => panic!("unexpected {other:?}"),
        };
        p.server.accept_publish(sid);
        p.pump();
        (p, sid)
    }

    /// Writes one media message as the server adapter does: session output
    /// first, then the message with the server's outgoing chunk size.
    fn server_media(&mut self, csid: u32, ts: u32, msg_type: u8, sid: u32, payload: &[u8]) {
        self.pump();
        let mut b = BytesMut::new();
        let size = self.server.out_chunk_size();
        if ts < 0xFF_FFFF {
            write_message_header(&mut b, csid, ts, payload.len() as u32, msg_type, sid);
            b.extend_from_slice(&chunk_body(payload, size, csid));
        } else {
            encode_message(&mut b, csid, ts, msg_type, sid, payload, size);
        }
        self.server.add_bytes_sent(b.len() as u64);
        self.feed_client(&b);
        self.pump();
    }
}

fn status(stream_id: u32, level: &str, code: &str, description: &str) -> ClientEvent {
    ClientEvent::Status {
        stream_id,
        level: level.into(),
        code: code.into(),
        description: description.into(),
    }
}

fn media(msg_type: u8, stream_id: u32, timestamp: u32, payload: &[u8]) -> ClientEvent {
    ClientEvent::Media {
        msg_type,
        stream_id,
        timestamp,
        payload: Bytes::copy_from_slice(payload),
    }
}

/// A client that received S0+S1+S2 from a hand-built server; returns it with
/// its output after C0+C1 (C2 and what follows).
fn handshaken(cfg: ClientConfig) -> (ClientSession, Bytes) {
    let mut c = ClientSession::new(cfg);
    let c0c1 = c.take_output().unwrap();
    assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
    assert_eq!(c0c1[0], 3);
    let mut s = vec![3u8];
    s.extend((0..HANDSHAKE_SIZE).map(|i| (i % 251) as u8)); // S1
    s.extend_from_slice(&c0c1[1..]); // S2 echoes C1
    c.handle_input(&s).unwrap();
    assert_eq!(c.state(), ClientState::Connecting);
    let out = c.take_output().unwrap();
    (c, out)
}

/// Set Chunk Size 4096 as it appears on the wire (csid 2, stream 0).
const SET_CHUNK_SIZE_4096: [u8; 16] = [
    0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0x10, 0x00,
];

#[test]
fn handshake_output_then_set_chunk_size_then_connect() {
    let (mut c, out) = handshaken(ClientConfig::default());
    // C2 echoes S1.
    let s1: Vec<u8> = (0..HANDSHAKE_SIZE).map(|i| (i % 251) as u8).collect();
    assert_eq!(&out[..HANDSHAKE_SIZE], &s1[..]);
    assert_eq!(&out[HANDSHAKE_SIZE..], &SET_CHUNK_SIZE_4096);
    // connect after the handshake goes out at once, chunked at 4096.
    c.connect("app", "rtmp://h/app");
    let out = c.take_output().unwrap();
    let mut d = ChunkDecoder::new(1 << 20, 8);
    d.push(&SET_CHUNK_SIZE_4096);
    d.push(&out);
    assert_eq!(d.poll().unwrap().unwrap().msg_type, MSG_SET_CHUNK_SIZE);
    let m = d.poll().unwrap().unwrap();
    assert_eq!((m.csid, m.msg_type, m.stream_id), (3, 20, 0));
    let cmd = Command::parse(&m.payload).unwrap();
    assert_eq!((cmd.name.as_str(), cmd.transaction_id), ("connect", 1.0));
    assert_eq!(cmd.object.get("app").and_then(Value::as_str), Some("app"));
    assert_eq!(
        cmd.object.get("tcUrl").and_then(Value::as_str),
        Some("rtmp://h/app")
    );
    // A second connect is ignored.
    c.connect("other", "rtmp://h/other");
    assert!(c.take_output().is_none());
}

#[test]
fn connect_publish_media_round_trip() {
    let (mut p, sid) = Pair::publishing();
    assert_eq!(sid, 1);
    assert_eq!(
        p.take_client_events(),
        vec![
            status(
                1,
                "status",
                "NetStream.Publish.Start",
                "key is now published."
            ),
            ClientEvent::PublishStarted { stream_id: 1 },
        ]
    );
    assert_eq!(p.client.state(), ClientState::Publishing);
    assert_eq!(p.client.publish_stream_id(), Some(1));
    // Our Window Ack Size reached the server.
    assert_eq!(p.server.peer_window_ack_size(), 2_500_000);

    // onMetaData as is (an Enhanced RTMP caller decides the framing).
    let mut meta = BytesMut::new();
    amf::encode(&"onMetaData".into(), &mut meta);
    amf::encode(
        &Value::EcmaArray(vec![("width".into(), 1280.0.into())]),
        &mut meta,
    );
    // Enhanced RTMP video: ex-header, PacketType SequenceStart, FourCC hvc1.
    let mut big = vec![0x90, b'h', b'v', b'c', b'1'];
    big.extend((0..10_000u32).map(|i| (i * 7) as u8)); // > 4096 chunk size
    let sent: Vec<(u8, u32, Vec<u8>)> = vec![
        (18, 0, meta.to_vec()),
        (8, 10, vec![0xAF, 0x00, 0x12, 0x10]),
        (9, 20, big.clone()),
        (9, 0xFF_FFFF, vec![0x27, 1, 2, 3]),
        (8, 0x0100_0000, vec![0xAF, 0x01, 0x55]),
        (9, 0x0100_0021, big),
    ];
    for (t, ts, payload) in &sent {
        p.client.send_media(*t, *ts, payload).unwrap();
    }
    p.pump();
    let got = p.take_server_events();
    let want: Vec<ServerEvent> = sent
        .into_iter()
        .map(|(msg_type, timestamp, payload)| ServerEvent::Media {
            stream_id: 1,
            msg_type,
            timestamp,
            payload: Bytes::from(payload),
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn send_media_refused_unless_publishing() {
    let mut p = Pair::connected(ServerConfig::default());
    assert!(matches!(
        p.client.send_media(9, 0, &[0x17]),
        Err(RtmpError::MalformedMessage { msg_type: 9, .. })
    ));
    assert!(p.client.take_output().is_none());
    let (mut p, _) = Pair::publishing();
    assert!(p.client.send_media(20, 0, &[0]).is_err());
    assert!(
        p.client
            .send_media(8, 0, &vec![0; MAX_ENCODED_LEN + 1])
            .is_err()
    );
    assert!(p.client.take_output().is_none());
}

#[test]
fn connect_play_media() {
    let mut p = Pair::new(ServerConfig::default());
    // Both requested before the handshake: queued until connected.
    p.client.connect("live", "rtmp://127.0.0.1/live");
    p.client.play("cam");
    p.pump();
    assert!(matches!(
        &p.take_server_events()[..],
        [ServerEvent::Connect { .. }]
    ));
    p.server.accept_connect();
    p.pump();
    assert_eq!(p.take_client_events(), vec![ClientEvent::Connected]);
    let sid = match &p.take_server_events()[..] {
        [
            ServerEvent::Play {
                stream_id,
                name,
                start,
                ..
            },
        ] => {
            assert_eq!((name.as_str(), *start), ("cam", -2.0));
            *stream_id
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(p.server.buffer_length(sid), Some(1000));
    p.server.accept_play(sid);
    p.pump();
    // |RtmpSampleAccess and the Data.Start data message are not media.
    assert_eq!(
        p.take_client_events(),
        vec![
            status(
                sid,
                "status",
                "NetStream.Play.Reset",
                "Playing and resetting."
            ),
            status(sid, "status", "NetStream.Play.Start", "Started playing."),
            ClientEvent::PlayStarted { stream_id: sid },
        ]
    );
    assert_eq!(p.client.state(), ClientState::Playing);

    let mut meta = BytesMut::new();
    amf::encode(&"onMetaData".into(), &mut meta);
    amf::encode(&Value::EcmaArray(vec![]), &mut meta);
    let key: Vec<u8> = (0..9000u32).map(|i| (i % 253) as u8).collect();
    p.server_media(5, 0, 18, sid, &meta);
    p.server_media(6, 0, 9, sid, &key);
    p.server_media(4, 23, 8, sid, &[0xAF, 0x01, 0x21]);
    p.server_media(4, 0x0100_0000, 8, sid, &key[..300]);
    p.server.send_stream_eof(sid);
    p.pump();
    assert_eq!(
        p.take_client_events(),
        vec![
            media(18, sid, 0, &meta),
            media(9, sid, 0, &key),
            media(8, sid, 23, &[0xAF, 0x01, 0x21]),
            media(8, sid, 0x0100_0000, &key[..300]),
            ClientEvent::StreamEof { stream_id: sid },
        ]
    );
}

#[test]
fn reject_publish_gives_bad_name() {
    let mut p = Pair::connected(ServerConfig::default());
    p.client.publish("nope");
    p.pump();
    let sid = match &p.take_server_events()[..] {
        [ServerEvent::Publish { stream_id, .. }] => *stream_id,
        other => panic!("unexpected {other:?}"),
    };
    p.server
        .reject_publish(sid, "NetStream.Publish.BadName", "already publishing");
    p.pump();
    assert_eq!(
        p.take_client_events(),
        vec![status(
            sid,
            "error",
            "NetStream.Publish.BadName",
            "already publishing"
        )]
    );
    assert_eq!(p.client.state(), ClientState::Connected);
    assert!(p.client.send_media(9, 0, &[0x17]).is_err());
}

#[test]
fn reject_play_gives_stream_not_found() {
    let mut p = Pair::connected(ServerConfig::default());
    p.client.play("missing");
    p.pump();
    let sid = match &p.take_server_events()[..] {
        [ServerEvent::Play { stream_id, .. }] => *stream_id,
        other => panic!("unexpected {other:?}"),
    };
    p.server
        .reject_play(sid, "NetStream.Play.StreamNotFound", "no such stream");
    p.pump();
    assert_eq!(
        p.take_client_events(),
        vec![status(
            sid,
            "error",
            "NetStream.Play.StreamNotFound",
            "no such stream"
        )]
    );
    assert_eq!(p.client.state(), ClientState::Connected);
}

#[test]
fn reject_connect_fails_and_closes() {
    let mut p = Pair::new(ServerConfig::default());
    p.client.connect("live", "rtmp://127.0.0.1/live");
    p.pump();
    assert_eq!(p.take_server_events().len(), 1);
    p.server.reject_connect("bad token");
    p.pump();
    assert_eq!(
        p.take_client_events(),
        vec![ClientEvent::ConnectFailed {
            code: "NetConnection.Connect.Rejected".into(),
            description: "bad token".into(),
        }]
    );
    assert_eq!(p.client.state(), ClientState::Closed);
    p.client.play("x");
    assert!(p.client.take_output().is_none());
}

#[test]
fn acknowledges_after_server_window() {
    let window = 10_000;
    let mut p = Pair::connected(ServerConfig {
        window_ack_size: window,
        ..ServerConfig::default()
    });
    p.client.play("cam");
    p.pump();
    let sid = match &p.take_server_events()[..] {
        [ServerEvent::Play { stream_id, .. }] => *stream_id,
        other => panic!("unexpected {other:?}"),
    };
    p.server.accept_play(sid);
    p.pump();
    assert_eq!(p.server.last_ack_received(), 0);
    let frame = vec![0x27u8; 3000];
    for i in 0..20 {
        p.server_media(6, i * 40, 9, sid, &frame);
    }
    let acked = u64::from(p.server.last_ack_received());
    let received = p.client.bytes_received();
    assert!(acked >= 5 * u64::from(window), "acked {acked}");
    assert!(acked <= received);
    // Never more than a window (plus the last piece) behind.
    assert!(
        received - acked < u64::from(window) + 4099,
        "{received} {acked}"
    );
}

#[test]
fn ping_answered() {
    let mut p = Pair::connected(ServerConfig::default());
    p.server.send_ping(0xDEAD_BEEF);
    p.pump();
    assert_eq!(
        p.take_server_events(),
        vec![ServerEvent::PingResponse {
            timestamp: 0xDEAD_BEEF
        }]
    );
}

#[test]
fn wire_fixtures_ping_chunk_size_aggregate_amf3_data() {
    let (mut c, _) = handshaken(ClientConfig::default());
    // Ping Request 1234 on csid 2.
    c.handle_input(&[2, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 6, 0, 0, 0x04, 0xD2])
        .unwrap();
    // Ping Response, chunked by our encoder (fmt 0, csid 2).
    assert_eq!(
        &c.take_output().unwrap()[..],
        &[2, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 7, 0, 0, 0x04, 0xD2]
    );
    // Server Set Chunk Size 200, then one 200-byte audio message in one chunk.
    c.handle_input(&[2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 200])
        .unwrap();
    let mut audio = vec![4, 0, 0, 5, 0, 0, 200, 8, 1, 0, 0, 0];
    audio.extend([0xAB; 200]);
    c.handle_input(&audio).unwrap();
    assert_eq!(c.poll_event(), Some(media(8, 1, 5, &[0xAB; 200])));
    // Aggregate at 1000: audio (ts 50) and video (ts 90) -> 1000 and 1040.
    let mut agg = vec![8, 0, 0, 1, 0, 0, 50, 0, 0, 0, 1, 0xAA, 0, 0, 0, 12];
    agg.extend([9, 0, 0, 1, 0, 0, 90, 0, 0, 0, 1, 0xBB, 0, 0, 0, 12]);
    let mut m = vec![6, 0, 0x03, 0xE8, 0, 0, agg.len() as u8, 22, 1, 0, 0, 0];
    m.extend(&agg);
    c.handle_input(&m).unwrap();
    assert_eq!(c.poll_event(), Some(media(8, 1, 1000, &[0xAA])));
    assert_eq!(c.poll_event(), Some(media(9, 1, 1040, &[0xBB])));
    // Data AMF3 (15): format byte dropped, reported as 18.
    let body = [0x02, 0, 2, b'h', b'i'];
    let mut d = vec![5, 0, 0, 7, 0, 0, 6, 15, 1, 0, 0, 0, 0];
    d.extend(body);
    c.handle_input(&d).unwrap();
    assert_eq!(c.poll_event(), Some(media(18, 1, 7, &body)));
    // |RtmpSampleAccess data is chatter; an unknown command is ignored.
    let mut sa = BytesMut::new();
    amf::encode_all(&["|RtmpSampleAccess".into(), Value::Boolean(true)], &mut sa);
    let mut cmd = BytesMut::new();
    encode_message(&mut cmd, 5, 0, 18, 1, &sa, 200);
    encode_message(
        &mut cmd,
        3,
        0,
        20,
        0,
        &build("onFoo", 9.0, &Value::Null, &[]),
        200,
    );
    c.handle_input(&cmd).unwrap();
    assert_eq!(c.poll_event(), None);
    assert!(c.take_output().is_none());
}

#[test]
fn error_reply_becomes_status() {
    let (mut c, _) = handshaken(ClientConfig::default());
    c.connect("live", "rtmp://h/live");
    let mut b = BytesMut::new();
    let ok = build("_result", 1.0, &Value::Null, &[]);
    encode_message(&mut b, 3, 0, 20, 0, &ok, 128);
    c.handle_input(&b).unwrap();
    assert_eq!(c.poll_event(), Some(ClientEvent::Connected));
    c.play("x"); // createStream, transaction 2
    let _ = c.take_output();
    let info = crate::command::status_info("error", "NetConnection.Call.Failed", "too many");
    let err = build("_error", 2.0, &Value::Null, &[info]);
    let mut b = BytesMut::new();
    encode_message(&mut b, 3, 0, 20, 0, &err, 128);
    c.handle_input(&b).unwrap();
    assert_eq!(
        c.poll_event(),
        Some(status(0, "error", "NetConnection.Call.Failed", "too many"))
    );
    assert_eq!(c.state(), ClientState::Connected);
    // A late _result for the failed createStream sends nothing.
    let late = build("_result", 2.0, &Value::Null, &[Value::Number(1.0)]);
    let mut b = BytesMut::new();
    encode_message(&mut b, 3, 0, 20, 0, &late, 128);
    c.handle_input(&b).unwrap();
    assert!(c.take_output().is_none());
}

#[test]
fn protocol_errors_close_the_session() {
    // fmt 3 chunk on a chunk stream never seen.
    let (mut c, _) = handshaken(ClientConfig::default());
    assert_eq!(
        c.handle_input(&[0xC7, 1, 2, 3]),
        Err(RtmpError::UnknownChunkStream { csid: 7, fmt: 3 })
    );
    assert_eq!(c.state(), ClientState::Closed);
    assert_eq!(c.handle_input(&[0xC7]), Ok(()));
    // Declared length over the limit.
    let (mut c, _) = handshaken(ClientConfig {
        max_message_len: 1000,
        ..ClientConfig::default()
    });
    assert!(matches!(
        c.handle_input(&[4, 0, 0, 0, 0, 0x10, 0, 9, 1, 0, 0, 0]),
        Err(RtmpError::MessageTooLarge { len: 4096, .. })
    ));
    // Bad version in S0.
    let mut c = ClientSession::new(ClientConfig::default());
    assert_eq!(
        c.handle_input(&[6]),
        Err(RtmpError::BadVersion { version: 6 })
    );
    assert_eq!(c.state(), ClientState::Closed);
}

#[test]
fn new_session_is_small() {
    let c = ClientSession::new(ClientConfig::default());
    assert_eq!(c.state(), ClientState::Handshaking);
    assert_eq!(c.bytes_received(), 0);
    assert!(std::mem::size_of::<ClientSession>() < 1024);
}

#[test]
fn garbage_after_handshake_never_panics() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let (mut c, _) = handshaken(ClientConfig {
            max_message_len: 4096,
            max_chunk_streams: 4,
            ..ClientConfig::default()
        });
        c.connect("live", "rtmp://h/live");
        c.play("x");
        let len = (next() % 2000) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        for piece in bytes.chunks(1 + (next() % 97) as usize) {
            if c.handle_input(piece).is_err() {
                assert_eq!(c.state(), ClientState::Closed);
                break;
            }
            while c.poll_event().is_some() {}
        }
        while c.take_output().is_some() {}
    }
}
