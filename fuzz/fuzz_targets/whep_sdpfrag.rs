//! WHEP/WHIP `PATCH` bodies (trickle ICE and ICE restart fragments, RFC 8840) from hostile
//! clients: parsing and the restart answer never panic, take a bounded number of
//! candidates, and the answer is made of whole lines we write.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (answer, candidates) = sluice_server::fuzzing::whep_sdpfrag(&text, "curr");
    assert!(candidates <= 32);
    for line in answer.split_terminator("\r\n") {
        assert!(!line.contains('\r') && !line.contains('\n'), "{line:?}");
        assert!(line.starts_with("a=") || line.starts_with("m="), "{line:?}");
        assert!(line.len() <= 512, "{line:?}");
    }
});
