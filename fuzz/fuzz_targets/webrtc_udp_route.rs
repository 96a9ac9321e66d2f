//! Datagrams on the shared WebRTC UDP port: reading the demultiplexing key (a STUN
//! request's local ufrag) never panics, and what it returns is the part before the `:` of a
//! USERNAME attribute inside the datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(ufrag) = rtp::stun::local_ufrag(data) {
        assert!(!ufrag.is_empty() && !ufrag.contains(':'));
        assert!(ufrag.len() <= rtp::stun::MAX_USERNAME);
        assert!(data.len() >= rtp::stun::HEADER_LEN + 4 + ufrag.len());
    }
});
