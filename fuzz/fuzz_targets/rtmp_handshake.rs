#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut server = rtmp::handshake::ServerHandshake::new();
    let mut rest = data;
    while !rest.is_empty() {
        match server.handle_input(rest) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
        }
        let _ = server.take_output();
    }
    let mut client = rtmp::handshake::ClientHandshake::new();
    let _ = client.handle_input(data);
    let _ = client.take_output();
});
