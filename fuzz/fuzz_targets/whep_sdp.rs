//! WHEP offers from hostile clients: the offer check and the ufrag lookup never panic, and a
//! usable offer is an SDP document.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sdp = String::from_utf8_lossy(data);
    let usable = rtp::sdp::check_offer(&sdp).is_ok();
    let ufrag = rtp::sdp::remote_ufrag(&sdp);
    assert!(!usable || sdp.starts_with("v=0"));
    assert!(ufrag.len() <= sdp.len());
});
