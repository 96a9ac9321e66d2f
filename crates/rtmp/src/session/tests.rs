use super::*;
use crate::chunk::{ChunkDecoder, encode_message};
use crate::handshake::ClientHandshake;

/// A minimal peer built from the crate's own encoder/decoder.
struct Peer {
    session: ServerSession,
    from_server: ChunkDecoder,
    chunk_size: u32,
}

impl Peer {
    fn connected() -> Self {
        let mut session = ServerSession::new(ServerConfig::default());
        let mut hs = ClientHandshake::new();
        session.handle_input(&hs.take_output().unwrap()).unwrap();
        let s = session.take_output().unwrap();
        assert_eq!(hs.handle_input(&s).unwrap(), s.len());
        session.handle_input(&hs.take_output().unwrap()).unwrap();
        assert!(session.is_handshake_done());
        Self {
            session,
            from_server: ChunkDecoder::new(1 << 24, 64),
            chunk_size: 128,
        }
    }

    fn send(&mut self, csid: u32, ts: u32, msg_type: u8, stream_id: u32, payload: &[u8]) {
        let mut b = BytesMut::new();
        encode_message(
            &mut b,
            csid,
            ts,
            msg_type,
            stream_id,
            payload,
            self.chunk_size,
        );
        // Feed in awkward pieces to exercise reassembly.
        for piece in b.chunks(7) {
            self.session.handle_input(piece).unwrap();
        }
    }

    /// Sends a message in `piece`-byte reads, stopping at the first error; asserts the
    /// session's budget holds after every read.
    fn try_send(
        &mut self,
        csid: u32,
        ts: u32,
        msg_type: u8,
        stream_id: u32,
        payload: &[u8],
        piece: usize,
    ) -> Result<(), RtmpError> {
        let mut b = BytesMut::new();
        encode_message(
            &mut b,
            csid,
            ts,
            msg_type,
            stream_id,
            payload,
            self.chunk_size,
        );
        self.feed(&b, piece)
    }

    /// Feeds raw wire bytes in `piece`-byte reads (see [`Peer::try_send`]).
    fn feed(&mut self, wire: &[u8], piece: usize) -> Result<(), RtmpError> {
        for p in wire.chunks(piece) {
            self.session.handle_input(p)?;
            assert!(self.session.partial_bytes() <= self.session.partial_budget());
        }
        Ok(())
    }

    fn command(&mut self, stream_id: u32, name: &str, tid: f64, obj: Value, args: &[Value]) {
        let p = build(name, tid, &obj, args);
        self.send(3, 0, MSG_COMMAND_AMF0, stream_id, &p);
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    /// Decoded replies: (msg_type, stream_id, AMF values or raw payload).
    fn replies(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(b) = self.session.take_output() {
            self.from_server.push(&b);
        }
        while let Some(m) = self.from_server.poll().unwrap() {
            assert!(m.csid == 2 || m.csid == 3, "session uses csid 2 and 3 only");
            out.push(m);
        }
        out
    }
}

fn cmd_of(m: &Message) -> Command {
    Command::parse(&m.payload).unwrap()
}

fn code_of(m: &Message) -> String {
    let c = cmd_of(m);
    c.args[0]
        .get("code")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned()
}

fn connect(p: &mut Peer) {
    let obj = object(&[
        ("app", "live?token=abc".into()),
        ("tcUrl", "rtmp://localhost/live?token=abc".into()),
        ("flashVer", "FMLE/3.0".into()),
        ("objectEncoding", 0.0.into()),
    ]);
    p.command(0, "connect", 1.0, obj, &[]);
    let ev = p.events();
    match &ev[..] {
        [
            ServerEvent::Connect {
                transaction_id,
                app,
                app_query,
                tc_url,
                flash_ver,
                ..
            },
        ] => {
            assert_eq!(*transaction_id, 1.0);
            assert_eq!(app, "live");
            assert_eq!(app_query.as_deref(), Some("token=abc"));
            assert_eq!(tc_url.as_deref(), Some("rtmp://localhost/live?token=abc"));
            assert_eq!(flash_ver.as_deref(), Some("FMLE/3.0"));
        }
        other => panic!("unexpected {other:?}"),
    }
    p.session.accept_connect();
    let r = p.replies();
    let types: Vec<u8> = r.iter().map(|m| m.msg_type).collect();
    assert_eq!(types, vec![5, 6, 1, 20, 20]);
    assert_eq!(&r[0].payload[..], &2_500_000u32.to_be_bytes());
    assert_eq!(&r[2].payload[..], &4096u32.to_be_bytes());
    let res = cmd_of(&r[3]);
    assert_eq!((res.name.as_str(), res.transaction_id), ("_result", 1.0));
    assert_eq!(
        res.object.get("fmsVer").and_then(Value::as_str),
        Some("FMS/3,0,1,123")
    );
    assert_eq!(code_of(&r[3]), "NetConnection.Connect.Success");
    assert_eq!(cmd_of(&r[4]).name, "onBWDone");
    assert_eq!(p.session.out_chunk_size(), 4096);
}

fn create_stream(p: &mut Peer, tid: f64) -> u32 {
    p.command(0, "createStream", tid, Value::Null, &[]);
    let r = p.replies();
    let c = cmd_of(&r[0]);
    assert_eq!((c.name.as_str(), c.transaction_id), ("_result", tid));
    c.args[0].as_f64().unwrap() as u32
}

#[test]
fn publish_sequence() {
    let mut p = Peer::connected();
    // The client raises its chunk size first, as OBS does.
    p.send(2, 0, MSG_SET_CHUNK_SIZE, 0, &4096u32.to_be_bytes());
    p.chunk_size = 4096;
    connect(&mut p);

    p.command(0, "releaseStream", 2.0, Value::Null, &["key?x=1".into()]);
    p.command(0, "FCPublish", 3.0, Value::Null, &["key?x=1".into()]);
    let r = p.replies();
    assert_eq!(cmd_of(&r[0]).name, "_result");
    assert_eq!(cmd_of(&r[1]).name, "onFCPublish");
    assert_eq!(cmd_of(&r[2]).transaction_id, 3.0);

    let sid = create_stream(&mut p, 4.0);
    assert_eq!(sid, 1);
    p.command(
        sid,
        "publish",
        5.0,
        Value::Null,
        &["key?x=1".into(), "live".into()],
    );
    assert_eq!(
        p.events(),
        vec![ServerEvent::Publish {
            stream_id: 1,
            transaction_id: 5.0,
            name: "key".into(),
            query: Some("x=1".into()),
            publish_type: "live".into()
        }]
    );
    p.session.accept_publish(sid);
    let r = p.replies();
    assert_eq!((r[0].msg_type, r[0].stream_id), (20, 1));
    assert_eq!(cmd_of(&r[0]).name, "onStatus");
    assert_eq!(code_of(&r[0]), "NetStream.Publish.Start");

    // @setDataFrame onMetaData {...}
    let mut meta = BytesMut::new();
    amf::encode(&"@setDataFrame".into(), &mut meta);
    let tail_start = meta.len();
    amf::encode(&"onMetaData".into(), &mut meta);
    amf::encode(
        &Value::EcmaArray(vec![("width".into(), 1280.0.into())]),
        &mut meta,
    );
    p.send(5, 0, MSG_DATA_AMF0, sid, &meta);
    p.send(4, 10, MSG_AUDIO, sid, &[0xAF, 0x00, 0x12, 0x10]);
    let video = vec![0x17u8; 10_000];
    p.send(6, 20, MSG_VIDEO, sid, &video);
    let ev = p.events();
    assert_eq!(
        ev,
        vec![
            ServerEvent::Media {
                stream_id: 1,
                msg_type: 18,
                timestamp: 0,
                payload: Bytes::copy_from_slice(&meta[tail_start..])
            },
            ServerEvent::Media {
                stream_id: 1,
                msg_type: 8,
                timestamp: 10,
                payload: Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10])
            },
            ServerEvent::Media {
                stream_id: 1,
                msg_type: 9,
                timestamp: 20,
                payload: Bytes::from(video)
            },
        ]
    );

    // Aggregate with two sub-messages rebased onto 1000.
    let mut agg = vec![8, 0, 0, 1, 0, 0, 50, 0, 0, 0, 1, 0xAA, 0, 0, 0, 12];
    agg.extend([9, 0, 0, 1, 0, 0, 90, 0, 0, 0, 1, 0xBB, 0, 0, 0, 12]);
    p.send(6, 1000, MSG_AGGREGATE, sid, &agg);
    let ts: Vec<u32> = p
        .events()
        .iter()
        .map(|e| match e {
            ServerEvent::Media { timestamp, .. } => *timestamp,
            _ => panic!(),
        })
        .collect();
    assert_eq!(ts, vec![1000, 1040]);

    p.command(0, "FCUnpublish", 6.0, Value::Null, &["key?x=1".into()]);
    assert_eq!(p.events(), vec![ServerEvent::Unpublish { stream_id: 1 }]);
    let r = p.replies();
    assert_eq!(cmd_of(&r[0]).name, "onFCUnpublish");
    // Media after unpublish is ignored.
    p.send(4, 30, MSG_AUDIO, sid, &[0xAF, 1]);
    assert!(p.events().is_empty());
    p.command(0, "deleteStream", 7.0, Value::Null, &[Value::Number(1.0)]);
    assert_eq!(p.events(), vec![ServerEvent::DeleteStream { stream_id: 1 }]);
}

#[test]
fn play_sequence() {
    let mut p = Peer::connected();
    connect(&mut p);
    p.command(0, "getStreamLength", 2.0, Value::Null, &["cam".into()]);
    assert_eq!(cmd_of(&p.replies()[0]).name, "_result");
    let sid = create_stream(&mut p, 3.0);
    let mut ev = [0u8, 3, 0, 0, 0, 0, 0, 0, 0, 0].to_vec();
    ev[2..6].copy_from_slice(&sid.to_be_bytes());
    ev[6..10].copy_from_slice(&3000u32.to_be_bytes());
    p.send(2, 0, MSG_USER_CONTROL, 0, &ev);
    assert_eq!(p.session.buffer_length(sid), Some(3000));
    p.command(
        sid,
        "play",
        4.0,
        Value::Null,
        &["cam?k=v".into(), (-2.0).into()],
    );
    assert_eq!(
        p.events(),
        vec![ServerEvent::Play {
            stream_id: sid,
            name: "cam".into(),
            query: Some("k=v".into()),
            start: -2.0,
            duration: -1.0,
            reset: true
        }]
    );
    p.session.accept_play(sid);
    let r = p.replies();
    assert_eq!(r[0].msg_type, MSG_USER_CONTROL);
    assert_eq!(&r[0].payload[..], &[0, 0, 0, 0, 0, 1]);
    assert_eq!(code_of(&r[1]), "NetStream.Play.Reset");
    assert_eq!(code_of(&r[2]), "NetStream.Play.Start");
    assert_eq!(r[3].msg_type, MSG_DATA_AMF0);
    assert_eq!(
        amf::decode_all(&r[3].payload).unwrap(),
        vec!["|RtmpSampleAccess".into(), true.into(), true.into()]
    );
    let data_start = amf::decode_all(&r[4].payload).unwrap();
    assert_eq!(
        data_start[1].get("code").and_then(Value::as_str),
        Some("NetStream.Data.Start")
    );
    assert!(r.iter().skip(1).all(|m| m.stream_id == sid));

    p.command(
        sid,
        "pause",
        0.0,
        Value::Null,
        &[true.into(), 1234.0.into()],
    );
    p.command(sid, "receiveVideo", 0.0, Value::Null, &[false.into()]);
    p.command(sid, "closeStream", 0.0, Value::Null, &[]);
    assert_eq!(
        p.events(),
        vec![
            ServerEvent::Pause {
                stream_id: sid,
                pause: true,
                position_ms: 1234.0
            },
            ServerEvent::ReceiveVideo {
                stream_id: sid,
                enabled: false
            },
            ServerEvent::DeleteStream { stream_id: sid },
        ]
    );
    p.session
        .reject_play(5, "NetStream.Play.StreamNotFound", "no such stream");
    let r = p.replies();
    assert_eq!(code_of(&r[0]), "NetStream.Play.StreamNotFound");
    assert_eq!(r[0].stream_id, 5);
}

#[test]
fn control_and_unknown_commands() {
    let mut p = Peer::connected();
    // Ping request is answered.
    p.send(2, 0, MSG_USER_CONTROL, 0, &[0, 6, 0, 0, 0, 42]);
    let r = p.replies();
    assert_eq!(&r[0].payload[..], &[0, 7, 0, 0, 0, 42]);
    // Unknown with a transaction id: _error; with id 0: ignored.
    p.command(0, "frobnicate", 9.0, Value::Null, &[]);
    p.command(0, "frobnicate", 0.0, Value::Null, &[]);
    let r = p.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(cmd_of(&r[0]).name, "_error");
    assert_eq!(code_of(&r[0]), "NetConnection.Call.Failed");
    // Connect rejection.
    p.command(0, "connect", 1.0, object(&[("app", "x".into())]), &[]);
    p.events();
    p.session.reject_connect("nope");
    let r = p.replies();
    assert_eq!(code_of(&r[0]), "NetConnection.Connect.Rejected");
    // Window ack size from the peer makes us acknowledge.
    p.send(2, 0, MSG_WINDOW_ACK_SIZE, 0, &100u32.to_be_bytes());
    p.command(0, "x", 0.0, Value::Null, &["y".repeat(200).into()]);
    let r = p.replies();
    assert_eq!(r.last().unwrap().msg_type, MSG_ACKNOWLEDGEMENT);
    let seq = u32::from_be_bytes(r.last().unwrap().payload[..4].try_into().unwrap());
    // Input arrives in 7-byte pieces: the ack fires within one window of the end.
    let recv = p.session.bytes_received();
    assert!(u64::from(seq) <= recv && recv - u64::from(seq) < 100);
    // Pong event.
    p.session.send_ping(77);
    p.send(2, 0, MSG_USER_CONTROL, 0, &[0, 7, 0, 0, 0, 77]);
    assert_eq!(
        p.events(),
        vec![ServerEvent::PingResponse { timestamp: 77 }]
    );
}

#[test]
fn amf3_command_and_reject_publish() {
    let mut p = Peer::connected();
    connect(&mut p);
    let sid = create_stream(&mut p, 2.0);
    let mut body = vec![0u8];
    body.extend_from_slice(&build("publish", 3.0, &Value::Null, &["k".into()]));
    p.send(3, 0, MSG_COMMAND_AMF3, sid, &body);
    assert!(
        matches!(&p.events()[..], [ServerEvent::Publish { name, publish_type, .. }] if name == "k" && publish_type == "live")
    );
    p.session
        .reject_publish(sid, "NetStream.Publish.BadName", "taken");
    let r = p.replies();
    assert_eq!(code_of(&r[0]), "NetStream.Publish.BadName");
    assert_eq!(
        cmd_of(&r[0]).args[0].get("level").and_then(Value::as_str),
        Some("error")
    );
    p.send(4, 0, MSG_AUDIO, sid, &[1]);
    assert!(p.events().is_empty());
}

#[test]
fn hostile_input_closes() {
    let mut s = ServerSession::new(ServerConfig::default());
    assert!(s.handle_input(&[9]).is_err());
    let mut p = Peer::connected();
    assert!(
        p.session
            .handle_input(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0])
            .is_err()
    );
}

// --- Bytes held in incomplete messages ---

/// Connected with chunk size 4096 (as OBS and ffmpeg), a stream created and a publish
/// requested; the Publish event is polled but not answered.
fn publish_requested() -> (Peer, u32) {
    let mut p = Peer::connected();
    p.send(2, 0, MSG_SET_CHUNK_SIZE, 0, &4096u32.to_be_bytes());
    p.chunk_size = 4096;
    connect(&mut p);
    let sid = create_stream(&mut p, 2.0);
    p.command(
        sid,
        "publish",
        3.0,
        Value::Null,
        &["cam".into(), "live".into()],
    );
    assert!(p.session.awaits_decision());
    assert!(matches!(&p.events()[..], [ServerEvent::Publish { .. }]));
    assert!(!p.session.awaits_decision());
    p.replies();
    (p, sid)
}

fn video_payloads(events: &[ServerEvent]) -> Vec<Bytes> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Media {
                msg_type: MSG_VIDEO,
                payload,
                ..
            } => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn reported_attack_is_refused_at_the_command_budget() {
    // After an unauthenticated connect: chunk size one byte short of 8 MiB, then the first
    // chunk of an 8 MiB message on chunk stream after chunk stream (only the first is needed).
    let mut p = Peer::connected();
    connect(&mut p);
    assert!(!p.session.awaits_decision());
    assert_eq!(p.session.partial_budget(), COMMAND_PARTIAL_BUDGET);
    const LEN: u32 = 8 * 1024 * 1024;
    let mut wire = BytesMut::new();
    encode_message(
        &mut wire,
        2,
        0,
        MSG_SET_CHUNK_SIZE,
        0,
        &(LEN - 1).to_be_bytes(),
        128,
    );
    for csid in 3..=4 {
        crate::chunk::write_message_header(&mut wire, csid, 0, LEN, MSG_VIDEO, 1);
        wire.extend_from_slice(&vec![0x17; LEN as usize - 1]);
    }
    let err = p.feed(&wire, 4096).expect_err("refused");
    match err {
        RtmpError::PartialBudgetExceeded {
            csid: 3,
            needed,
            budget,
        } => {
            assert_eq!(budget, COMMAND_PARTIAL_BUDGET);
            assert!(needed > budget && needed <= budget + 4096, "{needed}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(p.session.partial_bytes() <= COMMAND_PARTIAL_BUDGET);
}

#[test]
fn large_keyframes_pass_once_the_publish_is_accepted() {
    let (mut p, sid) = publish_requested();
    assert_eq!(p.session.partial_budget(), COMMAND_PARTIAL_BUDGET);
    p.session.accept_publish(sid);
    assert_eq!(
        p.session.partial_budget(),
        crate::chunk::media_partial_budget(DEFAULT_MAX_MESSAGE_LEN)
    );
    assert_eq!(code_of(&p.replies()[0]), "NetStream.Publish.Start");
    // A keyframe of the largest accepted length, then a 3 MiB one, each followed by audio;
    // fed in 64 KiB reads.
    let big: Vec<u8> = (0..DEFAULT_MAX_MESSAGE_LEN as usize)
        .map(|i| (i % 253) as u8)
        .collect();
    let mid = vec![0x27u8; 3 << 20];
    p.try_send(6, 0, MSG_VIDEO, sid, &big, 64 * 1024).unwrap();
    p.try_send(4, 10, MSG_AUDIO, sid, &[0xAF, 1, 2], 64 * 1024)
        .unwrap();
    p.try_send(6, 40, MSG_VIDEO, sid, &mid, 64 * 1024).unwrap();
    let ev = p.events();
    assert_eq!(ev.len(), 3);
    let videos = video_payloads(&ev);
    assert_eq!(videos.len(), 2);
    assert!(videos[0] == big && videos[1] == mid);
    assert_eq!(p.session.partial_bytes(), 0);
}

#[test]
fn budget_is_the_command_one_until_accept_and_after_unpublish() {
    let frame = vec![0x17u8; 100_000];
    // Requested but not accepted: a 100 kB frame is refused.
    let (mut p, sid) = publish_requested();
    assert_eq!(
        p.try_send(6, 0, MSG_VIDEO, sid, &frame, 64 * 1024),
        Err(RtmpError::PartialBudgetExceeded {
            csid: 6,
            needed: 4096 * 17,
            budget: COMMAND_PARTIAL_BUDGET
        })
    );
    // Accepted: it passes. Unpublished: the budget is the command one again.
    let (mut p, sid) = publish_requested();
    p.session.accept_publish(sid);
    p.try_send(6, 0, MSG_VIDEO, sid, &frame, 64 * 1024).unwrap();
    assert_eq!(
        video_payloads(&p.events()),
        vec![Bytes::from(frame.clone())]
    );
    p.command(0, "FCUnpublish", 4.0, Value::Null, &["cam".into()]);
    assert_eq!(p.events(), vec![ServerEvent::Unpublish { stream_id: sid }]);
    assert_eq!(p.session.partial_budget(), COMMAND_PARTIAL_BUDGET);
    assert!(matches!(
        p.try_send(6, 80, MSG_VIDEO, sid, &frame, 64 * 1024),
        Err(RtmpError::PartialBudgetExceeded { budget, .. }) if budget == COMMAND_PARTIAL_BUDGET
    ));
}

#[test]
fn rejected_publish_keeps_the_command_budget() {
    let (mut p, sid) = publish_requested();
    p.session.accept_publish(sid);
    p.session
        .reject_publish(sid, "NetStream.Publish.BadName", "taken");
    assert_eq!(p.session.partial_budget(), COMMAND_PARTIAL_BUDGET);
    // accept_publish on a stream that never asked does not raise it either.
    p.session.accept_publish(sid + 7);
    assert_eq!(p.session.partial_budget(), COMMAND_PARTIAL_BUDGET);
}

#[test]
fn adapter_grant_caps_the_budget() {
    let (mut p, sid) = publish_requested();
    p.session.accept_publish(sid);
    p.session.set_partial_grant(20_000);
    let frame = vec![0x17u8; 30_000];
    let err = p
        .try_send(6, 0, MSG_VIDEO, sid, &frame, 64 * 1024)
        .expect_err("over the grant");
    // The budget in the error is the grant, below the session's own: the adapter can tell a
    // server-wide refusal from the connection's own.
    assert!(matches!(
        err,
        RtmpError::PartialBudgetExceeded { budget: 20_000, .. }
    ));
    assert!(p.session.partial_budget() > 20_000);
    let (mut p, sid) = publish_requested();
    p.session.accept_publish(sid);
    p.session.set_partial_grant(20_000);
    p.session.set_partial_grant(usize::MAX);
    p.try_send(6, 0, MSG_VIDEO, sid, &frame, 64 * 1024).unwrap();
    assert_eq!(video_payloads(&p.events()).len(), 1);
}

#[test]
fn play_connections_keep_the_command_budget() {
    let mut p = Peer::connected();
    connect(&mut p);
    let sid = create_stream(&mut p, 2.0);
    p.command(sid, "play", 3.0, Value::Null, &["cam".into()]);
    assert!(p.session.awaits_decision());
    p.events();
    p.session.accept_play(sid);
    assert_eq!(p.session.partial_budget(), COMMAND_PARTIAL_BUDGET);
}
