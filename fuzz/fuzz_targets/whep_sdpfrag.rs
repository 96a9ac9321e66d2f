//! WHEP/WHIP `PATCH` bodies (trickle ICE and ICE restart fragments, RFC 8840) from hostile
//! clients: parsing and the restart answer never panic, take a bounded number of
//! candidates, and the answer is made of whole lines we write.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // As the resource handler takes it: parsed, checked as restart credentials against the
    // current remote ufrag, and answered when it is a usable restart.
    let f = rtp::sdpfrag::parse_fragment(&text);
    let candidates = f.candidates.len();
    let answer = match rtp::sdpfrag::restart_creds(&f, "curr") {
        Ok(Some(_remote)) => {
            let local = rtp::sdpfrag::IceCredentials {
                ufrag: "srv1".into(),
                pass: "0123456789012345678901".into(),
            };
            let ours = ["candidate:1 1 udp 1 127.0.0.1 9 typ host".to_owned()];
            rtp::sdpfrag::answer_fragment(&local, &f, &ours)
        }
        Ok(None) | Err(_) => String::new(),
    };
    assert!(candidates <= 32);
    for line in answer.split_terminator("\r\n") {
        assert!(!line.contains('\r') && !line.contains('\n'), "{line:?}");
        assert!(line.starts_with("a=") || line.starts_with("m="), "{line:?}");
        assert!(line.len() <= 512, "{line:?}");
    }
});
