//! Arbitrary SRT stream ids (the handshake's StreamID extension, before any access check):
//! no panic; whatever parses names an app and a stream the name checks then see.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = String::from_utf8_lossy(data);
    if let Ok(s) = access::srt::SrtStreamId::parse(&id) {
        assert!(!s.app.is_empty() || !s.stream.is_empty());
        let _ = access::StreamName::new(&s.app, &s.stream);
    }
});
