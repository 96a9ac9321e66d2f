#![no_main]
use libfuzzer_sys::fuzz_target;
use rtmp::{ClientConfig, ClientEvent, ClientSession};

fuzz_target!(|data: &[u8]| {
    let cfg = ClientConfig {
        max_message_len: 64 * 1024,
        max_chunk_streams: 8,
        ..ClientConfig::default()
    };
    let mut c = ClientSession::new(cfg);
    c.connect("live", "rtmp://127.0.0.1/live");
    c.play("stream");
    // A valid S0+S1+S2 so the fuzzer reaches the chunk layer at once.
    let mut s0s1s2 = vec![3u8];
    s0s1s2.resize(1 + 2 * rtmp::handshake::HANDSHAKE_SIZE, 0);
    if c.handle_input(&s0s1s2).is_err() {
        return;
    }
    while c.take_output().is_some() {}
    // Split the input at points chosen by its own bytes.
    let mut rest = data;
    while let Some(&first) = rest.first() {
        let n = usize::from(first % 64) + 1;
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        if c.handle_input(piece).is_err() {
            return;
        }
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::PublishStarted { .. } = ev {
                let _ = c.send_media(9, 0, piece);
            }
        }
        while c.take_output().is_some() {}
        let _ = c.bytes_received();
        let _ = c.state();
    }
});
