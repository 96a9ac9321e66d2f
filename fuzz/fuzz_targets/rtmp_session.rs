#![no_main]
use libfuzzer_sys::fuzz_target;
use rtmp::{ServerConfig, ServerEvent, ServerSession};

fuzz_target!(|data: &[u8]| {
    let cfg = ServerConfig {
        max_message_len: 64 * 1024,
        max_chunk_streams: 8,
        // Small budgets of bytes in incomplete messages, so the fuzzer reaches both.
        max_partial_bytes: 512,
        max_partial_bytes_publishing: 4096,
        ..ServerConfig::default()
    };
    let mut s = ServerSession::new(cfg);
    // Start with a valid C0+C1 and C2 so the fuzzer reaches the chunk layer,
    // then split the input at points chosen by its first bytes.
    let mut hs = rtmp::handshake::ClientHandshake::new();
    if let Some(c0c1) = hs.take_output() {
        let _ = s.handle_input(&c0c1);
    }
    let _ = s.handle_input(&[0u8; 1536]);
    let mut rest = data;
    while !rest.is_empty() {
        let n = usize::from(rest[0] % 64) + 1;
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        // A grant chosen by the input, as a server-wide budget would cap the session.
        s.set_partial_grant(if piece[0] & 0x80 == 0 {
            usize::MAX
        } else {
            1024
        });
        if s.handle_input(piece).is_err() {
            return;
        }
        // Never more than the largest budget ever in force.
        assert!(s.partial_bytes() <= 4096);
        while let Some(ev) = s.poll_event() {
            match ev {
                ServerEvent::Connect { .. } => s.accept_connect(),
                ServerEvent::Publish { stream_id, .. } => s.accept_publish(stream_id),
                ServerEvent::Play { stream_id, .. } => s.accept_play(stream_id),
                _ => {}
            }
        }
        while s.take_output().is_some() {}
    }
});
